"""Reads that time a response come first: a connection whose response waits for its first output
is read before a backlog of others (the shared receiver's second epoll set)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.protocol.dialects import GA
from tests.session.helpers import FAST_MOCK
from tests.session.seq import Seq, tone
from tests.support import TLSProxy, run_child, self_signed

ROOT = Path(__file__).resolve().parents[2]


def test_the_router_says_when_a_response_waits_for_its_first_output() -> None:
    seq = Seq(GA)
    calls: list[bool] = []
    seq.router.on_awaiting_output = calls.append
    seq.turn(t_trigger=0.0)
    assert calls == [True]  # the turn asks for a response: its first audio is awaited
    seq.created(0.1)
    seq.transcript(0.12, "Hi")  # a transcript is not the audio the response waits for
    assert calls == [True]
    seq.audio(0.15, tone(100))
    assert calls == [True, False]
    seq.audio(0.25, tone(100))  # later deltas change nothing (no call per delta)
    seq.finish_ok(0.4)
    assert calls == [True, False]
    # a response that ends without any audio ends the wait too
    seq.rid = "resp_2"
    seq.turn(t_trigger=1.0)
    seq.created(1.1)
    seq.done(1.2, status="failed")
    assert calls == [True, False, True, False]
    # a response the server starts on its own is awaited from its first event
    seq.rid = "resp_3"
    seq.created(2.0)
    assert calls[-1] is True
    seq.audio(2.1, tone(100))
    assert calls[-1] is False


def test_a_text_only_response_waits_for_its_first_text() -> None:
    seq = Seq(GA, wants_audio=False)
    calls: list[bool] = []
    seq.router.on_awaiting_output = calls.append
    seq.turn()
    seq.created(0.2)
    seq.part(0.21, kind="text")
    assert calls == [True]
    seq.text(0.3, "Hello")
    assert calls == [True, False]


def _first_reads(url: str, count: int, urgent: bool, env: dict[str, str]) -> dict:
    return run_child("tests.session.reactor_driver", url, str(count), "1" if urgent else "0", env=env)


@pytest.mark.e2e
@pytest.mark.parametrize("tls", [False, True])
def test_a_connection_waiting_for_its_first_output_is_read_before_the_backlog(mock_server, tmp_path, tls) -> None:
    mock = mock_server(overrides=FAST_MOCK)
    count = 120
    url, env, front = mock.url, {}, None
    if tls:  # wss:// (the mock behind a TLS front): the same order, the TLS layer over the same socket
        cert, key = self_signed(tmp_path)
        front = TLSProxy(int(mock.url.rsplit(":", 1)[1]), cert, key)
        url, env = f"wss://127.0.0.1:{front.port}", {"SSL_CERT_FILE": str(cert)}
    try:
        plain = _first_reads(url, count, urgent=False, env=env)
        urgent = _first_reads(url, count, urgent=True, env=env)
    finally:
        if front is not None:
            front.close()
    assert sorted(plain["first_read"]) == list(range(count)), plain
    # in line: the last connection registered is read among the last of the backlog
    assert plain["first_read"].index(count - 1) >= count - plain["batch"], plain
    assert plain["hot_reads"] == 0
    assert sorted(urgent["first_read"]) == list(range(count)), urgent
    # marked urgent: read first, ahead of every connection that was ready before it
    assert urgent["first_read"][0] == count - 1, urgent
    assert urgent["hot_reads"] >= 1
    # back in line once its first output came; closed connections leave no trace in either set
    assert urgent["hot_left_after_first_output"] == [] and urgent["hot_left_after_close"] == []
    assert urgent["watching"] == 0
