"""The process's shared audio clock (loadtest.session.pacer) under gevent, as Locust runs it.

Each scenario runs in its own monkey-patched subprocess (tests/session/pacer_helpers.py) with a fresh
``Pacer`` and prints what happened; the assertions are here. Send times are ``time.monotonic`` in
that process, the clock the deadlines are on, so "never early" is checked exactly; only lateness
has a tolerance (this 2-core machine is shared).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loadtest.session.runtime import SessionRuntime
from tests.support import run_child

pytestmark = pytest.mark.timing  # make test runs these alone (they measure time)

ROOT = Path(__file__).resolve().parents[2]
LATE_S = 0.05  # the most a frame may be late on a busy machine (a broken clock is off by 0.1-1.5 s)
PROMPT_S = 0.03  # a woken clock's first frame


def run_scenario(name: str) -> dict[str, Any]:
    return run_child("tests.session.pacer_helpers", name)


def deadlines(s: dict[str, Any]) -> list[float]:
    """Each frame's absolute deadline, computed as the clock does: t0 + audio sent before it."""
    out, sent_ms = [], 0.0
    for d in s["durations_ms"]:
        out.append(s["t0"] + sent_ms / 1000.0)
        sent_ms += d
    return out


def assert_on_time(s: dict[str, Any], frames: int | None = None) -> None:
    """The stream's frames went out in order, none before its deadline, none much after it, with a
    lag and an on_sent (of the message's size) for each."""
    n = len(s["durations_ms"]) if frames is None else frames
    due = deadlines(s)
    assert [x[2] for x in s["sends"]] == list(range(n))
    for t, _, i, _ in s["sends"]:
        assert t >= due[i], f"frame {i} sent {(due[i] - t) * 1000:.3f} ms before its deadline"
        assert t - due[i] <= LATE_S, f"frame {i} sent {(t - due[i]) * 1000:.1f} ms late"
    assert len(s["lags"]) == n
    for (t, _, i, _), lag in zip(s["sends"], s["lags"], strict=True):
        late_ms = (t - due[i]) * 1000.0
        assert 0.0 <= lag <= late_ms + 1e-6 and late_ms - lag < 20.0, (i, lag, late_ms)
    assert [nbytes for _, nbytes in s["on_sent"]] == s["sizes"][:n]
    for (t_on, _), (_, wall, _, _) in zip(s["on_sent"], s["sends"], strict=True):
        assert abs(t_on - wall) < 0.02  # on_sent gets the wall time of the send


def test_one_stream_frames_in_order_on_their_absolute_deadlines() -> None:
    out = run_scenario("order")
    s = out["streams"]["a"]
    assert s["result"] is True and s["done"] is True and s["cancelled"] is False
    assert_on_time(s)
    assert out["frames"] == 10
    # it returned right after the last frame (not a frame duration later, not before)
    last_due = deadlines(s)[-1]
    assert last_due <= s["ended"] <= last_due + LATE_S


def test_streams_interleave_on_one_clock_oldest_deadline_first() -> None:
    out = run_scenario("interleave")
    streams = out["streams"]
    for s in streams.values():
        assert s["result"] is True and s["done"] is True
        assert_on_time(s)
    assert out["frames"] == 30
    # one clock: every send, across streams, in deadline order
    sends = sorted((order, deadlines(s)[i]) for s in streams.values() for _, _, i, order in s["sends"])
    dues = [due for _, due in sends]
    assert dues == sorted(dues)
    # wall time is the longest stream's (its last deadline), not the sum of the three
    last_due = max(deadlines(s)[-1] for s in streams.values())
    assert last_due <= out["finished"] <= last_due + LATE_S
    longest_s = max(sum(s["durations_ms"][:-1]) for s in streams.values()) / 1000.0
    summed_s = sum(sum(s["durations_ms"][:-1]) for s in streams.values()) / 1000.0
    assert out["finished"] - out["started"] < longest_s + 0.1 < summed_s


def test_a_stream_whose_session_stopped_ends_early_and_alone() -> None:
    out = run_scenario("alive")
    a, b, c = (out["streams"][k] for k in "abc")
    assert b["result"] is False and b["done"] is True
    assert len(b["sends"]) == 4  # alive() went False after its 4th frame: nothing more was sent
    assert_on_time(b, frames=4)
    # it ended at its next deadline, not at the end of its audio
    due = deadlines(b)
    assert due[4] <= b["ended"] <= due[4] + LATE_S
    for s in (a, c):
        assert s["result"] is True
        assert_on_time(s)


def test_a_failing_send_ends_only_its_stream_and_the_clock_keeps_going() -> None:
    out = run_scenario("send_fail")
    a, b, c = (out["streams"][k] for k in "abc")
    # send() -> False (connection gone) at frame 3: no on_sent for it, nothing after it
    assert b["result"] is False and b["done"] is True
    assert [x[2] for x in b["sends"]] == [0, 1, 2, 3] and len(b["on_sent"]) == 3
    # send() raising at frame 2: that stream ends, the error is logged with its exception
    assert c["result"] is False and c["done"] is True
    assert [x[2] for x in c["sends"]] == [0, 1, 2] and len(c["on_sent"]) == 2
    assert len(out["logged"]) == 1
    assert out["logged"][0]["level"] == "ERROR" and "the socket blew up" in out["logged"][0]["exc"]
    # the clock survived: the stream already queued kept every later deadline (no new run_stream
    # came to restart a dead clock)
    failed_at = c["sends"][-1][0]
    assert sum(t > failed_at for t, *_ in a["sends"]) >= 7
    assert a["result"] is True
    assert_on_time(a)


