"""One WebSocket connection over a socket: the I/O shell around :class:`~loadtest.session.wire.ClientWire`.

The socket is a plain one (gevent-patched under Locust) for ``ws://`` and ``wss://`` alike: for
``wss://`` the TLS layer (:class:`~loadtest.session.tls.TLSLayer`, an ``SSLObject`` over memory)
sits between the socket and the wire, so TLS connections are read, stamped and written exactly as
plain ones. The wire layer does the protocol; this module reads and writes its bytes. No event
loop and no extra thread: the caller's greenlet/thread does the handshake and sends; the
connection is read either by its own loop (:meth:`WebSocketTransport.receive_loop` in one
receiver greenlet/thread) or, when a :class:`~loadtest.session.link.SharedReceiver` was given and
can read it (gevent), by that receiver, to which the transport offers itself as a
:class:`~loadtest.session.link.ReadSource`. Sends are serialised by a lock so a pong written by
the receiver never interleaves with an append written by the sender. Nothing here raises for
network or protocol trouble: the handshake returns a :class:`~loadtest.session.link.Handshake`
describing what happened and the receive loop returns a :class:`~loadtest.session.link.CloseInfo`.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import sys
import time
from collections.abc import Iterable

from websockets.exceptions import InvalidURI

from loadtest import __version__
from loadtest.protocol.network import (
    NetworkPath,
    Proxy,
    certificate_problem,
    connect_refusal,
    connect_request,
    parse_connect_response,
)
from loadtest.protocol.targets import redact_text
from loadtest.session.concurrency import gevent_active, new_lock, spawn
from loadtest.session.lagstats import LagStats
from loadtest.session.link import (
    CLOSE_ABNORMAL,
    CLOSE_PROTOCOL_ERROR,
    NO_NETWORK_FIGURES,
    CloseInfo,
    Handshake,
    OnMessage,
    SharedReceiver,
)
from loadtest.session.tls import EOF, TLSLayer
from loadtest.session.wire import HEADERS_OF_NOTE, ClientWire, text_frame

__all__ = [
    "CLOSE_ABNORMAL",
    "CLOSE_PROTOCOL_ERROR",
    "HEADERS_OF_NOTE",
    "USER_AGENT",
    "CloseInfo",
    "Handshake",
    "WebSocketTransport",
    "client_ssl_context",
    "shared_ssl_context",
]

USER_AGENT = f"rtload/{__version__}"
RECV_BYTES = 64 * 1024  # a 256 KiB buffer costs ~4x more per recv (allocation), for nothing at 6.5 KB deltas

_SSL_CONTEXT: ssl.SSLContext | None = None
# Linux SO_TIMESTAMP (== SCM_TIMESTAMP): a struct timeval of when the data reached the socket
_SO_TIMESTAMP: int | None = getattr(socket, "SO_TIMESTAMP", 29 if sys.platform == "linux" else None)
_TIMEVAL = struct.Struct("@qq")
_ANC_BYTES = socket.CMSG_SPACE(_TIMEVAL.size) if hasattr(socket, "CMSG_SPACE") else 64


def _kernel_stamp(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    """The SO_TIMESTAMP receive time (Unix seconds) in recvmsg's ancillary data, if any."""
    for _level, kind, payload in ancillary:
        if kind == _SO_TIMESTAMP and len(payload) >= _TIMEVAL.size:
            sec, usec = _TIMEVAL.unpack_from(payload)
            return sec + usec * 1e-6
    return None


def shared_ssl_context() -> ssl.SSLContext:
    """The process's one client SSLContext, created on first use (after gevent's patching)."""
    global _SSL_CONTEXT
    if _SSL_CONTEXT is None:
        _SSL_CONTEXT = ssl.create_default_context()
    return _SSL_CONTEXT


def client_ssl_context(network: NetworkPath | None) -> ssl.SSLContext:
    """The context ``wss://`` connections over ``network`` use (made once: loading the trusted CAs
    takes ~17 ms of the loop, so a harness makes it before its first session, not at its first connect)."""
    return network.ssl_context() if network is not None else shared_ssl_context()


class _TunnelRefused(ConnectionError):
    """The proxy did not open the tunnel (the message is the handshake's one-line error)."""


