"""Audio evidence in the session: what is kept while a response is open, and what reaches the sink."""

from __future__ import annotations

import io
import wave

import orjson
import pybase64
import pytest

from loadtest.locust.channel import RecordBatcher, receive_batch
from loadtest.mock.process import start_mock
from loadtest.records.writer import RunWriter
from loadtest.session.evidence import BLOCK_BYTES, AudioKeep, AudioPool, wanted
from loadtest.session.scenario import Scenario, Turn
from loadtest.session.tracker import ResponseTracker
from tests.session.helpers import FAST_MOCK, STALL_GAP, run_session

ONE_TEXT = Scenario("one_text", [Turn("text")])


def _delta(i: int, payload: bytes) -> dict:
    return {"type": "response.output_audio.delta", "event_id": f"e{i}", "delta": pybase64.b64encode(payload).decode()}


def test_the_tracker_keeps_the_decoded_deltas_by_reference_up_to_its_cap() -> None:
    tracker = ResponseTracker(keep_audio="failed", keep_audio_s=1.0)  # pcm16: 48,000 bytes
    for i in range(8):
        tracker.on_audio_delta(_delta(i, bytes([i]) * 9600), i * 0.1)  # 200 ms each
    keep = tracker.kept_audio
    assert isinstance(keep, AudioKeep)
    assert len(keep.chunks) == 5 and keep.kept_bytes == 48000 and keep.dropped == 3  # the cap, then counted
    assert list(keep.arrivals) == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert tracker.analyzer is not None and tracker.analyzer.deltas == 8  # the analysis saw every delta


def test_open_responses_share_the_process_pool_and_a_dropped_keep_gives_its_share_back() -> None:
    pool = AudioPool(BLOCK_BYTES + 1000)  # one block and a little: two responses cannot both grow
    first = ResponseTracker(keep_audio="failed", audio_pool=pool)
    second = ResponseTracker(keep_audio="failed", audio_pool=pool)
    chunk = bytes(9600)
    first.on_audio_delta(_delta(0, chunk), 0.0)
    assert pool.held == BLOCK_BYTES
    for i in range(3):
        second.on_audio_delta(_delta(i, chunk), 0.1 * i)  # the pool has no block left for it
    assert second.kept_audio.chunks == [] and second.kept_audio.dropped == 3 and pool.refused == 1
    first.kept_audio = None  # the response ended: its keep is dropped
    assert pool.held == 0
    third = ResponseTracker(keep_audio="failed", audio_pool=pool)
    third.on_audio_delta(_delta(0, chunk), 0.0)
    assert len(third.kept_audio.chunks) == 1 and pool.held == BLOCK_BYTES
    del third
    assert pool.held == 0  # a tracker that goes away unfinished leaks nothing either


def test_nothing_is_kept_when_keeping_is_off_or_no_audio_is_wanted() -> None:
    assert ResponseTracker(keep_audio="none").kept_audio is None
    assert ResponseTracker(keep_audio="failed", wants_audio=False).kept_audio is None


def test_which_responses_are_kept() -> None:
    assert wanted("failed", completed=False, draw=0.99)
    assert not wanted("failed", completed=True, draw=0.0)
    assert wanted("sample", completed=True, draw=0.01, sample_rate=0.05)
    assert not wanted("sample", completed=True, draw=0.06, sample_rate=0.05)
    assert not wanted("none", completed=False, draw=0.0)


@pytest.fixture(scope="module")
def stall_mock(tmp_path_factory):
    root = tmp_path_factory.mktemp("stallmock")
    overrides = {**FAST_MOCK, "faults.stall.rate": 1.0, "faults.stall.gap_s": STALL_GAP}
    mock = start_mock(overrides=overrides, truth_path=root / "truth.jsonl", log_path=root / "mock.log")
    yield mock
    mock.stop()


@pytest.mark.e2e
def test_a_stalled_response_hands_its_wav_and_timeline_to_the_sink(stall_mock) -> None:
    sink, _ = run_session(stall_mock.url, ONE_TEXT)
    (rec,) = sink.responses
    assert rec.reason == "audio_stall"
    assert rec.audio_file == rec.trace_file.replace(".json", ".wav")
    with wave.open(io.BytesIO(sink.audio_files[rec.audio_file]), "rb") as w:
        assert w.getframerate() == 24000
        heard_ms = w.getnframes() / 24
    events = sink.traces[rec.trace_file]
    (note,) = [e for e in events if e["type"] == "audio.playback"]
    assert note["wav"] == rec.audio_file and len(note["underruns"]) == 1
    assert abs(heard_ms - (rec.audio_ms + rec.underrun_ms)) < 5  # the audio plus the wait, as heard
    assert orjson.dumps(note)  # JSON-ready as it is


@pytest.mark.e2e
def test_completed_responses_keep_no_audio_unless_sampled(fast_mock) -> None:
    sink, _ = run_session(fast_mock.url, ONE_TEXT, keep_audio="failed")
    assert [r.outcome for r in sink.responses] == ["completed"]
    assert sink.audio_files == {} and sink.responses[0].audio_file is None
    sink, _ = run_session(fast_mock.url, ONE_TEXT, keep_audio="sample", keep_audio_sample=1.0)
    (rec,) = sink.responses
    assert rec.outcome == "completed" and rec.audio_file in sink.audio_files
    assert rec.trace_file in sink.traces  # the timeline of a sampled one is kept too


@pytest.mark.e2e
def test_keep_audio_none_keeps_nothing(stall_mock) -> None:
    sink, _ = run_session(stall_mock.url, ONE_TEXT, keep_audio="none")
    assert sink.responses[0].reason == "audio_stall" and sink.audio_files == {}


def test_the_run_directory_bounds_the_wavs_in_count_and_bytes(tmp_path) -> None:
    writer = RunWriter(tmp_path)
    budget = writer.audio_budget
    budget.max_files, budget.max_sampled, budget.max_bytes = 3, 1, 250
    assert writer.audio("a", b"x" * 100) == "traces/a.wav"
    assert writer.audio("s1", b"x" * 10, True) == "traces/s1.wav"
    assert writer.audio("s2", b"x" * 10, True) is None  # samples have their own cap: failures come first
    assert writer.audio("big", b"x" * 200) is None  # over the bytes
    assert writer.audio("b", b"x" * 100) == "traces/b.wav"
    assert writer.audio("c", b"x") is None  # over the count
    assert (budget.files, budget.dropped) == (3, 3)
    assert sorted(p.name for p in (tmp_path / "traces").glob("*.wav")) == ["a.wav", "b.wav", "s1.wav"]
    writer.close()


def test_a_worker_ships_its_wavs_to_the_masters_run_directory(tmp_path) -> None:
    sent: list = []
    batcher = RecordBatcher(lambda kind, data: sent.append(data), "w1")
    assert batcher.audio("sess_1_resp_1", b"RIFF-bytes", False) == "traces/sess_1_resp_1.wav"
    batcher.flush()
    writer = RunWriter(tmp_path)
    receive_batch(sent[0], writer, lambda row: None)
    writer.close()
    assert (tmp_path / "traces" / "sess_1_resp_1.wav").read_bytes() == b"RIFF-bytes"
