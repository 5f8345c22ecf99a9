"""Input transcription in the mock: the shipped fixture heard in the committed audio (through G.711
too) comes back as deltas then ``completed`` with the model's usage shape; the substitution knob,
the failed and slow faults, and transcription-only sessions in both dialects."""

from __future__ import annotations

import random
import time

import numpy as np
import pytest

from loadtest.audio.convert import from_wire, to_wire
from loadtest.audio.fixtures import Manifest, load_pcm
from loadtest.audio.frames import encode_appends
from loadtest.mock.transcribe import UNRECOGNISED, fixture_index, substitute
from loadtest.protocol.dialects import AUDIO_FORMATS, get_dialect
from tests.mock.schema_check import validate
from tests.mock.wsclient import Client, dialect_client, speechlike

FIXTURES = Manifest.load().fixtures
FAST = {"transcription.first_delta_ms": [20, 40], "transcription.delta_ms": 5.0,
        "latency.created_ms": [5, 10], "latency.first_delta_ms": [5, 10], "audio.speed": 20.0}  # fmt: skip
COMPLETED = "conversation.item.input_audio_transcription.completed"
DELTA = "conversation.item.input_audio_transcription.delta"
FAILED = "conversation.item.input_audio_transcription.failed"


def _padded(name: str, gain: float = 0.6) -> np.ndarray:
    """A fixture as a caller sends it: a little lead silence, another gain, VAD's trailing silence."""
    pcm = (load_pcm(name).astype(np.float32) * gain).astype(np.int16)
    return np.concatenate([np.zeros(4800, np.int16), pcm, np.zeros(14400, np.int16)])


@pytest.mark.parametrize("audio_format", ["pcm16", "g711_ulaw", "g711_alaw"])
def test_every_shipped_fixture_is_recognised_through_its_wire_format(audio_format: str) -> None:
    index = fixture_index()
    rate = AUDIO_FORMATS[audio_format][2]
    wrong = []
    for fixture in FIXTURES:
        heard = index.recognise(from_wire(to_wire(_padded(fixture.name), audio_format), audio_format), rate)
        if heard.transcript != fixture.transcript:
            wrong.append((fixture.name, heard.fixture, round(heard.score, 3)))
    assert wrong == []


@pytest.mark.parametrize("audio_format", ["pcm16", "g711_ulaw"])
def test_a_fixture_is_recognised_wherever_its_speech_starts_inside_a_frame(audio_format: str) -> None:
    """A server-VAD commit starts wherever the previous turn's leftover ends: any sub-frame offset."""
    index = fixture_index()
    rate = AUDIO_FORMATS[audio_format][2]
    wrong = []
    for fixture in FIXTURES:
        for offset in (60, 180, 250, 410):  # samples at 24 kHz, not a multiple of a 20 ms frame
            audio = np.concatenate([np.zeros(24000 + offset, np.int16), _padded(fixture.name)])
            heard = index.recognise(from_wire(to_wire(audio, audio_format), audio_format), rate)
            if heard.transcript != fixture.transcript:
                wrong.append((fixture.name, offset, heard.fixture, round(heard.score, 3)))
    assert wrong == []


def test_audio_that_is_no_fixture_is_not_recognised() -> None:
    heard = fixture_index().recognise(speechlike(2.0), 24000)
    assert heard.fixture is None and heard.transcript == UNRECOGNISED
    cut = load_pcm("medium_order_status")[: 24000 * 3]  # a fixture's first three seconds only
    assert fixture_index().recognise(cut, 24000).fixture is None


def test_substitution_replaces_words_at_its_rate_deterministically() -> None:
    text = " ".join(f.transcript for f in FIXTURES)
    words = len(text.split())
    out, replaced = substitute(text, 0.2, random.Random(3))
    assert out != text and 0.1 * words < replaced < 0.3 * words
    assert substitute(text, 0.2, random.Random(3)) == (out, replaced)
    assert substitute(text, 0.0, random.Random(3)) == (text, 0)


