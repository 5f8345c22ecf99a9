"""Input transcription against the mock, in process: a transcript that comes after response.done
still reaches its row (the row waits), one slower than the wait is `missing` (bounded) and leaves
the response completed, and the session ends without waiting past the bound."""

from __future__ import annotations

import time

import pytest

from loadtest.session.scenario import Scenario, Turn
from tests.session.helpers import FAST_MOCK, run_session

pytestmark = pytest.mark.e2e


def _scenario(*turns: Turn) -> Scenario:
    return Scenario("t", list(turns), transcription_model="gpt-4o-transcribe")


def test_a_transcript_after_response_done_still_reaches_its_row(mock_server) -> None:
    mock = mock_server(overrides={**FAST_MOCK, "transcription.first_delta_ms": [700, 800]})
    sink, _ = run_session(mock.url, _scenario(Turn("manual", "short_yes"), Turn("server_vad", "short_hello")))
    rows = sorted(sink.responses, key=lambda r: r.turn_index)
    truth = sorted((t for t in mock.truth() if t["kind"] == "transcription"), key=lambda t: t["t_commit"])
    assert [r.outcome for r in rows] == ["completed", "completed"] and len(truth) == 2
    for row, t in zip(rows, truth, strict=True):
        assert t["t_done"] > row.t_done  # the transcript completed after the response's response.done
        assert row.input_transcription == "completed" and row.input_transcript_wer == 0.0
        assert 650.0 <= row.input_transcript_first_ms <= row.input_transcript_done_ms


def test_a_transcript_slower_than_the_wait_is_missing_and_the_response_completed(mock_server) -> None:
    slow = {"faults.transcription_slow.rate": 1.0, "faults.transcription_slow.delay_ms": [3000, 3100]}
    mock = mock_server(overrides={**FAST_MOCK, **slow})
    t0 = time.monotonic()
    sink, _ = run_session(mock.url, _scenario(Turn("manual", "short_yes")), transcription_wait_s=0.8)
    elapsed = time.monotonic() - t0
    (row,) = sink.responses
    assert (row.outcome, row.reason) == ("completed", "")
    assert row.input_transcription == "missing" and row.input_transcript_first_ms is None
    assert row.input_transcript_done_ms is None and row.input_transcript_wer is None
    assert elapsed < 3.0  # the session waited for the transcript no longer than its bound
