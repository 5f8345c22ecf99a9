"""One audio clock per process: a single greenlet sends every paced session's due append frames.

With one gevent timer and two greenlet switches per frame per session, hundreds of sessions
spend most of the process's time in the event loop's timer and switch machinery rather than
in sending audio. The :class:`Pacer` keeps every paced stream of the process in one heap of
absolute deadlines and, on each wake-up, sends all frames that are due, oldest deadline first.
Per-session semantics are unchanged: each frame has its absolute deadline on its own stream's
clock (``t0 + audio sent so far``), its lag (send time minus deadline) is recorded per frame,
and a stream ends early when its session stops or its connection closes.

Sends never block the clock: :meth:`WebSocketTransport.send_paced` hands whatever the socket
cannot take right away to a helper of that connection. Used only under gevent (Locust); with
threads each session paces itself (see :mod:`loadtest.session.audio_send`), and so does every
session when ``RTLOAD_SHARED_CLOCK=0`` is set (for A/B comparisons of the two; read when the
process's runtime is made, :mod:`loadtest.session.runtime`).

Nothing happens at import: the clock's greenlet starts with the first stream, and only then does
the clock ask :func:`loadtest.session.concurrency.set_resume_hook` to let every resuming session
send what fell due (see :meth:`Pacer.catch_up`).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

from loadtest.session import concurrency

log = logging.getLogger("loadtest.session")


class PacedStream:
    """One session's run of append frames on its own audio clock."""

    __slots__ = (
        "alive",
        "cancelled",
        "done",
        "durations_ms",
        "index",
        "messages",
        "ok",
        "on_sent",
        "record_lag",
        "send",
        "sent_ms",
        "t0",
    )

    def __init__(
        self,
        messages: list[bytes],
        durations_ms: list[float],
        t0: float,
        send: Callable[[bytes], bool],
        alive: Callable[[], bool],
        on_sent: Callable[[float, int], None],
        record_lag: Callable[[float], None],
        done: Any,
    ) -> None:
        self.messages = messages
        self.durations_ms = durations_ms
        self.index = 0
        self.t0 = t0
        self.sent_ms = 0.0
        self.send = send  # non-blocking send of one message; False when the connection is gone
        self.alive = alive  # False once the session stops or the connection closed
        self.on_sent = on_sent  # (wall time, bytes) after each frame
        self.record_lag = record_lag  # lag ms of each frame
        self.done = done  # an Event set when the stream ended
        self.ok = True
        self.cancelled = False  # the session's greenlet went away while waiting

    @property
    def due(self) -> float:
        return self.t0 + self.sent_ms / 1000.0


class Pacer:
    """The process's shared audio clock (see the module docstring)."""

    def __init__(self, enabled: bool = True) -> None:
        self._heap: list[tuple[float, int, PacedStream]] = []
        self._seq = itertools.count()
        self._wake: Any = None
        self._greenlet: Any = None
        self._sleep_until = float("inf")
        self.ticks = 0
        self.enabled = enabled
        self.frames = 0

    def run_stream(self, stream: PacedStream) -> bool:
        """Queue ``stream`` on the clock and wait (this greenlet) until it ends; True when every
        frame went out."""
        import gevent
        from gevent.event import Event

        if not stream.messages:  # nothing to send: done at once (never queued on the clock)
            stream.done.set()
            return True
        if self._greenlet is None or self._greenlet.dead:
            self._wake = Event()
            self._greenlet = gevent.spawn(self._run)
            # when many sessions wake at once gevent runs them back to back without servicing
            # timers in between: each resuming session first sends what fell due meanwhile
            concurrency.set_resume_hook(self.catch_up)
        due = stream.due
        heapq.heappush(self._heap, (due, next(self._seq), stream))
        if due < self._sleep_until:
            self._wake.set()
        try:
            stream.done.wait()
        finally:
            if not stream.done.is_set():  # killed while waiting: the clock drops it at its deadline
                stream.cancelled = True
        self.catch_up()  # (this session resumes: see concurrency.set_resume_hook)
        return stream.ok

    def _run(self) -> None:
        heap = self._heap
        wake = self._wake
        monotonic = time.monotonic
        while True:
            if not heap:
                self._sleep_until = float("inf")
                wake.wait()
                wake.clear()
                continue
            delay = heap[0][0] - monotonic()
            if delay > 0:
                self._sleep_until = heap[0][0]
                concurrency.wait(wake, delay)  # (gevent's own timed wait leaves garbage at every tick)
                wake.clear()
                continue
            self._sleep_until = -1.0  # sending: a new stream never needs to wake us
            self.send_due()

    def catch_up(self) -> None:
        """Send what is due, if anything (cheap when nothing is: one clock read)."""
        heap = self._heap
        if heap and heap[0][0] <= time.monotonic():
            self.send_due()

    def next_due(self) -> float:
        """The earliest deadline on the clock (monotonic seconds; inf when no stream is queued)."""
        heap = self._heap
        return heap[0][0] if heap else float("inf")

    def send_due(self) -> None:
        """Send every frame whose deadline has passed, oldest deadline first. Never yields, so the
        process's shared receiver may call it between connections it serves (the clock then keeps
        its deadlines while the receiver works through a burst)."""
        heap = self._heap
        monotonic = time.monotonic
        pop, push = heapq.heappop, heapq.heappush
        seq = self._seq
        now = monotonic()
        if not heap or heap[0][0] > now:
            return
        self.ticks += 1
        offset = time.time() - now  # wall clock = monotonic + offset, for this batch
        while heap and heap[0][0] <= now:
            due, _, stream = pop(heap)
            if stream.cancelled:
                continue
            try:
                if not stream.alive():
                    self._end(stream, False)
                    continue
                i = stream.index
                message = stream.messages[i]
                now = monotonic()
                stream.record_lag((now - due) * 1000.0 if now > due else 0.0)
                if not stream.send(message):
                    self._end(stream, False)
                    continue
                stream.on_sent(now + offset, len(message))
                stream.sent_ms += stream.durations_ms[i]
            except Exception:  # one session's trouble must never stop the clock for all others
                log.exception("paced send failed")
                self._end(stream, False)
                continue
            self.frames += 1
            stream.index = i + 1
            if stream.index >= len(stream.messages):
                self._end(stream, True)
            else:
                push(heap, (stream.t0 + stream.sent_ms / 1000.0, next(seq), stream))

    @staticmethod
    def _end(stream: PacedStream, ok: bool) -> None:
        stream.ok = ok
        stream.done.set()
