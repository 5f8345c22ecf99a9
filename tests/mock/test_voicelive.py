"""The mock's Azure Voice Live endpoint: its URL and refusals, its session fields, its events (each
checked against the azure-ai-voicelive package's models), its model classes and its limits."""

from __future__ import annotations

import base64
import time

import numpy as np
import pytest
from websockets.exceptions import InvalidStatus

from loadtest.mock.process import start_mock
from loadtest.protocol.dialects import get_dialect
from tests.mock.schema_check import validate_voicelive
from tests.mock.wsclient import KEY, Client, append_events, speechlike, voicelive_url

VL = get_dialect("voicelive")
HEADERS = {"api-key": KEY}


def _status(url: str, headers: dict[str, str] | None = None) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as info:
        Client(url, HEADERS if headers is None else headers)
    return info.value


@pytest.mark.parametrize(
    ("query", "headers", "status"),
    [
        ({}, {"api-key": "wrong"}, 401),
        ({}, {}, 401),
        ({"version": None}, HEADERS, 400),
        ({"version": "2024-10-01-preview"}, HEADERS, 400),
        ({"model": None}, HEADERS, 400),
        ({"model": "gpt-4o-realtime-preview"}, HEADERS, 400),  # retired
        ({"model": "no-such-model"}, HEADERS, 400),
        ({"model": None, "agent_name": "booking"}, HEADERS, 400),  # no agent-project-name
        ({"profile": "byom-something"}, HEADERS, 400),
    ],
)
def test_refused_upgrades(shared_mock, query, headers, status) -> None:
    refused = _status(voicelive_url(shared_mock.url, **query), headers)
    assert refused.response.status_code == status
    assert refused.response.headers.get("apim-request-id")


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ({}, HEADERS),
        ({}, {"Authorization": f"Bearer {KEY}"}),
        ({"model": None, "agent_name": "booking", "agent_project_name": "contoso"}, HEADERS),
        ({"model": "my-chat-deployment", "profile": "byom-azure-openai-chat-completion"}, HEADERS),
        ({"version": "2025-10-01", "model": "gpt-4.1"}, HEADERS),
    ],
)
def test_accepted_upgrades_speak_the_voicelive_dialect(shared_mock, query, headers) -> None:
    with Client(voicelive_url(shared_mock.url, **query), headers) as c:
        created = c.recv()
        validate_voicelive(created)
        session = created["session"]
        assert created["type"] == "session.created" and "type" not in session
        version = query.get("version", "2026-04-10")  # server VAD's prefix padding: 400 ms from 2026-04-10
        assert session["turn_detection"]["prefix_padding_ms"] == (400 if version >= "2026-04-10" else 300)
        assert (
            session["voice"]["type"] in ("openai", "azure-standard") and session["input_audio_sampling_rate"] == 24000
        )


def _voicelive_session() -> dict:
    return {
        "modalities": ["text", "audio"],
        "instructions": "You are the booking line of a restaurant.",
        "voice": {"type": "azure-standard", "name": "en-US-Ava:DragonHDLatestNeural", "temperature": 0.8},
        "input_audio_format": "pcm16",
        "input_audio_sampling_rate": 16000,
        "output_audio_format": "pcm16_16000hz",
        "input_audio_noise_reduction": {"type": "azure_deep_noise_suppression"},
        "input_audio_echo_cancellation": {"type": "server_echo_cancellation"},
        "input_audio_transcription": {"model": "azure-speech", "language": "en-US"},
        "turn_detection": {
            "type": "azure_semantic_vad",
            "silence_duration_ms": 500,
            "remove_filler_words": True,
            "end_of_utterance_detection": {
                "model": "semantic_detection_v1",
                "threshold_level": "medium",
                "timeout_ms": 1000,
            },
        },
        "output_audio_timestamp_types": ["word"],
    }


