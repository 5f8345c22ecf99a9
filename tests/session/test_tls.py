"""wss:// end to end under gevent: the TLS write path (TLS records written directly, the rest to
the connection's backlog helper) and the TLS receiver, against the mock behind a TLS front."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.session.helpers import FAST_MOCK
from tests.support import TLSProxy, run_child, self_signed

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_a_wss_connection_under_gevent_sends_big_bursts_and_reads_its_answer(mock_server, tmp_path) -> None:
    mock = mock_server(overrides=FAST_MOCK)
    cert, key = self_signed(tmp_path)
    proxy = TLSProxy(int(mock.url.rsplit(":", 1)[1]), cert, key)
    try:
        frames = 1500  # 1,500 x 6.4 KB at once: more than loopback's socket buffers take without waiting
        out = run_child("tests.session.tls_driver", f"wss://127.0.0.1:{proxy.port}", str(cert), str(frames))
    finally:
        proxy.close()
    assert out["handshake"] and out["status"] == 101, out
    assert out["sends_ok"] and out["bytes_sent"] > frames * 6400, out
    assert out["backlog_helpers"] >= 1 and out["send_s"] < 1.0, out  # queued, not written while the sender waits
    # the mock got every byte in order: it parsed the session update, and the turn after the appends
    types = out["types"]
    assert types[0] == "session.created" and "session.updated" in types, types
    assert out["answered"] and "response.done" in types, types
    assert "response.output_text.delta" in types, types  # the text answer of the turn (GA names)
    assert "error" not in types, types
    assert out["shared_receiver"] is False  # TLS: its own receiver greenlet
    assert out["close_code"] == 1000, out
