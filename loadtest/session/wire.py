"""The client side of one WebSocket without I/O: bytes in, messages and bytes-to-send out.

:class:`ClientWire` does the upgrade (:meth:`~ClientWire.start_handshake`, then the response
read by :meth:`~ClientWire.receive`), cuts frames, masks what it sends, answers pings and runs
the closing handshake. It owns no socket and no clock: :meth:`~ClientWire.receive` takes the
bytes that arrived and their arrival time and returns the whole messages they completed
(:meth:`~ClientWire.feed` hands them to a callback instead: the transports' hot path, no list);
:meth:`~ClientWire.data_to_send` hands out what must be written (the upgrade request, pongs, the
close frame, the end of the stream). :attr:`~ClientWire.ended` says how the connection ended,
once it has. Tests drive it with bytes; the transports (:mod:`loadtest.session.transport`) are
the shells that read and write them.

Whole unfragmented text/binary frames from the server (nearly every frame: the audio deltas)
are cut out here directly (~3x cheaper than a general parser, see ``bench/bench_session.py``);
anything else (control frames, fragments, a masked or oversized frame, compressed connections)
goes through the ``websockets`` Sans-I/O :class:`~websockets.client.ClientProtocol`, which
answers pings, runs the closing handshake and fails the connection on protocol errors. Frames
are handed to that parser whole or as the exact continuation of one it has begun, so both always
agree on where frames start. Frame masking uses websockets' C speedups.

A text message that is not valid UTF-8 fails the connection with close 1007 (RFC 6455 8.1; the
parser does not check text payloads itself): it is not delivered, and :attr:`~ClientWire.ended`
says why (``protocol_error`` starts with :data:`~loadtest.session.link.INVALID_UTF8`). The check
costs one ``bytes.isascii()`` per text frame (the audio deltas are base64: ASCII); only a frame
with other bytes is decoded.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import WebSocketURI, parse_uri

from loadtest.session.link import (
    CLOSE_ABNORMAL,
    CLOSE_INVALID_DATA,
    CLOSE_NO_STATUS,
    CLOSE_PROTOCOL_ERROR,
    INVALID_UTF8,
    CloseInfo,
)

try:  # websockets' C extension; the pure-Python fallback gives the same bytes
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - only without the compiled extension
    from websockets.utils import apply_mask

# Response headers worth keeping from the upgrade (lower-case).
HEADERS_OF_NOTE: tuple[str, ...] = (
    "x-request-id",
    "apim-request-id",
    "x-ms-region",
    "retry-after",
    "x-ms-client-request-id",
)


class MaskKeys:
    """Client frame masking keys (RFC 6455 5.3: unpredictable) drawn from os.urandom in blocks,
    one syscall per 1,024 frames instead of one per frame."""

    __slots__ = ("_i", "_pool")

    def __init__(self) -> None:
        self._pool = b""
        self._i = 0

    def take(self) -> bytes:
        i = self._i
        if i + 4 > len(self._pool):
            self._pool = os.urandom(4096)
            i = 0
        self._i = i + 4
        return self._pool[i : i + 4]


_MASK_KEYS = MaskKeys()


def _utf8(data: bytes) -> bool:
    """True when ``data`` is valid UTF-8 (called only for payloads that are not all ASCII)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def text_frame(payload: bytes) -> bytes:
    """One masked, final, uncompressed text frame (what ``ClientProtocol.send_text`` would write)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x81, 0x80 | n))
    elif n < 65536:
        head = b"\x81\xfe" + n.to_bytes(2, "big")
    else:
        head = b"\x81\xff" + n.to_bytes(8, "big")
    mask = _MASK_KEYS.take()
    return b"".join((head, mask, apply_mask(payload, mask)))


class ClientWire:
    """One client WebSocket's protocol state (see the module docstring)."""

    def __init__(self, url: str, *, max_message_bytes: int = 16 * 1024 * 1024, permessage_deflate: bool = False):
        self.uri: WebSocketURI = parse_uri(url)  # raises InvalidURI for a bad URL
        extensions = None
        if permessage_deflate:
            from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

            extensions = [ClientPerMessageDeflateFactory()]
        self._proto = ClientProtocol(self.uri, extensions=extensions, max_size=max_message_bytes)
        self._max = max_message_bytes
        self._deflate = permessage_deflate
        self._rbuf = b""  # the start of a frame whose rest has not arrived
        self._owe = 0  # bytes of a frame websockets' parser has begun that it still needs
        self._parts: list[bytes] | None = None  # a fragmented message being reassembled
        self._text = False  # the message being reassembled is text (its whole must be UTF-8)
        self._closing_by_client = False
        self.response: Response | None = None  # the upgrade response, once it came
        self.ended: CloseInfo | None = None  # how the connection ended, once it did
        self.has_data_to_send = False  # something is queued for data_to_send() (a pong, the close)

    # -- the upgrade ------------------------------------------------------------------------
    def start_handshake(self, headers: list[tuple[str, str]]) -> None:
        """Queue the upgrade request (with ``headers``) for :meth:`data_to_send`."""
        proto = self._proto
        request = proto.connect()
        for name, value in headers:
            request.headers[name] = value
        proto.send_request(request)
        self.has_data_to_send = True

    @property
    def upgrade_error(self) -> str | None:
        """Why the upgrade failed (status line and body), or None when it succeeded or is pending."""
        response = self.response
        if response is None:
            return None
        exc = self._proto.handshake_exc
        if exc is None and response.status_code == 101:
            return None
        body = bytes(response.body or b"")[:2000].decode("utf-8", "replace").strip()
        detail = f"HTTP {response.status_code} {response.reason_phrase}".strip()
        if response.status_code == 101:
            detail += f" ({exc})"
        return detail + (f": {body}" if body else "")

    @property
    def connection_failed(self) -> str | None:
        """The peer closed before the upgrade response: why (None otherwise)."""
        if self.response is None and self.ended is not None:
            exc = self._proto.handshake_exc
            return str(exc) if exc is not None else "connection closed before the upgrade response"
        return None

    def headers_of_note(self) -> dict[str, str]:
        response = self.response
        if response is None:
            return {}
        return {name: value for name in HEADERS_OF_NOTE if (value := response.headers.get(name)) is not None}

    # -- state ------------------------------------------------------------------------------
    @property
    def open(self) -> bool:
        return self._proto.state is State.OPEN

    def release(self) -> None:
        """The connection is over and recorded: end websockets' parser generator, whose frame holds
        the protocol object that holds it, and drop the protocol's exceptions, whose tracebacks
        hold it too. Left as reference cycles they live until a full collection of the cyclic
        collector, which the harness makes rare, with the connection's whole graph (issue 22)."""
        proto = self._proto
        with contextlib.suppress(Exception):
            proto.parser.close()
        for exc in (proto.parser_exc, proto.handshake_exc):
            seen: set[int] = set()
            while exc is not None and id(exc) not in seen:
                seen.add(id(exc))
                exc.__traceback__ = None
                response = getattr(exc, "response", None)  # a refused upgrade: the two point at each other
                if getattr(response, "_exception", None) is not None:
                    response._exception = None
                exc = exc.__cause__ or exc.__context__
        proto.parser_exc = proto.handshake_exc = None

    def data_to_send(self) -> list[bytes]:
        """What must be written, in order (an empty chunk: shut the write side)."""
        self.has_data_to_send = False
        return self._proto.data_to_send()

    # -- sending ----------------------------------------------------------------------------
    def send_text(self, message: bytes) -> list[bytes]:
        """The bytes of one text message (masked; compressed when negotiated). Raises when the
        connection is not open."""
        if self._deflate:
            self._proto.send_text(message)
            return self._proto.data_to_send()
        if self._proto.state is not State.OPEN:
            raise ConnectionError("the connection is not open")
        return [text_frame(message)]

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (the close frame is queued for :meth:`data_to_send`)."""
        self._closing_by_client = True
        if self._proto.state is State.OPEN:
            self._proto.send_close(code, reason)
            self.has_data_to_send = True

    def client_closing(self) -> None:
        """This client ends the connection (no close frame): its end is not the server's doing."""
        self._closing_by_client = True

    # -- receiving --------------------------------------------------------------------------
    def receive(self, data: bytes, t: float) -> list[bytes]:
        """Take bytes that arrived at ``t``; return the messages they completed. Empty ``data`` is
        the end of the stream. :attr:`ended` is set once the connection is over."""
        out: list[bytes] = []
        append = out.append
        self.feed(data, t, lambda message, _t: append(message))
        return out

    def feed(self, data: bytes, t: float, on_message: Callable[[bytes, float], None]) -> CloseInfo | None:
        """:meth:`receive`, handing each message to ``on_message(message, t)`` as it is cut;
        returns :attr:`ended`. (An exception from ``on_message`` propagates.)"""
        if not data:
            self._proto.receive_eof()
            self._events(self._proto.events_received(), t, on_message, eof=True)
            return self.ended
        if self.response is None:  # still upgrading: websockets reads the response
            self._proto.receive_data(data)
            self._events(self._proto.events_received(), t, on_message)
            return self.ended
        if self._owe or self._deflate:  # websockets is in the middle of a frame (or owns them all)
            if self._deflate:
                slow, data = data, b""
            else:
                cut = min(self._owe, len(data))
                slow, data = data[:cut], data[cut:]
                self._owe -= cut
            if self._parse(slow, t, on_message) or not data:
                return self.ended
        buf = self._rbuf + data if self._rbuf else data
        n = len(buf)
        off = 0
        limit = self._max
        while n - off >= 2:
            b0 = buf[off]
            b1 = buf[off + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if n - off < 4:
                    break
                length = int.from_bytes(buf[off + 2 : off + 4], "big")
                head = 4
            elif length == 127:
                if n - off < 10:
                    break
                length = int.from_bytes(buf[off + 2 : off + 10], "big")
                head = 10
            end = off + head + length
            # FIN set, RSV clear, text or binary, unmasked, within the size limit, no fragment open
            if (b0 == 0x81 or b0 == 0x82) and b1 < 0x80 and length <= limit and self._parts is None:
                if end > n:
                    break  # the rest of this frame is still on its way
                payload = buf[off + head : end]
                if b0 == 0x81 and not payload.isascii() and not _utf8(payload):
                    self._invalid_utf8(payload, t)
                    self._rbuf = b""
                    return self.ended
                on_message(payload, t)
                off = end
                continue
            # anything else: websockets parses this frame (and what of it is still to come)
            stop = min(end, n) if b1 < 0x80 else n  # a masked frame's end is not worth computing
            self._owe = end - stop if b1 < 0x80 else 0
            self._rbuf = b""
            if self._parse(buf[off:stop], t, on_message):
                return self.ended
            off = stop
            if self._owe:
                return None
        self._rbuf = buf[off:] if off < n else b""
        return None

    def _parse(self, data: bytes, t: float, on_message: Callable[[bytes, float], None]) -> bool:
        """Feed websockets' parser; True once the connection ended."""
        self._proto.receive_data(data)
        self._events(self._proto.events_received(), t, on_message)
        return self.ended is not None

    def _message(self, data: bytes, t: float, on_message: Callable[[bytes, float], None]) -> None:
        """A whole message from websockets' parser: delivered, unless it is text and not UTF-8."""
        if self._text and not data.isascii() and not _utf8(data):
            self._invalid_utf8(data, t)
        else:
            on_message(data, t)

    def _invalid_utf8(self, data: bytes, t: float) -> None:
        """Fail the connection with 1007 (RFC 6455 8.1): queue the close frame, say why."""
        try:
            data.decode("utf-8")
            where = ""
        except UnicodeDecodeError as exc:
            where = f" at byte {exc.start} of {len(data)}"
        if self._proto.state is State.OPEN:
            self._proto.fail(CLOSE_INVALID_DATA, "invalid UTF-8")
            self.has_data_to_send = True
        self.ended = CloseInfo(
            code=CLOSE_INVALID_DATA, protocol_error=f"{INVALID_UTF8} in a text frame{where}", by_server=True, t=t
        )

    def _events(
        self, events: list[Any], t: float, on_message: Callable[[bytes, float], None], eof: bool = False
    ) -> None:
        """websockets' parsed events: the upgrade response, messages, the close."""
        proto = self._proto
        info: CloseInfo | None = self.ended
        for event in events:
            if isinstance(event, Response):
                self.response = event
                continue
            opcode = event.opcode
            if info is not None:
                break  # the connection failed (invalid UTF-8): nothing after it is delivered
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                self._text = opcode is Opcode.TEXT
                if event.fin:
                    self._message(event.data, t, on_message)
                    info = self.ended
                else:
                    self._parts = [event.data]
            elif opcode is Opcode.CONT:
                if self._parts is None:
                    self._parts = []
                self._parts.append(event.data)
                if event.fin:
                    data, self._parts = b"".join(self._parts), None
                    self._message(data, t, on_message)
                    info = self.ended
            elif opcode is Opcode.CLOSE and info is None:
                rcvd = proto.close_rcvd
                info = CloseInfo(
                    code=rcvd.code if rcvd is not None else CLOSE_NO_STATUS,
                    reason=rcvd.reason if rcvd is not None else "",
                    by_server=not self._closing_by_client,
                    t=t,
                )
        if info is None and proto.parser_exc is not None and not eof:  # (at EOF: "unexpected end")
            info = CloseInfo(
                code=CLOSE_PROTOCOL_ERROR,
                protocol_error=f"{type(proto.parser_exc).__name__}: {proto.parser_exc}"[:300],
                by_server=True,
                t=t,
            )
        if info is None and (eof or proto.state is State.CLOSED):
            info = CloseInfo(code=CLOSE_ABNORMAL, by_server=not self._closing_by_client, t=t)
        self.ended = info
        if proto.writes:
            self.has_data_to_send = True
