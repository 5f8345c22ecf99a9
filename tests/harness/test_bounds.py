"""What Locust keeps for the whole run stays bounded over a long soak (loadtest/locust/bounds.py)."""

from __future__ import annotations

import itertools
import time
from unittest import mock

from locust.stats import RequestStats

from loadtest.locust.bounds import HISTORY_KEEP, PER_SECOND_KEEP_S, bound_history, bound_stats


def _requests(stats: RequestStats, start: int, seconds: int) -> None:
    """Two requests a second (one failed every 10 s) for ``seconds``, at their own (fake) times."""
    now = [0.0]
    with mock.patch("time.time", lambda: now[0]):
        for t in range(start, start + seconds):
            now[0] = t + 0.5
            stats.log_request("realtime", "conversation", 500, 1000)
            stats.log_request("realtime", "conversation", 700, 1000)
            if t % 10 == 0:
                stats.log_error("realtime", "conversation", "failed: server_error")


def test_per_second_counts_keep_only_the_recent_window_and_current_rps_is_unchanged() -> None:
    stats = RequestStats()
    start, seconds = int(time.time()) + 1, 7_200  # the next two hours of a soak
    _requests(stats, start, seconds)
    entry = stats.get("conversation", "realtime")
    assert len(entry.num_reqs_per_sec) == seconds  # Locust keeps one count per second of the run
    rps_before, fails_before = entry.current_rps, entry.current_fail_per_sec
    total_rps_before = stats.total.current_rps

    bound_stats(stats, start + seconds)

    for counts in (entry.num_reqs_per_sec, stats.total.num_reqs_per_sec):
        assert 0 < len(counts) <= PER_SECOND_KEEP_S + 1
        assert min(counts) >= start + seconds - PER_SECOND_KEEP_S
    assert len(entry.num_fail_per_sec) <= PER_SECOND_KEEP_S // 10 + 1
    # what Locust shows from them (the last 12 s) is what it was; the run's totals are untouched
    assert (entry.current_rps, entry.current_fail_per_sec) == (rps_before, fails_before) and rps_before == 2.0
    assert stats.total.current_rps == total_rps_before
    assert entry.num_requests == 2 * seconds and entry.num_failures == seconds // 10


def test_history_is_thinned_to_its_bound_keeping_the_whole_span() -> None:
    history = [{"time": i} for i in range(HISTORY_KEEP * 3 + 7)]  # a 6-hour soak of 5 s rows
    bound_history(history)
    assert len(history) <= HISTORY_KEEP
    assert len(history) > HISTORY_KEEP // 2  # halved, not emptied
    assert history[0]["time"] == 0 and history[-1]["time"] == HISTORY_KEEP * 3 + 6
    times = [row["time"] for row in history]
    assert times == sorted(times)
    gaps = {b - a for a, b in itertools.pairwise(times)}
    assert max(gaps) <= 4  # evenly thinned: at most two halvings here
    short = [{"time": i} for i in range(10)]
    bound_history(short)
    assert len(short) == 10  # under the bound nothing is dropped