def test_alive_raising_ends_only_its_stream_and_an_empty_stream_is_done_at_once() -> None:
    out = run_scenario("odd_streams")
    a, b, c = (out["streams"][k] for k in "abc")
    assert b["result"] is False and b["done"] is True and len(b["sends"]) == 2  # ended, not stuck
    assert c["result"] is True and c["done"] is True and c["sends"] == []
    assert a["result"] is True and len(a["sends"]) == 10  # the clock kept serving the others
    assert_on_time(a)
    assert out["frames"] == 12


def test_a_killed_waiting_greenlet_cancels_its_stream() -> None:
    out = run_scenario("kill")
    a, b, c = (out["streams"][k] for k in "abc")
    assert out["killed_dead"] is True and b["exit"] == "GreenletExit" and b["result"] is None
    assert b["cancelled"] is True
    assert out["sends_at_kill"] == 3 and len(b["sends"]) == 3  # nothing of it went out after the kill
    assert all(t < out["killed_at"] for t, *_ in b["sends"])
    for s in (a, c):  # the others ran on past the killed stream's remaining deadlines
        assert s["result"] is True
        assert_on_time(s)
    assert deadlines(a)[-1] > deadlines(b)[-1]


def test_a_stream_due_before_the_clocks_wakeup_wakes_it() -> None:
    out = run_scenario("wake_earlier")
    far, near = out["streams"]["far"], out["streams"]["near"]
    assert out["far_sends_before_kill"] == 0
    assert near["result"] is True
    assert_on_time(near)
    # its first frame, due at once, went out promptly, not at the far stream's deadline 1.4 s later
    first_late = near["sends"][0][0] - near["t0"]
    assert 0.0 <= first_late < PROMPT_S, f"{first_late * 1000:.1f} ms"
    assert far["cancelled"] is True and far["sends"] == []


def test_a_stream_added_to_an_idle_clock_is_served() -> None:
    out = run_scenario("idle")
    first, second = out["streams"]["first"], out["streams"]["second"]
    assert first["result"] is True and second["result"] is True
    assert_on_time(first)
    assert_on_time(second)
    first_late = second["sends"][0][0] - second["t0"]
    assert 0.0 <= first_late < PROMPT_S, f"{first_late * 1000:.1f} ms"


def test_a_stalled_process_shows_as_lag_and_the_stream_catches_up() -> None:
    out = run_scenario("lag")
    s = out["streams"]["a"]
    busy_start, busy_end = out["busy"]
    assert busy_end - busy_start >= 0.07
    due = deadlines(s)
    lags = s["lags"]
    assert len(lags) == 10 and all(lag >= 0.0 for lag in lags)
    # the first frame not yet sent when the process stalled: it could not go before the stall ended,
    # and its recorded lag says so (>= 70 ms stall - 20 ms frame = 50 ms)
    k = next(i for t, _, i, _ in s["sends"] if t > busy_start)
    assert due[k] <= busy_start + 0.02 + 1e-9
    assert lags[k] >= (busy_end - due[k]) * 1000.0 - 1e-6
    assert lags[k] >= 40.0
    # every frame is still sent in order, never early, and lags match lateness
    assert [x[2] for x in s["sends"]] == list(range(10))
    for (t, _, i, _), lag in zip(s["sends"], lags, strict=True):
        assert t >= due[i]
        assert abs((t - due[i]) * 1000.0 - lag) < 20.0
    # absolute deadlines: the stream caught up (its last frame on time again, no drift)
    assert s["sends"][-1][0] - due[-1] <= LATE_S
    assert s["result"] is True


@pytest.mark.parametrize(("value", "enabled"), [(None, True), ("1", True), ("0", False)])
def test_shared_clock_switch(monkeypatch: pytest.MonkeyPatch, value: str | None, enabled: bool) -> None:
    if value is None:
        monkeypatch.delenv("RTLOAD_SHARED_CLOCK", raising=False)
    else:
        monkeypatch.setenv("RTLOAD_SHARED_CLOCK", value)
    assert SessionRuntime().pacer.enabled is enabled


def test_a_peer_that_stops_reading_does_not_hold_up_the_clock() -> None:
    """Two WebSocket connections on 127.0.0.1 through WebSocketTransport.send_paced: the slow peer
    reads nothing for 0.45 s while its stream sends 256 KiB frames (more than the socket buffers
    hold); the other stream's frames stay on time, and the slow peer later gets every byte in order."""
    out = run_scenario("backlog")
    slow, fast = out["streams"]["slow"], out["streams"]["fast"]
    assert out["handshakes"] == [True, True]
    # the slow connection's socket could not take what its stream sent while the peer did not read
    assert out["written_while_paused"] < out["queued_while_paused"]
    # ...yet both streams kept their deadlines: the clock never waited for that socket
    for s in (slow, fast):
        assert s["result"] is True
        assert_on_time(s)
    assert sum(t < out["resumed"] for t, *_ in fast["sends"]) >= 20  # (while the slow peer was not reading)
    # once the peer read again it got every message, whole and in order; so did the fast peer
    assert out["slow_received"] == 40 and out["slow_in_order"] is True
    assert out["fast_received"] == 40 and out["fast_in_order"] is True
