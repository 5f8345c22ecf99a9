"""loadtest.session.concurrency: ``wait`` (an event wait without gevent's garbage) and the resume hook.

Under gevent each scenario runs in its own monkey-patched subprocess (tests/session/concurrency_helpers.py)
and prints what happened; the assertions are here. Without gevent (this process: plain threads)
``wait`` must behave exactly like ``threading.Event.wait``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from loadtest.session import concurrency
from tests.support import run_child, timed_wait

pytestmark = pytest.mark.timing  # make test runs these alone (they measure time)

ROOT = Path(__file__).resolve().parents[2]
LATE_S = 0.05  # the most a wake-up may be late on a busy machine (a broken wait is off by the whole timeout)
EARLY_S = 0.002  # a gevent timer runs from the loop's cached time; that may be this stale


def run_scenario(name: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    return run_child("tests.session.concurrency_helpers", name, env=env, clean_stderr=True)  # (nor in the hub)


# -- under gevent ----------------------------------------------------------------------------------
def test_wait_returns_true_promptly_when_another_greenlet_sets_the_event() -> None:
    s = run_scenario("set_by_other")
    assert s["result"] is True
    assert 0.05 - EARLY_S <= s["elapsed"] <= 0.05 + LATE_S, s
    assert s["links_after"] == 0  # the wait unlinked itself from the event


def test_wait_times_out_with_false_not_early_and_lets_others_run() -> None:
    s = run_scenario("timeout")
    assert [run["when"] for run in s["runs"]] == ["first", "after a yield"]
    for run in s["runs"]:
        assert run["result"] is False, run
        assert 0.1 - EARLY_S <= run["elapsed"] <= 0.1 + LATE_S, run
    assert s["ticks"] >= 20  # a 5 ms ticker kept running through ~230 ms of waiting
    for key in ("zero", "negative"):  # a timeout of zero or less polls: False at once
        result, elapsed = s[key]
        assert result is False and elapsed < 0.02, (key, s[key])
    assert s["links_after"] == 0


def test_wait_is_not_early_after_busy_work() -> None:
    """30 ms of work without a yield, then a 100 ms wait: it counts from now, not the loop's stale clock."""
    stale = run_scenario("timeout")["stale"]
    assert stale["result"] is False
    assert 0.1 - EARLY_S <= stale["elapsed"] <= 0.1 + LATE_S, stale


def test_wait_on_a_set_event_returns_true_at_once() -> None:
    s = run_scenario("already_set")
    for key in ("long", "zero"):
        result, elapsed = s[key]
        assert result is True and elapsed < 0.005, (key, s[key])
    assert s["links_after"] == 0


@pytest.mark.parametrize("pure_python", [False, True], ids=["compiled-gevent", "pure-python-gevent"])
def test_expired_waits_leave_no_garbage_cycles(pure_python: bool) -> None:
    """gc.collect() after many expired waits with the collector disabled finds ~nothing of ours.
    gevent's own Event.wait(timeout) throws a Timeout whose traceback, frame and the Timeout form a
    cycle (~14 objects a wait): measured here when gevent runs as pure Python (the positive
    control that shows the measurement sees such cycles). gevent's compiled build (the default
    here) creates no Python frames there, so it leaves none either."""
    flag = "1" if pure_python else ""  # an empty value means compiled, whatever this process has
    s = run_scenario("garbage", {"PURE_PYTHON": flag, "GEVENT_PURE_PYTHON": flag})
    assert s["gevent_event"] == ("gevent.event" if pure_python else "gevent._gevent_cevent"), s
    assert s["our_results"] == [False] and s["their_results"] == [False]
    # ~0 however many waits: a few one-off objects of the pure-Python hub, never one per wait
    assert s["ours"] <= 20 and s["more"] <= 20, s
    if pure_python:
        assert s["theirs"] >= 10 * s["waits"], s


def test_a_killed_waiter_unlinks_from_the_event_and_stops_its_timer() -> None:
    s = run_scenario("killed")
    assert s["links_during"] == 1 and s["links_after"] == 0, s
    assert s["dead"] and s["value"] == "GreenletExit" and s["kill_s"] < 0.05, s
    if s["active_before"] is not None:  # libev's count of active watchers: the timer is gone too
        assert s["active_after"] == s["active_before"], s
    assert s["later"][0] is True and s["later"][1] < 0.005  # the event still works for the next waiter


def test_the_resume_hook_runs_after_wait_and_sleep_and_never_raises() -> None:
    s = run_scenario("resume_hook")
    steps = s["steps"]
    # the hook runs as the greenlet resumes, before wait/sleep return
    assert steps["expired_wait"] == {"value": False, "log": ["hook", "expired_wait"]}
    assert steps["woken_wait"] == {"value": True, "log": ["hook", "woken_wait"]}
    assert steps["sleep"] == {"value": None, "log": ["hook", "sleep"]}
    assert steps["sleep_zero"] == {"value": None, "log": ["hook", "sleep_zero"]}
    # a wait on a set event does not yield, so nothing resumes
    assert steps["already_set_wait"] == {"value": True, "log": ["already_set_wait"]}
    assert s["in_resuming_greenlet"] == [True] * 4
    # a hook that raises: called, swallowed, and wait/sleep return as usual
    assert s["errors"] == []
    assert steps["failing_wait"] == {"value": False} and steps["failing_sleep"] == {"value": None}
    assert s["failing_calls"] == 2
    assert s["calls_after_unset"] == 0  # set_resume_hook(None) removes it


# -- without gevent: plain threads ------------------------------------------------------------------
@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's concurrency layer in its thread mode (even if a test before imported locust)."""
    monkeypatch.setattr(concurrency, "gevent_active", lambda: False)
    assert isinstance(concurrency.new_event(), threading.Event)


@pytest.mark.usefixtures("threads")
def test_threads_wait_returns_true_promptly_when_another_thread_sets_the_event() -> None:
    event = concurrency.new_event()
    timer = threading.Timer(0.05, event.set)
    timer.start()
    try:
        result, elapsed = timed_wait(event, 5.0)
    finally:
        timer.cancel()
    assert result is True
    assert 0.05 - EARLY_S <= elapsed <= 0.05 + LATE_S


@pytest.mark.usefixtures("threads")
def test_threads_wait_times_out_with_false_and_returns_true_at_once_when_set() -> None:
    event = concurrency.new_event()
    result, elapsed = timed_wait(event, 0.1)
    assert result is False and 0.1 - EARLY_S <= elapsed <= 0.1 + LATE_S
    assert timed_wait(event, 0.0)[0] is False
    event.set()
    result, elapsed = timed_wait(event, 5.0)
    assert result is True and elapsed < 0.005


@pytest.mark.usefixtures("threads")
def test_threads_wait_is_the_events_own_wait() -> None:
    """Without gevent ``wait`` hands the timeout to ``event.wait`` as given and returns its answer."""

    class Recorder:
        def __init__(self, answer: bool) -> None:
            self.answer = answer
            self.calls: list[float] = []

        def wait(self, timeout: float | None = None) -> bool:
            self.calls.append(timeout)
            return self.answer

        def is_set(self) -> bool:
            raise AssertionError("not asked: the event's own wait decides")

    for answer in (True, False):
        event = Recorder(answer)
        assert concurrency.wait(event, 0.25) is answer  # type: ignore[arg-type]
        assert event.calls == [0.25]