def _session(dialect: str, model: str, audio_format: str = "pcm16", turn_detection=None) -> dict:
    return get_dialect(dialect).session_update(
        output_modalities=["text"], audio_format=audio_format, turn_detection=turn_detection,
        transcription_model=model,
    )  # fmt: skip


def _speak(c: Client, name: str, audio_format: str = "pcm16", commit: bool = True) -> dict:
    for message in encode_appends(_padded(name), 100, audio_format).messages:
        c.ws.send(message.decode())
    if commit:
        c.send({"type": "input_audio_buffer.commit"})
    return c.until("input_audio_buffer.committed")


def _wer(reference: str, hypothesis: str) -> float:
    ref, hyp = reference.lower().split(), hypothesis.lower().split()
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / len(ref)


@pytest.mark.parametrize(
    ("dialect", "audio_format", "model"),
    [("ga", "pcm16", "gpt-4o-transcribe"), ("ga", "g711_ulaw", "gpt-4o-mini-transcribe"),
     ("preview", "g711_alaw", "gpt-4o-transcribe"), ("preview", "pcm16", "whisper-1")],
)  # fmt: skip
def test_the_committed_fixture_comes_back_transcribed(mock_server, dialect, audio_format, model) -> None:
    mock = mock_server(overrides=FAST)
    names = ["support_call_1", "medium_store_hours"]
    with dialect_client(mock.url, dialect) as c:
        c.recv()
        c.send(_session(dialect, model, audio_format))
        c.until(get_dialect(dialect).session_updated)
        for name in names:
            item_id = _speak(c, name, audio_format)["item_id"]
            start = len(c.events)
            completed = c.until(COMPLETED)
            deltas = [e for e in c.events[start:] if e["type"] == DELTA and e["item_id"] == item_id]
            for event in [*deltas, completed]:
                validate(event, dialect)
            expected = next(f.transcript for f in FIXTURES if f.name == name)
            assert completed["item_id"] == item_id and completed["transcript"] == expected
            assert "".join(e["delta"] for e in deltas) == expected
            usage = completed["usage"]
            if model == "whisper-1":
                assert len(deltas) == 1 and usage["type"] == "duration"
                assert abs(usage["seconds"] - len(_padded(name)) / 24000) < 0.15
            else:
                assert len(deltas) == len(expected.split()) and usage["type"] == "tokens"
                assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
            c.send({"type": "conversation.item.retrieve", "item_id": item_id})
            item = c.until("conversation.item.retrieved")["item"]
            assert item["content"][0]["transcript"] == expected
    rows = [r for r in mock.truth() if r["kind"] == "transcription"]
    assert [r["fixture"] for r in rows] == names and all(r["fault"] == "none" for r in rows)
    assert all(r["transcript"] == r["expected"] and r["substituted_words"] == 0 for r in rows)


def test_the_substitution_knob_makes_word_errors_the_truth_log_counts(mock_server) -> None:
    mock = mock_server(overrides={**FAST, "transcription.substitution_rate": 0.3})
    with dialect_client(mock.url, "ga") as c:
        c.recv()
        c.send(_session("ga", "gpt-4o-transcribe"))
        c.until("session.updated")
        _speak(c, "medium_change_address")
        completed = c.until(COMPLETED)
    expected = next(f.transcript for f in FIXTURES if f.name == "medium_change_address")
    row = next(r for r in mock.truth() if r["kind"] == "transcription")
    assert _wer(expected, completed["transcript"]) > 0
    assert row["transcript"] == completed["transcript"] and row["expected"] == expected
    assert round(_wer(expected, completed["transcript"]) * len(expected.split())) == row["substituted_words"]


