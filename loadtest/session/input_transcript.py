"""Input transcription of a session's audio: what the client records per committed item. Pure state:
no sockets, no clocks (every method takes the time).

When the session turns input transcription on (GA ``audio.input.transcription``, preview
``input_audio_transcription``), each ``input_audio_buffer.committed`` opens an
:class:`InputTranscript` for its item. The turn whose audio it is claims it: a transcription-only
utterance waiting for its commit, else the oldest audio turn still waiting for its response (the
router's ``pending``), else the next response the server starts on its own (:meth:`InputTranscripts.adopt`).
The item's ``...input_audio_transcription.delta`` / ``.completed`` / ``.failed`` events fill it.

The response row of that turn carries it (``input_transcription``, ``input_transcript_first_ms``,
``input_transcript_done_ms`` from the commit's arrival, ``input_transcription_error``,
``input_transcript_wer``). The transcript runs beside the response and may finish after its
``response.done``: :meth:`InputTranscripts.record` then holds the row and writes it when the
transcript completes or fails, ``wait_s`` after the commit (``missing``), or when the connection
ends. What a row says is what arrived within ``wait_s`` of the commit, whenever it is written, so
a late write changes nothing. The response's outcome never depends on its input's transcription.

Transcription-only sessions (session type ``transcription``) have no responses: each utterance
(:meth:`InputTranscripts.expect_utterance`) gets its own row once its transcript settles, written by
the ``on_utterance`` callback (the session client builds it; see the README, "Input transcription").

WER (:func:`word_error_rate`) is jiwer's, on both texts normalised by :func:`normalise`.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jiwer

from loadtest.protocol.dialects import Dialect
from loadtest.records.schema import ResponseRecord, SessionRecord
from loadtest.session.recording import RecordBuilder
from loadtest.session.scenario import Scenario
from loadtest.session.tracker import ResponseTracker

COMPLETED = "completed"
FAILED = "failed"
MISSING = "missing"
DEFAULT_WAIT_S = 10.0

# Normalisation before WER: lower case; dashes split words ("forty-five" = "forty five"); every
# other punctuation character (Unicode category P: . , ? ! ' " ...) removed in place, so "that's"
# is one word "thats" in both texts; whitespace collapsed. Contractions are not expanded (jiwer's
# rule would read a possessive "'s" as "is").
_NORMALISE = jiwer.Compose(
    [
        jiwer.ToLowerCase(),
        jiwer.SubstituteRegexes({r"[-\u2010-\u2015]": " "}),
        jiwer.RemovePunctuation(),
        jiwer.RemoveWhiteSpace(replace_by_space=True),
        jiwer.RemoveMultipleSpaces(),
        jiwer.Strip(),
    ]
)
_WORDS = jiwer.Compose([_NORMALISE, jiwer.ReduceToListOfListOfWords()])


def normalise(text: str) -> str:
    """``text`` as WER compares it (see ``_NORMALISE``)."""
    return str(_NORMALISE(text))


def word_error_rate(reference: str | None, hypothesis: str | None) -> float | None:
    """Word error rate of ``hypothesis`` against ``reference`` after :func:`normalise` (None without
    a reference with words; 1.0 for an empty hypothesis)."""
    if not reference or not normalise(reference):
        return None
    if not hypothesis or not normalise(hypothesis):
        return 1.0
    return round(float(jiwer.wer(reference, hypothesis, reference_transform=_WORDS, hypothesis_transform=_WORDS)), 4)


@functools.cache
def _manifest_transcript(fixture: str) -> str | None:
    from loadtest.audio.fixtures import FixtureError, Manifest

    try:
        return Manifest.load().get(fixture).transcript or None
    except (FixtureError, OSError, ValueError, KeyError):
        return None


def expected_transcript(transcript: str | None, fixture: str | None) -> str | None:
    """What a turn says: its own ``transcript``, else its fixture's in the manifest (None if neither)."""
    if transcript:
        return transcript
    return _manifest_transcript(fixture) if fixture else None


