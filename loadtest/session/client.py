"""The Realtime session client: connect, run a scenario's turns, track and classify every response.

One :class:`RealtimeSession` is one Locust user's session (or one preflight session). ``run()``
does the handshake and sends in the caller's greenlet/thread (the sender and audio clock) and
spawns exactly one receiver (a greenlet under gevent, a daemon thread otherwise; see
:mod:`loadtest.session.concurrency`). The receiver parses each message with orjson, dispatches it
through the :class:`~loadtest.session.router.EventRouter`'s dict and feeds audio deltas to the
response's :class:`~loadtest.audio.analysis.AudioAnalyzer`. Records go to the sink as they happen.

The session core knows its connection only as a :class:`~loadtest.session.link.Transport` (made
by its :class:`~loadtest.session.runtime.SessionRuntime`). Its parts live apart: the audio send
loop in :mod:`~loadtest.session.audio_send`, the rows in :mod:`~loadtest.session.recording`, the
observer timeline in :mod:`~loadtest.session.timeline`, the ending rules in
:mod:`~loadtest.session.endings`, a connection's receive path and waits in
:mod:`~loadtest.session.connection`; this module opens connections and runs the turns (barge-in
included).

Nothing network- or protocol-related raises out of :meth:`RealtimeSession.run`: a bad URL, a
refused upgrade, a garbage frame or a dropped connection becomes a recorded outcome.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from loadtest.protocol.dialects import Dialect, get_dialect
from loadtest.protocol.targets import Target, secrets_of
from loadtest.records.schema import COMPLETED, SessionRecord
from loadtest.session import concurrency, endings, evidence
from loadtest.session.audio_send import AudioSender
from loadtest.session.classifier import ENDED_DONE, ENDED_ERROR, ENDED_NOT_READY, ENDED_TIMEOUT, verdict
from loadtest.session.config import SessionConfig
from loadtest.session.connection import Connection
from loadtest.session.function_calls import ChainLink, FollowUp, ToolSchemas, follow_up_of
from loadtest.session.input_transcript import InputTranscripts, expected_of, utterance_record
from loadtest.session.link import Handshake
from loadtest.session.recording import RecordBuilder, trace_name
from loadtest.session.router import SESSION_FATAL, EventRouter
from loadtest.session.runtime import SessionRuntime, process_runtime
from loadtest.session.scenario import Scenario, Turn
from loadtest.session.sink import RecordSink
from loadtest.session.timeline import Observer, Timeline
from loadtest.session.tracker import OOB_TAG, ResponseTracker

log = logging.getLogger("loadtest.session")

__all__ = ["Observer", "RealtimeSession"]


class RealtimeSession:
    """One Realtime session driven by a scenario (see the module docstring)."""

    def __init__(
        self,
        target: Target,
        scenario: Scenario,
        config: SessionConfig,
        sink: RecordSink,
        *,
        run_id: str = "",
        worker_id: str = "",
        user_id: int = 0,
        context: Callable[[], dict[str, Any]] | None = None,
        observer: Observer | None = None,
        runtime: SessionRuntime | None = None,
        token_provider: Any = None,
        rng: random.Random | None = None,
    ) -> None:
        self.target = target
        self.scenario = scenario
        self.config = config
        self.sink = sink
        self.run_id = run_id
        self.worker_id = worker_id
        self.user_id = user_id
        self.context = context
        self.observer = observer
        self.timeline = Timeline(observer)
        self.runtime = runtime or process_runtime()
        self.token_provider = token_provider
        self.rng = rng or random.Random()
        self.dialect: Dialect = get_dialect(str(target.dialect))
        self.thresholds = config.thresholds()
        # a transcription session: the scenario's, or a session file of type "transcription" (GA)
        self.transcription_only = scenario.transcription_only or (
            scenario.session is not None and self.dialect.is_transcription_session(scenario.session)
        )
        self.tool_schemas = ToolSchemas.of_session(scenario.session)  # what function-call arguments must match
        self._stopping = False
        self._stop_event = concurrency.new_event()
        self._conn: Connection | None = None
        # the key and every secret-like gateway header (api-key, Authorization...) or URL parameter:
        # the transport redacts them from handshake errors (a gateway may echo the request)
        self.rows = RecordBuilder(
            target,
            scenario.name,
            run_id=run_id,
            worker_id=worker_id,
            user_id=user_id,
            secrets=tuple(secrets_of(target.url_override or target.base_url, target.extra_headers, (target.api_key,)))
            + tuple(target.network.secrets() if target.network is not None else ()),
            transport=config.transport,
        )
        self._current_index = 0
        self.sessions_opened = 0
        self.responses = 0
        self.garbage_messages = 0  # frames that were not a JSON object
        self.unknown_events = 0  # event types neither dialect table knows (or the other dialect's)
        self.internal_errors = 0
        self.last_session: SessionRecord | None = None

    # -- public --------------------------------------------------------------------------------
    def run(self, deadline: float | None = None) -> None:
        """Connect, run the scenario's turns (looping when ``scenario.repeat``), close.

        Reconnects when the session reaches ``config.lifetime_s`` and turns remain. Returns at the
        end of the turns, at ``deadline`` (Unix s), after :meth:`stop`, or when the server ends the
        session. Never raises for network or protocol problems.
        """
        turns = self._turns()
        pending: tuple[int, Turn] | None = None
        while not self._stopping and not _past(deadline):
            if pending is None:
                pending = next(turns, None)
                if pending is None:
                    return
            try:
                conn = self._open(pending)
            except Exception:  # a bug, not the network: log it, never take the user down
                log.exception("session open failed")
                return
            if conn is None:
                return
            figures = self.runtime.figures
            figures.open_sessions += 1
            ending = endings.ERROR
            try:
                ending, pending = self._converse(conn, pending, turns, deadline)
            except Exception:
                log.exception("session failed")
                conn.internal_errors += 1
            finally:
                figures.open_sessions -= 1
                try:
                    self._finish_connection(conn, ending)
                except Exception:
                    log.exception("session close failed")
            if ending != endings.LIFETIME:
                return

    @property
    def receiver(self) -> concurrency.Task | None:
        """The receiver task of the connection open now (None between connections)."""
        conn = self._conn
        return conn.receiver if conn is not None else None

    def _is_stopping(self) -> bool:
        return self._stopping

    def _wait(self, conn: Connection, done: Callable[[], bool], timeout: float) -> bool:
        return conn.wait(done, timeout, self._is_stopping)

    def stop(self) -> None:
        """Ask the session to end quickly: closes the socket; safe from another greenlet/thread."""
        self._stopping = True
        self._stop_event.set()
        conn = self._conn
        if conn is not None:
            conn.client_stop = True
            conn.wake.set()
            conn.transport.close(1000, "client stopping")

    # -- turns ---------------------------------------------------------------------------------
    def _turns(self) -> Iterator[tuple[int, Turn]]:
        turns = self.scenario.turns
        source = itertools.cycle(turns) if self.scenario.repeat else iter(turns)
        return enumerate(source)

    def _new_tracker(self, index: int = 0, turn: Turn | None = None) -> ResponseTracker:
        cfg = self.config
        modalities = list((turn.modalities if turn else None) or cfg.output_modalities)
        return ResponseTracker(
            turn_index=index,
            trigger=turn.trigger if turn else "",
            fixture=(turn.fixture or "") if turn and turn.trigger != "text" else "",
            out_of_band=bool(turn and turn.out_of_band),
            wants_audio="audio" in modalities,
            modalities=modalities,
            audio_format=cfg.audio_format,
            trace_events=cfg.trace_events,
            jitter_buffer_ms=cfg.jitter_buffer_ms,
            context=self._context(),
            keep_audio=cfg.keep_audio,
            keep_audio_s=cfg.keep_audio_s,
            audio_pool=self.runtime.audio_pool,
        )

    def _unsolicited_tracker(self, conn: Connection) -> ResponseTracker:
        """A response the server started on its own (its VAD heard a second turn in one utterance...)."""
        tracker = self._new_tracker(self._current_index, None)
        tracker.trigger = "server_vad" if conn.turn_detection == "server_vad" else "server"
        conn.inputs.adopt(tracker)
        return tracker

    def _context(self) -> dict[str, Any]:
        ctx: dict[str, Any] = {}
        if self.context is not None:
            try:
                ctx = dict(self.context() or {})
            except Exception:
                ctx = {}
        ctx.setdefault("concurrency", self.runtime.figures.open_sessions)
        return ctx

    # -- connect -------------------------------------------------------------------------------
    def _open(self, first: tuple[int, Turn]) -> Connection | None:
        cfg = self.config
        srec = self.rows.session(self._context())
        srec.t_start = time.time()
        headers: list[tuple[str, str]] | None = None
        hs: Handshake
        # the key and every secret-like gateway header (api-key, Authorization...) or URL parameter:
        # the transport redacts them from handshake errors (a gateway may echo the request)
        transport = self.runtime.new_transport(
            kind=cfg.transport,
            audio_event=self.dialect.output_audio_delta,
            realtime_audio=cfg.pacing == "realtime",
            max_message_bytes=cfg.max_message_bytes,
            permessage_deflate=cfg.permessage_deflate,
            secrets=self.rows.secrets,
            network=self.target.network,
        )
        try:
            token = self._token()
            if token:
                self.rows.add_secret(token)
                transport.add_secret(token)
            headers = self.target.headers(token)
            url = self.target.url()
        except Exception as exc:
            hs = Handshake(error=f"{type(exc).__name__}: {exc}"[:300], t_start=srec.t_start, t_end=time.time(), ms=0.0)
        if headers is not None:
            self.timeline.note("out", "connect", {"url": srec.url})
            hs = transport.connect(url, headers, cfg.connect_timeout_s)
        srec.handshake_ms = hs.ms
        srec.handshake_status = hs.status
        srec.handshake_error = hs.error
        srec.retry_after = hs.retry_after
        srec.request_id = hs.request_id
        srec.region = hs.headers.get("x-ms-region")
        self.timeline.note(
            "in", "handshake", {"status": hs.status, "ms": hs.ms, "error": hs.error, "headers": hs.headers}
        )
        if not hs.ok:
            self._handshake_failed(srec, hs, first)
            return None
        self.sessions_opened += 1
        srec.t_open = hs.t_end
        # the router's callbacks name ``conn``, made just below from the router: they run only once
        # events arrive, after it exists
        wake = concurrency.new_event()
        router = EventRouter(
            self.dialect,
            on_finished=lambda tr: self._emit(conn, tr),
            new_tracker=lambda: self._unsolicited_tracker(conn),
            response_deadline_s=cfg.response_deadline_s,
            response_idle_s=cfg.response_idle_s,
            on_speech_started=lambda ev, t: self._on_speech_started(conn, ev, t),
            on_rate_limits=lambda entries, t, rid: self._on_rate_limits(conn, entries, t, rid),
            on_session=lambda event, t: wake.set(),
            tool_schemas=self.tool_schemas,
        )
        router.on_awaiting_output = transport.set_awaiting_output
        closed = concurrency.new_event()
        audio = AudioSender(
            transport,
            router,
            self.dialect.client_audio_append,
            lambda: not self._stopping and not closed.is_set(),
            self.runtime.figures.frame_lag,
            self.runtime.pacer,
        )
        conn = Connection(
            transport=transport,
            router=router,
            audio=audio,
            record=srec,
            lock=concurrency.new_lock(),
            wake=wake,
            closed=closed,
            t_open=time.time(),
            inputs=InputTranscripts(
                dialect=self.dialect,
                wait_s=cfg.transcription_wait_s,
                expected_of=expected_of(self.scenario),
                on_utterance=lambda tr, item, timed_out: self._utterance(conn, tr, item, timed_out),
                wake=wake,
            ),
        )
        conn.inputs.attach(router)
        self._conn = conn
        if self._stopping:
            conn.client_stop = True
        # the first turn's tracker exists before session.update: an early rejection (error + close)
        # becomes its outcome
        index, turn = first
        self._current_index = index
        tracker = self._new_tracker(index, turn)
        tracker.t_armed = time.time()
        conn.router.expect(tracker)
        conn.receiver = concurrency.spawn(lambda: conn.receive(self.timeline), name=f"rtload-recv-{self.user_id}")
        self._send_session_update(conn, turn, tracker)
        self._wait(conn, lambda: conn.router.session_updated or tracker.finished, cfg.setup_timeout_s)
        router = conn.router
        ready = router.session_created or router.session_updated
        if not (ready or tracker.finished or conn.closed.is_set() or self._stopping):
            # upgraded, then silence: the session never became ready (no turn is worth starting)
            with conn.lock:
                router.not_ready(time.time())
        conn.first_tracker = tracker
        return conn

    def _token(self) -> str | None:
        if self.target.auth != "entra":
            return None
        provider = self.token_provider
        if provider is None:
            from loadtest.protocol.auth import entra_provider

            provider = self.token_provider = entra_provider(self.target.token_scope)
        return provider.token()

    def _handshake_failed(self, srec: SessionRecord, hs: Handshake, first: tuple[int, Turn]) -> None:
        """A refused upgrade: the session row and a response row for the turn that could not start."""
        srec.t_end = time.time()
        srec.duration_s = srec.t_end - (srec.t_start or srec.t_end)
        srec.ended_by = endings.HANDSHAKE_FAILED
        index, turn = first
        rec = self.rows.refused(self._new_tracker(index, turn), hs, srec, self.thresholds)
        self._safe(self.sink.response, rec)
        srec.responses = 1
        self.responses += 1
        self.last_session = srec
        self.timeline.note("note", "outcome", {"turn_index": index, "outcome": rec.outcome, "reason": rec.reason})
        self._safe(self.sink.session, srec)

    # -- sending -------------------------------------------------------------------------------
    def _send(self, conn: Connection, event: dict[str, Any], tracker: ResponseTracker | None = None) -> bool:
        event_id = f"evt_rtl{next(conn.event_seq)}"
        event = {"event_id": event_id, **event}
        conn.router.sent(event_id, tracker)
        t = time.time()
        if tracker is not None:
            tracker.trace.add(t, event, "out")
        if self.timeline.on:
            self.timeline.note("out", event.get("type", ""), {"event_id": event_id})
        return conn.transport.send(orjson.dumps(event))

    def _send_session_update(self, conn: Connection, turn: Turn, tracker: ResponseTracker | None) -> None:
        cfg = self.config
        inputs = conn.inputs
        model = self.scenario.transcription_model or cfg.transcription_model
        if self.scenario.session is not None:  # the user's own session object, as given
            update, vad_on = self.dialect.user_session_update(self.scenario.session, turn.trigger)
            conn.turn_detection = "server_vad" if vad_on else None
            inputs.enabled = self.dialect.transcription_of(update["session"]) is not None
            self._send(conn, update, tracker)
            return
        turn_detection = "server_vad" if turn.trigger == "server_vad" else None
        inputs.enabled = bool(model)
        if self.transcription_only:
            update = self.dialect.transcription_session_update(
                transcription_model=model or "", audio_format=cfg.audio_format, turn_detection=turn_detection
            )
            conn.turn_detection = turn_detection
            self._send(conn, update, tracker)
            return
        update = self.dialect.session_update(
            output_modalities=cfg.output_modalities,
            instructions=cfg.instructions,
            voice=cfg.voice,
            audio_format=cfg.audio_format,
            turn_detection=turn_detection,
            transcription_model=model,
            max_output_tokens=cfg.max_output_tokens,
        )
        conn.turn_detection = turn_detection
        self._send(conn, update, tracker)

    def _stream(self, conn: Connection, frames_list: list[Any], tracker: ResponseTracker) -> bool:
        """Send append frames on the audio clock (absolute deadlines) or as fast as allowed."""
        return conn.audio.send(frames_list, tracker, realtime=self.config.pacing == "realtime")

    def _frames(self, turn: Turn, trailing_silence: bool) -> list[Any]:
        from loadtest.audio.frames import frames_for, silence_appends

        cfg = self.config
        out = [frames_for(turn.fixture or "", cfg.frame_ms, cfg.audio_format)]
        if trailing_silence and cfg.trailing_silence_ms > 0:
            out.append(silence_appends(float(cfg.trailing_silence_ms), cfg.frame_ms, cfg.audio_format))
        return out

    # -- the conversation ----------------------------------------------------------------------
    def _converse(
        self, conn: Connection, first: tuple[int, Turn], turns: Iterator[tuple[int, Turn]], deadline: float | None
    ) -> tuple[str, tuple[int, Turn] | None]:
        """Run turns on this connection. Returns (how it ended, the turn to run after a reconnect)."""
        cfg = self.config
        current: tuple[int, Turn] | None = first
        tracker: ResponseTracker | None = conn.first_tracker
        upcoming: tuple[int, Turn] | None = None
        while current is not None:
            if tracker is not None and tracker.finished and tracker.ended != ENDED_DONE:
                # the session was rejected or failed before the turn could start (already recorded)
                if tracker.ended == ENDED_NOT_READY:
                    return endings.NOT_READY, None
                code = tracker.error_event_code or tracker.error_event_type
                if tracker.ended == ENDED_ERROR and code not in SESSION_FATAL and conn.transport.open:
                    return endings.ERROR, None  # e.g. session.update refused: the client gives up
                concurrency.wait(conn.closed, self.config.close_timeout_s)  # the server is closing (auth, model, shape)
                return self._ending(conn), None
            if not conn.transport.open and not conn.closed.is_set():
                concurrency.wait(conn.closed, self.config.close_timeout_s)  # the server is closing: let it finish
            if conn.closed.is_set() or not conn.transport.open:
                if tracker is not None and not tracker.finished:
                    with conn.lock:
                        conn.router.close(conn.close_info.code if conn.close_info else None, "", time.time())
                return self._ending(conn), None
            if self._stopping or _past(deadline):
                if tracker is not None and not tracker.finished and tracker.t_trigger is None:
                    # never triggered: forget it rather than record a non-attempt
                    with conn.lock:
                        conn.router.forget(tracker)
                if not self._stopping:  # the run is over: the transcripts of answered turns still count
                    self._wait(conn, conn.transcripts_settled, cfg.transcription_wait_s + 1.0)
                return endings.CLIENT_CLOSED, None
            index, turn = current
            self._current_index = index
            if tracker is None:
                tracker = self._new_tracker(index, turn)
                with conn.lock:
                    conn.router.expect(tracker)
            self._start_turn(conn, turn, tracker)
            upcoming = next(turns, None)
            if upcoming is not None and upcoming[1].barge_in and not turn.out_of_band:
                after = upcoming[1].barge_in_after_ms
                self._answer(conn, turn, tracker, cfg.barge_in_after_ms if after is None else after)
                self._barge_in(conn, upcoming[1])
            else:
                self._answer(conn, turn, tracker, None)
                if upcoming is not None and not upcoming[1].barge_in:
                    self._think(upcoming[1])
            current, tracker = upcoming, None
            aged = cfg.lifetime_s is not None and time.time() - conn.t_open >= cfg.lifetime_s
            if current is not None and aged and not conn.closed.is_set():
                self._wait(conn, conn.settled, cfg.response_deadline_s + 5.0)
                return endings.LIFETIME, current
        # the scenario is over: let open responses (out-of-band, barged answers) and transcripts finish
        self._wait(conn, conn.settled, cfg.response_deadline_s + 5.0)
        return (endings.CLIENT_CLOSED if not conn.closed.is_set() else self._ending(conn)), None

    def _start_turn(self, conn: Connection, turn: Turn, tracker: ResponseTracker) -> None:
        cfg = self.config
        dialect = self.dialect
        modalities = turn.modalities or cfg.output_modalities
        if turn.trigger != "text":
            needed = "server_vad" if turn.trigger == "server_vad" else None
            if conn.turn_detection != needed:
                self._send_session_update(conn, turn, None)
        tracker.t_armed = time.time()
        if self.transcription_only:
            self._transcribe_turn(conn, turn, tracker)
            return
        if turn.trigger == "text":
            metadata = {OOB_TAG: tracker.tag} if turn.out_of_band else None
            if turn.out_of_band:
                create = dialect.response_create(
                    output_modalities=modalities,
                    out_of_band=True,
                    instructions=turn.instructions,
                    max_output_tokens=turn.max_output_tokens,
                    metadata=metadata,
                    input_items=[dialect.user_text_message(turn.text or "")],
                )
            else:
                self._send(conn, dialect.user_text_item(turn.text or ""), tracker)
                create = dialect.response_create(
                    output_modalities=modalities,
                    instructions=turn.instructions,
                    max_output_tokens=turn.max_output_tokens,
                )
            tracker.t_trigger = time.time()
            self._send(conn, create, tracker)
            return
        if turn.trigger == "manual":
            if not self._stream(conn, self._frames(turn, trailing_silence=False), tracker):
                return
            self._send(conn, {"type": dialect.client_audio_commit}, tracker)
            metadata = {OOB_TAG: tracker.tag} if turn.out_of_band else None
            create = dialect.response_create(
                output_modalities=modalities,
                out_of_band=turn.out_of_band,
                instructions=turn.instructions,
                metadata=metadata,
                max_output_tokens=turn.max_output_tokens,
            )
            tracker.t_trigger = time.time()
            self._send(conn, create, tracker)
            return
        # server VAD: the server ends the turn; t_trigger is the last append before its commit
        self._stream(conn, self._frames(turn, trailing_silence=True), tracker)
        tracker.t_armed = time.time()

    def _transcribe_turn(self, conn: Connection, turn: Turn, tracker: ResponseTracker) -> None:
        """A transcription-only turn: its audio and no response; its row comes once its transcript
        settles (:meth:`_utterance`)."""
        inputs = conn.inputs
        with conn.lock:
            conn.router.forget(tracker)  # no response will answer it
            inputs.expect_utterance(tracker)
        manual = turn.trigger == "manual"
        sent = self._stream(conn, self._frames(turn, trailing_silence=not manual), tracker)
        if sent and manual:
            tracker.t_trigger = time.time()  # (before the commit: its echo may come back at once)
            self._send(conn, {"type": self.dialect.client_audio_commit}, tracker)
        with conn.lock:
            inputs.audio_sent(tracker, time.time())  # the wait for its commit starts here
        self._wait(conn, lambda: not inputs.utterance_open(tracker), self.config.transcription_wait_s + 5.0)

    def _utterance(self, conn: Connection, tracker: ResponseTracker, item: Any, timed_out: bool) -> None:
        """A transcription-only utterance's row (under the connection lock)."""
        info = conn.close_info
        by_server = info is not None and info.by_server and not conn.client_stop
        rec = utterance_record(self.rows, tracker, item, conn.record, timed_out=timed_out, by_server=by_server)
        if rec is None:
            return
        rec.session_id = conn.router.session_id
        conn.record.responses += 1
        self.responses += 1
        self._safe(self.sink.response, rec)
        conn.wake.set()

    def _answer(self, conn: Connection, turn: Turn, tracker: ResponseTracker, barge_after_ms: float | None) -> None:
        """Wait for the turn's response, answer its function calls and follow the chain to its limit
        (loadtest/session/function_calls.py). A barge-in next (``barge_after_ms``) comes that far into
        an answer's playback, or after a calling response's end while its tools run (its calls are then
        abandoned: no output, no follow-up)."""
        wait_s = self.config.response_deadline_s + 5.0
        while True:
            if barge_after_ms is None:
                self._wait(conn, lambda tr=tracker: tr.finished, wait_s)
                self._cancel_if_hung(conn, tracker)
            else:
                conn.wait_barge_in_point(tracker, barge_after_ms, wait_s, self._is_stopping)
            with conn.lock:  # a response ends and is planned under the lock (finished, then follow_up)
                plan = tracker.follow_up if tracker.finished else None
            if plan is None:
                return
            ready = time.time() + plan.latency_ms / 1000.0  # the tools run (a wait that yields)
            barge_at = (tracker.t_end or 0.0) + (barge_after_ms or 0.0) / 1000.0
            if barge_after_ms is not None and barge_at < ready:
                self._wait(conn, self._is_stopping, barge_at - time.time())
                return
            self._wait(conn, self._is_stopping, ready - time.time())
            if self._stopping or not conn.alive():
                return
            tracker = self._follow_up(conn, turn, tracker, plan)

    def _follow_up(self, conn: Connection, turn: Turn, parent: ResponseTracker, plan: FollowUp) -> ResponseTracker:
        """Answer ``parent``'s calls: every ``function_call_output``, then one ``response.create``."""
        dialect = self.dialect
        for call_id, output in plan.outputs:
            self._send(conn, dialect.function_call_output(call_id, output), None)
        tracker = self._new_tracker(parent.turn_index, turn)
        tracker.chain = ChainLink.after(parent.response_id, parent.chain, parent.t_trigger, plan)
        with conn.lock:
            conn.router.expect(tracker)
        modalities = turn.modalities or self.config.output_modalities
        create = dialect.response_create(output_modalities=modalities, instructions=turn.instructions,
                                         max_output_tokens=turn.max_output_tokens)  # fmt: skip
        tracker.t_armed = tracker.t_trigger = time.time()
        self._send(conn, create, tracker)
        return tracker

    def _cancel_if_hung(self, conn: Connection, tracker: ResponseTracker) -> None:
        """A response that timed out may still hold the conversation: cancel it so the next turn can
        start (its late ``response.done`` is ignored; the outcome is already recorded)."""
        if tracker.ended == ENDED_TIMEOUT and tracker.response_id and not tracker.out_of_band and conn.alive():
            self._send(conn, {"type": self.dialect.client_response_cancel, "response_id": tracker.response_id}, None)

    def _think(self, turn: Turn | None = None) -> None:
        lo, hi = (turn.think_time_s if turn is not None else None) or self.config.think_time_s
        if hi > 0:
            concurrency.wait(self._stop_event, self.rng.uniform(lo, hi))

    # -- barge-in ------------------------------------------------------------------------------
    def _barge_in(self, conn: Connection, turn: Turn) -> None:
        """Interrupt the answer that is playing: VAD turns let the server cancel it (its speech_started
        triggers the truncate); manual/text turns cancel it and truncate here."""
        playing = conn.playing
        if playing is None or turn.trigger == "server_vad":
            if playing is None:
                conn.playing = None
            return
        if not playing.finished:
            playing.client_cancelled = True
            self._send(conn, {"type": self.dialect.client_response_cancel}, None)
        self._truncate(conn, playing, time.time())

    def _on_speech_started(self, conn: Connection, event: dict[str, Any], t: float) -> None:
        playing = conn.playing
        if playing is not None:
            self._truncate(conn, playing, t)

    def _truncate(self, conn: Connection, tracker: ResponseTracker, t: float) -> None:
        item_id = tracker.item_id
        if not item_id or item_id in conn.truncated or tracker.analyzer is None:
            return
        played = tracker.played_ms(t)
        if played >= float(tracker.analyzer.audio_ms) and tracker.finished:
            return  # the whole answer was heard: nothing to truncate
        conn.truncated.add(item_id)
        self._send(conn, self.dialect.truncate(item_id, int(played)), None)
        tracker.trace.add(t, {"type": "client.truncate", "item_id": item_id, "audio_end_ms": int(played)}, "note")

    # -- records -------------------------------------------------------------------------------
    def _emit(self, conn: Connection, tracker: ResponseTracker) -> None:
        """A response finished (called under the connection lock, from either side)."""
        srec = conn.record
        router = conn.router
        if srec.session_id is None:
            srec.session_id = router.session_id
        judged = verdict(tracker.facts(), self.thresholds)
        outcome, reason = judged.outcome, judged.reason
        if tracker.calls is not None:  # how the client answers the calls (the sender follows it up)
            tracker.follow_up = follow_up_of(tracker, reason, self.scenario, self.config.max_tool_chain)
        rec = self.rows.response(tracker, outcome, reason, srec)
        if judged.via_gateway:
            rec.via_gateway = True
            if srec.retry_after is None:
                srec.retry_after = judged.retry_after  # the reconnect backoff honours it
        rec.session_id = router.session_id
        rec.rl_tokens_remaining = router.rl_tokens_remaining
        rec.rl_requests_remaining = router.rl_requests_remaining
        cfg = self.config
        name = trace_name(router.session_id, tracker, self.rows.attempt(srec))
        playback = evidence.keep(tracker, outcome == COMPLETED, rec, name, cfg, self.rng, self.sink)
        if (outcome != COMPLETED or playback) and cfg.keep_traces and cfg.trace_events > 0:
            events = self.rows.redact_events(tracker.trace.events())
            if playback:
                events.append(playback)
            events.append({"t": tracker.t_end, "dir": "note", "type": "outcome", "outcome": outcome, "reason": reason})
            rec.trace_file = self._safe(self.sink.trace, name, events)
        srec.responses += 1
        self.responses += 1
        conn.inputs.record(tracker, rec, self._write_response, time.time())  # may wait for its input's transcript
        if self.timeline.on:
            fields = {"response_id": tracker.response_id, "turn_index": tracker.turn_index}
            self.timeline.note("note", "outcome", {**fields, "outcome": outcome, "reason": reason}, tracker.t_end)
        conn.wake.set()

    def _write_response(self, rec: Any) -> None:
        self._safe(self.sink.response, rec)

    def _on_rate_limits(self, conn: Connection, entries: list[dict[str, Any]], t: float, rid: str | None) -> None:
        for rec in self.rows.rate_limits(entries, t, conn.router.session_id, rid):
            self._safe(self.sink.rate_limit, rec)

    def _ending(self, conn: Connection) -> str:
        return endings.ending_of(conn.close_info, conn.client_stop, conn.router.session_errors)

    def _finish_connection(self, conn: Connection, ending: str) -> None:
        cfg = self.config
        transport = conn.transport
        if not conn.closed.is_set():
            conn.client_stop = True
            reason = {endings.LIFETIME: "lifetime", endings.NOT_READY: "session not ready"}.get(ending, "")
            transport.close(1000, reason)
            if conn.receiver is not None and not conn.receiver.join(cfg.close_timeout_s):
                transport.abort()
        transport.abort()
        if conn.receiver is not None:
            conn.receiver.kill(timeout=cfg.close_timeout_s)
            conn.receiver.join(cfg.close_timeout_s)
        with conn.lock:
            conn.router.stop(time.time())
            conn.inputs.flush(time.time())  # rows still waiting for a transcript: as they stand
        info = conn.close_info
        if (
            ending in (endings.CLIENT_CLOSED, endings.ERROR)
            and info is not None
            and info.by_server
            and not conn.client_stop
        ):
            ending = self._ending(conn)
        self.garbage_messages += conn.garbage
        self.unknown_events += conn.router.unknown_events
        conn.record.unknown_response_events = conn.router.unknown_response_events
        conn.record.idle_timeouts = conn.router.idle_timeouts
        conn.record.rtp_dropped = conn.transport.rtp_dropped
        network = conn.transport.network
        conn.record.rtp_lost = network.rtp_lost
        conn.record.rtt_ms = network.rtt_ms
        conn.record.peer_rtp_lost = network.peer_rtp_lost
        self.internal_errors += conn.internal_errors
        srec = conn.record
        srec.session_id = srec.session_id or conn.router.session_id
        srec.t_end = time.time()
        srec.duration_s = round(srec.t_end - (srec.t_open or srec.t_start or srec.t_end), 3)
        info = conn.close_info
        if info is not None:
            srec.close_code = info.code
            srec.close_reason = (info.protocol_error or info.reason or "")[:200] or None
        srec.ended_by = ending
        self.last_session = srec
        self._conn = None if self._conn is conn else self._conn
        self._safe(self.sink.session, srec)
        conn.release()

    @staticmethod
    def _safe(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception:
            log.exception("record sink failed")
            return None


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.time() >= deadline
