"""Both dialects' healthy flows (text-in, audio-in with manual commit, audio-in with server VAD),
every server event validated against the official openai types of that dialect."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from loadtest.protocol.dialects import get_dialect
from tests.mock.schema_check import validate
from tests.mock.wsclient import append_events, assert_vad_turn, speechlike
from tests.support import connect


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * 24000), dtype=np.int16)


def _expected_turn(dialect: str, trigger: str) -> list[str]:
    d = get_dialect(dialect)
    user: list[str] = []
    if trigger == "server_vad":
        user += ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped"]
    if trigger != "text":
        user += ["input_audio_buffer.committed"]
    user += list(d.item_added)
    body = ["response.created", "response.output_item.added", d.item_added[0], "response.content_part.added"]
    tail = [d.output_audio_done, d.output_audio_transcript_done, "response.content_part.done"]
    if d.is_ga:
        tail.append("conversation.item.done")
    tail += ["response.output_item.done", "response.done", "rate_limits.updated"]
    return user + body + tail


@pytest.mark.parametrize("dialect", ["ga", "preview"])
@pytest.mark.parametrize("trigger", ["text", "manual", "server_vad"])
def test_healthy_turn(shared_mock, dialect: str, trigger: str) -> None:
    d = get_dialect(dialect)
    with connect(shared_mock.url, dialect) as c:
        c.recv()
        td = "server_vad" if trigger == "server_vad" else None
        c.send(d.session_update(turn_detection=td))
        c.until("session.updated")
        if trigger == "text":
            c.send(d.user_text_item("When are you open?"))
            c.send(d.response_create())
        else:
            pcm = np.concatenate([_silence(0.5), speechlike(1.0), _silence(0.8)])
            for event in append_events(pcm):
                c.send(event)
            if trigger == "manual":
                c.send({"type": "input_audio_buffer.commit"})
                c.send(d.response_create())
        c.until("rate_limits.updated")
        for event in c.events:
            validate(event, dialect)
        seen = [t for t in c.types()[2:] if not t.endswith(".delta")]
        assert seen == _expected_turn(dialect, trigger)
        deltas = [e for e in c.events if e["type"] == d.output_audio_delta]
        assert len(deltas) >= 10
        transcripts = [e for e in c.events if e["type"] == d.output_audio_transcript_delta]
        assert transcripts and transcripts[0]["response_id"] == deltas[0]["response_id"]
        if trigger == "server_vad":
            assert_vad_turn(c.events)


@pytest.mark.parametrize("dialect", ["ga", "preview"])
@pytest.mark.parametrize("fmt", ["g711_ulaw", "g711_alaw"])
def test_g711_output_is_8khz_one_byte_per_sample(shared_mock, dialect: str, fmt: str) -> None:
    d = get_dialect(dialect)
    with connect(shared_mock.url, dialect) as c:
        c.recv()
        c.send(d.session_update(audio_format=fmt, turn_detection=None))
        updated = c.until("session.updated")
        validate(updated, dialect)
        c.send(d.user_text_item("hi"))
        c.send(d.response_create())
        done = c.until("response.done")
        validate(done, dialect)
        raw = b"".join(base64.b64decode(e["delta"]) for e in c.events if e["type"] == d.output_audio_delta)
        transcript = done["response"]["output"][0]["content"][0]["transcript"]
        seconds = len(raw) / 8000
        assert 12 <= len(transcript) / seconds <= 16
        if dialect == "preview":
            assert done["response"]["output_audio_format"] == fmt


@pytest.mark.parametrize("dialect", ["ga", "preview"])
def test_text_modality_and_out_of_band(shared_mock, dialect: str) -> None:
    d = get_dialect(dialect)
    with connect(shared_mock.url, dialect) as c:
        c.recv()
        c.send(d.session_update(turn_detection=None))
        c.until("session.updated")
        c.send(d.user_text_item("hi"))
        c.send(d.response_create(output_modalities=["text"], out_of_band=True))
        done = c.until("response.done")
        for event in c.events:
            validate(event, dialect)
        types = c.types()
        assert d.output_text_delta in types and d.output_text_done in types and d.output_audio_delta not in types
        part = next(e for e in c.events if e["type"] == "response.content_part.added")["part"]
        assert part["type"] == "text"
        # out of band: not written to the conversation
        assert done["response"]["conversation_id"] is None
        after_create = types[types.index("response.created") :]
        assert d.item_added[0] not in after_create
        text = "".join(e["delta"] for e in c.events if e["type"] == d.output_text_delta)
        assert text == done["response"]["output"][0]["content"][0]["text"]
