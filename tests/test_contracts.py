"""The record contract and the dialect tables that every layer relies on."""

from __future__ import annotations

import pytest

from loadtest.protocol.dialects import GA, PREVIEW, RENAMED_EVENTS, get_dialect, other_dialect_hint
from loadtest.protocol.targets import Target, redact_text, redact_url
from loadtest.records.schema import (
    FAULT_EXPECTATIONS,
    OUTCOMES,
    REASONS,
    ResponseRecord,
    columns,
    outcome_of,
    to_row,
)


def test_every_reason_belongs_to_a_known_outcome() -> None:
    assert set(REASONS.values()) <= set(OUTCOMES) - {"completed"}
    assert outcome_of("") == "completed"
    assert outcome_of("audio_stall") == "truncated"
    assert outcome_of("handshake_429") == "throttled"


def test_fault_expectations_use_the_vocabulary() -> None:
    for outcome, reason in FAULT_EXPECTATIONS.values():
        assert outcome_of(reason) == outcome


def test_response_row_has_the_columns_other_tools_rely_on() -> None:
    row = to_row(ResponseRecord(run_id="r", session_id="sess_1", response_id="resp_1", outcome="completed"))
    for name in ("run_id", "session_id", "response_id", "outcome", "reason", "ttfa_ms", "schema_version"):
        assert name in row
    assert list(row) == columns(ResponseRecord)


def test_renamed_events_belong_to_their_dialects() -> None:
    for old, new in RENAMED_EVENTS.items():
        assert old in PREVIEW.server_events | PREVIEW.client_events
        assert new in GA.server_events | GA.client_events
        assert old not in GA.server_events | GA.client_events


def test_other_dialect_hint_names_the_right_event() -> None:
    hint = other_dialect_hint("response.audio.delta", GA)
    assert hint is not None and "response.output_audio.delta" in hint
    assert other_dialect_hint("response.output_audio.delta", GA) is None
    hint = other_dialect_hint("response.output_audio.delta", PREVIEW)
    assert hint is not None and "response.audio.delta" in hint
    with pytest.raises(ValueError, match="unknown dialect"):
        get_dialect("beta2")


def test_session_update_shapes() -> None:
    ga = GA.session_update(output_modalities=["audio"], voice="alloy", audio_format="g711_ulaw", turn_detection=None)
    assert ga["session"]["type"] == "realtime"
    assert ga["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert ga["session"]["audio"]["input"]["turn_detection"] is None
    pv = PREVIEW.session_update(output_modalities=["audio"], voice="alloy")
    assert "type" not in pv["session"]
    assert pv["session"]["modalities"] == ["text", "audio"]
    assert pv["session"]["turn_detection"] == {"type": "server_vad"}


@pytest.mark.parametrize(
    ("provider", "dialect", "expected"),
    [
        ("openai", "ga", "ws://127.0.0.1:8765/v1/realtime?model=gpt-realtime"),
        ("azure", "ga", "ws://127.0.0.1:8765/openai/v1/realtime?model=gpt-realtime"),
        (
            "azure",
            "preview",
            "ws://127.0.0.1:8765/openai/realtime?api-version=2025-04-01-preview&deployment=gpt-realtime",
        ),
    ],
)
def test_target_urls(provider: str, dialect: str, expected: str) -> None:
    target = Target(base_url="http://127.0.0.1:8765", provider=provider, dialect=dialect, api_key="sk-x")
    assert target.url() == expected


def test_auth_headers_and_redaction() -> None:
    azure = Target(base_url="wss://res.openai.azure.com", provider="azure", api_key="SECRET123")
    assert ("api-key", "SECRET123") in azure.headers()
    openai = Target(base_url="wss://api.openai.com", provider="openai", dialect="preview", api_key="SECRET123")
    assert ("Authorization", "Bearer SECRET123") in openai.headers()
    assert ("OpenAI-Beta", "realtime=v1") in openai.headers()
    assert "SECRET123" not in redact_url("wss://h/openai/v1/realtime?model=m&api-key=SECRET123")
    assert "SECRET123" not in redact_text("Authorization: Bearer SECRET123 and key SECRET123", ["SECRET123"])
    assert "SECRET123" not in repr(azure)
    assert "SECRET123" not in str(azure.describe())
