"""Every field a client sets comes back in ``session.updated`` and ``response.created`` where the
service echoes it, field by field, in both dialects; the echoes validate against the openai types."""

from __future__ import annotations

from typing import Any

import pytest

from tests.mock.schema_check import validate
from tests.mock.wsclient import dialect_client

TOOL = {
    "type": "function",
    "name": "lookup_order",
    "description": "Find an order by id",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
}
GA_SESSION = {
    "type": "realtime",
    "instructions": "Be brief.",
    "output_modalities": ["text"],
    "max_output_tokens": 500,
    "tools": [TOOL],
    "tool_choice": {"type": "function", "name": "lookup_order"},
    "parallel_tool_calls": False,
    "tracing": "auto",
    "truncation": "disabled",
    "include": ["item.input_audio_transcription.logprobs"],
    "prompt": {"id": "pmpt_123", "version": "2"},
    "reasoning": {"effort": "low"},
    "audio": {
        "input": {
            "format": {"type": "audio/pcmu"},
            "transcription": {"model": "gpt-4o-transcribe", "language": "en", "prompt": "orders"},
            "noise_reduction": {"type": "near_field"},
            "turn_detection": {
                "type": "server_vad",
                "threshold": 0.6,
                "prefix_padding_ms": 200,
                "silence_duration_ms": 400,
                "idle_timeout_ms": 6000,
                "create_response": False,
                "interrupt_response": False,
            },
        },
        "output": {"format": {"type": "audio/pcma"}, "voice": "marin", "speed": 1.2},
    },
}
PREVIEW_SESSION = {
    "modalities": ["text"],
    "instructions": "Be brief.",
    "voice": "verse",
    "input_audio_format": "g711_ulaw",
    "output_audio_format": "g711_alaw",
    "input_audio_transcription": {"model": "whisper-1", "language": "en", "prompt": "orders"},
    "input_audio_noise_reduction": {"type": "far_field"},
    "turn_detection": {
        "type": "semantic_vad",
        "eagerness": "high",
        "create_response": False,
        "interrupt_response": False,
    },
    "tools": [TOOL],
    "tool_choice": "required",
    "temperature": 0.7,
    "max_response_output_tokens": 300,
    "speed": 1.1,
    "tracing": "auto",
}
GA_RESPONSE = {
    "output_modalities": ["audio"],
    "audio": {"output": {"format": {"type": "audio/pcmu"}, "voice": "cedar"}},
    "max_output_tokens": 200,
    "metadata": {"topic": "billing"},
}
PREVIEW_RESPONSE = {
    "modalities": ["text"],
    "voice": "ash",
    "output_audio_format": "g711_ulaw",
    "max_response_output_tokens": 200,
    "temperature": 0.9,
    "metadata": {"topic": "billing"},
}
# response.create fields the Realtime response object does not carry (neither dialect's type)
NOT_IN_RESPONSE = {"max_response_output_tokens": "max_output_tokens"}


def _leaves(sent: Any, echoed: Any, path: str = "") -> list[str]:
    """Paths where ``echoed`` does not hold what ``sent`` holds (sent dicts are subsets)."""
    if isinstance(sent, dict) and isinstance(echoed, dict):
        wrong = []
        for key, value in sent.items():
            if key not in echoed:
                wrong.append(f"{path}.{key} (missing)")
            else:
                wrong += _leaves(value, echoed[key], f"{path}.{key}")
        return wrong
    return [] if sent == echoed else [f"{path}: sent {sent!r}, echoed {echoed!r}"]


@pytest.mark.parametrize("dialect", ["ga", "preview"])
def test_session_updated_echoes_every_field_sent(shared_mock, dialect: str) -> None:
    sent = GA_SESSION if dialect == "ga" else PREVIEW_SESSION
    with dialect_client(shared_mock.url, dialect) as c:
        c.recv()
        c.send({"type": "session.update", "session": sent})
        updated = c.until(lambda e: e["type"] in ("session.updated", "error"))
        assert updated["type"] == "session.updated", updated
        validate(updated, dialect)
        assert _leaves(sent, updated["session"]) == []


@pytest.mark.parametrize("dialect", ["ga", "preview"])
def test_response_created_echoes_the_response_fields_sent(shared_mock, dialect: str) -> None:
    sent = GA_RESPONSE if dialect == "ga" else PREVIEW_RESPONSE
    with dialect_client(shared_mock.url, dialect) as c:
        c.recv()
        c.send({"type": "response.create", "response": sent})
        created = c.until(lambda e: e["type"] in ("response.created", "error"))
        assert created["type"] == "response.created", created
        validate(created, dialect)
        expected = {NOT_IN_RESPONSE.get(k, k): v for k, v in sent.items()}
        if dialect == "preview":
            expected["modalities"] = ["text"]
        assert _leaves(expected, created["response"]) == []
        c.until("response.done")


def test_a_later_update_keeps_what_an_earlier_one_set(shared_mock) -> None:
    with dialect_client(shared_mock.url, "ga") as c:
        c.recv()
        c.send({"type": "session.update", "session": GA_SESSION})
        c.until("session.updated")
        c.send({"type": "session.update", "session": {"type": "realtime", "instructions": "Be kind."}})
        later = c.until("session.updated")["session"]
        assert later["instructions"] == "Be kind."
        assert later["tools"] == [TOOL] and later["tool_choice"] == GA_SESSION["tool_choice"]
        assert later["audio"]["input"]["noise_reduction"] == {"type": "near_field"}


@pytest.mark.parametrize(
    ("session", "param"),
    [
        ({"type": "realtime", "tool_choice": "sometimes"}, "session.tool_choice"),
        ({"type": "realtime", "tools": [{"type": "function"}]}, "session.tools[0].name"),
        (
            {"type": "realtime", "audio": {"input": {"noise_reduction": {"type": "loud"}}}},
            "session.audio.input.noise_reduction.type",
        ),
        ({"type": "realtime", "parallel_tool_calls": "yes"}, "session.parallel_tool_calls"),
    ],
)
def test_bad_tool_and_audio_fields_are_refused_naming_the_field(shared_mock, session: dict, param: str) -> None:
    with dialect_client(shared_mock.url, "ga") as c:
        c.recv()
        c.send({"type": "session.update", "session": session})
        error = c.until("error")
        validate(error, "ga")
        assert error["error"]["param"] == param
