"""Azure Voice Live in the protocol tables: its URL shapes, auth, model classes and its dialect."""

from __future__ import annotations

import pytest

from loadtest.audio.frames import decode_appends, frames_for
from loadtest.protocol.dialects import PREVIEW, VOICE_LIVE, get_dialect
from loadtest.protocol.targets import VOICE_LIVE_SCOPE, Target

BASE = "wss://contoso.services.ai.azure.com"


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"deployment": "gpt-realtime"}, f"{BASE}/voice-live/realtime?api-version=2026-04-10&model=gpt-realtime"),
        (
            {"deployment": "gpt-4.1", "api_version": "2025-10-01"},
            f"{BASE}/voice-live/realtime?api-version=2025-10-01&model=gpt-4.1",
        ),
        (
            {"query": {"agent-name": "booking", "agent-project-name": "contoso"}},
            f"{BASE}/voice-live/realtime?api-version=2026-04-10&agent-name=booking&agent-project-name=contoso",
        ),
        (
            {"deployment": "my-rt", "query": {"profile": "byom-azure-openai-realtime"}},
            f"{BASE}/voice-live/realtime?api-version=2026-04-10&model=my-rt&profile=byom-azure-openai-realtime",
        ),
    ],
)
def test_voicelive_urls(kw: dict, expected: str) -> None:
    assert Target(base_url=BASE, provider="voicelive", **kw).url() == expected


@pytest.mark.parametrize(
    ("kw", "model_class"),
    [
        ({"deployment": "gpt-realtime"}, "native"),
        ({"deployment": "gpt-realtime-mini"}, "native"),
        ({"deployment": "azure-realtime"}, "native"),
        ({"deployment": "gpt-4.1-mini"}, "cascade"),
        ({"deployment": "phi4-mm-realtime"}, "cascade"),
        ({"deployment": "my-rt", "query": {"profile": "byom-azure-openai-realtime"}}, "byom"),
        ({"query": {"agent-name": "a", "agent-project-name": "p"}}, "agent"),
    ],
)
def test_model_class(kw: dict, model_class: str) -> None:
    assert Target(base_url=BASE, provider="voicelive", **kw).model_class == model_class
    assert Target(base_url=BASE, provider="azure", **{k: v for k, v in kw.items() if k != "query"}).model_class == ""


def test_voicelive_auth_dialect_scope_and_redaction() -> None:
    t = Target(base_url=BASE, provider="voicelive", api_key="SECRET123", query={"agent-access-token": "TOKEN456"})
    assert t.dialect == "voicelive"  # its own dialect, whatever was passed
    assert ("api-key", "SECRET123") in t.headers() and not any(k == "OpenAI-Beta" for k, _ in t.headers())
    assert ("Authorization", "Bearer ENTRA") in Target(base_url=BASE, provider="voicelive", auth="entra").headers(
        "ENTRA"
    )
    assert t.token_scope == VOICE_LIVE_SCOPE == "https://ai.azure.com/.default"
    assert Target(base_url=BASE, provider="azure").token_scope == "https://cognitiveservices.azure.com/.default"
    assert "TOKEN456" not in t.redacted_url() and "SECRET123" not in str(t.describe())


def test_the_voicelive_dialect_is_preview_names_plus_its_own_events() -> None:
    d = get_dialect("voicelive")
    assert d is VOICE_LIVE and not d.is_ga and d.is_voice_live
    assert d.output_audio_delta == PREVIEW.output_audio_delta == "response.audio.delta"
    for name in ("warning", "response.audio_timestamp.delta", "session.avatar.connecting", "response.mcp_call.failed",
                 "response.foundry_agent_call.completed", "response.animation_viseme.delta"):  # fmt: skip
        assert name in d.server_events and name not in PREVIEW.server_events
    assert "transcription_session.update" not in d.client_events


def test_session_update_in_voice_live_shape() -> None:
    body = VOICE_LIVE.session_update(voice="alloy", audio_format="pcm16_16000hz", turn_detection="azure_semantic_vad")
    s = body["session"]
    assert s["voice"] == {"type": "openai", "name": "alloy"}
    assert (s["input_audio_format"], s["input_audio_sampling_rate"], s["output_audio_format"]) == (
        "pcm16",
        16000,
        "pcm16_16000hz",
    )
    assert VOICE_LIVE.session_update(voice="en-US-Ava:DragonHDLatestNeural")["session"]["voice"]["type"] == (
        "azure-standard"
    )
    assert VOICE_LIVE.formats_of(s) == ("pcm16_16000hz", "pcm16_16000hz")
    assert VOICE_LIVE.formats_of({"input_audio_format": "pcm16"}) == ("pcm16", None)


def test_16khz_appends_carry_16khz_audio() -> None:
    """A 16 kHz session streams 16 kHz samples: two bytes per sample, 32 bytes per ms."""
    at24 = frames_for("short_hello", 100, "pcm16")
    at16 = frames_for("short_hello", 100, "pcm16_16000hz")
    assert abs(at16.duration_ms - at24.duration_ms) < 1.0
    assert len(decode_appends(at16)) == at16.audio_bytes == pytest.approx(at24.audio_bytes * 2 / 3, abs=4)
    assert len(at16.messages[0]) < len(at24.messages[0])  # a 100 ms frame holds 3,200 bytes, not 4,800


@pytest.mark.parametrize(
    ("query", "model_class"),
    [("model=gpt-4.1", "cascade"), ("agent-name=a&agent-project-name=p", "agent"),
     ("model=mine&profile=byom-azure-openai-realtime", "byom")],
)  # fmt: skip
def test_model_class_of_a_full_url(query: str, model_class: str) -> None:
    """A full URL (`rtload run --target URL`) names the agent or profile itself, not --query."""
    url = f"{BASE}/voice-live/realtime?api-version=2026-04-10&{query}"
    model = dict(q.split("=") for q in query.split("&")).get("model", "")
    target = Target(base_url=url, provider="voicelive", deployment=model, url_override=url)
    assert target.model_class == model_class
    assert target.url() == url
