"""The transport's own frame handling: the receive fast path (whole text/binary frames cut out
directly, everything else through websockets' parser) and the send path (frames built here).

Both must give exactly what websockets alone would, however the bytes are split by the network.
No network is needed: the wire layer is driven with bytes (its upgrade too), and the transport
is put over it with a socketpair for its writes.
"""

from __future__ import annotations

import base64
import hashlib
import random
import socket

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from loadtest.session.link import CLOSE_ABNORMAL, CLOSE_PROTOCOL_ERROR, CloseInfo
from loadtest.session.transport import WebSocketTransport
from loadtest.session.wire import ClientWire, text_frame
from tests.session.rawserver import GUID, frame


def open_wire(max_bytes: int = 16 * 1024 * 1024) -> ClientWire:
    """A wire past its upgrade, driven with bytes: the request it wrote, the server's 101 back."""
    wire = ClientWire("ws://127.0.0.1/", max_message_bytes=max_bytes)
    wire.start_handshake([])
    (request,) = wire.data_to_send()
    key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
               if line.lower().startswith(b"sec-websocket-key"))  # fmt: skip
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    messages = wire.receive(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n",
        0.0,
    )
    assert messages == [] and wire.open and wire.upgrade_error is None and wire.ended is None
    return wire


def _open_transport(max_bytes: int = 16 * 1024 * 1024) -> tuple[WebSocketTransport, socket.socket]:
    """A transport past its handshake; returns it with the peer end of its socket."""
    mine, peer = socket.socketpair()
    peer.settimeout(2)
    return WebSocketTransport.over(mine, open_wire(max_bytes), max_message_bytes=max_bytes), peer


def _feed(transport: WebSocketTransport, wire: bytes, sizes: list[int]) -> tuple[list[bytes], CloseInfo | None]:
    messages: list[bytes] = []
    info = None
    offset = 0
    for size in sizes:
        chunk = wire[offset : offset + size]
        offset += size
        if not chunk:
            break
        info = transport.data_received(chunk, 1.0, lambda data, t: messages.append(bytes(data)))
        if info is not None:
            break
    return messages, info


BIG = bytes(range(256)) * 300  # 76,800 bytes: a 64-bit length
MEDIUM = b'{"type":"response.output_audio.delta","delta":"' + b"A" * 6400 + b'"}'  # a 16-bit length
STREAM = [
    (frame(b'{"type":"session.created"}'), [b'{"type":"session.created"}']),
    (frame(MEDIUM), [MEDIUM]),
    (frame(b"are-you-there", opcode=0x9), []),  # a ping between two data frames
    (frame(BIG, opcode=0x2), [BIG]),
    (frame(b'{"type":"resp', fin=False) + frame(b'onse.done"', opcode=0x0, fin=False) + frame(b"}", opcode=0x0),
     [b'{"type":"response.done"}']),
    (frame(b""), [b""]),  # an empty text message
    (frame(MEDIUM), [MEDIUM]),
    (frame(b"\x03\xe8bye", opcode=0x8), []),
]  # fmt: skip
WIRE = b"".join(part for part, _ in STREAM)
EXPECTED = [m for _, ms in STREAM for m in ms]


def _splits(seed: int) -> list[int]:
    if seed == 0:
        return [len(WIRE)]  # all at once
    if seed == 1:
        return [1] * len(WIRE)  # byte by byte: every header and length split
    rng = random.Random(seed)
    return [rng.randint(1, 9000) for _ in range(len(WIRE))]


@pytest.mark.parametrize("seed", range(12))
def test_every_split_of_the_stream_gives_the_same_messages(seed: int) -> None:
    transport, peer = _open_transport()
    messages, info = _feed(transport, WIRE, _splits(seed))
    assert messages == EXPECTED
    assert info is not None and (info.code, info.reason, info.by_server) == (1000, "bye", True)
    assert info.protocol_error is None
    # the ping was answered (masked pong with the ping's payload) and the close echoed
    written = peer.recv(65536)
    pong = written.find(b"\x8a\x8d")
    assert pong >= 0
    mask = written[pong + 2 : pong + 6]
    assert bytes(b ^ mask[i % 4] for i, b in enumerate(written[pong + 6 : pong + 19])) == b"are-you-there"
    assert b"\x88" in written[pong + 19 :]  # the close frame follows the pong


