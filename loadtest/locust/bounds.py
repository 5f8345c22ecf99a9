"""Keep what Locust records for the whole run bounded, so a soak of hours or days stays flat.

Locust itself keeps two things that grow with the length of a run (not with the load):

- ``stats.history``: a row of chart points every 5 s (the web UI's and ``locust.html``'s charts,
  ~1.3 KB a row, ~1 MB an hour). Bounded at :data:`HISTORY_KEEP` rows: when it is full, every
  other row is dropped, so the charts still span the whole run at half the resolution (the
  first and the newest rows are always kept).
- each stats entry's ``num_reqs_per_sec`` / ``num_fail_per_sec``: a count per second of the run.
  Locust reads only the last 12 s of them (current RPS); seconds older than
  :data:`PER_SECOND_KEEP_S` are dropped.

Everything else Locust keeps is bounded by the load's vocabulary, not by time: response times
are counted in rounded buckets, failures by ``<outcome>: <reason>``. The harness's own outcome
board counts per (step, outcome, reason), a fixed vocabulary. Runs in every Locust process.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from locust import events

HISTORY_KEEP = 1_440  # 2 h of Locust's 5 s rows before the first thinning
PER_SECOND_KEEP_S = 60
INTERVAL_S = 10.0


def bound_history(history: list[Any], keep: int = HISTORY_KEEP) -> None:
    """Halve the resolution of ``history`` (in place) while it holds more than ``keep`` rows."""
    while len(history) > max(keep, 2):
        del history[1:-1:2]


def bound_per_second(counts: dict[int, int], now: float, keep_s: int = PER_SECOND_KEEP_S) -> None:
    """Drop the per-second counts older than ``keep_s`` (in place)."""
    cutoff = int(now) - keep_s
    old = [t for t in counts if t < cutoff]
    for t in old:
        del counts[t]


def bound_stats(stats: Any, now: float) -> None:
    """Bound one Locust ``RequestStats``: its history and every entry's per-second counts."""
    bound_history(stats.history)
    for entry in (*stats.entries.values(), stats.total):
        bound_per_second(entry.num_reqs_per_sec, now)
        bound_per_second(entry.num_fail_per_sec, now)


def _loop(environment: Any) -> None:
    import gevent

    while True:
        gevent.sleep(INTERVAL_S)
        runner = environment.runner
        if runner is not None:
            with contextlib.suppress(Exception):  # bookkeeping must never take a run down
                bound_stats(runner.stats, time.time())


def _on_init(environment: Any, **_kw: Any) -> None:
    import gevent

    gevent.spawn(_loop, environment)


_installed = False


def install() -> None:
    """Start the trimming greenlet in every Locust process (idempotent)."""
    global _installed
    if not _installed:
        _installed = True
        events.init.add_listener(_on_init)
