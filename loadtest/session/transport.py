"""One WebSocket connection: a plain (gevent-patched under Locust) socket driven by the
``websockets`` Sans-I/O :class:`~websockets.client.ClientProtocol`.

No event loop and no extra thread: the caller's greenlet/thread does the handshake and sends,
one receiver greenlet/thread runs :meth:`WebSocketTransport.receive_loop`. Sends are serialised
by a lock so a pong written by the receiver never interleaves with an append written by the
sender. Frame masking uses websockets' C speedups. Nothing here raises for network or protocol
trouble: the handshake returns a :class:`Handshake` describing what happened and the receive
loop returns a :class:`CloseInfo`.
"""

from __future__ import annotations

import contextlib
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
from loadtest.session.concurrency import new_lock, spawn

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
        self._backlog: list[bytes] | None = None  # bytes a send_paced could not write yet (helper writing)
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
        if hs.error:
            hs.error = redact_text(hs.error.replace("\n", " ")[:300], self._secrets)
        if not hs.ok:
            self.abort()
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
        self._flush_unlocked()
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
            body = bytes(response.body or b"")[:200].decode("utf-8", "replace").strip()
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
        hs.ok = True

    # -- sending -----------------------------------------------------------------------------
    def send(self, message: bytes) -> bool:
        """Send one text message; False when the connection is no longer open."""
        proto = self._proto
        if proto is None or proto.state is not State.OPEN:
            return False
        with self._lock:
            try:
                proto.send_text(message)
                self._flush_unlocked()
            except Exception:
                return False
        return True

    def send_paced(self, message: bytes) -> bool:
        """Like :meth:`send`, but never blocks the caller (the process's shared audio clock).

        What the socket cannot take right now is queued and written by a helper task of this
        connection; later writes queue behind it, so bytes stay in order. Needs a cooperative
        (gevent) socket: ``send(data, 0, 0.0)`` is its non-blocking attempt.
        """
        proto, sock = self._proto, self._sock
        if proto is None or sock is None or proto.state is not State.OPEN:
            return False
        with self._lock:
            try:
                proto.send_text(message)
                chunks = proto.data_to_send()
            except Exception:
                return False
            if self._backlog is not None:
                self._backlog.extend(chunks)
                return True
            sslobj = getattr(sock, "_sslobj", None)  # gevent's SSL send() would wait: write to TLS directly
            for i, chunk in enumerate(chunks):
                if not chunk:
                    self._backlog = list(chunks[i:])
                    break
                try:
                    n = sslobj.write(chunk) if sslobj is not None else sock.send(chunk, 0, 0.0)
                except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError, TimeoutError):
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
            with self._lock:
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
                with self._lock:
                    self._backlog = None
                return

    def _flush_unlocked(self) -> None:
        proto, sock = self._proto, self._sock
        if proto is None or sock is None:
            return
        if self._backlog is not None:  # a helper is writing: queue behind it
            self._backlog.extend(proto.data_to_send())
            return
        for chunk in proto.data_to_send():
            if chunk:
                sock.sendall(chunk)
                self.bytes_sent += len(chunk)
            else:  # SEND_EOF
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)

    # -- receiving ---------------------------------------------------------------------------
    def receive_loop(self, on_message: Callable[[bytes, float], None]) -> CloseInfo:
        """Deliver every text (or binary) message with its arrival time until the connection ends.

        Pings are answered (the protocol queues the pong; it is flushed here). Never raises for
        network trouble; exceptions from ``on_message`` propagate.
        """
        proto, sock = self._proto, self._sock
        info = CloseInfo()
        if proto is None or sock is None:
            info.code, info.reason, info.t = CLOSE_ABNORMAL, "not connected", time.time()
            return info
        parts: list[bytes] = []
        pending, self._pending = self._pending, []
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
        now = time.time()
        while True:
            for event in pending:
                opcode = event.opcode
                if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                    if event.fin:
                        on_message(event.data, now)
                    else:
                        parts = [event.data]
                elif opcode is Opcode.CONT:
                    parts.append(event.data)
                    if event.fin:
                        on_message(b"".join(parts), now)
                        parts = []
                elif opcode is Opcode.CLOSE:
                    rcvd = proto.close_rcvd
                    info.code = rcvd.code if rcvd is not None else 1005
                    info.reason = rcvd.reason if rcvd is not None else ""
                    info.by_server = not self._closing_by_client
                    info.t = now
            if proto.parser_exc is not None and info.code is None:
                info.code = CLOSE_PROTOCOL_ERROR
                info.protocol_error = f"{type(proto.parser_exc).__name__}: {proto.parser_exc}"[:300]
                info.by_server = True
                info.t = now
            if info.code is not None or proto.state is State.CLOSED:
                break
            stamp = None
            try:
                if wait is not None:
                    wait(read_event)
                if kernel_stamps:
                    data, ancillary, _flags, _addr = sock.recvmsg(RECV_BYTES, _ANC_BYTES)
                    for _level, kind, payload in ancillary:
                        if kind == _SO_TIMESTAMP and len(payload) >= _TIMEVAL.size:
                            sec, usec = _TIMEVAL.unpack_from(payload)
                            stamp = sec + usec * 1e-6
                else:
                    data = sock.recv(RECV_BYTES)
            except Exception:
                data = b""
            now = time.time() if stamp is None else stamp
            if data:
                self.bytes_received += len(data)
                proto.receive_data(data)
            else:
                proto.receive_eof()
            pending = proto.events_received()
            if proto.writes:
                with self._lock, contextlib.suppress(Exception):
                    self._flush_unlocked()
            if not data and not pending:
                break
        if info.code is None:
            info.code = CLOSE_ABNORMAL
            info.by_server = not self._closing_by_client
            info.t = now
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
        with self._lock:
            try:
                proto.send_close(code, reason)
                self._flush_unlocked()
            except Exception:
                pass

    def abort(self) -> None:
        """Drop the TCP connection now (wakes a receiver blocked in recv). Idempotent."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