def test_a_masked_frame_from_the_server_is_a_protocol_error() -> None:
    transport, _ = _open_transport()
    masked = bytes([0x81, 0x80 | 4]) + b"abcd" + bytes(b ^ k for b, k in zip(b"hell", b"abcd", strict=True))
    messages, info = _feed(transport, frame(b"first") + masked + frame(b"never"), [4096])
    assert messages == [b"first"]
    assert info is not None and info.code == CLOSE_PROTOCOL_ERROR and "mask" in (info.protocol_error or "")


def test_a_frame_over_the_size_limit_fails_the_connection_without_buffering_it() -> None:
    transport, _ = _open_transport(max_bytes=1000)
    head = frame(b"x" * 5000)[:4]  # only the header and the start of a 5,000-byte frame have arrived
    messages, info = _feed(transport, frame(b"ok") + head + b"x" * 100, [4096])
    assert messages == [b"ok"]
    assert info is not None and info.code == CLOSE_PROTOCOL_ERROR and "PayloadTooBig" in (info.protocol_error or "")


def test_a_data_frame_inside_a_fragmented_message_is_a_protocol_error() -> None:
    transport, _ = _open_transport()
    wire = frame(b'{"a":', fin=False) + frame(b'{"b":1}')
    messages, info = _feed(transport, wire, [3, 5, 100])
    assert messages == []
    assert info is not None and info.code == CLOSE_PROTOCOL_ERROR


@pytest.mark.parametrize("cut", [1, 3, 9])
def test_end_of_stream_mid_frame_is_an_abnormal_close_not_a_protocol_error(cut: int) -> None:
    transport, _ = _open_transport()
    wire = frame(b"whole") + frame(MEDIUM)[:cut]
    messages, info = _feed(transport, wire, [len(wire)])
    assert messages == [b"whole"] and info is None  # the partial frame waits for its rest
    info = transport.data_received(b"", 2.0, lambda data, t: messages.append(data))
    assert info is not None and (info.code, info.protocol_error, info.t) == (CLOSE_ABNORMAL, None, 2.0)
    assert messages == [b"whole"]


def test_arrival_time_is_the_one_given_for_the_bytes_that_completed_the_message() -> None:
    transport, _ = _open_transport()
    seen: list[tuple[bytes, float]] = []
    wire = frame(b"one") + frame(MEDIUM)
    assert transport.data_received(wire[:100], 5.0, lambda d, t: seen.append((bytes(d), t))) is None
    assert transport.data_received(wire[100:], 6.0, lambda d, t: seen.append((bytes(d), t))) is None
    assert seen == [(b"one", 5.0), (MEDIUM, 6.0)]


# -- sending -----------------------------------------------------------------------------------------
def _parse_client_frames(wire: bytes) -> list[Frame]:
    reader = StreamReader()
    reader.feed_data(wire)
    reader.feed_eof()
    frames = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=True)
        try:
            while True:
                next(parser)
        except StopIteration as done:
            frames.append(done.value)
    return frames


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 6400, 65535, 65536, 70000])
def test_sent_frames_are_masked_final_text_frames_a_server_parses_back(size: int) -> None:
    payload = bytes(random.Random(size).randrange(256) for _ in range(size))
    wire = text_frame(payload) + text_frame(payload)
    first, second = _parse_client_frames(wire)
    for parsed in (first, second):
        assert parsed.opcode is Opcode.TEXT and parsed.fin and not (parsed.rsv1 or parsed.rsv2 or parsed.rsv3)
        assert parsed.data == payload
    if size >= 4:  # a fresh masking key per frame: the masked bytes differ
        half = len(wire) // 2
        assert wire[:half] != wire[half:]


def test_send_writes_the_frame_and_refuses_once_closing() -> None:
    transport, peer = _open_transport()
    assert transport.send(b'{"type":"input_audio_buffer.commit"}')
    (parsed,) = _parse_client_frames(peer.recv(65536))
    assert parsed.data == b'{"type":"input_audio_buffer.commit"}'
    assert transport.bytes_sent == len(text_frame(b'{"type":"input_audio_buffer.commit"}'))
    transport.close(1000, "done")
    assert transport.send(b"{}") is False
    closing = peer.recv(65536)
    assert closing[0] == 0x88  # the close frame went out, nothing after it