def expected_of(scenario: Scenario) -> Callable[[ResponseTracker], str | None]:
    """What the turn of a tracker says, for the scenario it runs (turn indexes count on through repeats)."""
    turns = scenario.turns

    def expected(tracker: ResponseTracker) -> str | None:
        turn = turns[tracker.turn_index % len(turns)]
        return expected_transcript(turn.transcript, turn.fixture if turn.trigger != "text" else None)

    return expected


@dataclass(slots=True)
class InputTranscript:
    """One committed item's transcription, as it arrives."""

    item_id: str
    t_commit: float  # arrival of input_audio_buffer.committed
    wait_s: float = DEFAULT_WAIT_S
    expected: str | None = None
    t_first: float | None = None  # first .delta
    t_done: float | None = None  # .completed or .failed
    status: str | None = None  # completed | failed (None: not yet)
    transcript: str | None = None
    error: str | None = None
    parts: list[str] = field(default_factory=list)

    @property
    def deadline(self) -> float:
        return self.t_commit + self.wait_s

    def settled(self, now: float) -> bool:
        """Done (completed or failed), or no longer awaited."""
        return self.status is not None or now >= self.deadline

    def on_delta(self, event: dict[str, Any], t: float) -> None:
        if self.t_first is None:
            self.t_first = t
        delta = event.get("delta")
        if isinstance(delta, str):
            self.parts.append(delta)

    def on_completed(self, event: dict[str, Any], t: float) -> None:
        if self.status is not None:
            return
        self.status, self.t_done = COMPLETED, t
        text = event.get("transcript")
        self.transcript = text if isinstance(text, str) else "".join(self.parts)

    def on_failed(self, event: dict[str, Any], t: float) -> None:
        if self.status is not None:
            return
        self.status, self.t_done = FAILED, t
        error = event.get("error")
        if isinstance(error, dict):
            code = error.get("code") or error.get("type")
            self.error = str(code) if code is not None else None

    def columns(self) -> dict[str, Any]:
        """The row's input transcription columns: what arrived within ``wait_s`` of the commit."""
        in_time = self.status is not None and self.t_done is not None and self.t_done <= self.deadline
        status = self.status if in_time else MISSING

        def ms(t: float | None) -> float | None:
            return round((t - self.t_commit) * 1000.0, 2) if t is not None and t <= self.deadline else None

        return {
            "input_transcription": status,
            "input_transcript_first_ms": ms(self.t_first),
            "input_transcript_done_ms": ms(self.t_done) if in_time else None,
            "input_transcription_error": self.error if status == FAILED else None,
            "input_transcript_wer": word_error_rate(self.expected, self.transcript) if status == COMPLETED else None,
        }


Write = Callable[[ResponseRecord], None]
OnUtterance = Callable[[ResponseTracker, "InputTranscript | None", bool], None]  # (turn, its item, timed out)