def test_a_voicelive_session_at_16khz_with_word_timestamps(shared_mock) -> None:
    """Every Voice Live extra accepted and echoed; 16 kHz in (the VAD times it at 16 kHz) and out;
    word timestamps before the audio is done; every event as the azure-ai-voicelive models say."""
    with Client(voicelive_url(shared_mock.url, model="gpt-4.1"), HEADERS) as c:
        c.recv()
        c.send({"type": "session.update", "session": _voicelive_session()})
        updated = c.until("session.updated")
        s = updated["session"]
        assert s["voice"]["name"] == "en-US-Ava:DragonHDLatestNeural"
        assert (s["input_audio_sampling_rate"], s["output_audio_format"]) == (16000, "pcm16_16000hz")
        assert s["turn_detection"]["type"] == "azure_semantic_vad" and s["turn_detection"]["prefix_padding_ms"] == 420
        assert s["input_audio_echo_cancellation"] == {"type": "server_echo_cancellation"}
        pcm = np.concatenate([np.zeros(8000, np.int16), speechlike(1.0, rate=16000), np.zeros(16000, np.int16)])
        for event in append_events(pcm, rate=16000):
            c.send(event)
        done = c.until("response.done")
        assert "conversation.item.input_audio_transcription.completed" in c.types()  # a cascade transcribes
        started = next(e for e in c.events if e["type"] == "input_audio_buffer.speech_started")
        assert abs(started["audio_start_ms"] - (500 - 420)) <= 20  # speech at 500 ms, azure prefix 420 ms
        for event in c.events:
            validate_voicelive(event)
        audio = b"".join(base64.b64decode(e["delta"]) for e in c.events if e["type"] == VL.output_audio_delta)
        stamps = [e for e in c.events if e["type"] == "response.audio_timestamp.delta"]
        assert stamps and stamps[-1]["audio_offset_ms"] < len(audio) / 32  # 32 bytes per ms at 16 kHz
        types = c.types()
        assert types.index("response.audio_timestamp.done") < types.index(VL.output_audio_done)
        assert done["response"]["status"] == "completed"


@pytest.mark.parametrize(
    ("model", "change", "param"),
    [
        ("gpt-4.1", {"turn_detection": {"type": "semantic_vad"}}, "session.turn_detection.type"),
        ("gpt-4.1", {"input_audio_transcription": {"model": "whisper-1"}}, "session.input_audio_transcription.model"),
        ("gpt-realtime", {"type": "realtime"}, "session.type"),
        ("gpt-realtime", {"audio": {"input": {}}}, "session.audio"),
        ("gpt-realtime", {"input_audio_sampling_rate": 44100}, "session.input_audio_sampling_rate"),
        ("gpt-realtime", {"output_audio_format": "mp3"}, "session.output_audio_format"),
        ("gpt-realtime", {"voice": {"type": "elevenlabs", "name": "x"}}, "session.voice.type"),
        ("gpt-realtime", {"temperature": 0.2}, "session.temperature"),
        (
            "gpt-realtime",
            {"turn_detection": {"type": "azure_semantic_vad", "end_of_utterance_detection": {"model": "v9"}}},
            "session.turn_detection.end_of_utterance_detection.model",
        ),
    ],
)
def test_sessions_voice_live_rejects(shared_mock, model, change, param) -> None:
    with Client(voicelive_url(shared_mock.url, model=model), HEADERS) as c:
        c.recv()
        c.send({"type": "session.update", "session": change})
        error = c.until("error")
        validate_voicelive(error)
        assert error["error"]["param"] == param


def test_semantic_vad_and_openai_transcription_work_with_gpt_realtime(shared_mock) -> None:
    with Client(voicelive_url(shared_mock.url, model="gpt-realtime"), HEADERS) as c:
        c.recv()
        c.send(
            {
                "type": "session.update",
                "session": {
                    "turn_detection": {"type": "semantic_vad", "eagerness": "low"},
                    "input_audio_transcription": {"model": "gpt-4o-transcribe"},
                },
            }
        )
        assert c.until(lambda e: e["type"] in ("session.updated", "error"))["type"] == "session.updated"


