"""Refused upgrades, post-101 rejections, bad URLs and misbehaving peers never raise: each becomes a
response row for the turn that could not start plus a session row."""

from __future__ import annotations

import socket
import ssl
import threading
import time

import pytest

from loadtest.session.client import RealtimeSession
from loadtest.session.config import SessionConfig
from loadtest.session.scenario import get_scenario
from loadtest.session.sink import MemorySink
from loadtest.session.transport import WebSocketTransport, shared_ssl_context
from tests.session.helpers import FAST, agreement, run_session, target
from tests.session.rawserver import (
    SESSION_CREATED,
    SESSION_UPDATED,
    RawServer,
    client_frames,
    event,
    failed_response,
    failed_session,
    frame,
)

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
    assert any(row.get("fault") == "capacity_429" for row in truth)
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


def test_a_server_echoing_the_key_in_an_error_leaves_it_in_no_record_or_trace() -> None:
    """A proxy that quotes the request back in a failed response.done: the key is blanked."""
    key = "sk-echoed-9f8e7d6c5b4a"
    server = RawServer(failed_session("resp_raw", f"upstream refused Authorization: Bearer {key} (api-key={key})"))
    sink, _ = run_session(server.url, QUICK, target_kw={"url_override": server.url, "api_key": key})
    assert [(r.outcome, r.reason) for r in sink.responses] == [("failed", "server_error")]
    assert "upstream refused" in (sink.responses[0].error_message or "")
    assert sink.traces, "a failed response keeps its trace"
    assert key not in repr(sink.sessions) + repr(sink.responses) + repr(sink.traces)


