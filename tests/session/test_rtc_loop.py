"""The WebRTC loop thread's hand-offs: calls from the harness run in order, woken once per batch."""

from __future__ import annotations

import time

from loadtest.session import concurrency
from loadtest.session.rtc_loop import RtcLoop


def _wait_for(check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:  # type: ignore[operator]
        concurrency.sleep(0.005)


def test_calls_queued_while_the_loop_is_busy_run_in_order_after_one_wake_up() -> None:
    rtc = RtcLoop()
    release = [False]
    busy = [False]
    ran: list[int] = []

    def hold() -> None:  # on the loop thread: busy until released (bounded)
        busy[0] = True
        deadline = time.monotonic() + 5.0
        while not release[0] and time.monotonic() < deadline:
            pass

    rtc.soon(hold)
    _wait_for(lambda: busy[0])
    woken = rtc.wakeups
    for i in range(100):
        rtc.soon(ran.append, i)
    release[0] = True
    _wait_for(lambda: len(ran) == 100)
    assert ran == list(range(100))
    assert rtc.wakeups - woken == 1  # one wake-up for the hundred calls queued behind the busy one


def test_a_failing_call_does_not_stop_the_ones_behind_it() -> None:
    rtc = RtcLoop()
    ran: list[int] = []

    def fail() -> None:
        raise ValueError("one call's failure")

    rtc.soon(fail)
    rtc.soon(ran.append, 1)
    _wait_for(lambda: ran == [1])
    assert ran == [1]


def test_the_ab_switches_are_read_when_a_loop_starts_not_at_import(monkeypatch) -> None:
    """RTLOAD_RTC_SOON_BATCH=0 and RTLOAD_RTC_HANDOFF_TICK_S (the bench's A/B arms), set after the
    module was imported, still apply to a loop started afterwards."""
    monkeypatch.setenv("RTLOAD_RTC_SOON_BATCH", "0")
    monkeypatch.setenv("RTLOAD_RTC_HANDOFF_TICK_S", "0")
    rtc = RtcLoop()
    ran: list[int] = []
    woken = rtc.wakeups
    for i in range(5):
        rtc.soon(ran.append, i)
    _wait_for(lambda: len(ran) == 5)
    assert ran == list(range(5)) and rtc.wakeups - woken == 5  # a wake-up per call: no batching
    assert rtc.doorbell is not None and rtc.doorbell.tick_s == 0.0