def test_transcription_failed_and_slow_faults(mock_server) -> None:
    failing = mock_server(overrides={**FAST, "faults.transcription_failed.rate": 1.0})
    with dialect_client(failing.url, "preview") as c:
        c.recv()
        c.send(_session("preview", "gpt-4o-transcribe"))
        c.until("session.updated")
        item_id = _speak(c, "short_yes")["item_id"]
        failed = c.until(lambda e: e["type"] in (FAILED, COMPLETED))
        validate(failed, "preview")
        assert failed["type"] == FAILED and failed["item_id"] == item_id and failed["error"]["code"]
    assert next(r for r in failing.truth() if r["kind"] == "transcription")["fault"] == "transcription_failed"
    slow = mock_server(overrides={**FAST, "faults.transcription_slow.rate": 1.0,
                                  "faults.transcription_slow.delay_ms": [800, 900]})  # fmt: skip
    with dialect_client(slow.url, "ga") as c:
        c.recv()
        c.send(_session("ga", "gpt-4o-transcribe"))
        c.until("session.updated")
        _speak(c, "short_yes")
        committed_at = c.arrivals[-1]
        c.until(DELTA)
        assert c.arrivals[-1] - committed_at >= 0.8
        c.until(COMPLETED)
    row = next(r for r in slow.truth() if r["kind"] == "transcription")
    assert row["fault"] == "transcription_slow" and 800 <= row["params"]["delay_ms"] <= 900


@pytest.mark.parametrize("dialect", ["ga", "preview"])
def test_transcription_only_session_transcribes_each_utterance_and_never_responds(mock_server, dialect) -> None:
    mock = mock_server(overrides={**FAST, "vad.frame_ms": 20})
    turn = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 550}
    if dialect == "ga":
        update = {"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": 24000}, "transcription": {"model": "gpt-4o-transcribe"},
            "turn_detection": turn}}}}  # fmt: skip
        updated_type = "session.updated"
    else:
        update = {"type": "transcription_session.update", "session": {"input_audio_format": "pcm16",
                  "input_audio_transcription": {"model": "gpt-4o-transcribe"}, "turn_detection": turn}}  # fmt: skip
        updated_type = "transcription_session.updated"
    names = ["short_hello", "support_call_4"]
    with dialect_client(mock.url, dialect) as c:
        c.recv()
        c.send(update)
        updated = c.until(updated_type)
        validate(updated, dialect)
        if dialect == "ga":
            assert updated["session"]["type"] == "transcription"
            assert updated["session"]["audio"]["input"]["transcription"] == {"model": "gpt-4o-transcribe"}
        else:
            assert updated["session"]["object"] == "realtime.transcription_session"
        transcripts = []
        for name in names:
            _speak(c, name, commit=False)  # server VAD commits
            transcripts.append(c.until(COMPLETED)["transcript"])
        c.send({"type": "response.create"})
        error = c.until("error")
        time.sleep(0.3)
        while True:
            try:
                c.recv(timeout=0.2)
            except TimeoutError:
                break
    for event in c.events[1:]:
        validate(event, dialect)
    assert transcripts == [f.transcript for n in names for f in FIXTURES if f.name == n]
    assert not any(e["type"].startswith("response.") for e in c.events)
    assert error["error"]["param"] == "type"
    assert not [r for r in mock.truth() if r["kind"] == "response"]


def test_openai_intent_transcription_url_opens_a_transcription_session(mock_server) -> None:
    mock = mock_server(overrides=FAST)
    with Client(f"{mock.url}/v1/realtime?intent=transcription") as c:
        created = c.recv()
        validate(created, "ga")
        assert created["session"]["type"] == "transcription"
        c.send({"type": "session.update", "session": {"type": "realtime"}})
        assert c.until("error")["error"]["param"] == "session.type"
        c.send({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
            "transcription": {"model": "whisper-1"}, "turn_detection": None}}}})  # fmt: skip
        validate(c.until("session.updated"), "ga")
        _speak(c, "short_front_center")
        completed = c.until(COMPLETED)
        assert completed["transcript"] == "Front center." and completed["usage"]["type"] == "duration"
