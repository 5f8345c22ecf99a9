"""Input transcription tracking from hand-written event sequences (both dialects): which response a
commit belongs to, the row waiting (bounded) for a transcript that comes after response.done,
failed / missing / late transcripts, WER and its normalisation, transcription-only utterance rows."""

from __future__ import annotations

from typing import Any

import pytest

from loadtest.protocol.dialects import GA, PREVIEW, Dialect
from loadtest.protocol.targets import Target
from loadtest.records.schema import ResponseRecord, SessionRecord
from loadtest.session.classifier import classify
from loadtest.session.config import Thresholds
from loadtest.session.input_transcript import (
    InputTranscripts,
    expected_transcript,
    normalise,
    utterance_record,
    word_error_rate,
)
from loadtest.session.recording import RecordBuilder
from loadtest.session.tracker import ResponseTracker
from tests.session.seq import Seq, tone

DIALECTS = pytest.mark.parametrize("dialect", [GA, PREVIEW], ids=["ga", "preview"])
SAID = "Sure, my account number is four four seven, two nine one, eight."


class Run:
    """A router with input transcription attached; finished responses' rows go through ``record``."""

    def __init__(self, dialect: Dialect, *, enabled: bool = True, wait_s: float = 10.0, expected: str = SAID):
        self.d = dialect
        self.seq = Seq(dialect)
        self.rows: list[ResponseRecord] = []
        self.utterances: list[tuple[ResponseTracker, Any, bool]] = []
        self.inputs = InputTranscripts(
            dialect=dialect,
            enabled=enabled,
            wait_s=wait_s,
            expected_of=lambda tr: expected,
            on_utterance=lambda tr, item, timed_out: self.utterances.append((tr, item, timed_out)),
        )
        self.inputs.attach(self.seq.router)
        self.seq.router.on_finished = self._finished

    def _finished(self, tracker: ResponseTracker) -> None:
        rec = ResponseRecord(response_id=tracker.response_id, turn_index=tracker.turn_index)
        self.inputs.record(tracker, rec, self.rows.append, tracker.t_end or 0.0)

    def feed(self, t: float, event: dict[str, Any]) -> None:
        self.seq.feed(t, event)

    def committed(self, t: float, item_id: str) -> None:
        self.feed(t, {"type": self.d.input_audio_committed, "previous_item_id": None, "item_id": item_id})

    def delta(self, t: float, item_id: str, text: str) -> None:
        self.feed(t, {"type": self.d.input_transcription_delta, "item_id": item_id, "content_index": 0, "delta": text})

    def completed(self, t: float, item_id: str, text: str) -> None:
        self.feed(t, {"type": self.d.input_transcription_completed, "item_id": item_id, "content_index": 0,
                      "transcript": text})  # fmt: skip

    def failed(self, t: float, item_id: str, code: str | None = "audio_unintelligible") -> None:
        error = {"type": "transcription_error", "code": code, "message": "Audio is unintelligible.", "param": None}
        self.feed(t, {"type": self.d.input_transcription_failed, "item_id": item_id, "content_index": 0,
                      "error": error})  # fmt: skip

    def response(self, t0: float, t_done: float, rid: str = "resp_1") -> None:
        """A whole spoken answer from ``t0``, done at ``t_done``."""
        self.seq.rid = rid
        self.seq.speak(t0, [tone(300), tone(300)])
        self.seq.finish_ok(t_done)


def _words(text: str) -> list[str]:
    return [w for w in text.split() if w]


# -- WER ---------------------------------------------------------------------------------------
def test_wer_ignores_case_and_punctuation_and_counts_word_errors() -> None:
    assert normalise("Hi, I'm checking on my ORDER.") == "hi im checking on my order"
    assert normalise("forty-five dollars — a month") == "forty five dollars a month"
    assert word_error_rate("Hi, I'm checking on my order.", "hi im checking on my order") == 0.0
    assert word_error_rate("Yes, that's right.", "yes THAT'S right!") == 0.0
    one_wrong = word_error_rate("Hi, I'm checking on my order.", "Hi, I'm checking on my garden.")
    assert one_wrong == pytest.approx(1 / 6, abs=1e-4)
    assert word_error_rate("Front center.", "Front.") == pytest.approx(1 / 2, abs=1e-4)  # a deletion
    assert word_error_rate("Front center.", "") == 1.0
    assert word_error_rate(None, "anything") is None and word_error_rate("...", "x") is None


def test_the_expected_transcript_is_the_turns_own_else_the_manifests() -> None:
    assert expected_transcript("my own words", "short_hello") == "my own words"
    assert expected_transcript(None, "short_hello") == "Hi, hello there."
    assert expected_transcript(None, "no_such_fixture") is None and expected_transcript(None, None) is None


