"""The client under gevent, as Locust runs it: greenlet receivers, cooperative sockets, realtime
pacing for many sessions in one process, and stop() from another greenlet."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.session.helpers import FAST_MOCK
from tests.support import TLSProxy, run_child, self_signed

pytestmark = pytest.mark.timing  # make test runs these alone (they measure time)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
@pytest.mark.parametrize(("shared_receiver", "tls"), [("1", False), ("0", False), ("1", True)])
def test_sessions_as_greenlets_under_monkey_patching(mock_server, tmp_path, shared_receiver: str, tls: bool) -> None:
    """The same sessions give the same records whether the process's shared receiver reads every
    connection (the default) or each receiver greenlet reads its own (RTLOAD_SHARED_RECEIVER=0),
    over ws:// or wss:// (the mock behind a TLS front: TLS is read by the shared receiver too)."""
    mock = mock_server(overrides=FAST_MOCK)
    users = 20
    env = {"RTLOAD_SHARED_RECEIVER": shared_receiver}
    url, front = mock.url, None
    if tls:
        cert, key = self_signed(tmp_path)
        front = TLSProxy(int(mock.url.rsplit(":", 1)[1]), cert, key)
        url, env["SSL_CERT_FILE"] = f"wss://127.0.0.1:{front.port}", str(cert)
    try:
        out = run_child("tests.session.gevent_driver", url, str(users), timeout=90, env=env)
    finally:
        if front is not None:
            front.close()
    assert out["gevent_active"] is True
    assert out["receivers"] and set(out["receivers"]) == {"greenlet"}
    expected = sorted([[u, 0, "completed", ""] for u in range(users)] + [[u, 1, "completed", ""] for u in range(users)])
    assert out["outcomes"] == expected
    assert out["sessions"] == ["client_closed"] * users
    # 20 realtime streams of 2.5 s + 0.6 s shared one process and stayed on their audio clock
    assert out["clock"]["frames"] >= 25 and out["clock"]["p99_lag_ms"] < 100, out["clock"]
    assert out["elapsed"] < 20
    # stop() from another greenlet: prompt, the receiver greenlet is gone, the open answer is recorded
    assert out["stop_s"] < 3 and out["runner_dead"] and out["receiver_dead"]
    *before, last = out["stop_outcomes"]
    assert last == ["cancelled", "client_cancelled"] and all(o == ["completed", ""] for o in before)
    assert out["stop_sessions"] == ["client_closed"]
    assert out["threads"] == []
    shared = out["shared_receiver"]
    if shared_receiver == "1":  # every connection was read by the shared loop, none is left watched
        assert shared["enabled"] and shared["reads"] >= users * 20 and shared["watching"] == 0, shared
        # the sessions' routers marked connections waiting for a first output: read ahead of the rest
        assert shared["hot_reads"] >= users and shared["hot"] == 0, shared
    else:
        assert not shared["enabled"] and shared["reads"] == 0 and shared["hot_reads"] == 0, shared
    # abort() ends a receiver waiting on a quiet connection, without killing it
    abort = out["abort"]
    assert abort["handshake"] and abort["messages"] >= 1 and abort["ended"], abort
    assert abort["code"] == 1006 and abort["s"] < 1.0, abort
