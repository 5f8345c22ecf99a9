"""One WebSocket connection: a plain (gevent-patched under Locust) socket; the ``websockets``
Sans-I/O :class:`~websockets.client.ClientProtocol` does the upgrade, control frames, fragments and
protocol errors, while whole unmasked data frames are cut out directly (see :meth:`data_received`).

No event loop and no extra thread: the caller's greenlet/thread does the handshake and sends,
one receiver greenlet/thread runs :meth:`WebSocketTransport.receive_loop`. Sends are serialised
by a lock so a pong written by the receiver never interleaves with an append written by the
sender. Frame masking uses websockets' C speedups. Nothing here raises for network or protocol
trouble: the handshake returns a :class:`Handshake` describing what happened and the receive
loop returns a :class:`CloseInfo`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import struct
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidURI
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from loadtest import __version__
from loadtest.protocol.targets import redact_text
from loadtest.session.concurrency import gevent_active as concurrency_gevent_active
from loadtest.session.concurrency import new_lock, spawn
from loadtest.session.lagstats import LagStats

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
USER_AGENT = f"rtload/{__version__}"
RECV_BYTES = 64 * 1024  # a 256 KiB buffer costs ~4x more per recv (allocation), for nothing at 6.5 KB deltas
CLOSE_ABNORMAL = 1006  # the connection was lost without a close frame
CLOSE_PROTOCOL_ERROR = 1002

_SSL_CONTEXT: ssl.SSLContext | None = None
# Linux SO_TIMESTAMP (== SCM_TIMESTAMP): a struct timeval of when the data reached the socket
_SO_TIMESTAMP: int | None = getattr(socket, "SO_TIMESTAMP", 29 if sys.platform == "linux" else None)
_TIMEVAL = struct.Struct("@qq")
_ANC_BYTES = socket.CMSG_SPACE(_TIMEVAL.size) if hasattr(socket, "CMSG_SPACE") else 64
# how long the newest bytes of a read had waited in the socket (ms, from the kernel's arrival stamp;
# plain sockets only): a receiver that falls behind reads deltas late and together, and their
# timings with them. Read once a second into the harness's health rows.
RECEIVE_LAG = LagStats()


def _kernel_stamp(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    """The SO_TIMESTAMP receive time (Unix seconds) in recvmsg's ancillary data, if any."""
    for _level, kind, payload in ancillary:
        if kind == _SO_TIMESTAMP and len(payload) >= _TIMEVAL.size:
            sec, usec = _TIMEVAL.unpack_from(payload)
            return sec + usec * 1e-6
    return None


class _MaskKeys:
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


_MASK_KEYS = _MaskKeys()


def _text_frame(payload: bytes) -> bytes:
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


def shared_ssl_context() -> ssl.SSLContext:
    """The process's one client SSLContext, created on first use (after gevent's patching)."""
    global _SSL_CONTEXT
    if _SSL_CONTEXT is None:
        _SSL_CONTEXT = ssl.create_default_context()
    return _SSL_CONTEXT


@dataclass(slots=True)
class Handshake:
    """What the upgrade did."""

    ok: bool = False
    status: int | None = None  # 101, the refusing HTTP status, or None when no HTTP response came
    ms: float | None = None  # connect() call -> response (or failure)
    error: str | None = None  # one line, secrets redacted
    headers: dict[str, str] = field(default_factory=dict)  # HEADERS_OF_NOTE present in the response
    t_start: float = 0.0
    t_end: float = 0.0

    @property
    def request_id(self) -> str | None:
        return self.headers.get("x-request-id") or self.headers.get("apim-request-id")

    @property
    def retry_after(self) -> float | None:
        value = self.headers.get("retry-after")
        if value is None:
            return None
        try:
            return float(value)
        except ValueError:
            return None


@dataclass(slots=True)
class CloseInfo:
    """How the connection ended."""

    code: int | None = None  # the close code received (1006 when the TCP connection just went away)
    reason: str = ""
    by_server: bool = True  # the server closed (frame or EOF) rather than this client
    protocol_error: str | None = None  # a frame this client could not parse (websockets failed the connection)
    t: float = 0.0


