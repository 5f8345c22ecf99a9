"""Run in a subprocess by test_concurrency.py: one scenario of :func:`loadtest.session.concurrency.wait`
and the resume hook under gevent's monkey-patching, as Locust runs them. Prints one JSON line with
what happened (times are ``time.monotonic`` in this process); the assertions are in the test."""

from gevent import monkey

monkey.patch_all()

import gc  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402

from loadtest.session import concurrency  # noqa: E402
from tests.support import timed_wait  # noqa: E402

SCENARIO_TIMEOUT_S = 30.0
GARBAGE_WAITS = 200


def set_by_other() -> dict[str, Any]:
    """Another greenlet sets the event 50 ms into a 5 s wait."""
    event = concurrency.new_event()
    gevent.spawn_later(0.05, event.set)
    result, elapsed = timed_wait(event, 5.0)
    return {"result": result, "elapsed": elapsed, "links_after": event.linkcount()}


def timeout() -> dict[str, Any]:
    """Unset events: a 100 ms wait right after start-up, then 100 ms waits after a yield and after
    busy work (the loop's cached time is stale then); other greenlets keep running meanwhile."""
    event = concurrency.new_event()
    ticks = [0]

    def ticker() -> None:
        while True:
            ticks[0] += 1
            gevent.sleep(0.005)

    runs = []
    result, elapsed = timed_wait(event, 0.1)
    runs.append({"result": result, "elapsed": elapsed, "when": "first"})
    ticking = gevent.spawn(ticker)
    gevent.sleep(0)
    result, elapsed = timed_wait(event, 0.1)
    runs.append({"result": result, "elapsed": elapsed, "when": "after a yield"})
    busy_until = time.monotonic() + 0.03
    while time.monotonic() < busy_until:  # the loop's cached time is now 30 ms stale
        pass
    result, elapsed = timed_wait(event, 0.1)
    stale = {"result": result, "elapsed": elapsed, "when": "after 30 ms of busy work"}
    ticking.kill()
    zero = timed_wait(event, 0.0)
    negative = timed_wait(event, -1.0)
    return {
        "runs": runs,
        "stale": stale,
        "ticks": ticks[0],
        "zero": zero,
        "negative": negative,
        "links_after": event.linkcount(),
    }


def already_set() -> dict[str, Any]:
    event = concurrency.new_event()
    event.set()
    return {"long": timed_wait(event, 5.0), "zero": timed_wait(event, 0.0), "links_after": event.linkcount()}


def _garbage_after(waits: Callable[[], Any], count: int) -> tuple[int, list[Any]]:
    """The objects the cyclic collector frees after ``count`` waits with it disabled."""
    gc.collect()
    gc.disable()
    try:
        results = [waits() for _ in range(count)]
        return gc.collect(), results
    finally:
        gc.enable()


def garbage() -> dict[str, Any]:
    """Expired waits: ours leave no reference cycles, however many; gevent's own Event.wait is
    measured the same way (it leaves ~14 objects a wait when gevent runs as pure Python)."""
    event = concurrency.new_event()
    for _ in range(5):  # warm up: the hub, the loop and their first-use allocations
        concurrency.wait(event, 0.001)
        event.wait(0.001)
    ours, our_results = _garbage_after(lambda: concurrency.wait(event, 0.001), GARBAGE_WAITS)
    more, _ = _garbage_after(lambda: concurrency.wait(event, 0.001), 4 * GARBAGE_WAITS)
    theirs, their_results = _garbage_after(lambda: event.wait(0.001), GARBAGE_WAITS)
    return {
        "waits": GARBAGE_WAITS,
        "ours": ours,
        "more": more,
        "theirs": theirs,
        "our_results": sorted(set(our_results)),
        "their_results": sorted(set(their_results)),
        "gevent_event": type(event).__module__,
    }


def killed() -> dict[str, Any]:
    """A greenlet killed while it waits unlinks from the event and stops its timer."""
    event = concurrency.new_event()
    loop = gevent.get_hub().loop
    gevent.sleep(0.01)
    active_before = getattr(loop, "activecnt", None)
    waiter = gevent.spawn(concurrency.wait, event, 0.2)
    gevent.sleep(0.02)
    links_during = event.linkcount()
    t0 = time.monotonic()
    waiter.kill(block=True, timeout=1.0)
    kill_s = time.monotonic() - t0
    links_after = event.linkcount()
    gevent.sleep(0.01)
    active_after = getattr(loop, "activecnt", None)
    gevent.sleep(0.3)  # past the killed wait's deadline: its timer must not fire into anything
    event.set()
    gevent.sleep(0.01)
    later = timed_wait(event, 1.0)
    return {
        "links_during": links_during,
        "links_after": links_after,
        "dead": waiter.dead,
        "value": type(waiter.value).__name__,
        "kill_s": kill_s,
        "active_before": active_before,
        "active_after": active_after,
        "later": later,
    }


def resume_hook() -> dict[str, Any]:
    """The hook runs in the resuming greenlet, before wait/sleep return; its exceptions are swallowed."""
    log: list[str] = []
    where: list[bool] = []
    main = gevent.getcurrent()

    def hook() -> None:
        log.append("hook")
        where.append(gevent.getcurrent() is main)

    concurrency.set_resume_hook(hook)
    event = concurrency.new_event()
    steps: dict[str, Any] = {}

    def step(name: str, call: Callable[[], Any]) -> None:
        start = len(log)
        value = call()
        log.append(name)
        steps[name] = {"value": value, "log": log[start:]}

    step("expired_wait", lambda: concurrency.wait(event, 0.01))
    gevent.spawn_later(0.01, event.set)
    step("woken_wait", lambda: concurrency.wait(event, 5.0))
    step("already_set_wait", lambda: concurrency.wait(event, 5.0))
    step("sleep", lambda: concurrency.sleep(0.01))
    step("sleep_zero", lambda: concurrency.sleep(0))

    calls = [0]

    def failing() -> None:
        calls[0] += 1
        raise RuntimeError("the clock broke")

    concurrency.set_resume_hook(failing)
    event.clear()
    errors = []
    for name, call in (
        ("wait", lambda: concurrency.wait(event, 0.01)),
        ("sleep", lambda: concurrency.sleep(0.01)),
    ):
        try:
            steps[f"failing_{name}"] = {"value": call()}
        except Exception as exc:  # what the test says must not happen
            errors.append(f"{name}: {exc!r}")
    failing_calls = calls[0]
    concurrency.set_resume_hook(None)
    concurrency.wait(event, 0.01)
    concurrency.sleep(0.01)
    return {
        "steps": steps,
        "in_resuming_greenlet": where,
        "failing_calls": failing_calls,
        "calls_after_unset": calls[0] - failing_calls,
        "errors": errors,
    }


SCENARIOS: dict[str, Callable[[], dict[str, Any]]] = {
    f.__name__: f for f in (set_by_other, timeout, already_set, garbage, killed, resume_hook)
}


def main() -> None:
    scenario = SCENARIOS[sys.argv[1]]
    assert concurrency.gevent_active(), "monkey-patching did not take"
    assert isinstance(concurrency.new_event(), Event)
    with gevent.Timeout(SCENARIO_TIMEOUT_S):
        result = scenario()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
