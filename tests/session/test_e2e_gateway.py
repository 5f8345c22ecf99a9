"""Through a gateway (issue 21): a raw server on 127.0.0.1 replays, byte for byte, what LiteLLM's realtime
proxy sends for its backend's failures (it accepts the upgrade first), and the session records the
reason the failure would have had directly, with ``via_gateway``."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from loadtest.locust.backoff import Backoff
from loadtest.locust.board import OutcomeBoard
from loadtest.locust.sinks import UserSink, WriterSink
from loadtest.records.schema import to_row
from loadtest.records.writer import RunWriter
from loadtest.session.client import RealtimeSession
from loadtest.session.config import SessionConfig
from loadtest.session.scenario import get_scenario
from tests.session.helpers import FAST, run_session, target
from tests.session.rawserver import SESSION_CREATED, SESSION_UPDATED, RawServer, close, event, gateway_error

QUICK = get_scenario("quick_text")


def refusal(status: int, code: int, then: str = "") -> list:
    """LiteLLM: the backend refused the gateway's upgrade with ``status``: an error event, then close ``code``
    (``then``: what a gateway that passes more on adds to the message)."""
    message = f"Upstream realtime handshake rejected with HTTP {status}{then}"
    return [gateway_error(message), close(code, message), ("sleep", 0.3)]


def through(script: list) -> tuple:
    server = RawServer(script)
    sink, _ = run_session(server.url, QUICK, target_kw={"url_override": server.url})
    server.join()
    assert len(sink.sessions) == 1 and len(sink.responses) == 1, (sink.sessions, sink.responses)
    return sink.sessions[0], sink.responses[0], sink


@pytest.mark.parametrize(
    ("status", "code", "outcome", "reason"),
    [(429, 1013, "throttled", "handshake_429"), (503, 1011, "failed", "handshake_5xx"),
     (401, 1008, "failed", "handshake_401")],
)  # fmt: skip
def test_a_backend_refusal_through_the_gateway_is_the_refusal(status, code, outcome, reason) -> None:
    """Was failed/server_error: the 101 came from the gateway, the refusal from its backend."""
    session, response, _ = through(refusal(status, code))
    assert (response.outcome, response.reason, response.via_gateway) == (outcome, reason, True)
    assert response.error_message == f"Upstream realtime handshake rejected with HTTP {status}"
    assert session.handshake_status == 101 and session.session_id is None


@pytest.mark.parametrize(
    ("message", "reason"),
    [("Upstream realtime connection closed with code 1006", "Upstream realtime connection closed with code 1006"),
     # LiteLLM 1.106.4 itself (bench/bench_gateway.py saw it: the mock dropped the TCP connection mid-answer)
     ("upstream websocket closed with code 1006: no close frame received or sent", "no close frame received or sent")],
)  # fmt: skip
def test_a_backend_drop_through_the_gateway_is_connection_dropped(message: str, reason: str) -> None:
    """A TCP drop between gateway and backend: a server_error naming upstream close 1006, then close 1011."""
    created = event({"type": "response.created", "response": {"id": "resp_gw", "status": "in_progress"}})
    delta = event({"type": "response.output_text.delta", "response_id": "resp_gw", "delta": "Hel"})
    _, response, _ = through(
        [SESSION_CREATED, SESSION_UPDATED, created, delta, gateway_error(message), close(1011, reason), ("sleep", 0.3)]
    )
    assert (response.outcome, response.reason, response.via_gateway) == ("failed", "connection_dropped", True)
    assert response.close_code == 1011 and response.response_id == "resp_gw"


def test_a_shape_no_rule_knows_is_what_it_says() -> None:
    _, response, _ = through([gateway_error("something broke"), close(1011, "Internal server error"),
                                    ("sleep", 0.3)])  # fmt: skip
    assert (response.outcome, response.reason, response.via_gateway) == ("failed", "server_error", False)


def test_the_reconnect_backs_off_as_after_a_direct_refusal_and_honours_a_passed_retry_after() -> None:
    """The gateway's 429 session backs off like a refused upgrade; a retry-after it passes on is kept."""
    plain, _, _ = through(refusal(429, 1013))
    passed, response, _ = through(refusal(429, 1013, then="; retry-after: 20"))
    assert plain.retry_after is None and passed.retry_after == 20.0 and response.via_gateway
    direct = {"ended_by": "handshake_failed", "retry_after": None}
    assert Backoff(rng=random.Random(1)).after(to_row(plain)) == Backoff(rng=random.Random(1)).after(direct) > 0
    assert Backoff(rng=random.Random(1)).after(to_row(passed)) == 20.0


def test_two_refused_sessions_in_one_run_keep_two_trace_files(tmp_path: Path) -> None:
    """Every session refused before it had a session id wrote traces/nosession_turn0.json: only the last survived."""
    writer = RunWriter(tmp_path)
    sink = UserSink(WriterSink(writer, OutcomeBoard()), None, {"run_id": "t", "worker_id": "w0", "user_id": 1})
    for _ in range(2):  # one user, reconnecting after each refusal
        server = RawServer(refusal(429, 1013))
        RealtimeSession(target(server.url, url_override=server.url), QUICK, SessionConfig(**FAST), sink,
                        run_id="t", worker_id="w0", user_id=1).run()  # fmt: skip
        server.join()
    writer.close()
    files = sorted(p.name for p in (tmp_path / "traces").iterdir())
    assert len(files) == 2 and all(name.startswith("nosession_w0-u1-") for name in files), files