# -- rows of responses --------------------------------------------------------------------------
@DIALECTS
def test_a_transcript_after_response_done_holds_the_row_until_it_completes(dialect: Dialect) -> None:
    run = Run(dialect)
    tracker = run.seq.turn(0.0, trigger="server_vad")
    run.committed(1.0, "item_in")
    run.response(1.1, 2.0)
    assert tracker.finished and run.rows == []  # response done, transcript still running: the row waits
    run.delta(2.4, "item_in", "Sure, my account number ")
    run.completed(3.0, "item_in", SAID)
    (row,) = run.rows
    assert row.response_id == "resp_1" and row.input_transcription == "completed"
    assert row.input_transcript_first_ms == pytest.approx(1400.0)
    assert row.input_transcript_done_ms == pytest.approx(2000.0)
    assert row.input_transcript_wer == 0.0 and row.input_transcription_error is None


@DIALECTS
def test_a_transcript_before_response_done_is_on_the_row_at_once(dialect: Dialect) -> None:
    run = Run(dialect)
    run.seq.turn(0.0, trigger="manual")
    run.committed(1.0, "item_in")
    run.delta(1.3, "item_in", "Sure, my account ")
    run.completed(1.5, "item_in", SAID.replace("seven", "river"))
    assert run.rows == []
    run.response(1.1, 2.0)
    (row,) = run.rows
    assert row.input_transcription == "completed" and row.input_transcript_first_ms == pytest.approx(300.0)
    assert row.input_transcript_wer == pytest.approx(1 / len(_words(SAID)), abs=1e-4)


@DIALECTS
def test_a_failed_transcription_is_recorded_and_leaves_the_response_completed(dialect: Dialect) -> None:
    run = Run(dialect)
    tracker = run.seq.turn(0.0, trigger="server_vad")
    run.committed(1.0, "item_in")
    run.response(1.1, 2.0)
    run.failed(2.5, "item_in")
    (row,) = run.rows
    assert row.input_transcription == "failed" and row.input_transcription_error == "audio_unintelligible"
    assert row.input_transcript_done_ms == pytest.approx(1500.0) and row.input_transcript_wer is None
    assert row.input_transcript_first_ms is None
    assert classify(tracker.facts(), Thresholds()) == ("completed", "")


@DIALECTS
def test_the_error_type_stands_in_for_a_missing_code(dialect: Dialect) -> None:
    run = Run(dialect)
    run.seq.turn(0.0, trigger="server_vad")
    run.committed(1.0, "item_in")
    run.failed(1.2, "item_in", code=None)
    run.response(1.1, 2.0)
    assert run.rows[0].input_transcription_error == "transcription_error"


@DIALECTS
def test_no_transcript_within_the_wait_is_missing_and_a_late_one_changes_nothing(dialect: Dialect) -> None:
    run = Run(dialect, wait_s=5.0)
    run.seq.turn(0.0, trigger="server_vad")
    run.committed(1.0, "item_in")
    run.response(1.1, 2.0)
    run.delta(3.0, "item_in", "Sure, ")  # a first delta in time, completion too late
    assert run.inputs.expire(5.9) == pytest.approx(6.0) and run.rows == []
    assert run.inputs.expire(6.0) is None
    (row,) = run.rows
    assert row.input_transcription == "missing" and row.input_transcript_first_ms == pytest.approx(2000.0)
    assert row.input_transcript_done_ms is None and row.input_transcript_wer is None
    run.completed(7.0, "item_in", SAID)
    assert len(run.rows) == 1
    # written late (the connection ended after the deadline), a late completion still says missing
    late = Run(dialect, wait_s=5.0)
    late.seq.turn(0.0, trigger="server_vad")
    late.committed(1.0, "item_in")
    late.response(1.1, 2.0)
    late.inputs.by_item["item_in"].on_completed({"transcript": SAID}, 6.5)
    late.inputs.flush(9.0)
    assert late.rows[0].input_transcription == "missing" and late.rows[0].input_transcript_done_ms is None


@DIALECTS
def test_the_connection_ending_writes_a_waiting_row_as_it_stands(dialect: Dialect) -> None:
    run = Run(dialect)
    run.seq.turn(0.0, trigger="server_vad")
    run.committed(1.0, "item_in")
    run.response(1.1, 2.0)
    assert not run.inputs.settled(2.5)
    run.inputs.flush(2.5)
    assert [r.input_transcription for r in run.rows] == ["missing"] and run.inputs.settled(2.5)