class WebSocketTransport:
    """A client WebSocket over a blocking (or gevent-cooperative) socket."""

    def __init__(
        self,
        *,
        max_message_bytes: int = 16 * 1024 * 1024,
        permessage_deflate: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self._max = max_message_bytes
        self._deflate = permessage_deflate
        self._ssl = ssl_context
        self._secrets = secrets
        self._sock: socket.socket | None = None
        self._proto: ClientProtocol | None = None
        self._lock = new_lock()
        self._pending: list = []  # frames that arrived with the 101
        self._backlog: list[bytes] | None = None  # bytes a cooperative send could not write yet (helper writing)
        self._cooperative = False  # gevent socket: non-blocking writes, backlog helper
        self._rbuf = b""  # the start of a frame whose rest has not arrived
        self._owe = 0  # bytes of a frame websockets' parser has begun that it still needs
        self._parts: list[bytes] | None = None  # a fragmented message being reassembled
        self._reactor_fd: int | None = None  # set while the shared receiver reads this connection
        self._tls = False  # wss:// (set by connect)
        self._urgent = False  # a response waits for its first audio: the shared receiver reads us first
        self._closing_by_client = False
        self._kernel_stamps = False  # receive times come from SO_TIMESTAMP (plain sockets on Linux)
        self._stage = "TCP connect"  # where a handshake timeout happened
        self.bytes_sent = 0
        self.bytes_received = 0

    # -- handshake ---------------------------------------------------------------------------
    def connect(self, url: str, headers: Iterable[tuple[str, str]], timeout: float) -> Handshake:
        """Open the TCP (and TLS) connection and perform the upgrade. Never raises."""
        hs = Handshake(t_start=time.time())
        t0 = time.perf_counter()
        try:
            self._connect(url, headers, timeout, hs)
        except InvalidURI as exc:
            hs.error = f"bad URL: {exc}"
        except TimeoutError:
            hs.error = f"timed out after {timeout:g}s in the {self._stage}"
        except ssl.SSLError as exc:
            hs.error = f"TLS error: {exc}"
        except OSError as exc:
            hs.error = f"{type(exc).__name__}: {exc.strerror or exc}"
        except Exception as exc:  # anything else the stack throws at a strange peer
            hs.error = f"{type(exc).__name__}: {exc}"
        hs.ms = (time.perf_counter() - t0) * 1000.0
        hs.t_end = time.time()
        if hs.error:  # redacted before the cut: a cut would leave a piece of a secret unmatched
            hs.error = redact_text(hs.error.replace("\n", " "), self._secrets)[:300]
        if not hs.ok:
            self.abort()
            self.release()
        return hs

    def _connect(self, url: str, headers: Iterable[tuple[str, str]], timeout: float, hs: Handshake) -> None:
        uri = parse_uri(url)
        extensions = None
        if self._deflate:
            from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

            extensions = [ClientPerMessageDeflateFactory()]
        proto = ClientProtocol(uri, extensions=extensions, max_size=self._max)
        self._proto = proto
        deadline = time.monotonic() + timeout
        sock = socket.create_connection((uri.host, uri.port), timeout=timeout)
        self._sock = sock
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._tls = uri.secure
        if uri.secure:
            self._stage = "TLS handshake"
            ctx = self._ssl or shared_ssl_context()
            sock = ctx.wrap_socket(sock, server_hostname=uri.host)
            self._sock = sock
        self._stage = "HTTP upgrade"
        request = proto.connect()
        request.headers["User-Agent"] = USER_AGENT
        for name, value in headers:
            request.headers[name] = value
        proto.send_request(request)
        self._write_blocking(proto.data_to_send())
        response: Response | None = None
        while response is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining)
            data = sock.recv(RECV_BYTES)
            if not data:
                proto.receive_eof()
            else:
                self.bytes_received += len(data)
                proto.receive_data(data)
            events = proto.events_received()
            for i, event in enumerate(events):
                if isinstance(event, Response):
                    response = event
                    self._pending = events[i + 1 :]
                    break
            if response is None and not data:
                raise ConnectionError(proto.handshake_exc or "connection closed before the upgrade response")
        hs.status = response.status_code
        for name in HEADERS_OF_NOTE:
            value = response.headers.get(name)
            if value is not None:
                hs.headers[name] = value
        # (the state may already be CLOSING when frames, even a close, came in the 101's segment)
        if proto.handshake_exc is not None or response.status_code != 101:
            body = bytes(response.body or b"")[:2000].decode("utf-8", "replace").strip()  # cut after redaction
            detail = f"HTTP {response.status_code} {response.reason_phrase}".strip()
            if response.status_code == 101:
                detail += f" ({proto.handshake_exc})"
            hs.error = detail + (f": {body}" if body else "")
            return
        sock.settimeout(None)
        if _SO_TIMESTAMP is not None and not uri.secure:
            try:
                sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMP, 1)
                self._kernel_stamps = True
            except OSError:
                pass
        self._cooperative = hasattr(sock, "_sock") and concurrency_gevent_active()
        hs.ok = True

    # -- sending -----------------------------------------------------------------------------
    def send(self, message: bytes) -> bool:
        """Send one text message; False when the connection is no longer open.

        Under gevent this never blocks the caller (the shared audio clock, the shared receiver):
        what the socket cannot take right now is queued and written by a helper task of this
        connection; later writes queue behind it, so bytes stay in order. With threads it writes
        the whole frame (serialised by a lock with the receiver's pongs).
        """
        proto = self._proto
        if proto is None or self._sock is None or proto.state is not State.OPEN:
            return False
        if self._deflate:  # compressed frames: websockets builds them
            with self._lock:
                try:
                    proto.send_text(message)
                    chunks = proto.data_to_send()
                except Exception:
                    return False
                return self._write(chunks)
        frame = _text_frame(message)
        if self._cooperative:
            return self._write_cooperative((frame,))
        with self._lock:
            return self._write_blocking((frame,))

    send_paced = send  # the shared audio clock's name for it (the clock runs only under gevent)

    def _write_queued(self) -> None:
        """Write what websockets queued (a pong, the close frame, the end of the stream)."""
        proto = self._proto
        if proto is None:
            return
        if self._cooperative:
            self._write_cooperative(proto.data_to_send())
            return
        with self._lock:
            self._write_blocking(proto.data_to_send())

    def _write(self, chunks: Iterable[bytes]) -> bool:
        return self._write_cooperative(chunks) if self._cooperative else self._write_blocking(chunks)

    def _write_blocking(self, chunks: Iterable[bytes]) -> bool:
        sock = self._sock
        if sock is None:
            return False
        try:
            for chunk in chunks:
                if chunk:
                    sock.sendall(chunk)
                    self.bytes_sent += len(chunk)
                else:  # SEND_EOF
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_WR)
        except OSError:
            return False
        return True

    def _write_cooperative(self, chunks: Iterable[bytes]) -> bool:
        """Non-blocking write under gevent (never yields, so it needs no lock); the rest goes to
        the backlog, written by :meth:`_drain`."""
        sock = self._sock
        if sock is None:
            return False
        if self._backlog is not None:  # a helper is writing: queue behind it
            self._backlog.extend(chunks)
            return True
        # gevent's SSL send() would wait: write to TLS directly (a plain socket is not asked for
        # _sslobj: its wrapper's __getattr__ would raise and catch an AttributeError per frame)
        sslobj = sock._sslobj if self._tls else None
        raw = sock._sock
        chunks = list(chunks) if not isinstance(chunks, (list, tuple)) else chunks
        for i, chunk in enumerate(chunks):
            if not chunk:
                self._backlog = list(chunks[i:])
                break
            try:
                n = sslobj.write(chunk) if sslobj is not None else raw.send(chunk)
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                n = 0
            except OSError:
                return False
            self.bytes_sent += n
            if n < len(chunk):
                self._backlog = [chunk[n:], *chunks[i + 1 :]]
                break
        else:
            return True
        spawn(self._drain, "rtload-send-backlog")
        return True

    def _drain(self) -> None:
        """Write the backlog (blocking this helper only), then hand writing back to the callers."""
        while True:
            backlog, sock = self._backlog, self._sock
            if not backlog or sock is None:
                self._backlog = None
                return
            chunk = backlog.pop(0)
            try:
                if chunk:
                    sock.sendall(chunk)
                    self.bytes_sent += len(chunk)
                else:  # SEND_EOF
                    sock.shutdown(socket.SHUT_WR)
            except OSError:
                self._backlog = None
                return

    # -- receiving ---------------------------------------------------------------------------
    def receive_loop(self, on_message: Callable[[bytes, float], None]) -> CloseInfo:
        """Deliver every text (or binary) message with its arrival time until the connection ends.

        Pings are answered (the protocol queues the pong; it is flushed here). Never raises for
        network trouble; exceptions from ``on_message`` propagate. Under gevent, plain (``ws://``)
        connections are read by the process's shared receiver (:mod:`loadtest.session.reactor`):
        this call then waits until that loop saw the connection end.
        """
        proto, sock = self._proto, self._sock
        if proto is None or sock is None:
            return CloseInfo(code=CLOSE_ABNORMAL, reason="not connected", t=time.time())
        pending, self._pending = self._pending, []
        info = self._frames_received(pending, time.time(), on_message) if pending else None
        if info is not None:
            return info
        if self.shared_receiver_ok():
            from loadtest.session.reactor import REACTOR

            return REACTOR.serve(self, on_message)
        # Under gevent, wait for the socket to be readable before recv: a cooperative recv on an
        # empty socket costs a failed syscall and a raised exception before it waits, on every
        # message. (Not for TLS, whose object may hold decrypted bytes the socket no longer shows.)
        wait = getattr(sock, "_wait", None)
        read_event = getattr(sock, "_read_event", None)
        if wait is None or read_event is None or hasattr(sock, "_sslobj"):
            wait = None
        # Arrival times come from the kernel (SO_TIMESTAMP, wall clock) where it gives them: the
        # time the bytes reached this host, not the time this process got round to reading them.
        kernel_stamps = self._kernel_stamps and not hasattr(sock, "_sslobj")
        while info is None:
            stamp = None
            try:
                if wait is not None:
                    wait(read_event)
                if kernel_stamps:
                    data, ancillary, _flags, _addr = sock.recvmsg(RECV_BYTES, _ANC_BYTES)
                    stamp = _kernel_stamp(ancillary)
                else:
                    data = sock.recv(RECV_BYTES)
            except Exception:
                data = b""
            if stamp is not None:
                RECEIVE_LAG.record((time.time() - stamp) * 1000.0)
            info = self.data_received(data, time.time() if stamp is None else stamp, on_message)
        return info

    def prioritise(self, urgent: bool) -> None:
        """Tell the shared receiver (if it reads this connection) to read it before the others
        while ``urgent``: a response waits for its first audio (or text) delta, the arrival whose
        time matters most (see :mod:`loadtest.session.reactor`)."""
        self._urgent = urgent
        if self._reactor_fd is not None:
            from loadtest.session.reactor import REACTOR

            REACTOR.prioritise(self, urgent)

    def shared_receiver_ok(self) -> bool:
        """True when the process's shared receiver may read this connection (gevent, plain socket)."""
        sock = self._sock
        if sock is None or hasattr(sock, "_sslobj") or not hasattr(sock, "_sock"):
            return False
        from loadtest.session.reactor import REACTOR

        return REACTOR.enabled and concurrency_gevent_active()

    def read_ready(self, on_message: Callable[[bytes, float], None]) -> CloseInfo | None:
        """One non-blocking read for the shared receiver: None while the connection lives."""
        sock = self._sock
        if sock is None:
            return self.data_received(b"", time.time(), on_message)
        raw = sock._sock  # the OS socket under gevent's wrapper: non-blocking, no wrapper cost
        stamp = None
        try:
            if self._kernel_stamps:
                data, ancillary, _flags, _addr = raw.recvmsg(RECV_BYTES, _ANC_BYTES)
                stamp = _kernel_stamp(ancillary)
            else:
                data = raw.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return None
        except Exception:
            data = b""
        if stamp is not None:
            RECEIVE_LAG.record((time.time() - stamp) * 1000.0)
        return self.data_received(data, time.time() if stamp is None else stamp, on_message)

    def data_received(self, data: bytes, now: float, on_message: Callable[[bytes, float], None]) -> CloseInfo | None:
        """Parse what arrived; deliver whole messages. Returns how the connection ended, if it did.

        Whole unfragmented text/binary frames from the server (nearly every frame: the audio
        deltas) are cut out here directly; anything else (control frames, fragments, a masked or
        oversized frame, compressed connections) goes through websockets' parser, which answers
        pings, runs the closing handshake and fails the connection on protocol errors. Frames are
        handed to that parser whole or as the exact continuation of one it has begun, so both
        always agree on where frames start.
        """
        proto = self._proto
        assert proto is not None
        if data:
            self.bytes_received += len(data)
        else:
            proto.receive_eof()
            return self._frames_received(proto.events_received(), now, on_message, eof=True)
        if self._owe or self._deflate:  # websockets is in the middle of a frame (or owns them all)
            if self._deflate:
                slow, data = data, b""
            else:
                cut = min(self._owe, len(data))
                slow, data = data[:cut], data[cut:]
                self._owe -= cut
            info = self._feed_parser(slow, now, on_message)
            if info is not None or not data:
                return info
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
                on_message(buf[off + head : end], now)
                off = end
                continue
            # anything else: websockets parses this frame (and what of it is still to come)
            stop = min(end, n) if b1 < 0x80 else n  # a masked frame's end is not worth computing
            self._owe = end - stop if b1 < 0x80 else 0
            self._rbuf = b""
            info = self._feed_parser(buf[off:stop], now, on_message)
            if info is not None:
                return info
            off = stop
            if self._owe:
                return None
        self._rbuf = buf[off:] if off < n else b""
        return None

    def _feed_parser(self, data: bytes, now: float, on_message: Callable[[bytes, float], None]) -> CloseInfo | None:
        proto = self._proto
        assert proto is not None
        proto.receive_data(data)
        return self._frames_received(proto.events_received(), now, on_message)

    def _frames_received(
        self, events: list, now: float, on_message: Callable[[bytes, float], None], eof: bool = False
    ) -> CloseInfo | None:
        """Deliver websockets' parsed frames; answer what the protocol queued (pong, close)."""
        proto = self._proto
        assert proto is not None
        info: CloseInfo | None = None
        for event in events:
            opcode = event.opcode
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                if event.fin:
                    on_message(event.data, now)
                else:
                    self._parts = [event.data]
            elif opcode is Opcode.CONT:
                if self._parts is None:
                    self._parts = []
                self._parts.append(event.data)
                if event.fin:
                    on_message(b"".join(self._parts), now)
                    self._parts = None
            elif opcode is Opcode.CLOSE and info is None:
                rcvd = proto.close_rcvd
                info = CloseInfo(
                    code=rcvd.code if rcvd is not None else 1005,
                    reason=rcvd.reason if rcvd is not None else "",
                    by_server=not self._closing_by_client,
                    t=now,
                )
        if proto.writes:
            self._write_queued()
        if info is None and proto.parser_exc is not None and not eof:  # (at EOF: "unexpected end")
            info = CloseInfo(
                code=CLOSE_PROTOCOL_ERROR,
                protocol_error=f"{type(proto.parser_exc).__name__}: {proto.parser_exc}"[:300],
                by_server=True,
                t=now,
            )
        if info is None and (eof or proto.state is State.CLOSED):
            info = CloseInfo(code=CLOSE_ABNORMAL, by_server=not self._closing_by_client, t=now)
        return info

    # -- closing -----------------------------------------------------------------------------
    @property
    def open(self) -> bool:
        return self._proto is not None and self._proto.state is State.OPEN

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (the receiver sees the server's answer). Never raises."""
        self._closing_by_client = True
        proto = self._proto
        if proto is None or proto.state is not State.OPEN:
            return
        try:
            proto.send_close(code, reason)
        except Exception:
            return
        self._write_queued()

    def release(self) -> None:
        """The connection is over and recorded: end websockets' parser generator, whose frame holds
        the protocol object that holds it, and drop the protocol's exceptions, whose tracebacks
        hold it too (reference cycles that only the cyclic collector frees)."""
        proto = self._proto
        if proto is None:
            return
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

    def abort(self) -> None:
        """Drop the TCP connection now (wakes a receiver blocked in recv). Idempotent."""
        if self._reactor_fd is not None:  # wake the receiver parked in the shared loop
            from loadtest.session.reactor import REACTOR

            REACTOR.aborted(self)
        sock, self._sock = self._sock, None
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
