"""One connection of a session: its transport, router and state, its receive path and its waits.

A session reconnects with a new :class:`Connection` at its lifetime. The receive path
(:meth:`Connection.receive`) runs in the connection's one receiver task: it parses each message
with orjson, feeds the router under the connection's lock (the sender takes it too), counts
garbage, and ends every open response when the connection closes. :meth:`Connection.wait` is
how the sender waits for a condition while enforcing the response deadlines.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from loadtest.records.schema import SessionRecord
from loadtest.session import concurrency
from loadtest.session.audio_send import AudioSender
from loadtest.session.input_transcript import InputTranscripts
from loadtest.session.link import CLOSE_ABNORMAL, CloseInfo, Transport
from loadtest.session.router import EventRouter
from loadtest.session.timeline import Timeline
from loadtest.session.tracker import ResponseTracker

log = logging.getLogger("loadtest.session")


@dataclass(slots=True)
class Connection:
    """One connection's state (see the module docstring)."""

    transport: Transport
    router: EventRouter
    audio: AudioSender
    record: SessionRecord
    lock: Any
    wake: Any
    closed: Any
    t_open: float
    inputs: InputTranscripts  # input transcription of its audio (rows may wait for it)
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

    def alive(self) -> bool:
        return self.transport.open and not self.closed.is_set()

    # -- receiving -----------------------------------------------------------------------------
    def release(self) -> None:
        """The connection is over and recorded: its router and transport let go of the cycles that
        would keep its whole graph alive until a full garbage collection (issue 22)."""
        self.router.release()
        self.transport.release()
        self.inputs.release()

    def receive(self, timeline: Timeline) -> None:
        """The receiver task: every message to the router until the connection ends."""
        conn = self
        router = conn.router
        lock = conn.lock
        loads = orjson.loads
        observing = timeline.on

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
                if observing:
                    timeline.note("in", "garbage", {"bytes": len(data)}, t)
                return
            if observing:
                timeline.received(event, t)
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
            info = CloseInfo(code=CLOSE_ABNORMAL, reason="", by_server=False, t=time.time())
            if not isinstance(exc, Exception):
                conn.close_info = info
                conn.closed.set()
                conn.wake.set()
                raise
            log.exception("receive loop failed")
        conn.close_info = info
        reason = info.protocol_error or info.reason
        timeline.note("in", "close", {"code": info.code, "reason": reason, "by_server": info.by_server}, info.t)
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

    # -- waiting -------------------------------------------------------------------------------
    def transcripts_settled(self) -> bool:
        """No row waits for an input transcript any more (a wait condition)."""
        with self.lock:
            return self.inputs.settled(time.time())

    def settled(self) -> bool:
        """No response open and no row waiting for an input transcript (a wait condition)."""
        return not self.router.open and self.transcripts_settled()

    def wait(self, done: Callable[[], bool], timeout: float, stopping: Callable[[], bool]) -> bool:
        """Wait until ``done()`` (checked after every finished response), enforcing response deadlines."""
        limit = time.time() + timeout
        while True:
            if done():
                return True
            now = time.time()
            with self.lock:
                next_deadline = self.router.expire(now)
                held = self.inputs.expire(now)  # rows whose input transcript's wait is over
                if held is not None:
                    next_deadline = held if next_deadline is None else min(next_deadline, held)
            if done():
                return True
            if self.closed.is_set() or stopping() or now >= limit:
                return False
            wait_until = limit if next_deadline is None else min(limit, next_deadline)
            concurrency.wait(self.wake, max(0.005, min(1.0, wait_until - now)))
            self.wake.clear()

    def wait_barge_in_point(
        self, tracker: ResponseTracker, after_ms: float, timeout: float, stopping: Callable[[], bool]
    ) -> None:
        """Wait until the answer has played ``after_ms`` (or ended)."""
        self.playing = tracker
        limit = time.time() + timeout
        while not (tracker.finished and tracker.t_first_audio is None):
            if stopping() or self.closed.is_set() or time.time() > limit:
                return
            if tracker.t_first_audio is not None and tracker.played_ms(time.time()) >= after_ms:
                return
            # finished: the remaining playback is still 'playing' on the listener's clock
            if (
                tracker.finished
                and tracker.analyzer is not None
                and tracker.played_ms(time.time()) >= min(after_ms, float(tracker.analyzer.audio_ms))
            ):
                return
            concurrency.wait(self.wake, 0.02)
            self.wake.clear()
            with self.lock:
                self.router.expire(time.time())