class InputTranscripts:
    """One connection's input transcripts (see the module docstring)."""

    def __init__(
        self,
        *,
        dialect: Dialect,
        enabled: bool = False,
        wait_s: float = DEFAULT_WAIT_S,
        expected_of: Callable[[ResponseTracker], str | None] | None = None,
        on_utterance: OnUtterance | None = None,
        wake: Any = None,
    ) -> None:
        self.enabled = enabled
        self._delta = dialect.input_transcription_delta
        self._completed = dialect.input_transcription_completed
        self._failed = dialect.input_transcription_failed
        self.wait_s = wait_s
        self.expected_of = expected_of
        self.on_utterance = on_utterance
        self.wake = wake  # set whenever a row is written (a waiter may be done)
        self.by_item: dict[str, InputTranscript] = {}
        self.unclaimed: deque[InputTranscript] = deque(maxlen=8)  # commits no turn waited for
        self.held: list[tuple[InputTranscript, ResponseRecord, Write]] = []  # rows waiting for their transcript
        self.utterances: deque[ResponseTracker] = deque()  # transcription-only turns waiting for a commit
        # transcription-only turns not recorded yet -> when their audio was all sent (None: still sending)
        self.open_utterances: dict[ResponseTracker, float | None] = {}

    # -- the router's events -------------------------------------------------------------------
    def attach(self, router: Any) -> None:
        """Take the router's commit and transcription events (it drops them at its release)."""
        router.on_committed = lambda event, t: self.on_committed(event, t, router)
        router.on_input_transcription = self.on_transcription

    def on_committed(self, event: dict[str, Any], t: float, router: Any) -> None:
        item_id = event.get("item_id")
        if not self.enabled or not isinstance(item_id, str) or item_id in self.by_item:
            return
        item = InputTranscript(item_id=item_id, t_commit=t, wait_s=self.wait_s)
        self.by_item[item_id] = item
        if len(self.by_item) > 256:
            for key in [k for k, v in self.by_item.items() if v.settled(t)][:128]:
                del self.by_item[key]
        owner = self.utterances.popleft() if self.utterances else _waiting_audio_turn(router)
        if owner is None:
            self.unclaimed.append(item)
            return
        self._claim(owner, item)
        if owner in self.open_utterances and owner.t_trigger is None:
            # the last append before the commit (appends sent while it was being read came later)
            owner.t_trigger = min(router.last_append_t, t) if router.last_append_t is not None else t

    def on_transcription(self, event: dict[str, Any], t: float) -> None:
        item = self.by_item.get(event.get("item_id"))  # type: ignore[arg-type]
        if item is None:
            return
        kind = event.get("type")
        if kind == self._delta:
            item.on_delta(event, t)
        elif kind == self._completed:
            item.on_completed(event, t)
        elif kind == self._failed:
            item.on_failed(event, t)
        if item.status is not None:
            self.expire(t)

    def adopt(self, tracker: ResponseTracker) -> None:
        """A response the server started on its own answers the oldest commit no turn claimed."""
        if self.unclaimed and tracker.input_transcript is None:
            self._claim(tracker, self.unclaimed.popleft())

    def _claim(self, tracker: ResponseTracker, item: InputTranscript) -> None:
        tracker.input_transcript = item
        if self.expected_of is not None:
            item.expected = self.expected_of(tracker)

    # -- rows ----------------------------------------------------------------------------------
    def record(self, tracker: ResponseTracker, rec: ResponseRecord, write: Write, now: float) -> None:
        """Write ``rec`` (the row of ``tracker``'s response) now, or once its input's transcript settles."""
        item = tracker.input_transcript
        if item is None or not self.enabled:
            write(rec)
            return
        if item.settled(now):
            _fill(rec, item)
            write(rec)
            return
        self.held.append((item, rec, write))

    def _written(self) -> None:
        if self.wake is not None:
            self.wake.set()

    def expect_utterance(self, tracker: ResponseTracker) -> None:
        """A transcription-only turn is about to send its audio (its row comes from ``on_utterance``)."""
        self.utterances.append(tracker)
        self.open_utterances[tracker] = None

    def audio_sent(self, tracker: ResponseTracker, t: float) -> None:
        """An utterance's audio is all sent: without a commit ``wait_s`` from now, it timed out."""
        if tracker in self.open_utterances:
            self.open_utterances[tracker] = t

    def utterance_open(self, tracker: ResponseTracker) -> bool:
        return tracker in self.open_utterances

    def expire(self, now: float) -> float | None:
        """Write the held rows and utterances whose transcript settled; the next deadline (or None)."""
        next_deadline: float | None = None
        if self.held:
            keep = []
            for item, rec, write in self.held:
                if item.settled(now):
                    _fill(rec, item)
                    write(rec)
                    self._written()
                else:
                    keep.append((item, rec, write))
                    next_deadline = item.deadline if next_deadline is None else min(next_deadline, item.deadline)
            self.held = keep
        for tracker in list(self.open_utterances):
            item = tracker.input_transcript
            deadline = self._utterance_deadline(tracker)
            if (item is not None and item.settled(now)) or now >= deadline:
                self._utterance_done(tracker, item, now)
            elif deadline != float("inf"):
                next_deadline = deadline if next_deadline is None else min(next_deadline, deadline)
        return next_deadline

    def settled(self, now: float) -> bool:
        """No row is waiting any more (after writing the ones whose time has come)."""
        self.expire(now)
        return not self.held and not self.open_utterances

    def flush(self, now: float) -> None:
        """The connection is over: every held row and open utterance is written as it stands."""
        held, self.held = self.held, []
        for item, rec, write in held:
            _fill(rec, item)
            write(rec)
        for tracker in list(self.open_utterances):
            self._utterance_done(tracker, tracker.input_transcript, now)

    def _utterance_deadline(self, tracker: ResponseTracker) -> float:
        """Its transcript's deadline; before a commit, ``wait_s`` after its audio was all sent."""
        item = tracker.input_transcript
        if item is not None:
            return item.deadline
        sent = self.open_utterances.get(tracker)
        return sent + self.wait_s if sent is not None else float("inf")

    def _utterance_done(self, tracker: ResponseTracker, item: InputTranscript | None, now: float) -> None:
        deadline = self._utterance_deadline(tracker)
        del self.open_utterances[tracker]
        if tracker in self.utterances:
            self.utterances.remove(tracker)
        if self.on_utterance is not None:
            self.on_utterance(tracker, item, now >= deadline)
        self._written()

    def release(self) -> None:
        """Drop the callbacks (they point back at the session) once the connection is recorded."""
        self.expected_of = None
        self.on_utterance = None
        self.wake = None
        self.held = []
        self.open_utterances = {}
        self.utterances.clear()