class WebSocketTransport:
    """A client WebSocket over a blocking (or gevent-cooperative) socket.

    ``receiver``: the process's shared receiver, used under gevent (``ws://`` and ``wss://``).
    ``receive_lag``: where the age of each read's newest bytes goes (ms, from the kernel's
    arrival stamps): a receiver that falls behind reads deltas late and together, and their
    timings with them. ``bytes_sent``/``bytes_received`` count the socket's bytes (TLS records
    for ``wss://``).
    """

    def __init__(
        self,
        *,
        max_message_bytes: int = 16 * 1024 * 1024,
        permessage_deflate: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        secrets: tuple[str, ...] = (),
        receiver: SharedReceiver | None = None,
        receive_lag: LagStats | None = None,
        network: NetworkPath | None = None,
    ) -> None:
        self._max = max_message_bytes
        self._deflate = permessage_deflate
        self._ssl = ssl_context
        self._network = network
        self._secrets = (*secrets, *network.secrets()) if network is not None else secrets
        self._host = ""  # the target's host (for a certificate error's line)
        self._receiver = receiver
        self._receive_lag = receive_lag
        self._sock: socket.socket | None = None
        self._wire: ClientWire | None = None
        self._lock = new_lock()
        self._pending: list[bytes] = []  # messages that arrived with the 101
        self._backlog: list[bytes] | None = None  # bytes a cooperative send could not write yet (helper writing)
        self._cooperative = False  # gevent socket: non-blocking writes, backlog helper
        self._tls: TLSLayer | None = None  # wss:// (set by connect)
        self._tls_lock = new_lock()  # threads: one TLS object, read by the receiver, written by senders
        self._kernel_stamps = False  # receive times come from SO_TIMESTAMP (Linux)
        self._stage = "TCP connect"  # where a handshake timeout happened
        self.awaiting_output = False  # a response waits for its first output: read before the others
        self.bytes_sent = 0
        self.bytes_received = 0
        self.rtp_dropped = 0  # (no media packets over a WebSocket)
        self.network = NO_NETWORK_FIGURES  # (no RTCP either)
        self.backlog_writes = 0  # how often a send left bytes for the backlog helper

    @classmethod
    def over(cls, sock: socket.socket, wire: ClientWire, **kwargs: object) -> WebSocketTransport:
        """A transport over ``sock`` whose upgrade ``wire`` has already done (a tunnel, a test)."""
        transport = cls(**kwargs)  # type: ignore[arg-type]
        transport._sock, transport._wire = sock, wire
        return transport

    def add_secret(self, secret: str) -> None:
        """Also redact ``secret`` from handshake errors (a token fetched after construction)."""
        self._secrets = (*self._secrets, secret)

    # -- handshake ---------------------------------------------------------------------------
    def connect(self, url: str, headers: Iterable[tuple[str, str]], timeout: float) -> Handshake:
        """Open the TCP (and TLS) connection and perform the upgrade. Never raises."""
        hs = Handshake(t_start=time.time())
        t0 = time.perf_counter()
        try:
            self._connect(url, list(headers), timeout, hs)
        except InvalidURI as exc:
            hs.error = f"bad URL: {exc}"
        except TimeoutError:
            hs.error = f"timed out after {timeout:g}s in the {self._stage}"
        except _TunnelRefused as exc:
            hs.error = str(exc)
        except ssl.SSLCertVerificationError as exc:
            hs.error = certificate_problem(exc, self._host, self._network)
        except ssl.SSLError as exc:
            hs.error = f"TLS error: {exc}"
        except OSError as exc:
            hs.error = f"{type(exc).__name__}: {exc.strerror or exc}"
            if self._stage.startswith("TCP connect to the proxy"):
                hs.error = f"{self._stage}: {hs.error}: check --proxy / HTTPS_PROXY"
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

    def _connect(self, url: str, headers: list[tuple[str, str]], timeout: float, hs: Handshake) -> None:
        wire = ClientWire(url, max_message_bytes=self._max, permessage_deflate=self._deflate)
        uri = wire.uri
        self._wire = wire
        deadline = time.monotonic() + timeout
        self._host = uri.host
        network = self._network
        proxy = network.proxy_for(uri.host, uri.port, uri.secure) if network is not None else None
        if proxy is not None:
            self._stage = f"TCP connect to the proxy {proxy.address}"
            sock = socket.create_connection((proxy.host, proxy.port), timeout=timeout)
            self._sock = sock
            self._stage = f"proxy CONNECT through {proxy.address}"
            self._tunnel(sock, proxy, uri.host, uri.port, deadline)
        else:
            sock = socket.create_connection((uri.host, uri.port), timeout=timeout)
            self._sock = sock
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if uri.secure:
            self._stage = "TLS handshake"
            ctx = self._ssl or client_ssl_context(network)
            self._tls = TLSLayer(ctx, uri.host)
            self._tls_handshake(sock, deadline)
        self._stage = "HTTP upgrade"
        wire.start_handshake([("User-Agent", USER_AGENT), *headers])
        self._write_blocking(wire.data_to_send())
        while wire.response is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining)
            data = sock.recv(RECV_BYTES)
            self.bytes_received += len(data)
            messages = []
            for chunk in self._upgrade_plaintext(data):
                messages += wire.receive(chunk, time.time())
            if wire.response is None and wire.connection_failed:
                raise ConnectionError(wire.connection_failed)
        self._pending = messages
        hs.status = wire.response.status_code
        hs.headers.update(wire.headers_of_note())
        # (the state may already be CLOSING when frames, even a close, came in the 101's segment)
        error = wire.upgrade_error
        if error is not None:
            hs.error = error
            return
        sock.settimeout(None)
        if _SO_TIMESTAMP is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMP, 1)
                self._kernel_stamps = True
            except OSError:
                pass
        self._cooperative = hasattr(sock, "_sock") and gevent_active()
        hs.ok = True

    def _tls_handshake(self, sock: socket.socket, deadline: float) -> None:
        """The TLS handshake over the plain socket (blocking this caller until done or ``deadline``)."""
        tls = self._tls
        assert tls is not None
        done = tls.handshake()
        while True:
            out = tls.outgoing()
            if out:
                sock.sendall(out)
                self.bytes_sent += len(out)
            if done:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining)
            data = sock.recv(RECV_BYTES)
            if not data:
                raise ConnectionError("the server closed the connection during the TLS handshake")
            self.bytes_received += len(data)
            done = tls.handshake(data)

    def _upgrade_plaintext(self, data: bytes) -> list[bytes]:
        """What the wire is fed for ``data`` read while upgrading: the bytes, or their plaintext
        (and ``b""`` when the TLS stream ended there)."""
        tls = self._tls
        if tls is None:
            return [data]
        plain, ending = tls.decrypt(data)
        out = tls.outgoing()
        if out and self._sock is not None:
            self._sock.sendall(out)
            self.bytes_sent += len(out)
        if ending is not None and ending != EOF:
            raise ConnectionError(ending)
        return ([plain] if plain else []) + ([b""] if ending is not None else [])

    def _tunnel(self, sock: socket.socket, proxy: Proxy, host: str, port: int, deadline: float) -> None:
        """Ask ``proxy`` for a tunnel to ``host:port`` (HTTP CONNECT); raises unless it opened."""
        sock.sendall(connect_request(host, port, proxy, USER_AGENT))
        head = b""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            sock.settimeout(remaining)
            data = sock.recv(4096)
            if not data:
                raise _TunnelRefused(f"proxy {proxy.address} closed the connection before answering CONNECT")
            head += data
            try:
                response = parse_connect_response(head)
            except ValueError as exc:
                raise _TunnelRefused(f"proxy {proxy.address}: {exc}: check --proxy / HTTPS_PROXY") from None
            if response is None:
                continue
            if response.status // 100 != 2:
                raise _TunnelRefused(connect_refusal(proxy, host, port, response))
            if response.rest:  # the target speaks only after the client: nothing may come yet
                raise _TunnelRefused(f"proxy {proxy.address} sent bytes before the tunnel opened")
            return

    # -- sending -----------------------------------------------------------------------------
    def send(self, message: bytes) -> bool:
        """Send one text message; False when the connection is no longer open.

        Under gevent this never blocks the caller (the shared audio clock, the shared receiver):
        what the socket cannot take right now is queued and written by a helper task of this
        connection; later writes queue behind it, so bytes stay in order. With threads it writes
        the whole frame (serialised by a lock with the receiver's pongs).
        """
        wire = self._wire
        if wire is None or self._sock is None or not wire.open:
            return False
        if self._deflate:  # compressed frames: the wire's protocol builds them
            with self._lock:
                try:
                    chunks = wire.send_text(message)
                except Exception:
                    return False
                return self._write(chunks)
        frame = text_frame(message)
        if self._cooperative:
            return self._write_cooperative((frame,))
        with self._lock:
            return self._write_blocking((frame,))

    send_paced = send  # the shared audio clock's name for it (the clock runs only under gevent)

    def _write_queued(self) -> None:
        """Write what the wire queued (a pong, the close frame, the end of the stream)."""
        wire = self._wire
        if wire is None:
            return
        if self._cooperative:
            self._write_cooperative(wire.data_to_send())
            return
        with self._lock:
            self._write_blocking(wire.data_to_send())

    def _write(self, chunks: Iterable[bytes]) -> bool:
        return self._write_cooperative(chunks) if self._cooperative else self._write_blocking(chunks)

    def _write_blocking(self, chunks: Iterable[bytes]) -> bool:
        sock = self._sock
        if sock is None:
            return False
        tls = self._tls
        try:
            for chunk in chunks:
                if chunk:
                    if tls is not None:  # (the caller holds self._lock: records go out in the order made)
                        with self._tls_lock:
                            chunk = tls.encrypt(chunk)
                    sock.sendall(chunk)
                    self.bytes_sent += len(chunk)
                else:  # SEND_EOF
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_WR)
        except (OSError, ssl.SSLError):
            return False
        return True

    def _write_cooperative(self, chunks: Iterable[bytes], records: bool = False) -> bool:
        """Non-blocking write under gevent (never yields, so it needs no lock); the rest goes to
        the backlog, written by :meth:`_drain`. TLS records are made here, in send order (the
        TLS object writes to memory: it never waits), unless ``records`` says they are already."""
        sock = self._sock
        if sock is None:
            return False
        tls = self._tls
        if tls is not None and not records:
            try:
                chunks = [tls.encrypt(chunk) if chunk else chunk for chunk in chunks]
            except ssl.SSLError:
                return False
        if self._backlog is not None:  # a helper is writing: queue behind it
            self._backlog.extend(chunks)
            return True
        raw = sock._sock
        chunks = list(chunks) if not isinstance(chunks, (list, tuple)) else chunks
        for i, chunk in enumerate(chunks):
            if not chunk:
                self._backlog = list(chunks[i:])
                break
            try:
                n = raw.send(chunk)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError:
                return False
            self.bytes_sent += n
            if n < len(chunk):
                self._backlog = [chunk[n:], *chunks[i + 1 :]]
                break
        else:
            return True
        self.backlog_writes += 1
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
    def receive_loop(self, on_message: OnMessage) -> CloseInfo:
        """Deliver every text (or binary) message with its arrival time until the connection ends.

        Pings are answered (the wire queues the pong; it is flushed here). Never raises for
        network trouble; exceptions from ``on_message`` propagate. When the shared receiver can
        read this connection (gevent) it does: this call then waits until that loop saw the
        connection end.
        """
        wire, sock = self._wire, self._sock
        if wire is None or sock is None:
            return CloseInfo(code=CLOSE_ABNORMAL, reason="not connected", t=time.time())
        pending, self._pending = self._pending, []
        now = time.time()
        for message in pending:
            on_message(message, now)
        if wire.has_data_to_send:
            self._write_queued()
        if wire.ended is not None:
            return wire.ended
        receiver = self._receiver
        if receiver is not None and self.shared_receiver_ok():
            return receiver.serve(self, on_message)
        # Under gevent, wait for the socket to be readable before recv: a cooperative recv on an
        # empty socket costs a failed syscall and a raised exception before it waits, on every
        # message. (TLS too: its layer hands over all the plaintext each read completes.)
        wait = getattr(sock, "_wait", None)
        read_event = getattr(sock, "_read_event", None)
        if wait is None or read_event is None:
            wait = None
        # Arrival times come from the kernel (SO_TIMESTAMP, wall clock) where it gives them: the
        # time the bytes reached this host, not the time this process got round to reading them.
        kernel_stamps = self._kernel_stamps
        received = self.data_received if self._tls is None else self.tls_received
        lag = self._receive_lag
        info: CloseInfo | None = None
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
            if stamp is not None and lag is not None:
                lag.record((time.time() - stamp) * 1000.0)
            info = received(data, time.time() if stamp is None else stamp, on_message)
        return info

    def set_awaiting_output(self, awaiting: bool) -> None:
        """A response waits for its first output (audio or text delta) while ``awaiting``: the
        shared receiver, if it reads this connection, reads it before the others."""
        self.awaiting_output = awaiting
        if self._receiver is not None:  # (it ignores a connection it does not read)
            self._receiver.set_awaiting_output(self, awaiting)

    def shared_receiver_ok(self) -> bool:
        """True when a shared receiver may read this connection (gevent's socket; TLS or not)."""
        sock = self._sock
        if sock is None or not hasattr(sock, "_sock"):
            return False
        return gevent_active()

    # -- the shared receiver's side (ReadSource) ---------------------------------------------
    def fileno(self) -> int:
        sock = self._sock
        return sock.fileno() if sock is not None else -1

    def read_ready(self, on_message: OnMessage) -> CloseInfo | None:
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
        if stamp is not None and self._receive_lag is not None:
            self._receive_lag.record((time.time() - stamp) * 1000.0)
        if self._tls is not None:
            return self.tls_received(data, time.time() if stamp is None else stamp, on_message)
        return self.data_received(data, time.time() if stamp is None else stamp, on_message)

    def read_ended(self, on_message: OnMessage) -> CloseInfo | None:
        return self.data_received(b"", time.time(), on_message)

    def tls_received(self, data: bytes, now: float, on_message: OnMessage) -> CloseInfo | None:
        """:meth:`data_received` for TLS records: decrypt them, hand the wire the plaintext (a
        bad record ends the connection, the TLS error its protocol error)."""
        tls = self._tls
        assert tls is not None
        if data:
            self.bytes_received += len(data)
        if self._cooperative:  # (never yields: no other greenlet touches the TLS object meanwhile)
            plain, ending = tls.decrypt(data)
            if tls.has_outgoing:  # a TLS message the peer asked for (a key update): behind the queued records
                self._write_cooperative((tls.outgoing(),), records=True)
        else:
            with self._tls_lock:
                plain, ending = tls.decrypt(data)
            if ending is None and tls.has_outgoing:
                self._flush_tls_blocking()
        wire = self._wire
        assert wire is not None
        if plain:
            ended = wire.feed(plain, now, on_message)
            if wire.has_data_to_send:
                self._write_queued()
            if ended is not None:
                return ended
        if ending is None:
            return None
        ended = wire.feed(b"", now, on_message)
        if ended is not None and ending != EOF and ended.protocol_error is None:
            ended.protocol_error = ending[:300]
        return ended

    def _flush_tls_blocking(self) -> None:
        """Threads: write what the TLS object made while reading (in order with the senders')."""
        tls, sock = self._tls, self._sock
        if tls is None or sock is None:
            return
        with self._lock, self._tls_lock:
            out = tls.outgoing()
            if out:
                with contextlib.suppress(OSError):
                    sock.sendall(out)
                    self.bytes_sent += len(out)

    def data_received(self, data: bytes, now: float, on_message: OnMessage) -> CloseInfo | None:
        """Hand what arrived to the wire; deliver whole messages; write what it queued (pong,
        close). Returns how the connection ended, if it did."""
        wire = self._wire
        assert wire is not None
        if data:
            self.bytes_received += len(data)
        ended = wire.feed(data, now, on_message)
        if wire.has_data_to_send:
            self._write_queued()
        return ended

    # -- closing -----------------------------------------------------------------------------
    @property
    def open(self) -> bool:
        return self._wire is not None and self._wire.open

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (the receiver sees the server's answer). Never raises."""
        wire = self._wire
        if wire is None:
            return
        if not wire.open:
            wire.client_closing()
            return
        try:
            wire.send_close(code, reason)
        except Exception:
            return
        self._write_queued()

    def release(self) -> None:
        """The connection is over and recorded: break the wire layer's reference cycles (issue 22)."""
        if self._wire is not None:
            self._wire.release()

    def abort(self) -> None:
        """Drop the TCP connection now (wakes a receiver blocked in recv). Idempotent."""
        if self._receiver is not None:  # wake a receiver parked in the shared loop (if it reads us)
            self._receiver.dropped(self)
        sock, self._sock = self._sock, None
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()
