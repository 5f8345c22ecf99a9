"""Run in a subprocess by test_memory.py: thousands of fast turns in one process under gevent (as
Locust runs them) with the cyclic garbage collector off, measuring what the finished sessions leave.

The harness sets the collector's thresholds so high (``loadtest.locust.harness.tune_gc``) that a
session's objects, once they survived a young collection, are only freed by reference counting in
practice: anything a finished session leaves in a reference cycle stays for the rest of a soak.
With the collector off, such a leak shows at once instead of after an hour. Prints one JSON line.

    python -m tests.session.memory_driver URL USERS TURNS_PER_SESSION WARMUP_RESPONSES RESPONSES
"""

from gevent import monkey

monkey.patch_all()

import collections  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402

from loadtest.protocol.targets import Target  # noqa: E402
from loadtest.session.client import RealtimeSession  # noqa: E402
from loadtest.session.config import SessionConfig  # noqa: E402
from loadtest.session.runtime import process_runtime  # noqa: E402
from loadtest.session.scenario import Scenario, Turn  # noqa: E402


class CountingSink:
    """Counts what a session records and keeps nothing (a kept row would be growth by design)."""

    def __init__(self) -> None:
        self.responses = 0
        self.sessions = 0
        self.outcomes: collections.Counter[str] = collections.Counter()

    def response(self, record: Any) -> None:
        self.responses += 1
        self.outcomes[f"{record.outcome}/{record.reason}"] += 1

    def session(self, record: Any) -> None:
        self.sessions += 1

    def rate_limit(self, record: Any) -> None:
        pass

    def trace(self, name: str, events: list[dict[str, Any]]) -> str | None:
        return None


def run_until(
    target: Target, users: int, scenario: Scenario, config: SessionConfig, sink: CountingSink, n: int
) -> None:
    """``users`` greenlets, each running whole sessions one after another, until ``n`` more responses."""
    goal = sink.responses + n
    figures = process_runtime().figures

    def user(i: int) -> None:
        while sink.responses < goal:
            RealtimeSession(target, scenario, config, sink, user_id=i).run()

    def health() -> None:
        # as the harness's health sampler does once a second: the process's lag figures hold the
        # samples of one window only (left untaken, they grow by ~50 bytes a response up to a cap)
        while True:
            gevent.sleep(1.0)
            figures.frame_lag.take()
            figures.receive_lag.take()

    sampler = gevent.spawn(health)
    gevent.joinall([gevent.spawn(user, i) for i in range(users)], timeout=240)
    sampler.kill()
    figures.frame_lag.take()
    figures.receive_lag.take()


def main() -> None:
    url, users, turns, warmup, responses = sys.argv[1], *map(int, sys.argv[2:6])
    target = Target(base_url=url, api_key="mock-key", label="mock")
    config = SessionConfig(pacing="fast", output_modalities=["text"], response_deadline_s=10, response_idle_s=3)
    scenario = Scenario("memory", [Turn("text")] * turns)
    sink = CountingSink()
    gc.collect()
    gc.disable()
    tracemalloc.start()
    run_until(target, users, scenario, config, sink, warmup)  # caches, pools, the allocator's level
    before, sessions_before, t0 = tracemalloc.get_traced_memory()[0], sink.sessions, time.time()
    counted_before = sink.responses
    run_until(target, users, scenario, config, sink, responses)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    measured = sink.responses - counted_before
    gc.set_debug(gc.DEBUG_SAVEALL)
    unreachable = gc.collect()
    kinds = collections.Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage)
    print(
        json.dumps(
            {
                "responses": measured,
                "sessions": sink.sessions - sessions_before,
                "seconds": round(time.time() - t0, 1),
                "growth_bytes": after - before,
                "growth_per_response": (after - before) / max(1, measured),
                "unreachable": unreachable,
                "garbage_kinds": kinds.most_common(12),
                "outcomes": dict(sink.outcomes),
            }
        )
    )


if __name__ == "__main__":
    main()