def utterance_record(
    rows: RecordBuilder,
    tracker: ResponseTracker,
    item: InputTranscript | None,
    srec: SessionRecord,
    *,
    timed_out: bool,
    by_server: bool,
) -> ResponseRecord | None:
    """The row of a transcription-only utterance (no response: ``response_id`` null, ``modalities``
    empty, ``item_id`` the input item). Its outcome is its transcription's: completed; failed
    ``transcription_failed`` (``.failed``) or ``transcription_timeout`` (no transcript, or no commit,
    within the wait); or, ended early by the connection, ``connection_dropped`` (the server closed
    it) or cancelled ``client_cancelled`` (the client stopped). None for an utterance the client
    stopped before it was committed (no attempt, like a turn never triggered)."""
    status = item.columns()["input_transcription"] if item is not None else MISSING
    if status == COMPLETED:
        outcome, reason = "completed", ""
    elif status == FAILED:
        outcome, reason = "failed", "transcription_failed"
    elif timed_out:
        outcome, reason = "failed", "transcription_timeout"
    elif by_server:
        outcome, reason = "failed", "connection_dropped"
    elif item is None:
        return None
    else:
        outcome, reason = "cancelled", "client_cancelled"
    if item is not None and status in (COMPLETED, FAILED):
        tracker.t_done = item.t_done
    rec = rows.response(tracker, outcome, reason, srec)
    rec.modalities = []
    if item is not None:
        rec.item_id = item.item_id
        _fill(rec, item)
    else:
        rec.input_transcription = MISSING
    return rec


def _fill(rec: ResponseRecord, item: InputTranscript) -> None:
    for name, value in item.columns().items():
        setattr(rec, name, value)


def _waiting_audio_turn(router: Any) -> ResponseTracker | None:
    """The oldest audio turn still waiting for its response that has no committed item yet."""
    for tracker in (*router.pending, *router.pending_oob.values()):
        if tracker.trigger != "text" and tracker.input_transcript is None:
            return tracker
    return None
