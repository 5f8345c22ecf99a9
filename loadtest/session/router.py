"""The session's event router. Pure state: no sockets, no clocks.

:class:`EventRouter` takes every parsed server event of a session with its arrival time,
dispatches it by type through a dict, and hands it to the right
:class:`~loadtest.session.tracker.ResponseTracker`: by ``response_id`` once known, else to the
oldest turn waiting for its response (out-of-band turns match by the ``metadata`` tag the client
put on their ``response.create``). It finishes trackers on ``response.done``, on request-level
errors, on close and on deadlines, and calls ``on_finished`` once per tracker.

Unit tests feed hand-written event sequences to an :class:`EventRouter`; the live client feeds
it from the socket. Out-of-order events (deltas before ``response.created``) bind the response
early; duplicates (a second ``response.created``/``response.done``, a repeated delta event id)
are ignored; unknown event types are counted and traced, never fatal.

Its public surface is what a session (and a later classifier rule) needs: :meth:`~EventRouter.expect`,
:meth:`~EventRouter.sent`, :meth:`~EventRouter.feed`, :meth:`~EventRouter.forget` (a turn that never
started), :meth:`~EventRouter.close`, :meth:`~EventRouter.stop`, :meth:`~EventRouter.expire`, the
``on_awaiting_output`` hook and the session-level facts (``session_id``, ``session_errors``,
rate-limit figures, counters).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any

from loadtest.protocol.dialects import Dialect
from loadtest.session.classifier import (
    ENDED_CLOSED,
    ENDED_DONE,
    ENDED_ERROR,
    ENDED_NOT_READY,
    ENDED_STOPPED,
    ENDED_TIMEOUT,
)
from loadtest.session.function_calls import FUNCTION_CALL, ToolSchemas
from loadtest.session.link import RESPONSE_GENERATED
from loadtest.session.trace import TraceRing
from loadtest.session.tracker import OOB_TAG, ResponseTracker

# error codes/types that end whatever response is open even when they echo no client event
FATAL_ERRORS = frozenset(
    {
        "server_error",
        "rate_limit_exceeded",
        "insufficient_quota",
        "session_expired",
        "invalid_api_key",
        "invalid_model",
        "missing_model",
        "beta_api_shape_disabled",
    }
)
# errors that end every open response (the session is going away)
SESSION_FATAL = frozenset(
    {"session_expired", "invalid_api_key", "invalid_model", "missing_model", "beta_api_shape_disabled"}
)


IDLE_TIMEOUT = "idle_timeout"  # the trigger of a response the idle timeout started


class EventRouter:
    """Routes one session's server events to response trackers (see the module docstring)."""

    def __init__(
        self,
        dialect: Dialect,
        *,
        on_finished: Callable[[ResponseTracker], None],
        new_tracker: Callable[[], ResponseTracker] | None = None,
        response_deadline_s: float = 30.0,
        response_idle_s: float = 10.0,
        on_speech_started: Callable[[dict[str, Any], float], None] | None = None,
        on_rate_limits: Callable[[list[dict[str, Any]], float, str | None], None] | None = None,
        on_session: Callable[[dict[str, Any], float], None] | None = None,
        tool_schemas: ToolSchemas | None = None,
    ) -> None:
        self.dialect = dialect
        self.tool_schemas = tool_schemas  # the session's tools: function-call arguments are judged against them
        self.on_finished = on_finished
        self.new_tracker = new_tracker or ResponseTracker
        self.response_deadline_s = response_deadline_s
        self.response_idle_s = response_idle_s
        self.on_speech_started = on_speech_started
        self.on_rate_limits = on_rate_limits
        self.on_session = on_session
        self.session_id: str | None = None
        self.session_created = False
        self.session_updated = False
        self.session_errors: list[dict[str, Any]] = []  # error events no response claimed
        self.pending: deque[ResponseTracker] = deque()  # in-band turns waiting for response.created
        self.pending_oob: dict[str, ResponseTracker] = {}
        self.by_response: dict[str, ResponseTracker] = {}
        self.open: list[ResponseTracker] = []  # every tracker not finished
        self.client_events: dict[str, ResponseTracker] = {}  # client event_id -> tracker
        self.last_append_t: float | None = None
        self.last_response_id: str | None = None
        self.rl_tokens_remaining: int | None = None
        self.rl_requests_remaining: int | None = None
        self.unknown_events = 0
        self.foreign_events = 0  # events of the other dialect
        self.events_seen = 0
        self.late_events = 0
        self.unknown_response_events = 0  # events of a response id never seen (no row is made for them)
        self.idle_timeouts = 0  # input_audio_buffer.timeout_triggered events (server VAD's idle_timeout_ms)
        # the last one, until the next response is created (its own, or a turn's that crossed it)
        self._idle_timeout_t: float | None = None
        self.session_ring = TraceRing(32)  # recent events no open response took (for context)
        # called with True while some open response waits for its first output delta, False after
        self.on_awaiting_output: Callable[[bool], None] | None = None
        # input transcription (loadtest.session.input_transcript): each commit, each transcription event
        self.on_committed: Callable[[dict[str, Any], float], None] | None = None
        self.on_input_transcription: Callable[[dict[str, Any], float], None] | None = None
        self._awaiting_output = False
        d = dialect
        self.handlers: dict[str, Callable[[dict[str, Any], float], None]] = {
            d.output_audio_delta: self._audio_delta,
            d.output_audio_transcript_delta: self._transcript_delta,
            d.output_text_delta: self._text_delta,
            d.output_audio_done: self._audio_done,
            d.output_audio_transcript_done: self._transcript_done,
            d.output_text_done: self._text_done,
            d.response_created: self._response_created,
            d.response_done: self._response_done,
            d.output_item_added: self._output_item,
            d.output_item_done: self._output_item,
            d.content_part_added: self._content_part,
            d.content_part_done: self._content_part,
            d.function_call_arguments_delta: self._arguments_delta,
            d.function_call_arguments_done: self._arguments_done,
            d.error: self._error,
            d.rate_limits_updated: self._rate_limits,
            d.session_created: self._session_created,
            d.session_updated: self._session_updated,
            d.input_audio_committed: self._committed,
            d.speech_started: self._speech_started,
            d.input_transcription_delta: self._input_transcription,
            d.input_transcription_completed: self._input_transcription,
            d.input_transcription_failed: self._input_transcription,
            RESPONSE_GENERATED: self._generated,
        }
        if d.transcription_session_updated:  # preview's answer to transcription_session.update
            self.handlers[d.transcription_session_updated] = self._session_updated
        if d.input_timeout_triggered:  # GA: the caller stayed silent past idle_timeout_ms
            self.handlers[d.input_timeout_triggered] = self._timeout_triggered
        # a name a handler tells apart, bound once (the receive path reads no dialect attribute)
        self._content_part_done = d.content_part_done
        self._known = dialect.server_events

    # -- turns ---------------------------------------------------------------------------------
    def expect(self, tracker: ResponseTracker) -> None:
        """A turn is about to ask for a response."""
        if tracker.out_of_band:
            self.pending_oob[tracker.tag] = tracker
        else:
            self.pending.append(tracker)
        self.open.append(tracker)
        self._review_awaiting()

    def forget(self, tracker: ResponseTracker) -> None:
        """Drop a turn that never started (it is no attempt, so nothing is recorded for it)."""
        tracker.finished = True
        for container in (self.open, self.pending):
            with contextlib.suppress(ValueError):
                container.remove(tracker)
        self.pending_oob.pop(tracker.tag, None)
        self._review_awaiting()

    def _review_awaiting(self) -> None:
        """Tell ``on_awaiting_output`` when 'an open response waits for its first output' changes:
        its first audio delta (its first text delta when it asked for text only). Reviewed at a
        turn's start, at a first delta and at a response's end, never per delta."""
        hook = self.on_awaiting_output
        if hook is None:
            return
        awaiting = any(
            (tr.t_first_audio if tr.wants_audio else tr.t_first_text) is None
            and (tr.calls is None or tr.calls.t_first_delta is None)
            for tr in self.open
        )
        if awaiting is not self._awaiting_output:
            self._awaiting_output = awaiting
            hook(awaiting)

    def sent(self, event_id: str, tracker: ResponseTracker | None) -> None:
        """A client event with ``event_id`` was sent on behalf of ``tracker`` (errors echo it)."""
        if tracker is not None:
            tracker.client_event_ids.add(event_id)
            self.client_events[event_id] = tracker
            if len(self.client_events) > 512:
                for key in list(self.client_events)[:256]:
                    del self.client_events[key]

    # -- the dispatch --------------------------------------------------------------------------
    def feed(self, event: dict[str, Any], t: float) -> None:
        """One parsed server event and its arrival time."""
        self.events_seen += 1
        event_type = event.get("type")
        handler = self.handlers.get(event_type)  # type: ignore[arg-type]
        if handler is not None:
            handler(event, t)
            return
        if not isinstance(event_type, str) or event_type not in self._known:
            self.unknown_events += 1
            if isinstance(event_type, str) and event_type in _OTHER_DIALECT_EVENTS(self.dialect):
                self.foreign_events += 1
        self._context_event(event, t)

    def _context_event(self, event: dict[str, Any], t: float) -> None:
        """An event that belongs to no response: traced on every open tracker (usually one)."""
        rid = event.get("response_id")
        if isinstance(rid, str) and rid:
            tracker = self._tracker(rid, t, event)
            if tracker is not None:
                tracker.touch(t)
                tracker.trace.add(t, event)
                return
            if rid not in self.by_response:
                return  # a response this session never saw: counted and traced by _tracker
        self._trace_open(event, t)

    def _trace_open(self, event: dict[str, Any], t: float) -> None:
        """Trace ``event`` on every open tracker (the session's ring when none is open)."""
        if self.open:
            for tracker in self.open:
                tracker.trace.add(t, event)
        else:
            self.session_ring.add(t, event)

    def _tracker(
        self, rid: Any, t: float, event: dict[str, Any], metadata: Any = None, start: bool = False
    ) -> ResponseTracker | None:
        """The tracker of response ``rid``, binding it to a waiting turn on first sight.

        With no turn waiting, only a ``response.created`` (``start``) begins a response the server
        started on its own; any other event of a response id never seen (a stray ``response.done``,
        a delta) is counted in ``unknown_response_events`` and traced, and makes no response."""
        if not isinstance(rid, str) or not rid:
            return None
        tracker = self.by_response.get(rid)
        if tracker is not None:
            if tracker.finished:
                self.late_events += 1
                return None
            return tracker
        tracker = None
        if isinstance(metadata, dict):
            tag = metadata.get(OOB_TAG)
            if isinstance(tag, str):
                tracker = self.pending_oob.pop(tag, None)
        if tracker is None and self.pending:
            tracker = self.pending.popleft()
            if start:  # a timeout that crossed this turn's request: the server answers the request
                self._idle_timeout_t = None
        if tracker is None and self.pending_oob and not self.pending:
            # an out-of-band response whose first event carried no metadata
            tracker = self.pending_oob.pop(next(iter(self.pending_oob)))
        if tracker is None:
            if not start:
                self.unknown_response_events += 1
                self._trace_open(event, t)
                return None
            tracker = self.new_tracker()  # the server started one on its own
            if self._idle_timeout_t is not None:  # the idle timeout's: timed from it
                tracker.trigger = IDLE_TIMEOUT
                tracker.t_trigger = self._idle_timeout_t
                self._idle_timeout_t = None
            tracker.trigger = tracker.trigger or "server"
            self.open.append(tracker)
            self._review_awaiting()
        tracker.response_id = rid
        if tracker.t_trigger is None:
            tracker.t_trigger = self.last_append_t if tracker.trigger == "server_vad" else tracker.t_armed
        self.by_response[rid] = tracker
        if len(self.by_response) > 256:
            for key in [k for k, v in self.by_response.items() if v.finished][:128]:
                del self.by_response[key]
        return tracker

    # -- response events -----------------------------------------------------------------------
    def _audio_delta(self, event: dict[str, Any], t: float) -> None:
        tracker = self._tracker(event.get("response_id"), t, event)
        if tracker is not None:
            if tracker.item_id is None:
                tracker.item_id = event.get("item_id")
            first = tracker.t_first_audio is None
            tracker.on_audio_delta(event, t)
            if first:
                self._review_awaiting()

    def _generated(self, event: dict[str, Any], t: float) -> None:
        """The transport holds this response's response.done while its audio plays (link.RESPONSE_GENERATED)."""
        tracker = self._tracker(event.get("response_id"), t, event)
        if tracker is not None:
            tracker.touch(t)
            tracker.t_generated = t
            tracker.trace.add(t, event, "note")

    def _transcript_delta(self, event: dict[str, Any], t: float) -> None:
        tracker = self._tracker(event.get("response_id"), t, event)
        if tracker is not None:
            tracker.on_text_delta(event, t, transcript=True)

    def _text_delta(self, event: dict[str, Any], t: float) -> None:
        tracker = self._tracker(event.get("response_id"), t, event)
        if tracker is not None:
            first = tracker.t_first_text is None
            tracker.on_text_delta(event, t, transcript=False)
            if first and not tracker.wants_audio:
                self._review_awaiting()

    def _audio_done(self, event: dict[str, Any], t: float) -> None:
        tracker = self._tracker(event.get("response_id"), t, event)
        if tracker is not None:
            tracker.touch(t)
            if tracker.audio_done:
                tracker.duplicates += 1
            else:
                tracker.audio_done = True
                tracker.t_audio_done = t
            tracker.trace.add(t, event)

    def _transcript_done(self, event: dict[str, Any], t: float) -> None:
        tracker = self._tracker(event.get("response_id"), t, event)
        if tracker is not None:
            tracker.touch(t)
            transcript = event.get("transcript")
            if isinstance(transcript, str):
                tracker.transcript = transcript
            tracker.trace.add(t, event)

    def _text_done(self, event: dict[str, Any], t: float) -> None:
        tracker = self._tracker(event.get("response_id"), t, event)
        if tracker is not None:
            tracker.touch(t)
            text = event.get("text")
            if isinstance(text, str):
                tracker.text_chars = max(tracker.text_chars, len(text))
            tracker.trace.add(t, event)

    def _arguments_delta(self, event: dict[str, Any], t: float) -> None:
        tracker = self._tracker(event.get("response_id"), t, event)
        if tracker is None:
            return
        tracker.touch(t)
        calls = tracker.call_log()
        first = calls.delta(event, t)
        tracker.function_calls = len(calls.calls)
        tracker.trace.add(t, event)
        if first:
            self._review_awaiting()

    def _arguments_done(self, event: dict[str, Any], t: float) -> None:
        tracker = self._tracker(event.get("response_id"), t, event)
        if tracker is None:
            return
        tracker.touch(t)
        calls = tracker.call_log()
        calls.arguments_done(event, t)
        tracker.function_calls = len(calls.calls)
        tracker.trace.add(t, event)

    def _output_item(self, event: dict[str, Any], t: float) -> None:
        tracker = self._tracker(event.get("response_id"), t, event)
        if tracker is None:
            return
        tracker.touch(t)
        item = event.get("item")
        if isinstance(item, dict):
            kind = item.get("type")
            if tracker.item_id is None and kind == "message":
                tracker.item_id = item.get("id")
            elif kind == FUNCTION_CALL:
                calls = tracker.call_log()
                calls.item(item, t)
                tracker.function_calls = len(calls.calls)
        tracker.trace.add(t, event)

    def _content_part(self, event: dict[str, Any], t: float) -> None:
        tracker = self._tracker(event.get("response_id"), t, event)
        if tracker is None:
            return
        tracker.touch(t)
        part = event.get("part")
        if isinstance(part, dict):
            kind = part.get("type")
            if isinstance(kind, str) and kind not in tracker.content_types:
                tracker.content_types.append(kind)
            if event.get("type") == self._content_part_done:
                transcript = part.get("transcript")
                if isinstance(transcript, str) and transcript and tracker.transcript is None:
                    tracker.transcript = transcript
                text = part.get("text")
                if isinstance(text, str):
                    tracker.text_chars = max(tracker.text_chars, len(text))
        if tracker.item_id is None:
            tracker.item_id = event.get("item_id")
        tracker.trace.add(t, event)

    def _response_created(self, event: dict[str, Any], t: float) -> None:
        response = event.get("response")
        if not isinstance(response, dict):
            self._context_event(event, t)
            return
        rid = response.get("id")
        known = isinstance(rid, str) and rid in self.by_response
        tracker = self._tracker(rid, t, event, response.get("metadata"), start=True)
        if tracker is None:
            return
        if known and tracker.created:
            tracker.duplicates += 1
        elif not tracker.created:
            tracker.created = True
            tracker.t_created = t
        tracker.touch(t)
        tracker.trace.add(t, event)

    def _response_done(self, event: dict[str, Any], t: float) -> None:
        response = event.get("response")
        if not isinstance(response, dict):
            self._context_event(event, t)
            return
        rid = response.get("id")
        if isinstance(rid, str) and rid in self.by_response and self.by_response[rid].finished:
            self.by_response[rid].duplicates += 1
            self.late_events += 1
            return
        if isinstance(rid, str) and rid:
            tracker = self._tracker(rid, t, event, response.get("metadata"))
            if tracker is None:
                return  # a response this session never saw (counted), or one already finished
        else:
            # a failed response.done with no id: it belongs to the oldest waiting turn
            tracker = self.pending.popleft() if self.pending else None
            if tracker is None:
                self._context_event(event, t)
                return
        tracker.trace.add(t, event)
        tracker.started = True
        tracker.t_last_event = t
        tracker.t_done = t
        tracker.done_event_id = event.get("event_id")
        status = response.get("status")
        tracker.status = status if isinstance(status, str) else None
        details = response.get("status_details")
        if isinstance(details, dict):
            reason = details.get("reason")
            tracker.status_reason = reason if isinstance(reason, str) else None
            error = details.get("error")
            if isinstance(error, dict):
                tracker.error_type = _str(error.get("type"))
                tracker.error_code = _str(error.get("code"))
                tracker.error_message = _str(error.get("message"))
                tracker.error_event_id = tracker.done_event_id
        usage = response.get("usage")
        if isinstance(usage, dict):
            tracker.usage = usage
        parts_seen = bool(tracker.content_types)  # item content types only when no content part came
        for item in response.get("output") or ():
            if not isinstance(item, dict):
                continue
            if item.get("type") == FUNCTION_CALL:
                calls = tracker.call_log()
                calls.output(item, t)
                tracker.function_calls = len(calls.calls)
            if tracker.item_id is None and item.get("type") == "message":
                tracker.item_id = item.get("id")
            for part in item.get("content") or ():
                if not isinstance(part, dict):
                    continue
                kind = part.get("type")
                if not parts_seen and isinstance(kind, str) and kind not in tracker.content_types:
                    tracker.content_types.append(kind)
                transcript = part.get("transcript")
                if isinstance(transcript, str) and transcript and tracker.transcript is None:
                    tracker.transcript = transcript
                text = part.get("text")
                if isinstance(text, str):
                    tracker.text_chars = max(tracker.text_chars, len(text))
        self._finish(tracker, ENDED_DONE, t)

    # -- session events ------------------------------------------------------------------------
    def _error(self, event: dict[str, Any], t: float) -> None:
        error = event.get("error")
        if not isinstance(error, dict):
            error = {}
        etype, code = _str(error.get("type")), _str(error.get("code"))
        echo = error.get("event_id")
        tracker = self.client_events.get(echo) if isinstance(echo, str) else None
        fatal = (code in FATAL_ERRORS) or (etype in FATAL_ERRORS)
        targets: list[ResponseTracker] = []
        if tracker is not None and not tracker.finished:
            targets = [tracker]
        elif fatal and (code in SESSION_FATAL or etype in SESSION_FATAL):
            targets = list(self.open)
        elif fatal and self.open:
            targets = [self.open[0]]
        if not targets:
            self.session_errors.append(error)
            self._context_event(event, t)
            return
        for target in targets:
            target.trace.add(t, event)
            if target.error_event_type is None and target.error_event_code is None:
                target.error_event_type = etype
                target.error_event_code = code
                target.error_event_message = _str(error.get("message"))
                target.error_event_id = _str(event.get("event_id"))
            if not target.created:
                # a request-level error: no response.created will follow
                self._finish(target, ENDED_ERROR, t)

    def _rate_limits(self, event: dict[str, Any], t: float) -> None:
        entries = event.get("rate_limits")
        if isinstance(entries, list):
            for entry in entries:
                if not isinstance(entry, dict):
                    continue
                remaining = entry.get("remaining")
                if entry.get("name") == "tokens" and isinstance(remaining, int):
                    self.rl_tokens_remaining = remaining
                elif entry.get("name") == "requests" and isinstance(remaining, int):
                    self.rl_requests_remaining = remaining
            if self.on_rate_limits is not None:
                self.on_rate_limits([e for e in entries if isinstance(e, dict)], t, self.last_response_id)
        self._context_event(event, t)

    def _session_created(self, event: dict[str, Any], t: float) -> None:
        session = event.get("session")
        if isinstance(session, dict) and isinstance(session.get("id"), str):
            self.session_id = session["id"]
        self.session_created = True
        if self.on_session is not None:
            self.on_session(event, t)
        self._context_event(event, t)

    def _session_updated(self, event: dict[str, Any], t: float) -> None:
        self.session_updated = True
        if self.on_session is not None:
            self.on_session(event, t)
        self._context_event(event, t)

    def _committed(self, event: dict[str, Any], t: float) -> None:
        for tracker in self.pending:
            if tracker.trigger == "server_vad" and tracker.t_trigger is None:
                tracker.t_trigger = self.last_append_t if self.last_append_t is not None else t
                break
        self._context_event(event, t)
        if self.on_committed is not None:
            self.on_committed(event, t)

    def _input_transcription(self, event: dict[str, Any], t: float) -> None:
        self._context_event(event, t)
        if self.on_input_transcription is not None:
            self.on_input_transcription(event, t)

    def _timeout_triggered(self, event: dict[str, Any], t: float) -> None:
        """Server VAD's ``idle_timeout_ms`` ran out: the server commits and answers on its own; that
        response (the next one no turn asked for) gets trigger ``idle_timeout``, timed from here."""
        self._context_event(event, t)
        self.idle_timeouts += 1
        self._idle_timeout_t = t

    def _speech_started(self, event: dict[str, Any], t: float) -> None:
        self._context_event(event, t)
        if self.on_speech_started is not None:
            self.on_speech_started(event, t)

    # -- endings -------------------------------------------------------------------------------
    def _finish(self, tracker: ResponseTracker, how: str, t: float) -> None:
        if tracker.finished:
            return
        tracker.finished = True
        tracker.ended = how
        tracker.t_end = t
        tracker.session_ready = self.session_created or self.session_updated
        if tracker.calls is not None:
            tracker.calls.judge(self.tool_schemas)
        if tracker.analyzer is not None:
            tracker.analyzer.finish(t)
        with contextlib.suppress(ValueError):
            self.pending.remove(tracker)
        if tracker.out_of_band:
            self.pending_oob.pop(tracker.tag, None)
        with contextlib.suppress(ValueError):
            self.open.remove(tracker)
        if tracker.response_id:
            self.last_response_id = tracker.response_id
        self._review_awaiting()
        self.on_finished(tracker)

    def close(self, code: int | None, reason: str, t: float) -> None:
        """The socket closed: every open response ends with the close code."""
        for tracker in list(self.open):
            tracker.close_code = code
            tracker.close_reason = reason or ""
            tracker.trace.add(t, {"type": "close", "code": code, "reason": reason}, "note")
            self._finish(tracker, ENDED_CLOSED, t)

    def not_ready(self, t: float) -> None:
        """The session never became ready (no ``session.created``/``session.updated`` within the
        setup wait, the socket open): every open response ends so."""
        for tracker in list(self.open):
            if tracker.t_trigger is None:
                tracker.t_trigger = tracker.t_armed
            tracker.trace.add(t, {"type": "session.not_ready"}, "note")
            self._finish(tracker, ENDED_NOT_READY, t)

    def stop(self, t: float) -> None:
        """The client stopped: every open response ends as stopped."""
        for tracker in list(self.open):
            self._finish(tracker, ENDED_STOPPED, t)

    def release(self) -> None:
        """The connection is over: drop what points back at the session and at this router.

        The dispatch table holds bound methods of this router and the callbacks are closures over
        the session's connection, so a finished connection's whole graph (router, trackers, their
        audio analysis and trace rings, the transport) would be reference-cycle garbage. The
        harness runs the cyclic collector rarely (``loadtest.locust.harness.tune_gc``): such garbage
        outlives young collections and then stays until a full one, i.e. for the rest of the run.
        Without the cycles, reference counting frees it the moment the session lets go (issue 22).
        """
        self.handlers = {}
        self.on_finished = _ignore
        self.new_tracker = ResponseTracker
        self.on_speech_started = self.on_rate_limits = self.on_session = None
        self.on_awaiting_output = None
        self.on_committed = self.on_input_transcription = None

    def expire(self, now: float) -> float | None:
        """Finish trackers past their deadline; return the next deadline (None: none armed)."""
        next_deadline: float | None = None
        for tracker in list(self.open):
            deadline = tracker.deadline(self.response_deadline_s, self.response_idle_s)
            if deadline is None:
                continue
            if now >= deadline:
                tracker.trace.add(now, {"type": "deadline"}, "note")
                self._finish(tracker, ENDED_TIMEOUT, now)
            elif next_deadline is None or deadline < next_deadline:
                next_deadline = deadline
        return next_deadline


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else (str(value) if value is not None else None)


_FOREIGN_CACHE: dict[str, frozenset[str]] = {}


def _OTHER_DIALECT_EVENTS(dialect: Dialect) -> frozenset[str]:
    """Server event names that exist only in the other dialect."""
    cached = _FOREIGN_CACHE.get(dialect.name)
    if cached is None:
        from loadtest.protocol.dialects import DIALECTS

        other = frozenset().union(*(d.server_events for d in DIALECTS.values() if d.name != dialect.name))
        cached = _FOREIGN_CACHE[dialect.name] = other - dialect.server_events
    return cached


def _ignore(_tracker: ResponseTracker) -> None:
    """``on_finished`` of a released router."""
