"""Per-response tracking. Pure state: no sockets, no clocks.

:class:`ResponseTracker` collects what one response attempt did (timestamps, audio analysis,
transcript, content part types, status, error, usage, ids, a trace ring). The session's
:class:`~loadtest.session.router.EventRouter` feeds it the events that belong to it.
"""

from __future__ import annotations

from typing import Any

import pybase64

from loadtest.session.classifier import ENDED_DONE, ResponseFacts
from loadtest.session.evidence import AudioKeep, new_keep
from loadtest.session.function_calls import CallLog, ChainLink, FollowUp
from loadtest.session.trace import TraceRing

OOB_TAG = "rtload_turn"  # response.create metadata key that names an out-of-band turn


def _make_analyzer(audio_format: str, jitter_buffer_ms: float) -> Any:
    from loadtest.audio.analysis import AudioAnalyzer

    try:
        return AudioAnalyzer(audio_format=audio_format, jitter_buffer_ms=jitter_buffer_ms)
    except TypeError:
        return AudioAnalyzer(audio_format=audio_format)


class ResponseTracker:
    """One response attempt (a turn's answer, or a response the server started on its own)."""

    def __init__(
        self,
        *,
        turn_index: int = 0,
        trigger: str = "",
        fixture: str = "",
        out_of_band: bool = False,
        wants_audio: bool = True,
        modalities: list[str] | None = None,
        audio_format: str = "pcm16",
        trace_events: int = 200,
        jitter_buffer_ms: float = 0.0,
        context: dict[str, Any] | None = None,
        keep_audio: str = "none",
        keep_audio_s: float = 60.0,
        audio_pool: Any = None,
    ) -> None:
        self.turn_index = turn_index
        self.trigger = trigger
        self.fixture = fixture
        self.out_of_band = out_of_band
        self.wants_audio = wants_audio
        self.modalities = list(modalities or (["audio"] if wants_audio else ["text"]))
        self.audio_format = audio_format
        self.context = context or {}
        self.jitter_buffer_ms = jitter_buffer_ms
        self.tag = f"t{turn_index}"  # out-of-band metadata tag
        # ids
        self.response_id: str | None = None
        self.item_id: str | None = None
        self.done_event_id: str | None = None
        self.error_event_id: str | None = None
        self.client_event_ids: set[str] = set()  # event ids of the client events that asked for it
        # timestamps (Unix s)
        self.t_armed: float | None = None  # when the deadline starts (trigger, or end of streaming)
        self.t_trigger: float | None = None
        self.t_created: float | None = None
        self.t_first_audio: float | None = None
        self.t_first_text: float | None = None
        self.t_audio_done: float | None = None
        self.t_done: float | None = None
        self.t_last_event: float | None = None
        self.t_generated: float | None = None  # response.done came and is held while its audio plays (WebRTC)
        self.t_end: float | None = None
        # what response.done / error said
        self.status: str | None = None
        self.status_reason: str | None = None
        self.error_type: str | None = None
        self.error_code: str | None = None
        self.error_message: str | None = None
        self.error_event_type: str | None = None
        self.error_event_code: str | None = None
        self.error_event_message: str | None = None
        self.session_ready = False  # session.created/updated had arrived when it ended (set by the router)
        self.usage: dict[str, Any] | None = None
        # progress
        self.created = False
        self.started = False
        self.client_cancelled = False
        self.function_calls = 0
        self.input_transcript: Any = None  # the InputTranscript of the audio it answers (input_transcript.py)
        self.calls: CallLog | None = None  # made at the first function-call event (None: no calls)
        self.chain: ChainLink | None = None  # a follow-up: the calling response it answers (None: a turn's first)
        self.follow_up: FollowUp | None = None  # set when it ended: how the client answers its calls
        self.content_types: list[str] = []
        self.audio_done = False
        self._transcript_parts: list[str] = []
        self.transcript: str | None = None  # set by transcript.done / response.done
        self.text_chars = 0
        self.duplicates = 0
        self._last_delta_id: str | None = None
        self.analyzer = _make_analyzer(audio_format, jitter_buffer_ms) if wants_audio else None
        self._audio_deltas_no_analyzer = 0
        # the audio as received, kept until the response ends (see loadtest.session.evidence)
        self.kept_audio: AudioKeep | None = (
            new_keep(keep_audio, audio_format, keep_audio_s, audio_pool) if wants_audio else None
        )
        # end
        self.finished = False
        self.ended: str | None = None
        self.close_code: int | None = None
        self.close_reason: str = ""
        self.trace = TraceRing(trace_events)

    # -- facts ---------------------------------------------------------------------------------
    @property
    def transcript_text(self) -> str:
        if self.transcript is not None:
            return self.transcript
        return "".join(self._transcript_parts)

    @property
    def audio_deltas(self) -> int:
        a = self.analyzer
        return int(a.deltas) if a is not None else self._audio_deltas_no_analyzer

    def played_ms(self, now: float) -> float:
        """How much of the answer a real-time player would have played by ``now`` (barge-in)."""
        a = self.analyzer
        if a is None or self.t_first_audio is None:
            return 0.0
        elapsed = (now - self.t_first_audio) * 1000.0 - float(a.underrun_ms)
        return max(0.0, min(float(a.audio_ms), elapsed))

    def facts(self) -> ResponseFacts:
        a = self.analyzer
        calls = self.calls
        return ResponseFacts(
            wants_audio=self.wants_audio,
            ended=self.ended or ENDED_DONE,
            done=self.t_done is not None,
            status=self.status,
            status_reason=self.status_reason,
            error_type=self.error_type,
            error_code=self.error_code,
            error_event_type=self.error_event_type,
            error_event_code=self.error_event_code,
            error_event_message=self.error_event_message,
            created=self.created,
            started=self.started,
            client_cancelled=self.client_cancelled,
            function_calls=self.function_calls,
            calls_cut=calls.any_cut if calls is not None else False,
            calls_invalid=calls.any_invalid if calls is not None else False,
            follow_up=self.chain is not None,
            content_types=list(self.content_types),
            audio_deltas=self.audio_deltas,
            audio_ms=float(a.audio_ms) if a is not None else 0.0,
            audio_done=self.audio_done,
            transcript=self.transcript_text,
            text_chars=self.text_chars,
            longest_underrun_ms=float(a.longest_underrun_ms) if a is not None else 0.0,
            longest_silence_ms=float(a.longest_silence_ms) if a is not None else 0.0,
            close_code=self.close_code,
            close_reason=self.close_reason,
            session_ready=self.session_ready,
        )

    def call_log(self) -> CallLog:
        """The response's function calls (made on first use)."""
        calls = self.calls
        if calls is None:
            calls = self.calls = CallLog()
        return calls

    @property
    def t_first_output(self) -> float | None:
        """Its first output of any kind: an audio, transcript or text delta, or a call's arguments."""
        times = [t for t in (self.t_first_audio, self.t_first_text) if t is not None]
        if self.calls is not None and self.calls.t_first_delta is not None:
            times.append(self.calls.t_first_delta)
        return min(times) if times else None

    def deadline(self, response_deadline_s: float, response_idle_s: float) -> float | None:
        """When this tracker times out (Unix s), or None when it is not armed yet."""
        start = self.t_trigger if self.t_trigger is not None else self.t_armed
        if start is None or self.finished:
            return None
        end = start + response_deadline_s if self.t_generated is None else float("inf")
        if self.started and self.t_last_event is not None:
            # idle is judged on the playback clock: audio still buffered for the listener is not idle
            quiet_from = max(self.t_last_event, self.playback_end or 0.0)
            end = min(end, quiet_from + response_idle_s)
        return end

    @property
    def playback_end(self) -> float | None:
        """When a real-time player would finish the audio received so far (Unix s)."""
        a = self.analyzer
        if a is None or self.t_first_audio is None:
            return None
        return self.t_first_audio + (self.jitter_buffer_ms + float(a.audio_ms) + float(a.underrun_ms)) / 1000.0

    # -- events (called by the router) ---------------------------------------------------------
    def touch(self, t: float) -> None:
        """An event of this response arrived at ``t`` (it has started; idle counts from here)."""
        self.t_last_event = t
        self.started = True

    def on_audio_delta(self, event: dict[str, Any], t: float) -> None:
        event_id = event.get("event_id")
        if event_id is not None and event_id == self._last_delta_id:
            self.duplicates += 1
            return
        self._last_delta_id = event_id
        b64 = event.get("delta") or ""
        raw = pybase64.b64decode(b64) if b64 else b""
        self.t_last_event = t
        self.started = True
        if self.t_first_audio is None:
            self.t_first_audio = t
        a = self.analyzer
        if a is not None:
            a.feed(raw, t)
        else:
            self._audio_deltas_no_analyzer += 1
        keep = self.kept_audio
        if keep is not None:
            keep.add(raw, t)
        self.trace.add_payload(t, event.get("type", ""), len(raw), event_id)

    def on_text_delta(self, event: dict[str, Any], t: float, transcript: bool) -> None:
        self.touch(t)
        if self.t_first_text is None:
            self.t_first_text = t
        delta = event.get("delta") or ""
        if transcript:
            self._transcript_parts.append(delta)
        else:
            self.text_chars += len(delta)
        self.trace.add(t, event)
