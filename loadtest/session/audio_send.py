"""The audio send loop: a turn's append frames out on the audio clock, or as fast as allowed.

Realtime pacing gives each frame an absolute deadline on its stream's own clock (``t0 + audio
sent so far``) and records how late it went out. Under gevent with the shared clock on, the
process's :class:`~loadtest.session.pacer.Pacer` sends the frames of every session (one timer
for all); otherwise this loop sleeps to each deadline itself. Fast pacing sends back to back,
yielding every 20 frames. Every frame stamps the router's last append time and the response's
trace. A stream ends early when ``alive()`` turns False (the session stops, the connection
closes) or a send fails; the loop says whether every frame went out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from loadtest.session import concurrency
from loadtest.session.lagstats import LagStats
from loadtest.session.link import Transport
from loadtest.session.pacer import PacedStream, Pacer
from loadtest.session.router import EventRouter
from loadtest.session.tracker import ResponseTracker


class AudioSender:
    """Sends one connection's turns' frames (see the module docstring)."""

    def __init__(
        self,
        transport: Transport,
        router: EventRouter,
        append_type: str,
        alive: Callable[[], bool],
        frame_lag: LagStats,
        pacer: Pacer | None,
    ) -> None:
        self.transport = transport
        self.router = router
        self.append_type = append_type
        self.alive = alive
        self.frame_lag = frame_lag
        self.pacer = pacer

    def send(self, frames_list: list[Any], tracker: ResponseTracker, realtime: bool) -> bool:
        """Send every frame of ``frames_list`` (a turn's fixture, then its trailing silence)."""
        pacer = self.pacer
        if realtime and pacer is not None and pacer.enabled and concurrency.gevent_active():
            return self._on_shared_clock(pacer, frames_list, tracker)
        send = self.transport.send
        router = self.router
        alive = self.alive
        lag = self.frame_lag
        trace = tracker.trace
        append_type = self.append_type
        t0 = time.monotonic()
        sent_ms = 0.0
        n = 0
        for frames in frames_list:
            for i, message in enumerate(frames.messages):
                if not alive():
                    return False
                if realtime:
                    due = t0 + sent_ms / 1000.0
                    delay = due - time.monotonic()
                    if delay > 0:
                        concurrency.sleep(delay)
                    lag.record(max(0.0, (time.monotonic() - due) * 1000.0))
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

    def _on_shared_clock(self, pacer: Pacer, frames_list: list[Any], tracker: ResponseTracker) -> bool:
        """The same frames and deadlines, sent by the process's shared clock."""
        messages: list[bytes] = []
        durations: list[float] = []
        for frames in frames_list:
            messages.extend(frames.messages)
            durations.extend(frames.durations_ms)
        if not messages:
            return True
        if not self.alive():
            return False
        router = self.router
        add_payload = tracker.trace.add_payload
        append_type = self.append_type

        def on_sent(t: float, nbytes: int) -> None:
            router.last_append_t = t
            add_payload(t, append_type, nbytes, None, "out")

        stream = PacedStream(
            messages,
            durations,
            time.monotonic(),
            self.transport.send_paced,
            self.alive,
            on_sent,
            self.frame_lag.record,
            concurrency.new_event(),
        )
        return pacer.run_stream(stream)
