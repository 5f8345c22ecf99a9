"""Refused upgrades, post-101 rejections, bad URLs and misbehaving peers never raise: each becomes a
response row for the turn that could not start plus a session row."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from loadtest.session.client import RealtimeSession
from loadtest.session.config import SessionConfig
from loadtest.session.scenario import get_scenario
from loadtest.session.sink import MemorySink
from tests.session.helpers import FAST, agreement, run_session, target
from tests.session.rawserver import SESSION_CREATED, SESSION_UPDATED, RawServer, event, frame

QUICK = get_scenario("quick_text")


def only(sink):
    assert len(sink.sessions) == 1 and len(sink.responses) == 1, (sink.sessions, sink.responses)
    return sink.sessions[0], sink.responses[0]


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("fault", "outcome", "reason"),
    [("handshake_5xx", "failed", "handshake_5xx"), ("handshake_429", "throttled", "handshake_429")],
)
def test_refused_upgrade_from_fault_injection(mock_server, fault, outcome, reason) -> None:
    mock = mock_server(overrides={f"faults.{fault}.rate": 1.0})
    sink, _ = run_session(mock.url, QUICK, target_kw={"provider": "azure"})
    session, response = only(sink)
    assert (response.outcome, response.reason) == (outcome, reason)
    assert session.ended_by == "handshake_failed" and session.handshake_status == response.handshake_status
    assert response.turn_index == 0 and response.trigger == "text" and response.session_id is None
    if fault == "handshake_429":
        assert session.retry_after is not None and session.retry_after >= 1
    result = agreement(sink, mock.truth())
    assert result.rate == 1.0 and not result.mismatches


@pytest.mark.e2e
def test_capacity_429_while_another_session_holds_the_slot(mock_server) -> None:
    mock = mock_server(overrides={"capacity.max_sessions": 1, "audio.speed": 1.0})
    holder_sink = MemorySink()
    holder = RealtimeSession(target(mock.url), QUICK, SessionConfig(**FAST), holder_sink)
    th = threading.Thread(target=holder.run)
    th.start()
    time.sleep(0.8)  # the holder is mid-answer (a real-time answer lasts seconds)
    sink, _ = run_session(mock.url, QUICK)
    holder.stop()
    th.join(10)
    session, response = only(sink)
    assert (response.outcome, response.reason) == ("throttled", "handshake_429")
    assert session.retry_after is not None
    truth = mock.truth()
    assert any(row["fault"] == "capacity_429" for row in truth)
    result = agreement(sink, [row for row in truth if row.get("kind") == "session" and row.get("status") == 429])
    assert result.rate == 1.0 and not result.mismatches
    assert [(r.outcome, r.reason) for r in holder_sink.responses] == [("cancelled", "client_cancelled")]


@pytest.mark.e2e
def test_rejections_by_url_shape_and_auth(mock_server) -> None:
    mock = mock_server()
    cases = [
        ({"provider": "azure", "api_key": "wrong"}, "failed", "handshake_401", "handshake_failed"),
        ({"provider": "azure", "deployment": "gpt-4o-realtime-preview-2024-10-01"}, "failed", "handshake_404",
         "handshake_failed"),
        ({"provider": "openai", "api_key": "wrong"}, "failed", "auth_rejected", "server_closed"),
        ({"provider": "openai", "deployment": "no-such-model"}, "failed", "invalid_model", "server_closed"),
        ({"provider": "openai", "dialect": "preview"}, "failed", "protocol_rejected", "server_closed"),
    ]  # fmt: skip
    for target_kw, outcome, reason, ended_by in cases:
        sink, _ = run_session(mock.url, QUICK, target_kw=target_kw)
        session, response = only(sink)
        assert (response.outcome, response.reason, session.ended_by) == (outcome, reason, ended_by), (
            target_kw,
            session,
        )
        if ended_by == "server_closed":
            assert session.handshake_status == 101 and session.close_code in (3000, 4000)
            assert response.error_code or response.close_code


@pytest.mark.e2e
def test_bad_url_and_refused_connection_are_connect_errors() -> None:
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens here now
    for url in (f"ws://127.0.0.1:{port}", "notaurl://", "ws://"):
        sink, _ = run_session(url, QUICK, target_kw={"url_override": url}, connect_timeout_s=2.0)
        session, response = only(sink)
        assert (response.outcome, response.reason) == ("failed", "connect_error"), url
        assert session.handshake_status is None and session.handshake_error


def test_secrets_never_reach_the_records() -> None:
    server = RawServer([], status_line=b"HTTP/1.1 401 Unauthorized")
    sink, _ = run_session(
        server.url,
        QUICK,
        target_kw={"api_key": "sk-very-secret", "url_override": server.url + "/x?api-key=sk-very-secret"},
    )
    session, response = only(sink)
    assert response.reason == "handshake_401" and "***" in session.url
    assert "sk-very-secret" not in repr(sink.sessions) + repr(sink.responses)


def test_garbage_text_frames_are_counted_and_the_answer_still_classified() -> None:
    answer = [
        SESSION_CREATED,
        SESSION_UPDATED,
        frame(b"this is not json"),
        frame(b"[1, 2, 3]"),
        frame(b"\x00\x01binary", opcode=0x2),
        event({"type": "response.created", "response": {"id": "resp_raw", "status": "in_progress"}}),
        event({"type": "response.done", "response": {"id": "resp_raw", "status": "failed", "status_details": {
            "type": "failed", "error": {"type": "server_error", "code": None, "message": "boom"}}}}),
        ("sleep", 0.3),
    ]  # fmt: skip
    server = RawServer(answer)
    sink, session = run_session(server.url, QUICK, target_kw={"url_override": server.url})
    assert [(r.outcome, r.reason) for r in sink.responses] == [("failed", "server_error")]
    assert session.garbage_messages == 3 and session.internal_errors == 0
    assert sink.responses[0].error_message == "boom" and sink.responses[0].session_id == "sess_raw"
    assert sink.sessions[0].ended_by in ("dropped", "client_closed")


def test_an_invalid_frame_mid_response_ends_it_as_dropped_with_the_close_code() -> None:
    answer = [
        SESSION_CREATED,
        SESSION_UPDATED,
        event({"type": "response.created", "response": {"id": "resp_raw", "status": "in_progress"}}),
        b"\x83\x05hello",  # reserved opcode 0x3: a protocol error
        ("sleep", 0.5),
    ]
    server = RawServer(answer)
    sink, _ = run_session(server.url, QUICK, target_kw={"url_override": server.url})
    session, response = only(sink)
    assert (response.outcome, response.reason) == ("failed", "connection_dropped")
    assert response.close_code == 1002 and session.ended_by == "error" and session.close_reason


def test_tcp_closed_right_after_the_upgrade() -> None:
    server = RawServer([SESSION_CREATED])
    sink, _ = run_session(server.url, QUICK, target_kw={"url_override": server.url})
    session, response = only(sink)
    assert (response.outcome, response.reason, response.close_code) == ("failed", "connection_dropped", 1006)
    assert session.ended_by == "dropped" and session.handshake_status == 101


def test_bad_accept_header_is_a_handshake_failure() -> None:
    server = RawServer([], status_line=b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade"
                       b"\r\nSec-WebSocket-Accept: bogus")  # fmt: skip
    sink, _ = run_session(server.url, QUICK, target_kw={"url_override": server.url})
    session, response = only(sink)
    assert (response.outcome, response.reason) == ("failed", "handshake_other")
    assert session.ended_by == "handshake_failed" and "Sec-WebSocket-Accept" in (session.handshake_error or "")


@pytest.mark.e2e
def test_refused_session_update_is_an_error_event_for_the_first_turn(fast_mock) -> None:
    sink, _ = run_session(fast_mock.url, QUICK, voice="nonexistent")
    session, response = only(sink)
    assert (response.outcome, response.reason, response.error_code) == ("failed", "error_event", "invalid_value")
    assert "nonexistent" in (response.error_message or "") and response.trace_file
    assert session.ended_by == "error" and session.session_id and session.session_id.startswith("sess_")


def test_tls_to_a_plain_tcp_peer_is_a_connect_error() -> None:
    server = RawServer([])
    url = f"wss://127.0.0.1:{server.port}"
    sink, _ = run_session(url, QUICK, target_kw={"url_override": url}, connect_timeout_s=2.0)
    session, response = only(sink)
    assert (response.outcome, response.reason) == ("failed", "connect_error")
    assert session.handshake_error == "timed out after 2s in the TLS handshake" and session.handshake_status is None