@DIALECTS
def test_each_commit_goes_to_the_turn_whose_audio_it_is(dialect: Dialect) -> None:
    """Turn 2's utterance is committed while turn 1's answer still plays (barge-in): it is turn 2's."""
    run = Run(dialect)
    run.seq.turn(0.0, trigger="server_vad", turn_index=0)
    run.committed(1.0, "item_1")
    run.seq.rid = "resp_1"
    run.seq.created(1.1)
    run.seq.turn(1.5, trigger="server_vad", turn_index=1)
    run.committed(2.0, "item_2")
    run.completed(2.2, "item_2", "second")
    run.completed(2.3, "item_1", "first")
    run.seq.done(2.5)
    run.response(2.6, 3.0, rid="resp_2")
    by_turn = {r.turn_index: r for r in run.rows}
    assert by_turn[0].input_transcript_done_ms == pytest.approx(1300.0)
    assert by_turn[1].input_transcript_done_ms == pytest.approx(200.0)


@DIALECTS
def test_a_text_turn_claims_no_audio_and_a_response_the_server_started_adopts_a_stray_commit(dialect: Dialect) -> None:
    run = Run(dialect)
    run.seq.turn(0.0, trigger="text")
    run.committed(0.5, "item_x")  # no audio turn waits: unclaimed
    run.response(0.6, 1.0)
    assert run.rows[0].input_transcription is None
    stray = ResponseTracker()
    run.inputs.adopt(stray)
    assert stray.input_transcript is not None and stray.input_transcript.item_id == "item_x"


@DIALECTS
def test_without_input_transcription_rows_are_written_at_once_without_its_columns(dialect: Dialect) -> None:
    run = Run(dialect, enabled=False)
    run.seq.turn(0.0, trigger="server_vad")
    run.committed(1.0, "item_in")
    run.response(1.1, 2.0)
    (row,) = run.rows
    assert row.input_transcription is None and row.input_transcript_wer is None


# -- transcription-only utterances ----------------------------------------------------------------
def _rows() -> RecordBuilder:
    target = Target(base_url="ws://127.0.0.1:1", api_key="k", label="mock")
    return RecordBuilder(target, "transcribe_only", run_id="r", worker_id="", user_id=0, secrets=())


@DIALECTS
def test_an_utterance_is_claimed_by_its_commit_and_recorded_when_its_transcript_settles(dialect: Dialect) -> None:
    run = Run(dialect)
    utterance = ResponseTracker(trigger="server_vad", fixture="support_call_2")
    utterance.t_armed = 0.9
    run.inputs.expect_utterance(utterance)
    run.seq.router.last_append_t = 0.8
    run.committed(1.0, "item_u")
    assert utterance.input_transcript.item_id == "item_u" and utterance.t_trigger == 0.8
    run.delta(1.2, "item_u", "Sure, ")
    assert run.inputs.utterance_open(utterance)
    run.completed(1.6, "item_u", SAID)
    ((tracker, item, timed_out),) = run.utterances
    assert tracker is utterance and not timed_out and not run.inputs.utterance_open(utterance)
    rec = utterance_record(_rows(), tracker, item, SessionRecord(), timed_out=timed_out, by_server=False)
    assert rec is not None and (rec.outcome, rec.reason) == ("completed", "")
    assert rec.response_id is None and rec.modalities == [] and rec.item_id == "item_u"
    assert rec.input_transcription == "completed" and rec.input_transcript_done_ms == pytest.approx(600.0)
    assert rec.done_ms == pytest.approx(800.0) and rec.input_transcript_wer == 0.0


@DIALECTS
def test_utterance_failures_timeouts_and_endings_have_their_reasons(dialect: Dialect) -> None:
    run = Run(dialect, wait_s=4.0)
    failing, silent, cut = (ResponseTracker(trigger="server_vad") for _ in range(3))
    run.inputs.expect_utterance(failing)
    run.inputs.audio_sent(failing, 0.4)
    run.committed(0.5, "item_f")
    run.failed(0.9, "item_f")
    run.inputs.expect_utterance(silent)  # never committed (the VAD heard nothing)
    assert run.inputs.expire(30.0) is None  # still sending its audio: no deadline yet
    run.inputs.audio_sent(silent, 31.0)
    assert run.inputs.expire(34.9) == pytest.approx(35.0)
    run.inputs.expire(35.0)
    run.inputs.expect_utterance(cut)
    run.inputs.audio_sent(cut, 36.0)
    run.inputs.flush(37.0)  # the connection ended before its wait was over
    got = {id(tr): (item, timed_out) for tr, item, timed_out in run.utterances}
    rows = _rows()

    def outcome(tracker: ResponseTracker, by_server: bool = False) -> tuple[str, str] | None:
        item, timed_out = got[id(tracker)]
        rec = utterance_record(rows, tracker, item, SessionRecord(), timed_out=timed_out, by_server=by_server)
        return None if rec is None else (rec.outcome, rec.reason)

    assert outcome(failing) == ("failed", "transcription_failed")
    assert outcome(silent) == ("failed", "transcription_timeout")
    assert outcome(cut, by_server=True) == ("failed", "connection_dropped")
    assert outcome(cut) is None  # the client stopped before anything was committed: no attempt