def test_garbage_text_frames_are_counted_and_the_answer_still_classified() -> None:
    answer = [
        SESSION_CREATED,
        SESSION_UPDATED,
        frame(b"this is not json"),
        frame(b"[1, 2, 3]"),
        frame(b"\x00\x01binary", opcode=0x2),
        *failed_response("resp_raw"),
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


class _Token:
    """A stand-in for the azure-identity token provider (auth "entra")."""

    def __init__(self, token: str) -> None:
        self.value = token

    def token(self) -> str:
        return self.value


KEY, TOKEN = "AZk9Q7wm2Xr4", "eyTokEn5Hq3Wd"
GATEWAY = {"X-Gateway-Route": "blue", "Ocp-Apim-Subscription-Key": "APm4Vt8Zq1Lc", "X-Api-Key": "GWx7Rb2Nq9Ke"}
AUTHS = {
    "api-key": ({"auth": "api-key", "api_key": KEY}, f"api-key: {KEY}"),
    "bearer": ({"auth": "bearer", "api_key": KEY}, f"Authorization: Bearer {KEY}"),
    "entra": ({"auth": "entra", "api_key": None}, f"Authorization: Bearer {TOKEN}"),
}
SECRETS = (KEY, TOKEN, GATEWAY["Ocp-Apim-Subscription-Key"], GATEWAY["X-Api-Key"])


def _run_gateway(server: RawServer, auth: str) -> MemorySink:
    target_kw, _ = AUTHS[auth]
    sink = MemorySink()
    tgt = target(server.url, url_override=server.url, extra_headers=dict(GATEWAY), **target_kw)
    session = RealtimeSession(tgt, QUICK, SessionConfig(**FAST), sink, token_provider=_Token(TOKEN))
    session.run()
    server.join()
    return sink


def _leaks(sink: MemorySink) -> list[str]:
    """Any 5-character piece of a secret in the records or traces (a cut secret leaks as well)."""
    text = repr(sink.sessions) + repr(sink.responses) + repr(sink.rate_limits) + repr(sink.traces)
    return [s for s in SECRETS for i in range(len(s) - 4) if s[i : i + 5] in text]


@pytest.mark.parametrize("auth", sorted(AUTHS))
def test_gateway_headers_reach_the_upgrade_and_no_secret_reaches_the_records(auth) -> None:
    server = RawServer(failed_session("resp_gw"))
    sink = _run_gateway(server, auth)
    head = server.request.decode()
    lines = head.split("\r\n")
    assert AUTHS[auth][1] in lines, head
    for name, value in GATEWAY.items():
        assert f"{name}: {value}" in lines, head
    assert sum(line.lower().startswith("authorization:") for line in lines) == (auth != "api-key")
    assert [(r.outcome, r.reason) for r in sink.responses] == [("failed", "server_error")]
    assert not _leaks(sink)


@pytest.mark.parametrize("auth", sorted(AUTHS))
def test_a_refusal_that_echoes_the_request_keeps_no_secret_in_the_records(auth) -> None:
    """A gateway that puts the request it got in its 401 body: the handshake error keeps the body
    (the route header shows it did) with every auth and gateway secret redacted, whole or cut."""
    server = RawServer([], status_line=b"HTTP/1.1 401 Unauthorized", echo=True)
    sink = _run_gateway(server, auth)
    session, response = only(sink)
    assert response.reason == "handshake_401" and session.handshake_status == 401
    assert "X-Gateway-Route: blue" in (session.handshake_error or ""), session.handshake_error
    assert "***" in (session.handshake_error or "")
    assert not _leaks(sink), session.handshake_error


def test_a_secret_at_the_cut_of_the_handshake_error_is_redacted_whole() -> None:
    """The error keeps 300 characters: the secret is redacted before the cut, or its start would stay."""
    prefix = "HTTP 403 Forbidden: "
    body = b"x" * (296 - len(prefix)) + b" " + SECRETS[2].encode() + b" more"  # the secret spans character 300
    server = RawServer([], status_line=b"HTTP/1.1 403 Forbidden", body=body)
    hs = WebSocketTransport(secrets=(SECRETS[2],)).connect(server.url, [], timeout=5)
    server.join()
    assert hs.status == 403 and hs.error is not None and hs.error.startswith(prefix + "xxx")
    assert len(hs.error) == 300 and hs.error.endswith(" ***")


def test_every_tls_connection_shares_the_one_ssl_context(monkeypatch) -> None:
    """Two transports and a session to wss:// targets make their TLS objects from the same SSLContext
    (no TLS server: the spy records the context and refuses, which must come out as a connect error)."""
    used: list[ssl.SSLContext] = []

    def spy(
        self: ssl.SSLContext, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, *args: object, **kwargs: object
    ) -> ssl.SSLObject:
        used.append(self)
        raise ssl.SSLError("spy: no TLS here")

    monkeypatch.setattr(ssl.SSLContext, "wrap_bio", spy)
    listener = socket.create_server(("127.0.0.1", 0))  # the TCP connects complete in its backlog
    url = f"wss://127.0.0.1:{listener.getsockname()[1]}/v1/realtime"
    try:
        handshakes = [WebSocketTransport().connect(url, [], timeout=2) for _ in range(2)]
        sink, _ = run_session(url, QUICK, target_kw={"url_override": url}, connect_timeout_s=2.0)
        own = ssl.create_default_context()
        WebSocketTransport(ssl_context=own).connect(url, [], timeout=2)
    finally:
        listener.close()
    assert all((h.error or "").startswith("TLS error:") and "spy: no TLS here" in (h.error or "") for h in handshakes)
    assert sink.outcomes() == [("failed", "connect_error")]
    assert len(used) == 4 and used[0] is used[1] is used[2] is shared_ssl_context()
    assert used[0].verify_mode == ssl.CERT_REQUIRED and used[0].check_hostname
    assert used[3] is own  # a context given to the transport wins


def test_a_response_done_for_an_id_never_seen_is_counted_not_a_row() -> None:
    """Issue 23 item 10: it became a second, truncated/missing_audio row."""
    ghost = event({"type": "response.done", "event_id": "e9", "response": {"id": "resp_ghost", "status": "completed",
                                                                            "output": []}})  # fmt: skip
    server = RawServer([SESSION_CREATED, SESSION_UPDATED, *failed_response("resp_raw"), ghost, ("sleep", 0.3)])
    sink, _ = run_session(server.url, QUICK, target_kw={"url_override": server.url})
    session, response = only(sink)
    assert (response.response_id, response.outcome, response.reason) == ("resp_raw", "failed", "server_error")
    assert session.unknown_response_events == 1


def test_invalid_utf8_in_a_text_frame_closes_1007_and_fails_the_response() -> None:
    """Issue 23 item 11: it was counted as garbage and the response ran to its deadline."""
    bad = frame(b'{"type":"response.output_text.delta","response_id":"resp_raw","delta":"\xc3\x28"}')
    created = event({"type": "response.created", "response": {"id": "resp_raw", "status": "in_progress"}})
    server = RawServer([SESSION_CREATED, SESSION_UPDATED, created, bad, ("sleep", 0.5)])
    t0 = time.monotonic()
    sink, client = run_session(server.url, QUICK, target_kw={"url_override": server.url})
    server.join()
    session, response = only(sink)
    assert (response.outcome, response.reason, response.close_code) == ("failed", "invalid_utf8", 1007)
    assert session.close_code == 1007 and "invalid UTF-8" in (session.close_reason or "")
    assert session.ended_by == "error" and client.garbage_messages == 0
    assert time.monotonic() - t0 < FAST["response_idle_s"]  # not run to a deadline
    closes = [payload for opcode, payload in client_frames(server.received) if opcode == 0x8]
    assert closes and int.from_bytes(closes[0][:2], "big") == 1007  # the client said why (RFC 6455 7.4.1)


def test_an_upgrade_then_silence_is_a_session_that_never_became_ready() -> None:
    """Issue 23 item 12: it was response_timeout, like a slow answer."""
    server = RawServer([("sleep", 3.0)])
    t0 = time.monotonic()
    sink, _ = run_session(server.url, QUICK, target_kw={"url_override": server.url}, setup_timeout_s=1.0)
    session, response = only(sink)
    assert (response.outcome, response.reason) == ("failed", "session_not_ready")
    assert session.ended_by == "session_not_ready" and session.handshake_status == 101
    assert response.t_trigger is not None and time.monotonic() - t0 < FAST["response_deadline_s"]
