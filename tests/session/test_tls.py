"""wss:// end to end under gevent: the TLS write path (TLS records written without waiting, the
rest to the connection's backlog helper) and the shared receiver reading TLS, against the mock
behind a TLS front."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import pytest

from tests.session.helpers import FAST_MOCK
from tests.session.rawserver import SESSION_CREATED, SESSION_UPDATED, RawServer, event
from tests.support import TLSProxy, run_child, self_signed

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_a_wss_connection_under_gevent_sends_big_bursts_and_reads_its_answer(mock_server, tmp_path) -> None:
    mock = mock_server(overrides=FAST_MOCK)
    cert, key = self_signed(tmp_path)
    # the front reads nothing of the burst until the driver has sent it all: the sends must queue
    proxy = TLSProxy(int(mock.url.rsplit(":", 1)[1]), cert, key, hold=True)
    try:
        frames = 1500  # 1,500 x 6.4 KB at once: more than loopback's socket buffers take without a reader
        url = f"wss://127.0.0.1:{proxy.port}"
        out = run_child("tests.session.tls_driver", url, str(cert), str(frames), str(proxy.release_port))
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
    # TLS is read by the shared receiver, with the kernel's arrival stamps (the receive-lag figure)
    assert out["shared_receiver"] is True and out["watched"] == 1 and out["reads"] >= 1, out
    assert out["stamped_reads"] >= 1, out
    assert out["close_code"] == 1000, out


def _tls_server_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


@pytest.mark.e2e
def test_tls_peers_that_stall_reset_or_corrupt_a_record_end_each_session_rightly(tmp_path) -> None:
    """On the shared receiver, each misbehaving TLS peer ends its own session the right way (and
    only its own: a healthy TLS peer in the same process completes)."""
    cert, key = self_signed(tmp_path)
    ctx = _tls_server_context(cert, key)
    opened = [SESSION_CREATED, SESSION_UPDATED]
    started = event({"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}})
    done = event({"type": "response.done", "response": {"id": "resp_1", "status": "completed", "output": []}})
    text = event({"type": "response.output_text.delta", "response_id": "resp_1", "item_id": "i", "output_index": 0,
                  "content_index": 0, "delta": "Hi"})  # fmt: skip
    bad_record = b"\x17\x03\x03\x00\x40" + bytes(range(64))  # application data that fails its integrity check
    servers = {
        "healthy": RawServer([*opened, ("sleep", 0.2), started, text, done, ("sleep", 1.0)], tls=ctx),
        "stall": RawServer([*opened, ("sleep", 0.2), started, ("sleep", 4.0)], tls=ctx),
        "reset": RawServer([*opened, ("sleep", 0.2), started, ("sleep", 0.2), ("reset",)], tls=ctx),
        "bad_record": RawServer(
            [*opened, ("sleep", 0.2), started, ("sleep", 0.2), ("raw", bad_record), ("sleep", 2)], tls=ctx
        ),
    }  # fmt: skip
    urls = {name: server.url for name, server in servers.items()}
    out = run_child("tests.session.tls_faults_driver", json.dumps(urls), env={"SSL_CERT_FILE": str(cert)}, timeout=60)
    assert out["healthy"]["responses"] == [["completed", "", None]], out
    assert out["healthy"]["sessions"][0][0] == "client_closed", out
    (stalled,) = out["stall"]["responses"]
    assert stalled[0] == "failed" and stalled[1] == "done_timeout", out
    assert out["reset"]["responses"] == [["failed", "connection_dropped", 1006]], out
    assert out["reset"]["sessions"][0][:2] == ["dropped", 1006], out
    assert out["bad_record"]["responses"] == [["failed", "connection_dropped", 1006]], out
    ended_by, code, reason = out["bad_record"]["sessions"][0]
    assert ended_by == "error" and code == 1006 and reason.startswith("TLS error"), out
    assert out["_reactor"]["reads"] >= 8 and out["_reactor"]["watching"] == 0, out  # the shared receiver read them
