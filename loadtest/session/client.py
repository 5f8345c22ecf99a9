"""The Realtime session client: connect, run a scenario's turns, track and classify every response.

One :class:`RealtimeSession` is one Locust user's session (or one preflight session). ``run()``
does the handshake and sends in the caller's greenlet/thread (the sender and audio clock) and
spawns exactly one receiver (a greenlet under gevent, a daemon thread otherwise; see
:mod:`loadtest.session.concurrency`). The receiver parses each message with orjson, dispatches it
through the :class:`~loadtest.session.tracker.EventRouter`'s dict and feeds audio deltas to the
response's :class:`~loadtest.audio.analysis.AudioAnalyzer`. Records go to the sink as they happen.

Nothing network- or protocol-related raises out of :meth:`RealtimeSession.run`: a bad URL, a
refused upgrade, a garbage frame or a dropped connection becomes a recorded outcome.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from loadtest.protocol.dialects import Dialect, get_dialect
from loadtest.protocol.targets import Target, redact_text, secrets_of
from loadtest.records.schema import (
    COMPLETED,
    RateLimitRecord,
    ResponseRecord,
    SessionRecord,
)
from loadtest.session import concurrency
from loadtest.session.classifier import ENDED_HANDSHAKE, classify
from loadtest.session.config import SessionConfig
from loadtest.session.lagstats import LagStats
from loadtest.session.pacer import PACER, PacedStream
from loadtest.session.scenario import Scenario, Turn
from loadtest.session.sink import RecordSink
from loadtest.session.tracker import OOB_TAG, SESSION_FATAL, EventRouter, ResponseTracker
from loadtest.session.transport import CloseInfo, Handshake, WebSocketTransport

log = logging.getLogger("loadtest.session")

Observer = Callable[[dict[str, Any]], None]

# fields an observer sees for a received event (the timeline of a session)
_TIMELINE_KEYS = ("event_id", "response_id", "item_id", "audio_start_ms", "audio_end_ms")


# how late each realtime frame went out (ms): one process-wide instance shared by every session
# unless a session is given its own; the harness reads it with ``take`` for its health report
AudioClockStats = LagStats

AUDIO_CLOCK = AudioClockStats()
OPEN_SESSIONS = [0]  # sessions open in this process (the default concurrency stamp)


@dataclass(slots=True)
class _Connection:
    """One WebSocket connection's state (a session reconnects with a new one at its lifetime)."""

    transport: WebSocketTransport
    router: EventRouter
    record: SessionRecord
    lock: Any
    wake: Any
    closed: Any
    t_open: float
    receiver: concurrency.Task | None = None
    close_info: CloseInfo | None = None
    turn_detection: str | None = "unset"
    garbage: int = 0
    internal_errors: int = 0
    playing: ResponseTracker | None = None  # the last in-band answer (barge-in truncates it)
    truncated: set[str] = field(default_factory=set)
    event_seq: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    client_stop: bool = False
    first_tracker: ResponseTracker | None = None


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
        clock: AudioClockStats | None = None,
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
        self.clock = clock or AUDIO_CLOCK
        self.token_provider = token_provider
        self.rng = rng or random.Random()
        self.dialect: Dialect = get_dialect(str(target.dialect))
        self.thresholds = config.thresholds()
        self._stopping = False
        self._stop_event = concurrency.new_event()
        self._conn: _Connection | None = None
        # the key and every secret-like gateway header (api-key, Authorization...) or URL parameter:
        # the transport redacts them from handshake errors (a gateway may echo the request)
        self._secrets: tuple[str, ...] = tuple(
            secrets_of(target.url_override or target.base_url, target.extra_headers, (target.api_key,))
        )
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
            OPEN_SESSIONS[0] += 1
            ending = "error"
            try:
                ending, pending = self._converse(conn, pending, turns, deadline)
            except Exception:
                log.exception("session failed")
                conn.internal_errors += 1
            finally:
                OPEN_SESSIONS[0] -= 1
                try:
                    self._finish_connection(conn, ending)
                except Exception:
                    log.exception("session close failed")
            if ending != "lifetime":
                return

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
        modalities = list(cfg.output_modalities)
        return ResponseTracker(
            turn_index=index,
            trigger=turn.trigger if turn else "",
            fixture=(turn.fixture or "") if turn and turn.trigger != "text" else "",
            out_of_band=bool(turn and turn.out_of_band),
            wants_audio=cfg.wants_audio,
            modalities=modalities,
            audio_format=cfg.audio_format,
            trace_events=cfg.trace_events,
            jitter_buffer_ms=cfg.jitter_buffer_ms,
            context=self._context(),
        )

    def _unsolicited_tracker(self, conn: _Connection) -> ResponseTracker:
        """A response the server started on its own (its VAD heard a second turn in one utterance...)."""
        tracker = self._new_tracker(self._current_index, None)
        tracker.trigger = "server_vad" if conn.turn_detection == "server_vad" else "server"
        return tracker

    def _context(self) -> dict[str, Any]:
        ctx: dict[str, Any] = {}
        if self.context is not None:
            try:
                ctx = dict(self.context() or {})
            except Exception:
                ctx = {}
        ctx.setdefault("concurrency", OPEN_SESSIONS[0])
        return ctx

    # -- connect -------------------------------------------------------------------------------
    def _session_record(self) -> SessionRecord:
        t = self.target
        ctx = self._context()
        return SessionRecord(
            run_id=self.run_id,
            worker_id=self.worker_id,
            user_id=self.user_id,
            target=t.label or t.provider,
            provider=t.provider,
            dialect=str(t.dialect),
            deployment=t.deployment,
            url=t.redacted_url(),
            scenario=self.scenario.name,
            concurrency=ctx.get("concurrency"),
            step=ctx.get("step"),
        )

    def _open(self, first: tuple[int, Turn]) -> _Connection | None:
        cfg = self.config
        srec = self._session_record()
        srec.t_start = time.time()
        headers: list[tuple[str, str]] | None = None
        hs: Handshake
        transport = WebSocketTransport(
            max_message_bytes=cfg.max_message_bytes,
            permessage_deflate=cfg.permessage_deflate,
            secrets=self._secrets,
        )
        try:
            token = self._token()
            if token:
                self._secrets = (*self._secrets, token)
                transport._secrets = self._secrets
            headers = self.target.headers(token)
            url = self.target.url()
        except Exception as exc:
            hs = Handshake(error=f"{type(exc).__name__}: {exc}"[:300], t_start=srec.t_start, t_end=time.time(), ms=0.0)
        if headers is not None:
            self._note("out", "connect", {"url": srec.url})
            hs = transport.connect(url, headers, cfg.connect_timeout_s)
        srec.handshake_ms = hs.ms
        srec.handshake_status = hs.status
        srec.handshake_error = hs.error
        srec.retry_after = hs.retry_after
        srec.request_id = hs.request_id
        srec.region = hs.headers.get("x-ms-region")
        self._note("in", "handshake", {"status": hs.status, "ms": hs.ms, "error": hs.error, "headers": hs.headers})
        if not hs.ok:
            self._handshake_failed(srec, hs, first)
            return None
        self.sessions_opened += 1
        srec.t_open = hs.t_end
        conn = _Connection(
            transport=transport,
            router=None,  # type: ignore[arg-type]
            record=srec,
            lock=concurrency.new_lock(),
            wake=concurrency.new_event(),
            closed=concurrency.new_event(),
            t_open=time.time(),
        )
        conn.router = EventRouter(
            self.dialect,
            on_finished=lambda tr: self._emit(conn, tr),
            new_tracker=lambda: self._unsolicited_tracker(conn),
            response_deadline_s=cfg.response_deadline_s,
            response_idle_s=cfg.response_idle_s,
            on_speech_started=lambda ev, t: self._on_speech_started(conn, ev, t),
            on_rate_limits=lambda entries, t, rid: self._on_rate_limits(conn, entries, t, rid),
            on_session=lambda event, t: conn.wake.set(),
        )
        conn.router.on_awaiting_output = transport.prioritise
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
        conn.receiver = concurrency.spawn(lambda: self._receive(conn), name=f"rtload-recv-{self.user_id}")
        self._send_session_update(conn, turn, tracker)
        self._wait(conn, lambda: conn.router.session_updated or tracker.finished, cfg.setup_timeout_s)
        conn.first_tracker = tracker
        return conn

    def _token(self) -> str | None:
        if self.target.auth != "entra":
            return None
        provider = self.token_provider
        if provider is None:
            from loadtest.protocol.auth import entra_provider

            provider = self.token_provider = entra_provider()
        return provider.token()

    def _handshake_failed(self, srec: SessionRecord, hs: Handshake, first: tuple[int, Turn]) -> None:
        """A refused upgrade: the session row and a response row for the turn that could not start."""
        srec.t_end = time.time()
        srec.duration_s = srec.t_end - (srec.t_start or srec.t_end)
        srec.ended_by = "handshake_failed"
        index, turn = first
        tracker = self._new_tracker(index, turn)
        tracker.finished = True
        tracker.ended = ENDED_HANDSHAKE
        tracker.t_trigger = srec.t_start
        tracker.t_end = srec.t_end
        facts = tracker.facts()
        facts.handshake_status = hs.status
        outcome, reason = classify(facts, self.thresholds)
        rec = self._record(tracker, outcome, reason, srec)
        rec.handshake_status = hs.status
        rec.error_message = hs.error
        rec.request_id = hs.request_id
        self._safe(self.sink.response, rec)
        srec.responses = 1
        self.responses += 1
        self.last_session = srec
        self._note("note", "outcome", {"turn_index": index, "outcome": outcome, "reason": reason})
        self._safe(self.sink.session, srec)

    # -- sending -------------------------------------------------------------------------------
    def _send(self, conn: _Connection, event: dict[str, Any], tracker: ResponseTracker | None = None) -> bool:
        event_id = f"evt_rtl{next(conn.event_seq)}"
        event = {"event_id": event_id, **event}
        conn.router.sent(event_id, tracker)
        t = time.time()
        if tracker is not None:
            tracker.trace.add(t, event, "out")
        if self.observer is not None:
            self._note("out", event.get("type", ""), {"event_id": event_id})
        return conn.transport.send(orjson.dumps(event))

    def _send_session_update(self, conn: _Connection, turn: Turn, tracker: ResponseTracker | None) -> None:
        cfg = self.config
        turn_detection = "server_vad" if turn.trigger == "server_vad" else None
        update = self.dialect.session_update(
            output_modalities=cfg.output_modalities,
            instructions=cfg.instructions,
            voice=cfg.voice,
            audio_format=cfg.audio_format,
            turn_detection=turn_detection,
            transcription_model=cfg.transcription_model,
            max_output_tokens=cfg.max_output_tokens,
        )
        conn.turn_detection = turn_detection
        self._send(conn, update, tracker)

    def _stream(self, conn: _Connection, frames_list: list[Any], tracker: ResponseTracker) -> bool:
        """Send append frames on the audio clock (absolute deadlines) or as fast as allowed."""
        realtime = self.config.pacing == "realtime"
        if realtime and concurrency.gevent_active() and PACER.enabled:
            return self._stream_paced(conn, frames_list, tracker)
        send = conn.transport.send
        router = conn.router
        clock = self.clock
        trace = tracker.trace
        append_type = self.dialect.client_audio_append
        t0 = time.monotonic()
        sent_ms = 0.0
        n = 0
        for frames in frames_list:
            for i, message in enumerate(frames.messages):
                if self._stopping or conn.closed.is_set():
                    return False
                if realtime:
                    due = t0 + sent_ms / 1000.0
                    delay = due - time.monotonic()
                    if delay > 0:
                        concurrency.sleep(delay)
                    clock.record(max(0.0, (time.monotonic() - due) * 1000.0))
                elif n % 20 == 19:
                    concurrency.sleep(0)  # let the other greenlets breathe
                if not send(message):
                    return False
                now = time.time()
                router.last_append_t = now
                trace.add_payload(now, append_type, len(message), None, "out")
                sent_ms += frames.frame_duration_ms(i)
                n += 1
        return True

    def _stream_paced(self, conn: _Connection, frames_list: list[Any], tracker: ResponseTracker) -> bool:
        """The same frames and deadlines as :meth:`_stream`, sent by the process's shared clock."""
        messages: list[bytes] = []
        durations: list[float] = []
        for frames in frames_list:
            messages.extend(frames.messages)
            durations.extend(frames.durations_ms)
        if not messages:
            return True
        if self._stopping or conn.closed.is_set():
            return False
        router = conn.router
        add_payload = tracker.trace.add_payload
        append_type = self.dialect.client_audio_append
        closed = conn.closed

        def alive() -> bool:
            return not self._stopping and not closed.is_set()

        def on_sent(t: float, nbytes: int) -> None:
            router.last_append_t = t
            add_payload(t, append_type, nbytes, None, "out")

        stream = PacedStream(
            messages,
            durations,
            time.monotonic(),
            conn.transport.send_paced,
            alive,
            on_sent,
            self.clock.record,
            concurrency.new_event(),
        )
        return PACER.run_stream(stream)

    def _frames(self, turn: Turn, trailing_silence: bool) -> list[Any]:
        from loadtest.audio.frames import frames_for, silence_appends

        cfg = self.config
        out = [frames_for(turn.fixture or "", cfg.frame_ms, cfg.audio_format)]
        if trailing_silence and cfg.trailing_silence_ms > 0:
            out.append(silence_appends(float(cfg.trailing_silence_ms), cfg.frame_ms, cfg.audio_format))
        return out

    # -- the conversation ----------------------------------------------------------------------
    def _converse(
        self, conn: _Connection, first: tuple[int, Turn], turns: Iterator[tuple[int, Turn]], deadline: float | None
    ) -> tuple[str, tuple[int, Turn] | None]:
        """Run turns on this connection. Returns (how it ended, the turn to run after a reconnect)."""
        cfg = self.config
        current: tuple[int, Turn] | None = first
        tracker: ResponseTracker | None = conn.first_tracker
        upcoming: tuple[int, Turn] | None = None
        while current is not None:
            if tracker is not None and tracker.finished and tracker.ended != "done":
                # the session was rejected or failed before the turn could start (already recorded)
                code = tracker.error_event_code or tracker.error_event_type
                if tracker.ended == "error" and code not in SESSION_FATAL and conn.transport.open:
                    return "error", None  # e.g. session.update refused: the client gives up
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
                        _drop(conn.router, tracker)
                return "client_closed", None
            index, turn = current
            self._current_index = index
            if tracker is None:
                tracker = self._new_tracker(index, turn)
                with conn.lock:
                    conn.router.expect(tracker)
            self._start_turn(conn, turn, tracker)
            upcoming = next(turns, None)
            if upcoming is not None and upcoming[1].barge_in and not turn.out_of_band:
                self._wait_barge_in_point(conn, tracker)
                self._barge_in(conn, upcoming[1])
            else:
                self._wait(conn, lambda tr=tracker: tr.finished, cfg.response_deadline_s + 5.0)
                self._cancel_if_hung(conn, tracker)
                if upcoming is not None and not upcoming[1].barge_in:
                    self._think()
            current, tracker = upcoming, None
            aged = cfg.lifetime_s is not None and time.time() - conn.t_open >= cfg.lifetime_s
            if current is not None and aged and not conn.closed.is_set():
                self._wait(conn, lambda: not conn.router.open, cfg.response_deadline_s + 5.0)
                return "lifetime", current
        # the scenario is over: let open responses (out-of-band, barged answers) finish
        self._wait(conn, lambda: not conn.router.open, cfg.response_deadline_s + 5.0)
        return ("client_closed" if not conn.closed.is_set() else self._ending(conn)), None

    def _start_turn(self, conn: _Connection, turn: Turn, tracker: ResponseTracker) -> None:
        cfg = self.config
        dialect = self.dialect
        if turn.trigger != "text":
            needed = "server_vad" if turn.trigger == "server_vad" else None
            if conn.turn_detection != needed:
                self._send_session_update(conn, turn, None)
        tracker.t_armed = time.time()
        if turn.trigger == "text":
            metadata = {OOB_TAG: tracker.tag} if turn.out_of_band else None
            if turn.out_of_band:
                create = dialect.response_create(
                    output_modalities=cfg.output_modalities,
                    out_of_band=True,
                    instructions=turn.instructions,
                    metadata=metadata,
                    input_items=[dialect.user_text_message(turn.text or "")],
                )
            else:
                self._send(conn, dialect.user_text_item(turn.text or ""), tracker)
                create = dialect.response_create(
                    output_modalities=cfg.output_modalities, instructions=turn.instructions
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
                output_modalities=cfg.output_modalities,
                out_of_band=turn.out_of_band,
                instructions=turn.instructions,
                metadata=metadata,
            )
            tracker.t_trigger = time.time()
            self._send(conn, create, tracker)
            return
        # server VAD: the server ends the turn; t_trigger is the last append before its commit
        self._stream(conn, self._frames(turn, trailing_silence=True), tracker)
        tracker.t_armed = time.time()

    def _cancel_if_hung(self, conn: _Connection, tracker: ResponseTracker) -> None:
        """A response that timed out may still hold the conversation: cancel it so the next turn can
        start (its late ``response.done`` is ignored; the outcome is already recorded)."""
        if tracker.ended == "timeout" and tracker.response_id and not tracker.out_of_band and transport_open(conn):
            self._send(conn, {"type": self.dialect.client_response_cancel, "response_id": tracker.response_id}, None)

    def _think(self) -> None:
        lo, hi = self.config.think_time_s
        if hi > 0:
            concurrency.wait(self._stop_event, self.rng.uniform(lo, hi))

    # -- barge-in ------------------------------------------------------------------------------
    def _wait_barge_in_point(self, conn: _Connection, tracker: ResponseTracker) -> None:
        """Wait until the answer has played ``barge_in_after_ms`` (or ended)."""
        conn.playing = tracker
        after = self.config.barge_in_after_ms
        limit = time.time() + self.config.response_deadline_s + 5.0
        while not (tracker.finished and tracker.t_first_audio is None):
            if self._stopping or conn.closed.is_set() or time.time() > limit:
                return
            if tracker.t_first_audio is not None and tracker.played_ms(time.time()) >= after:
                return
            # finished: the remaining playback is still 'playing' on the listener's clock
            if (
                tracker.finished
                and tracker.analyzer is not None
                and tracker.played_ms(time.time()) >= min(after, float(tracker.analyzer.audio_ms))
            ):
                return
            concurrency.wait(conn.wake, 0.02)
            conn.wake.clear()
            with conn.lock:
                conn.router.expire(time.time())

    def _barge_in(self, conn: _Connection, turn: Turn) -> None:
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

    def _on_speech_started(self, conn: _Connection, event: dict[str, Any], t: float) -> None:
        playing = conn.playing
        if playing is not None:
            self._truncate(conn, playing, t)

    def _truncate(self, conn: _Connection, tracker: ResponseTracker, t: float) -> None:
        item_id = tracker.item_id
        if not item_id or item_id in conn.truncated or tracker.analyzer is None:
            return
        played = tracker.played_ms(t)
        if played >= float(tracker.analyzer.audio_ms) and tracker.finished:
            return  # the whole answer was heard: nothing to truncate
        conn.truncated.add(item_id)
        self._send(conn, self.dialect.truncate(item_id, int(played)), None)
        tracker.trace.add(t, {"type": "client.truncate", "item_id": item_id, "audio_end_ms": int(played)}, "note")

    # -- receiving -----------------------------------------------------------------------------
    def _receive(self, conn: _Connection) -> None:
        router = conn.router
        lock = conn.lock
        loads = orjson.loads
        observer = self.observer

        def on_message(data: bytes, t: float) -> None:
            try:
                event = loads(data)
            except orjson.JSONDecodeError:
                event = None
            if type(event) is not dict:
                conn.garbage += 1
                note = {"type": "garbage", "bytes": len(data), "head": bytes(data[:60]).decode("utf-8", "replace")}
                with lock:
                    for tracker in router.open:
                        tracker.trace.add(t, note, "note")
                if observer is not None:
                    self._note("in", "garbage", {"bytes": len(data)}, t)
                return
            if observer is not None:
                self._observe(event, t)
            try:
                with lock:
                    router.feed(event, t)
            except Exception:
                conn.internal_errors += 1
                if conn.internal_errors == 1:
                    log.exception("event handling failed for %s", event.get("type"))

        info: CloseInfo
        try:
            info = conn.transport.receive_loop(on_message)
        except BaseException as exc:  # killed (GreenletExit) or a bug: the connection is over either way
            info = CloseInfo(code=1006, reason="", by_server=False, t=time.time())
            if not isinstance(exc, Exception):
                conn.close_info = info
                conn.closed.set()
                conn.wake.set()
                raise
            log.exception("receive loop failed")
        conn.close_info = info
        reason = info.protocol_error or info.reason
        self._note("in", "close", {"code": info.code, "reason": reason, "by_server": info.by_server}, info.t)
        try:
            with lock:
                if info.by_server and not conn.client_stop:
                    router.close(info.code, reason, info.t or time.time())
                else:
                    router.stop(info.t or time.time())
        except Exception:
            log.exception("closing trackers failed")
        conn.closed.set()
        conn.wake.set()

    def _wait(self, conn: _Connection, done: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``done()`` (checked after every finished response), enforcing response deadlines."""
        limit = time.time() + timeout
        while True:
            if done():
                return True
            now = time.time()
            with conn.lock:
                next_deadline = conn.router.expire(now)
            if done():
                return True
            if conn.closed.is_set() or self._stopping or now >= limit:
                return False
            wait_until = limit if next_deadline is None else min(limit, next_deadline)
            concurrency.wait(conn.wake, max(0.005, min(1.0, wait_until - now)))
            conn.wake.clear()

    # -- records -------------------------------------------------------------------------------
    def _record(self, tr: ResponseTracker, outcome: str, reason: str, srec: SessionRecord) -> ResponseRecord:
        t = self.target
        ctx = tr.context
        a = tr.analyzer
        t0 = tr.t_trigger

        def since(x: float | None) -> float | None:
            return round((x - t0) * 1000.0, 2) if x is not None and t0 is not None else None

        usage = tr.usage or {}
        rec = ResponseRecord(
            run_id=self.run_id,
            worker_id=self.worker_id,
            user_id=self.user_id,
            session_id=srec.session_id,
            response_id=tr.response_id,
            item_id=tr.item_id,
            turn_index=tr.turn_index,
            target=t.label or t.provider,
            provider=t.provider,
            dialect=str(t.dialect),
            deployment=t.deployment,
            scenario=self.scenario.name,
            fixture=tr.fixture,
            trigger=tr.trigger,
            modalities=list(tr.modalities),
            audio_format=tr.audio_format,
            out_of_band=tr.out_of_band,
            step=ctx.get("step"),
            users=ctx.get("users"),
            concurrency=ctx.get("concurrency"),
            t_trigger=t0,
            t_created=tr.t_created,
            t_first_audio=tr.t_first_audio,
            t_first_text=tr.t_first_text,
            t_audio_done=tr.t_audio_done,
            t_done=tr.t_done,
            created_ms=since(tr.t_created),
            ttfa_ms=since(tr.t_first_audio),
            ttft_ms=since(tr.t_first_text),
            done_ms=since(tr.t_done),
            outcome=outcome,
            reason=reason,
            status=tr.status,
            status_reason=tr.status_reason,
            error_type=tr.error_type or tr.error_event_type,
            error_code=tr.error_code or tr.error_event_code,
            error_message=self._redact(tr.error_message or tr.error_event_message),
            error_event_id=tr.error_event_id,
            done_event_id=tr.done_event_id,
            close_code=tr.close_code,
            request_id=srec.request_id,
            audio_bytes=int(a.audio_bytes) if a is not None else 0,
            audio_ms=round(float(a.audio_ms), 2) if a is not None else 0.0,
            audio_deltas=tr.audio_deltas,
            max_delta_gap_ms=round(float(a.max_gap_ms), 2) if a is not None else 0.0,
            underrun_ms=round(float(a.underrun_ms), 2) if a is not None else 0.0,
            longest_underrun_ms=round(float(a.longest_underrun_ms), 2) if a is not None else 0.0,
            longest_silence_ms=round(float(a.longest_silence_ms), 2) if a is not None and a.deltas else 0.0,
            silence_ms=round(float(a.silence_ms), 2) if a is not None and a.deltas else 0.0,
            content_types=list(tr.content_types),
            transcript_chars=len(tr.transcript_text),
            text_chars=tr.text_chars,
            input_tokens=_int(usage.get("input_tokens")),
            output_tokens=_int(usage.get("output_tokens")),
            total_tokens=_int(usage.get("total_tokens")),
        )
        return rec

    def _redact(self, text: str | None) -> str | None:
        """A server's text with this session's secrets blanked (a gateway or proxy may echo them)."""
        return redact_text(text, self._secrets) if text and self._secrets else text

    def _redact_events(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        secrets = self._secrets
        if not secrets:
            return events
        raw = orjson.dumps(events)
        if not any(s.encode() in raw for s in secrets):
            return events
        return orjson.loads(redact_text(raw.decode(), secrets))

    def _emit(self, conn: _Connection, tracker: ResponseTracker) -> None:
        """A response finished (called under the connection lock, from either side)."""
        srec = conn.record
        router = conn.router
        if srec.session_id is None:
            srec.session_id = router.session_id
        outcome, reason = classify(tracker.facts(), self.thresholds)
        rec = self._record(tracker, outcome, reason, srec)
        rec.session_id = router.session_id
        rec.rl_tokens_remaining = router.rl_tokens_remaining
        rec.rl_requests_remaining = router.rl_requests_remaining
        if outcome != COMPLETED and self.config.keep_traces and self.config.trace_events > 0:
            events = self._redact_events(tracker.trace.events())
            events.append({"t": tracker.t_end, "dir": "note", "type": "outcome", "outcome": outcome, "reason": reason})
            name = f"{router.session_id or 'nosession'}_{tracker.response_id or f'turn{tracker.turn_index}'}"
            rec.trace_file = self._safe(self.sink.trace, _safe_name(name), events)
        srec.responses += 1
        self.responses += 1
        self._safe(self.sink.response, rec)
        if self.observer is not None:
            self._note(
                "note",
                "outcome",
                {
                    "response_id": tracker.response_id,
                    "turn_index": tracker.turn_index,
                    "outcome": outcome,
                    "reason": reason,
                },
                tracker.t_end,
            )
        conn.wake.set()

    def _on_rate_limits(self, conn: _Connection, entries: list[dict[str, Any]], t: float, rid: str | None) -> None:
        for entry in entries:
            rec = RateLimitRecord(
                run_id=self.run_id,
                worker_id=self.worker_id,
                session_id=conn.router.session_id,
                response_id=rid,
                t=t,
                name=str(entry.get("name", "")),
                limit=_int(entry.get("limit")),
                remaining=_int(entry.get("remaining")),
                reset_seconds=_float(entry.get("reset_seconds")),
            )
            self._safe(self.sink.rate_limit, rec)

    def _ending(self, conn: _Connection) -> str:
        info = conn.close_info
        if info is None:
            return "client_closed"
        if conn.client_stop or not info.by_server:
            return "client_closed"
        if info.protocol_error:
            return "error"
        reason = info.reason or ""
        expired = any(
            (e.get("code") == "session_expired" or e.get("type") == "session_expired")
            for e in conn.router.session_errors
        )
        if info.code == 1001 or expired or "session_expired" in reason or "maximum duration" in reason:
            return "session_expired"
        if info.code == 1006:
            return "dropped"
        return "server_closed"

    def _finish_connection(self, conn: _Connection, ending: str) -> None:
        cfg = self.config
        transport = conn.transport
        if not conn.closed.is_set():
            conn.client_stop = True
            transport.close(1000, "lifetime" if ending == "lifetime" else "")
            if conn.receiver is not None and not conn.receiver.join(cfg.close_timeout_s):
                transport.abort()
        transport.abort()
        if conn.receiver is not None:
            conn.receiver.kill(timeout=cfg.close_timeout_s)
            conn.receiver.join(cfg.close_timeout_s)
        with conn.lock:
            conn.router.stop(time.time())
        info = conn.close_info
        if ending in ("client_closed", "error") and info is not None and info.by_server and not conn.client_stop:
            ending = self._ending(conn)
        self.garbage_messages += conn.garbage
        self.unknown_events += conn.router.unknown_events
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
        _release(conn)

    # -- observer ------------------------------------------------------------------------------
    def _note(self, direction: str, event_type: str, fields: dict[str, Any], t: float | None = None) -> None:
        if self.observer is None:
            return
        row = {"t": t or time.time(), "dir": direction, "type": event_type}
        row.update({k: v for k, v in fields.items() if v is not None})
        try:
            self.observer(row)
        except Exception:
            log.exception("observer failed")

    def _observe(self, event: dict[str, Any], t: float) -> None:
        fields: dict[str, Any] = {k: event[k] for k in _TIMELINE_KEYS if k in event}
        response = event.get("response")
        if isinstance(response, dict):
            fields["response_id"] = response.get("id")
            if response.get("status") is not None:
                fields["status"] = response.get("status")
            details = response.get("status_details")
            if isinstance(details, dict):
                if details.get("reason"):
                    fields["status_reason"] = details.get("reason")
                err = details.get("error")
                if isinstance(err, dict):
                    fields["error_type"], fields["error_code"] = err.get("type"), err.get("code")
        err = event.get("error")
        if isinstance(err, dict):
            fields["error_type"], fields["error_code"] = err.get("type"), err.get("code")
            fields["error_message"] = err.get("message")
        session = event.get("session")
        if isinstance(session, dict) and session.get("id"):
            fields["session_id"] = session.get("id")
        delta = event.get("delta")
        if isinstance(delta, str):
            fields["delta_chars"] = len(delta)
        self._note("in", str(event.get("type")), fields, t)

    @staticmethod
    def _safe(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception:
            log.exception("record sink failed")
            return None

    _current_index = 0


def _release(conn: _Connection) -> None:
    """Break the reference cycles of a finished connection, so it is freed when the session lets go.

    Its router's dispatch table holds the router's own bound methods and its callbacks close over
    ``conn``; websockets' protocol holds its parser generator (and, after a dropped connection, an
    exception whose traceback holds the protocol). Left as cycles, every connection (its trackers,
    audio analysis and trace rings: ~20 KB a response) stays until a full collection of the cyclic
    collector, which the harness's thresholds make rare, so memory grew with every response over a
    soak (issue 22).
    """
    conn.router.release()
    conn.transport.release()


def _drop(router: EventRouter, tracker: ResponseTracker) -> None:
    tracker.finished = True
    for container in (router.open, router.pending):
        with contextlib.suppress(ValueError):
            container.remove(tracker)
    router.pending_oob.pop(tracker.tag, None)


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.time() >= deadline


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:120]


def transport_open(conn: _Connection) -> bool:
    return conn.transport.open and not conn.closed.is_set()
