"""The wire layer alone, driven with bytes: no socket, no clock (what the transports are shells over)."""

from __future__ import annotations

from loadtest.session.link import CLOSE_ABNORMAL
from loadtest.session.wire import ClientWire
from tests.session.rawserver import frame
from tests.session.test_transport_frames import EXPECTED, WIRE, open_wire


def test_the_upgrade_request_carries_the_headers_and_a_refusal_is_explained() -> None:
    wire = ClientWire("ws://127.0.0.1:9/v1/realtime?model=x")
    wire.start_handshake([("Authorization", "Bearer k"), ("OpenAI-Beta", "realtime=v1")])
    assert wire.has_data_to_send
    (request,) = wire.data_to_send()
    assert request.startswith(b"GET /v1/realtime?model=x HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Bearer k\r\n" in request and b"\r\nOpenAI-Beta: realtime=v1\r\n" in request
    assert not wire.has_data_to_send and wire.response is None and wire.upgrade_error is None
    body = b'{"error":{"code":"invalid_api_key"}}'
    refusal = (b"HTTP/1.1 401 Unauthorized\r\nx-request-id: req_9\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
    assert wire.receive(refusal, 1.0) == []
    assert wire.response is not None and not wire.open
    assert wire.upgrade_error == 'HTTP 401 Unauthorized: {"error":{"code":"invalid_api_key"}}'
    assert wire.headers_of_note() == {"x-request-id": "req_9"}


def test_a_peer_that_hangs_up_before_answering_is_a_failed_connection() -> None:
    wire = ClientWire("ws://127.0.0.1:9/")
    wire.start_handshake([])
    wire.data_to_send()
    assert wire.receive(b"", 2.0) == []
    assert wire.connection_failed and wire.response is None
    assert wire.ended is not None and wire.ended.code == CLOSE_ABNORMAL


def test_messages_come_out_and_the_pong_and_close_reply_wait_to_be_sent() -> None:
    wire = open_wire()
    assert wire.receive(WIRE, 3.0) == EXPECTED
    assert wire.ended is not None and (wire.ended.code, wire.ended.reason, wire.ended.t) == (1000, "bye", 3.0)
    assert wire.has_data_to_send
    written = b"".join(wire.data_to_send())
    assert written[0] == 0x8A and b"\x88" in written[1:]  # a pong, then the close reply
    assert not wire.has_data_to_send


def test_a_client_close_is_not_the_servers_doing() -> None:
    wire = open_wire()
    wire.send_close(1000, "done")
    (close, *_) = wire.data_to_send()
    assert close[0] == 0x88 and not wire.open
    wire.receive(frame(b"\x03\xe8", opcode=0x8), 4.0)
    assert wire.ended is not None and wire.ended.by_server is False and wire.ended.code == 1000


def test_a_text_frame_that_is_not_utf8_fails_the_connection_with_1007() -> None:
    """RFC 6455 8.1: the fast path cut it out and handed it on (counted as garbage, then a deadline)."""
    wire = open_wire()
    got = wire.receive(frame(b'{"a":1}') + frame(b'{"x":"\xc3\x28"}') + frame(b'{"b":2}'), 5.0)
    assert got == [b'{"a":1}']  # nothing after the bad frame is delivered
    assert wire.ended is not None and (wire.ended.code, wire.ended.by_server, wire.ended.t) == (1007, True, 5.0)
    assert wire.ended.protocol_error == "invalid UTF-8 in a text frame at byte 6 of 10"
    (close,) = wire.data_to_send()
    assert close[0] == 0x88 and not wire.open  # the close frame (1007) waits to be written


def test_a_fragmented_text_message_is_checked_whole_and_binary_and_utf8_text_pass() -> None:
    wire = open_wire()
    bad = frame(b'{"x":"\xe2\x82', fin=False) + frame(b'"}', opcode=0x0)  # a character cut short
    assert wire.receive(bad, 6.0) == [] and wire.ended is not None and wire.ended.code == 1007
    wire = open_wire()
    split = frame('{"x":"\u20ac'.encode()[:-1], fin=False) + frame('\u20ac"}'.encode()[2:], opcode=0x0)
    good = ['{"x":"caf\u00e9"}'.encode(), '{"x":"\u20ac"}'.encode(), b"\xff\xfe"]
    assert wire.receive(frame(good[0]) + split + frame(good[2], opcode=0x2), 7.0) == good
    assert wire.ended is None
