"""The harness's own health: scheduling lag of the audio clock, CPU, memory (``health.jsonl`` rows).

A load generator that is itself overloaded sends audio late and measures latency wrong, so each
Locust process samples itself:

- :class:`ClockProbe` wakes on a fixed real-time grid (the audio frame cadence) and records how
  late each wake-up is: the scheduling lag every paced audio frame suffers in this process.
  ``clock_lag_p99_ms`` is the p99 of those lags over the sample window.
- ``frames_late_pct``: the share of audio frames sent later than ``LATE_MS`` after their
  real-time slot, from the session client's audio clock (``frame_source``, e.g.
  ``SessionRuntime.figures.frame_lag.take``); when no frame went out in the window (text-only
  scenarios, idle), the probe's own wake-ups stand in for frames (in a process that runs
  sessions, only those due after its first session began: see :class:`ClockProbe`). When frames went out,
  ``clock_lag_p99_ms`` is their p99 lag (the probe's 50 wake-ups a second would make its p99 a
  per-second maximum); otherwise the probe's.
- ``recv_lag_p99_ms``: the p99 of how long the newest bytes of each read had waited in the socket
  (``receive_source``, ``SessionRuntime.figures.receive_lag.take``, from the kernel's arrival
  stamps, ``ws://`` and ``wss://`` alike); None when no read had a stamp (systems without ``SO_TIMESTAMP``).
- CPU percent of this process (100 = one core) and resident memory from ``psutil``.
- Once a minute it also hands the C allocator's free memory back to the system
  (:func:`loadtest.locust.heap.release_free_memory`), so ``rss_mb`` measures what the process keeps.

Runs as a greenlet under Locust (gevent) and as a thread elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import psutil

from loadtest.locust.heap import release_free_memory, trim_every_s

LATE_MS = 20.0  # a frame sent more than this after its slot is late (a fifth of a 100 ms frame)


class ClockProbe:
    """Measures the lateness of wake-ups on a fixed real-time grid.

    ``gated``: count only the wake-ups due after :meth:`sessions_started` (and since the last
    :meth:`idle`). Before a process's first session the loop delays nobody's audio: the work of
    ``test_start`` (options, files, run.json) may hold it for tens of milliseconds, and counted,
    that pause alone would make the summary say the load generator was the bottleneck.
    """

    def __init__(self, period_s: float = 0.02, gated: bool = False) -> None:
        self.period_s = period_s
        self._lags: list[float] = []
        self._gated = gated
        self._since: float | None = None if gated else float("-inf")  # slots due from here count
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sessions_started(self) -> None:
        """A session is about to run here: wake-ups due from now on count (idempotent)."""
        if self._since is None:
            self._since = time.monotonic()

    def idle(self) -> None:
        """No session runs until the next :meth:`sessions_started` (a gated probe only)."""
        if self._gated:
            self._since = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="rtload-clock-probe", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        next_at = time.monotonic() + self.period_s
        while not self._stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = time.monotonic()
            since = self._since
            if since is not None and next_at >= since:
                self._lags.append((now - next_at) * 1000.0)
            next_at += self.period_s
            if next_at < now:  # fell behind by more than a period: re-anchor (the lag is recorded)
                next_at = now + self.period_s

    def take(self) -> tuple[float | None, float | None]:
        """(p99 lag ms, % of wake-ups later than LATE_MS) since the last call; (None, None) when
        no wake-up counted (a gated probe before its first session)."""
        lags, self._lags = self._lags, []
        if not lags:
            return None, None
        arr = np.asarray(lags)
        return float(np.percentile(arr, 99)), float(100.0 * np.count_nonzero(arr > LATE_MS) / arr.size)


class HealthSampler:
    """Emits one health row per interval through ``emit``."""

    def __init__(
        self,
        worker_id: str,
        emit: Callable[[dict[str, Any]], None],
        users: Callable[[], int],
        interval_s: float = 1.0,
        frame_source: Callable[[], dict[str, float]] | None = None,
        receive_source: Callable[[], dict[str, float]] | None = None,
        gated: bool = False,
    ) -> None:
        self.worker_id = worker_id
        self.receive_source = receive_source
        self.emit = emit
        self.users = users
        self.interval_s = interval_s
        self.frame_source = frame_source
        self.probe = ClockProbe(gated=gated)  # gated: counts from the process's first session
        self.trim_every_s = trim_every_s()
        self._last_trim = time.monotonic()
        self._process = psutil.Process(os.getpid())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._process.cpu_percent(None)  # prime: the first call always answers 0
        self.probe.start()
        self._thread = threading.Thread(target=self._run, name="rtload-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.probe.stop()

    def sample(self) -> dict[str, Any]:
        lag_p99, frames_late = self.probe.take()
        frames = self.frame_source() if self.frame_source is not None else {}
        if frames.get("frames"):
            frames_late = float(frames.get("late_pct", 0.0))
            frame_p99 = float(frames.get("p99_lag_ms", 0.0))
            # the frames are the audio clock itself, and there are hundreds to thousands of them
            # per window; the probe's 50 wake-ups a second make its "p99" a per-second maximum
            lag_p99 = frame_p99
        received = self.receive_source() if self.receive_source is not None else {}
        recv_p99 = float(received["p99_lag_ms"]) if received.get("frames") else None
        try:
            users = int(self.users())
        except Exception:
            users = None
        return {
            "t": time.time(),
            "worker_id": self.worker_id,
            "cpu_percent": round(self._process.cpu_percent(None), 1),
            "rss_mb": round(self._process.memory_info().rss / 1e6, 1),
            "clock_lag_p99_ms": None if lag_p99 is None else round(lag_p99, 3),
            "frames_late_pct": None if frames_late is None else round(frames_late, 3),
            "recv_lag_p99_ms": None if recv_p99 is None else round(recv_p99, 3),
            "users": users,
        }

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            with contextlib.suppress(Exception):  # health sampling must never take the run down
                if self.trim_every_s and time.monotonic() - self._last_trim >= self.trim_every_s:
                    self._last_trim = time.monotonic()
                    release_free_memory()
                self.emit(self.sample())