def _ttfa(url: str) -> float:
    with Client(url, HEADERS) as c:
        c.recv()
        c.send(VL.session_update(turn_detection=None))
        c.until("session.updated")
        c.send(VL.user_text_item("When are you open?"))
        t0 = time.monotonic()
        c.send(VL.response_create())
        c.until(VL.output_audio_delta)
        return time.monotonic() - t0


def test_a_cascade_answers_later_than_a_native_model(shared_mock) -> None:
    native = [_ttfa(voicelive_url(shared_mock.url, model="gpt-realtime")) for _ in range(3)]
    cascade = [_ttfa(voicelive_url(shared_mock.url, model="gpt-4.1")) for _ in range(3)]
    assert min(cascade) > max(native) + 0.2, (native, cascade)  # cascade_extra_ms 350-650 on top


def test_new_connections_per_minute_are_refused_with_retry_after(tmp_path) -> None:
    truth = tmp_path / "truth.jsonl"
    with start_mock(truth_path=truth, overrides={"voicelive.new_connections_per_minute": 3}) as mock:
        for _ in range(3):
            with Client(voicelive_url(mock.url), HEADERS) as c:
                c.recv()
        refused = _status(voicelive_url(mock.url))
        assert refused.response.status_code == 429
        retry = int(refused.response.headers["Retry-After"])
        assert 55 <= retry <= 60
        # the Azure OpenAI paths of the same mock are not counted
        with Client(f"{mock.url}/openai/v1/realtime?model=gpt-realtime", HEADERS) as c:
            assert c.recv()["type"] == "session.created"
        rows = [r for r in mock.truth() if r.get("fault") == "connection_rate_429"]
        assert len(rows) == 1 and rows[0]["status"] == 429 and rows[0]["provider"] == "voicelive"
        assert rows[0]["params"] == {"per_minute": 3, "retry_after_s": retry}


def test_the_token_budget_is_the_resources_not_the_deployments(tmp_path) -> None:
    with start_mock(
        overrides={"voicelive.tokens_per_minute": 60, "latency.created_ms": [5, 10], "audio.speed": 20.0}
    ) as mock:
        statuses = []
        for model in ("gpt-realtime", "gpt-4.1"):  # two models, one budget
            with Client(voicelive_url(mock.url, model=model), HEADERS) as c:
                c.recv()
                c.send(VL.user_text_item("Hi"))
                c.send(VL.response_create(output_modalities=["text"]))  # ~40 tokens: one fits, not two
                done = c.until("response.done")
                limits = c.until("rate_limits.updated")
                statuses.append(done["response"]["status"])
                for event in c.events:  # a text answer and a failed one, as the SDK models say
                    validate_voicelive(event)
                assert {e["name"]: e["limit"] for e in limits["rate_limits"]}["tokens"] == 60
        assert statuses == ["completed", "failed"]


@pytest.mark.parametrize(
    "event",
    [
        {
            "type": "response.output_audio.delta",
            "response_id": "r",
            "item_id": "i",
            "output_index": 0,
            "content_index": 0,
            "delta": "AAA=",
        },  # the GA name: no Voice Live model
        {
            "type": "response.audio.delta",
            "response_id": "r",
            "item_id": "i",
            "output_index": 0,
            "content_index": 0,
            "delta": "AAA=",
            "speed": 1.0,
        },  # a field the model does not declare
        {
            "type": "response.audio.delta",
            "item_id": "i",
            "output_index": 0,
            "content_index": 0,
            "delta": "AAA=",
        },  # response_id missing
    ],
)
def test_the_voicelive_schema_check_fails_what_the_sdk_models_do_not_allow(event) -> None:
    with pytest.raises(AssertionError):
        validate_voicelive({**event, "event_id": "e"})
