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


# ---- Azure Voice Live: the azure-ai-voicelive package's models -----------------------------------
# Fields the mock sends that the SDK models leave out (the docs and the preview protocol have them).
VOICE_LIVE_EXTRAS = {
    ("session", "object"),  # "realtime.session" [R0410]
    ("session", "expires_at"),  # 2026-07-15 [R0715]
    ("response", "object"),  # "realtime.response"
    ("item", "object"),  # "realtime.item"
    ("output", "object"),
    # the SDK's input_audio content part is the client's (audio required); a server's item does not
    # echo the audio bytes (the preview protocol leaves them out)
    ("content[0]", "audio"),
}
# Whole paths: the mock's input transcription is shared by every dialect (and being rebuilt in
# loadtest/mock/transcribe.py on another branch); the SDK's model of this event has no usage.
VOICE_LIVE_EXTRA_PATHS = {"conversation.item.input_audio_transcription.completed.usage"}


def _voicelive_fields(model: Any, path: str, out: list[str]) -> None:
    """Every key of ``model`` that its SDK class does not declare, and every required field missing,
    recursing into nested models (reading an attribute deserialises it: a wrong type raises)."""
    from azure.ai.voicelive._utils.model_base import _UNSET, Model

    declared = {rf._rest_name: attr for attr, rf in type(model)._attr_to_rest_field.items()}
    for key in dict(model):
        if key not in declared:
            out.append(f"{path}.{key}")
    for rest_name, attr in declared.items():
        rf = type(model)._attr_to_rest_field[attr]
        if rest_name not in model:
            if not rf._is_optional and rf._default is _UNSET:
                out.append(f"{path}.{rest_name} (required, missing)")
            continue
        value = getattr(model, attr)
        values = value if isinstance(value, list) else [value]
        for i, item in enumerate(values):
            if isinstance(item, Model):
                _voicelive_fields(item, f"{path}.{rest_name}" + (f"[{i}]" if isinstance(value, list) else ""), out)


def validate_voicelive(event: dict[str, Any]) -> Any:
    """The event as the SDK's own ``ServerEvent`` subclass; AssertionError naming an unknown event
    type, a field the SDK model does not declare or a required one missing."""
    from azure.ai.voicelive.models import ServerEvent

    if event["type"] == "rate_limits.updated":  # documented [R0410], not in the SDK: the preview type's shape
        return validate(event, "preview")
    model = ServerEvent._deserialize(dict(event), [])
    assert type(model) is not ServerEvent, f"{event['type']}: no azure-ai-voicelive model for this event type"
    problems: list[str] = []
    _voicelive_fields(model, event["type"], problems)
    unexpected = [
        p
        for p in problems
        if tuple(p.split(" ")[0].split(".")[-2:]) not in VOICE_LIVE_EXTRAS and p not in VOICE_LIVE_EXTRA_PATHS
    ]
    assert not unexpected, f"{event['type']}: not as the azure-ai-voicelive models say: {unexpected}"
    return model
