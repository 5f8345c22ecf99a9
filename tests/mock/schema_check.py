"""Validate server events against the official openai package's pydantic types for each dialect.

GA: ``openai.types.realtime.RealtimeServerEvent``; preview: ``openai.types.beta.realtime.RealtimeServerEvent``.
Beyond type-checking, every field the mock sends must be a field of the type (openai models accept
unknown fields silently), except a few the live services send that the SDK types leave out.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel, TypeAdapter

# Fields live services send that the SDK types do not declare (see realtime-protocol.md §2).
KNOWN_EXTRAS = {
    ("session", "object"),  # GA session: "realtime.session"
    ("session", "id"),
    ("session", "expires_at"),
    ("session", "include"),
    ("session", "input_audio_noise_reduction"),  # preview transcription session (declared for realtime ones)
}


@cache
def adapter(dialect: str) -> TypeAdapter[Any]:
    if dialect == "ga":
        from openai.types.realtime import RealtimeServerEvent
    else:
        from openai.types.beta.realtime import RealtimeServerEvent
    return TypeAdapter(RealtimeServerEvent)


def _extras(model: Any, path: str, out: list[str]) -> None:
    if isinstance(model, BaseModel):
        for key in model.model_extra or {}:
            out.append(f"{path}.{key}")
        for name in type(model).model_fields:
            _extras(getattr(model, name), f"{path}.{name}", out)
    elif isinstance(model, list):
        for i, item in enumerate(model):
            _extras(item, f"{path}[{i}]", out)


def validate(event: dict[str, Any], dialect: str) -> BaseModel:
    """The parsed event; AssertionError naming any field the SDK type does not know."""
    if event.get("type") == "transcription_session.updated" and "client_secret" not in event.get("session", {}):
        # the WebSocket event has no client_secret, which the SDK type requires (openai/openai-openapi#568)
        event = {**event, "session": {**event["session"], "client_secret": {"value": "", "expires_at": 0}}}
    model = adapter(dialect).validate_python(event)
    assert type(model).__name__ != "dict", event["type"]
    extras: list[str] = []
    _extras(model, event["type"], extras)
    unexpected = [x for x in extras if (x.split(".")[-2], x.split(".")[-1]) not in KNOWN_EXTRAS]
    assert not unexpected, f"{event['type']}: fields not in the {dialect} SDK type: {unexpected}"
    return model
