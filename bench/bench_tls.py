"""What wss:// costs the harness per frame, and where it goes (issue 17: TLS at 85% of plain).

0. ``crypto``: the negotiated cipher alone (``openssl speed`` over buffers of a delta's size):
   the floor under any TLS, user space or kernel, per append+delta pair; ``floor`` sets it
   against the pairs' TLS cost.
1. ``layer``: the TLS layer alone (:class:`loadtest.session.tls.TLSLayer`, an ``SSLObject`` over
   memory BIOs) against an in-process TLS 1.3 server object, no sockets: CPU time per decrypt of
   one audio delta's record (6.6 KB of plaintext) and per encrypt of one 100 ms append frame
   (6.5 KB), with 1 connection (everything in cache) and with ``--sessions`` connections served
   in turn (each connection's TLS state cold again by its next frame, as under load). The layer
   as it was before this bench's changes (:class:`LegacyTLSLayer`, kept here verbatim as the
   reference) and the shipped one, interleaved round by round in one process: ``current_over_legacy``.
   Also: five 20 ms appends (1.3 KB each) as five records against one record of the five.
1b. ``socket``: the client paths a wss:// read and send could take, over real loopback
   connections (``--sessions`` each, served in turn, the server ends in-process and untimed, no
   gevent): plain, the shipped layer over a plain socket, an ``ssl.SSLSocket`` reading the socket
   itself (no BIO copies), and that plus a one-byte ``MSG_PEEK`` ``recvmsg`` per read (how it
   would keep the kernel arrival stamps). CPU time per pair and each path's TLS cost over plain;
   ``floor`` scales the transport's TLS cost by the SSL socket's ratio to the layer's and sets it
   against what 85% of plain leaves per pair (from bench/ab_tls_ladder.py's latest ladders).
1c. ``libs``: the TLS library and its call path under the layer, in the layer phase's set-up:
   the shipped layer (Python's ``ssl``, the OpenSSL it links) against the same steps made as one
   C call each through cffi into the newer OpenSSL that the ``cryptography`` wheel carries
   (``raw_c``; the lightest any TLS "in C around the receiver" could call it, with that library's
   record layer), with and without ``SSL_MODE_RELEASE_BUFFERS`` (which Python's ``ssl`` sets), and
   through pyOpenSSL's ``Connection`` over the same library. CPU time per pair with 1 connection
   and with ``--sessions`` served in turn: whether another library or no Python between the calls
   brings the cold per-connection cost under what 85% of plain leaves (``floor``).
2. ``records``: the TLS records bench/harness_server.js (Node, ws) writes: one per delta, or the
   WebSocket header and payload apart (which would double the receive side's per-frame calls).
3. ``pairs``: the session's own transport (gevent-patched, in a child: bench/tls_pairs.py) over
   real loopback connections to the Node peer, ``--sessions`` ws:// and as many wss:// at once:
   CPU time per append+delta pair (one append out, its delta back, per connection per round),
   plain and TLS rounds alternating in one process, so ``tls_minus_plain_us`` (the TLS cost per
   pair) and ``tls_over_plain`` hold on a busy machine. A breakdown pass times the TLS layer's
   encrypt and decrypt inside it. With ``--before REF`` the same child also runs on the
   ``loadtest`` tree of that git commit (exported to a temporary folder), the two alternating
   ``--repeats`` times: the before/after of the whole receive and send path.

The harness ladder (``python -m bench harness``) turns this into sessions per core; it needs a
quiet machine. This bench does not: every figure is CPU time, and each comparison is made
within one process (or alternated). Loopback only; bounded in count (and each child in time).
Writes bench/results/tls.json. ``python -m bench tls`` or ``python -m bench.bench_tls --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_harness import NODE_DIR, Server, self_signed
from loadtest.session.tls import EOF, TLSLayer

HERE = Path(__file__).parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "tls.json"
LADDERS = HERE / "results" / "tls_ladder.json"  # bench/ab_tls_ladder.py's
DELTA_PLAIN = 6608  # one 100 ms audio delta as Node's ws writes it: 4-byte header + 6,604-byte event
APPEND_FRAME = 6455  # one 100 ms append: 8-byte masked header + 6,447-byte event
SMALL_FRAME = 1291  # one 20 ms append (1.3 KB)


class LegacyTLSLayer:
    """The TLS layer as it was before this bench's changes (22ec97e), verbatim but for the name:
    the reference the shipped one is measured against."""

    __slots__ = ("_in", "_obj", "_out")

    def __init__(self, context: ssl.SSLContext, server_hostname: str) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = context.wrap_bio(self._in, self._out, server_hostname=server_hostname)

    def handshake(self, data: bytes | None = None) -> bool:
        if data:
            self._in.write(data)
        elif data is not None:
            self._in.write_eof()
        try:
            self._obj.do_handshake()
        except ssl.SSLWantReadError:
            return False
        return True

    def outgoing(self) -> bytes:
        return self._out.read() if self._out.pending else b""

    def encrypt(self, data: bytes) -> bytes:
        obj = self._obj
        view = memoryview(data)
        while view:
            n = obj.write(view)
            view = view[n:]
        return self._out.read()

    def decrypt(self, data: bytes) -> tuple[bytes, str | None]:
        if data:
            self._in.write(data)
        else:
            self._in.write_eof()
        obj = self._obj
        parts: list[bytes] = []
        ending: str | None = None
        try:
            while True:
                chunk = obj.read(64 * 1024)
                if not chunk:
                    ending = EOF
                    break
                parts.append(chunk)
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            ending = EOF
        except ssl.SSLError as exc:
            ending = f"TLS error: {exc.reason or exc}"
        if not data and ending is None:
            ending = EOF
        if not parts:
            return b"", ending
        return (parts[0] if len(parts) == 1 else b"".join(parts)), ending


class _MemoryPair:
    """A client layer and a server ``SSLObject`` over memory, past the handshake and the tickets."""

    def __init__(self, layer_cls: Any, server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> None:
        self.sin, self.sout = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.server = server_ctx.wrap_bio(self.sin, self.sout, server_side=True)
        self.client = layer_cls(client_ctx, "127.0.0.1")
        done, served = self.client.handshake(), False
        for _ in range(10):
            out = self.client.outgoing()
            if out:
                self.sin.write(out)
            if not served:
                with contextlib.suppress(ssl.SSLWantReadError):
                    self.server.do_handshake()
                    served = True
            if self.sout.pending:
                done = self.client.handshake(self.sout.read())
            if done and served:
                break
        assert done and served, "the in-memory handshake did not finish"
        self.server.write(b"x")  # the session tickets and one byte: the client is past them
        plain, _ = self.client.decrypt(self.sout.read())
        assert plain == b"x", plain

    def record(self, plaintext: bytes) -> bytes:
        self.server.write(plaintext)
        return self.sout.read()

    def deliver(self, records: bytes) -> int:
        """Hand the client's records to the server; the plaintext bytes it got."""
        self.sin.write(records)
        got = 0
        with contextlib.suppress(ssl.SSLWantReadError):
            while True:
                got += len(self.server.read(64 * 1024))
        return got


class _RawCLayer:
    """The layer's steps as one C call each: cffi straight into the OpenSSL of the ``cryptography``
    wheel, over its memory BIOs (the client verifies the server's chain; the bench's certificate
    names 127.0.0.1, so no host check is added). The bench's reference for TLS written in C."""

    __slots__ = ("_in", "_out", "_ssl")

    def __init__(self, ctx: Any, server_hostname: str) -> None:
        lib, ffi = _RAW.lib, _RAW.ffi
        self._ssl = ffi.gc(lib.SSL_new(ctx), lib.SSL_free)
        self._in, self._out = lib.BIO_new(lib.BIO_s_mem()), lib.BIO_new(lib.BIO_s_mem())
        lib.SSL_set_bio(self._ssl, self._in, self._out)  # the SSL object owns both BIOs now
        lib.SSL_set_connect_state(self._ssl)

    def handshake(self, data: bytes | None = None) -> bool:
        lib = _RAW.lib
        if data:
            lib.BIO_write(self._in, data, len(data))
        done = lib.SSL_do_handshake(self._ssl)
        if done == 1:
            return True
        error = lib.SSL_get_error(self._ssl, done)
        if error != lib.SSL_ERROR_WANT_READ:
            raise ssl.SSLError(f"raw handshake failed (SSL_get_error {error})")
        return False

    def outgoing(self) -> bytes:
        parts = []
        while (n := _RAW.lib.BIO_read(self._out, _RAW_BUF, _RAW_SIZE)) > 0:
            parts.append(_RAW_VIEW[:n])
        return b"".join(parts)

    def encrypt(self, data: bytes) -> bytes:
        if _RAW.lib.SSL_write(self._ssl, data, len(data)) != len(data):
            raise ssl.SSLError("raw SSL_write took part of the frame")
        return self.outgoing()

    def decrypt(self, data: bytes) -> tuple[bytes, str | None]:
        lib = _RAW.lib
        lib.BIO_write(self._in, data, len(data))
        parts = []
        while (n := lib.SSL_read(self._ssl, _RAW_BUF, _RAW_SIZE)) > 0:
            parts.append(_RAW_VIEW[:n])
        return (parts[0] if len(parts) == 1 else b"".join(parts)), None


class _PyOpenSSLLayer:
    """The layer over pyOpenSSL's ``Connection`` (memory BIOs), on the same OpenSSL as raw_c."""

    __slots__ = ("_c",)

    def __init__(self, ctx: Any, server_hostname: str) -> None:
        from OpenSSL import SSL

        self._c = SSL.Connection(ctx, None)
        self._c.set_connect_state()

    def handshake(self, data: bytes | None = None) -> bool:
        from OpenSSL import SSL

        if data:
            self._c.bio_write(data)
        try:
            self._c.do_handshake()
        except SSL.WantReadError:
            return False
        return True

    def outgoing(self) -> bytes:
        from OpenSSL import SSL

        try:
            return self._c.bio_read(_RAW_SIZE)
        except SSL.WantReadError:
            return b""

    def encrypt(self, data: bytes) -> bytes:
        self._c.sendall(data)
        return self.outgoing()

    def decrypt(self, data: bytes) -> tuple[bytes, str | None]:
        from OpenSSL import SSL

        self._c.bio_write(data)
        parts = []
        with contextlib.suppress(SSL.WantReadError):
            while True:
                parts.append(self._c.recv(_RAW_SIZE))
        return (parts[0] if len(parts) == 1 else b"".join(parts)), None


_RAW: Any = None  # cryptography's binding (lib, ffi), loaded by _libs
_RAW_SIZE = 1 << 17
_RAW_BUF: Any = None
_RAW_VIEW: Any = None


def _libs(cert: Path, key: Path, sessions: int, frames: int) -> dict[str, Any]:
    global _RAW, _RAW_BUF, _RAW_VIEW
    try:
        from cryptography.hazmat.bindings.openssl.binding import Binding
        from OpenSSL import SSL
    except ImportError as exc:
        return {"skipped": f"cryptography and pyOpenSSL are needed: {exc}"}
    _RAW = Binding
    lib, ffi = Binding.lib, Binding.ffi
    _RAW_BUF = ffi.new("char[]", _RAW_SIZE)
    _RAW_VIEW = ffi.buffer(_RAW_BUF)
    server_ctx, client_ctx = _contexts(cert, key)

    def raw_ctx(release_buffers: bool) -> Any:
        ctx = ffi.gc(lib.SSL_CTX_new(lib.TLS_client_method()), lib.SSL_CTX_free)
        if lib.SSL_CTX_load_verify_locations(ctx, str(cert).encode(), ffi.NULL) != 1:
            raise RuntimeError("raw SSL_CTX_load_verify_locations failed")
        lib.SSL_CTX_set_verify(ctx, lib.SSL_VERIFY_PEER, ffi.NULL)
        if release_buffers:
            lib.SSL_CTX_set_mode(ctx, lib.SSL_MODE_RELEASE_BUFFERS)
        return ctx

    pyo_ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    pyo_ctx.load_verify_locations(str(cert))
    pyo_ctx.set_verify(SSL.VERIFY_PEER, None)
    pyo_ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
    kept, released = raw_ctx(False), raw_ctx(True)
    variants: dict[str, Any] = {
        "stdlib": lambda: TLSLayer(client_ctx, "127.0.0.1"),
        "raw_c": lambda: _RawCLayer(released, "127.0.0.1"),
        "raw_c_keep_buffers": lambda: _RawCLayer(kept, "127.0.0.1"),
        "pyopenssl": lambda: _PyOpenSSLLayer(pyo_ctx, "127.0.0.1"),
    }
    delta, append = b"d" * DELTA_PLAIN, b"a" * APPEND_FRAME
    clock = time.thread_time_ns
    out: dict[str, Any] = {
        "stdlib_openssl": ssl.OPENSSL_VERSION,
        "raw_c_openssl": ffi.string(lib.OpenSSL_version(lib.OPENSSL_VERSION)).decode(),
    }
    for k in (1, sessions):
        rounds = max(6, frames // k)
        pairs = {name: [_MemoryPair(lambda _c, _h, m=make: m(), server_ctx, None) for _ in range(k)]  # type: ignore[misc]
                 for name, make in variants.items()}  # fmt: skip
        ns: dict[str, list[float]] = {name: [] for name in pairs}
        order = list(pairs)
        for i in range(rounds):
            for name in order[i % len(order) :] + order[: i % len(order)]:  # each variant first in turn
                total = 0
                for pair in pairs[name]:
                    record = pair.record(delta)
                    t0 = clock()
                    plain, _ = pair.client.decrypt(record)
                    sent = pair.client.encrypt(append)
                    total += clock() - t0
                    assert len(plain) == DELTA_PLAIN, (name, len(plain))
                    assert pair.deliver(sent) == APPEND_FRAME
                ns[name].append(total / k / 1000)
        row: dict[str, Any] = {"rounds": rounds}
        for name in pairs:
            row[f"{name}_us_per_pair"] = round(statistics.median(ns[name]), 2)
        for name in order[1:]:
            ratios = [v / b for v, b in zip(ns[name], ns["stdlib"], strict=True)]
            row[f"{name}_over_stdlib"] = round(statistics.median(ratios), 3)
        out[f"connections_{k}"] = row
        del pairs
    return out


def _contexts(cert: Path, key: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))


def _layer(cert: Path, key: Path, sessions: int, frames: int) -> dict[str, Any]:
    server_ctx, client_ctx = _contexts(cert, key)
    delta, append = b"d" * DELTA_PLAIN, b"a" * APPEND_FRAME
    clock = time.thread_time_ns
    out: dict[str, Any] = {}
    for k in (1, sessions):
        rounds = max(4, frames // k)
        pairs = {
            name: [_MemoryPair(cls, server_ctx, client_ctx) for _ in range(k)]
            for name, cls in (("legacy", LegacyTLSLayer), ("current", TLSLayer))
        }
        ns = {name: {"decrypt": [], "encrypt": []} for name in pairs}
        for i in range(rounds):
            for name in ("legacy", "current") if i % 2 == 0 else ("current", "legacy"):
                dec = enc = 0
                for pair in pairs[name]:
                    record = pair.record(delta)
                    t0 = clock()
                    plain, ending = pair.client.decrypt(record)
                    t1 = clock()
                    sent = pair.client.encrypt(append)
                    t2 = clock()
                    assert len(plain) == DELTA_PLAIN and ending is None, (len(plain), ending)
                    assert pair.deliver(sent) == APPEND_FRAME
                    dec += t1 - t0
                    enc += t2 - t1
                ns[name]["decrypt"].append(dec / k / 1000)
                ns[name]["encrypt"].append(enc / k / 1000)
        row: dict[str, Any] = {"rounds": rounds}
        for name in pairs:
            for op in ("decrypt", "encrypt"):
                row[f"{name}_{op}_us"] = round(statistics.median(ns[name][op]), 2)
        for op in ("decrypt", "encrypt"):
            ratios = [c / o for c, o in zip(ns["current"][op], ns["legacy"][op], strict=True)]
            row[f"{op}_current_over_legacy"] = round(statistics.median(ratios), 3)
        both = [
            (cd + ce) / (ld + le)
            for cd, ce, ld, le in zip(
                ns["current"]["decrypt"], ns["current"]["encrypt"], ns["legacy"]["decrypt"], ns["legacy"]["encrypt"],
                strict=True,
            )
        ]  # fmt: skip
        row["pair_current_over_legacy"] = round(statistics.median(both), 3)
        out[f"connections_{k}"] = row
    out["coalesce_20ms_appends"] = _coalesce(server_ctx, client_ctx, sessions, frames)
    return out


def _coalesce(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, sessions: int, frames: int) -> dict[str, Any]:
    """Five 1.3 KB frames of one connection: five encrypts (five records) against one."""
    pairs = [_MemoryPair(TLSLayer, server_ctx, client_ctx) for _ in range(sessions)]
    small = b"s" * SMALL_FRAME
    clock = time.thread_time_ns
    apart, joined = [], []
    for i in range(max(4, frames // sessions)):
        for mode in ("apart", "joined") if i % 2 == 0 else ("joined", "apart"):
            ns = 0
            for pair in pairs:
                t0 = clock()
                if mode == "apart":
                    records = b"".join([pair.client.encrypt(small) for _ in range(5)])
                else:
                    records = pair.client.encrypt(small * 5)
                ns += clock() - t0
                assert pair.deliver(records) == 5 * SMALL_FRAME
            (apart if mode == "apart" else joined).append(ns / sessions / 1000)
    return {
        "connections": sessions,
        "five_records_us": round(statistics.median(apart), 2),
        "one_record_us": round(statistics.median(joined), 2),
        "one_over_five": round(statistics.median(j / a for j, a in zip(joined, apart, strict=True)), 3),
    }


# ---- 1b: the socket paths: what an SSL socket (no memory BIOs) would save ------------------
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


class _SocketLink:
    """One loopback TCP connection as a client path (``plain``, ``bio``: the shipped layer over a
    plain socket, ``ssl_socket``: an ``ssl.SSLSocket`` reading the socket itself, ``ssl_socket_peek``:
    the same plus a one-byte ``MSG_PEEK`` ``recvmsg`` per read, the kernel arrival stamp the
    shared receiver needs) and its server end (blocking, in this process, not timed)."""

    def __init__(self, path: str, listener: socket.socket, server_ctx: ssl.SSLContext,
                 client_ctx: ssl.SSLContext) -> None:  # fmt: skip
        import threading

        self.path = path
        client = socket.create_connection(listener.getsockname()[:2], timeout=10)
        server, _ = listener.accept()
        for end in (client, server):
            end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.layer: TLSLayer | None = None
        if path == "plain":
            self.server: socket.socket = server
            self.client: socket.socket = client
        else:
            self.server = server_ctx.wrap_socket(server, server_side=True, do_handshake_on_connect=False)
            shake = threading.Thread(target=self.server.do_handshake)
            shake.start()
            if path == "bio":
                self.layer = TLSLayer(client_ctx, "127.0.0.1")
                done = self.layer.handshake()
                while True:
                    out = self.layer.outgoing()
                    if out:
                        client.sendall(out)
                    if done:
                        break
                    done = self.layer.handshake(client.recv(65536))
                self.client = client
            else:
                self.client = client_ctx.wrap_socket(client, server_hostname="127.0.0.1")
            shake.join(10)
        self.client.setblocking(False)

    def serve(self, data: bytes) -> None:
        self.server.sendall(data)

    def take(self, size: int) -> None:
        got = 0
        while got < size:
            got += len(self.server.recv(65536))

    def pair(self, delta: int, append: bytes) -> None:
        """Read one delta's bytes (spinning on the socket: they are on loopback already), send one append."""
        sock, layer, got = self.client, self.layer, 0
        if layer is not None or self.path == "plain":
            while got < delta:
                try:
                    data = sock.recv(65536)
                except BlockingIOError:
                    continue
                got += len(layer.decrypt(data)[0]) if layer is not None else len(data)
            sock.send(layer.encrypt(append) if layer is not None else append)
            return
        peek = self.path == "ssl_socket_peek"
        while got < delta:
            if peek:
                with contextlib.suppress(BlockingIOError):
                    socket.socket.recvmsg(sock, 1, 64, socket.MSG_PEEK)
            try:
                while True:
                    got += len(sock.recv(65536))
                    if not sock.pending():
                        break
            except ssl.SSLWantReadError:
                continue
        sock.send(append)

    def close(self) -> None:
        for end in (self.client, self.server):
            with contextlib.suppress(OSError):
                end.close()


SOCKET_PATHS = ("plain", "bio", "ssl_socket", "ssl_socket_peek")


def _socket_paths(cert: Path, key: Path, sessions: int, rounds: int = 8) -> dict[str, Any]:
    """CPU time per append+delta pair of each client path over real loopback connections,
    ``sessions`` connections per path served in turn, the paths interleaved round by round. The
    server ends are in this process but outside the timed calls; no gevent (the harness's sockets
    are gevent's: this is the floor of each path, not the transport's cost, which ``pairs`` measures)."""
    server_ctx, client_ctx = _contexts(cert, key)
    delta, append = b"d" * DELTA_PLAIN, b"a" * APPEND_FRAME
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    links: dict[str, list[_SocketLink]] = {}
    clock = time.thread_time_ns
    try:
        for path in SOCKET_PATHS:
            links[path] = [_SocketLink(path, listener, server_ctx, client_ctx) for _ in range(sessions)]
            for link in links[path]:  # past the session tickets and every first-use cost
                link.serve(delta)
                link.pair(DELTA_PLAIN, append)
                link.take(APPEND_FRAME)
        us: dict[str, list[float]] = {path: [] for path in SOCKET_PATHS}
        for i in range(rounds):
            for path in SOCKET_PATHS if i % 2 == 0 else SOCKET_PATHS[::-1]:
                for link in links[path]:
                    link.serve(delta)
                ns = 0
                for link in links[path]:
                    t0 = clock()
                    link.pair(DELTA_PLAIN, append)
                    ns += clock() - t0
                for link in links[path]:
                    link.take(APPEND_FRAME)
                us[path].append(ns / sessions / 1000)
    finally:
        for group in links.values():
            for link in group:
                link.close()
        listener.close()
    out: dict[str, Any] = {"connections": sessions, "rounds": rounds}
    for path in SOCKET_PATHS:
        out[f"{path}_us_per_pair"] = round(statistics.median(us[path]), 2)
    cost = {path: [t - p for t, p in zip(us[path], us["plain"], strict=True)] for path in SOCKET_PATHS[1:]}
    for path in SOCKET_PATHS[1:]:
        out[f"{path}_tls_cost_us"] = round(statistics.median(cost[path]), 2)
    for path in ("ssl_socket", "ssl_socket_peek"):
        out[f"{path}_tls_cost_over_bio"] = round(
            statistics.median(c / b for c, b in zip(cost[path], cost["bio"], strict=True)), 3
        )
    return out


# ---- 2: the records the Node peer writes ---------------------------------------------------
def _records(server: Server, cert: Path, appends: int = 20) -> dict[str, Any]:
    """The TLS record sizes of the peer's answers to ``appends`` appends (a raw client: its own
    socket and SSLObject, so the records are seen as they arrive)."""
    from loadtest.audio.frames import encode_wire
    from loadtest.session.wire import ClientWire, text_frame

    host, port = server.url.removeprefix("wss://").split(":")
    ctx = ssl.create_default_context(cafile=str(cert))
    sock = socket.create_connection((host, int(port)), timeout=10)
    layer = TLSLayer(ctx, host)
    try:
        done = layer.handshake()
        while True:
            out = layer.outgoing()
            if out:
                sock.sendall(out)
            if done:
                break
            done = layer.handshake(sock.recv(65536))
        wire = ClientWire(server.url)
        wire.start_handshake([])
        for chunk in wire.data_to_send():
            sock.sendall(layer.encrypt(chunk))
        sizes: list[int] = []
        pending = b""

        def read(until: float) -> None:
            nonlocal pending
            sock.settimeout(0.05)
            while time.monotonic() < until:
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    return
                pending += data
                while len(pending) >= 5 and len(pending) >= 5 + int.from_bytes(pending[3:5], "big"):
                    n = int.from_bytes(pending[3:5], "big")
                    sizes.append(n)
                    pending = pending[5 + n :]
                plain, _ = layer.decrypt(data)
                if plain:
                    wire.receive(plain, time.time())

        read(time.monotonic() + 0.5)  # the upgrade, the tickets, session.created
        first = len(sizes)
        message = encode_wire(bytes(4800 * 3), 100).messages[0]
        for _ in range(appends):
            sock.sendall(layer.encrypt(text_frame(message)))
            read(time.monotonic() + 0.05)
        answers = sizes[first:]
        cipher = layer._obj.cipher()
    finally:
        sock.close()
    common = statistics.mode(answers) if answers else None
    return {
        "appends": appends,
        "records_after_the_upgrade": len(answers),
        "records_per_append": round(len(answers) / appends, 2),
        "most_common_record_bytes": common,
        "record_bytes_seen": sorted(set(answers)),
        "cipher": list(cipher) if cipher else None,
        "reading": "one record per delta: Node's ws corks the header and payload into one TLS write"
        if common and common > DELTA_PLAIN
        else "the header and payload are separate records",
    }


# ---- 3: the transport over loopback, in a child ----------------------------------------------
CIPHERS = {"TLS_AES_256_GCM_SHA384": "aes-256-gcm", "TLS_AES_128_GCM_SHA256": "aes-128-gcm",
           "TLS_CHACHA20_POLY1305_SHA256": "chacha20-poly1305"}  # fmt: skip


def _crypto(seconds: int = 2) -> dict[str, Any]:
    """What the cipher alone costs per append+delta pair on this machine: ``openssl speed`` over
    buffers of the delta's size (the same OpenSSL the ssl module links), both frames' bytes. The
    floor under any TLS implementation, in user space or the kernel's: it still runs this cipher."""
    out: dict[str, Any] = {"bytes_per_pair": DELTA_PLAIN + APPEND_FRAME}
    for cipher in CIPHERS.values():
        try:
            done = subprocess.run(
                ["openssl", "speed", "-evp", cipher, "-bytes", str(DELTA_PLAIN), "-seconds", str(seconds)],
                capture_output=True, text=True, timeout=30 + seconds,
            )  # fmt: skip
            last = done.stdout.strip().splitlines()[-1].split()
            bytes_per_s = float(last[-1].rstrip("k")) * 1000.0  # (openssl's "k" is 1000 bytes)
        except (OSError, subprocess.TimeoutExpired, IndexError, ValueError):
            continue
        out[cipher] = {
            "mb_per_s": round(bytes_per_s / 1e6, 1),
            "us_per_pair": round((DELTA_PLAIN + APPEND_FRAME) / bytes_per_s * 1e6, 2),
        }
    return out


def _export(ref: str, into: Path) -> Path:
    """The ``loadtest`` package of git commit ``ref``, under ``into`` (for PYTHONPATH)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "loadtest"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def _pairs_child(
    urls: tuple[str, str], cert: Path, sessions: int, rounds: int, batch: int, breakdown: bool, tree: Path | None
) -> dict[str, Any]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    else:
        env.pop("PYTHONPATH", None)
    cmd = [sys.executable, str(HERE / "tls_pairs.py"), *urls, str(cert), str(sessions), str(rounds), str(batch),
           "1" if breakdown else "0"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tempfile.gettempdir())
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"bench tls: the pairs child failed: {proc.stderr.strip()[-500:]}")
    return json.loads(lines[-1])


def _node_modules(given: str | None) -> Path | None:
    for candidate in (given, os.environ.get("RTLOAD_NODE_MODULES"), str(NODE_DIR / "node_modules")):
        if candidate and (Path(candidate) / "ws").exists():
            return Path(candidate)
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench_tls")
    parser.add_argument("--sessions", type=int, default=1500, help="connections per group (the TLS ladder's figure)")
    parser.add_argument("--frames", type=int, default=30000, help="frames per variant in the layer phase")
    parser.add_argument("--rounds", type=int, default=16, help="rounds per group (pairs children, socket phase)")
    parser.add_argument("--batch", type=int, default=25, help="connections sent to before their deltas are read")
    parser.add_argument("--before", default="", help="git commit whose loadtest tree the pairs phase compares with")
    parser.add_argument("--repeats", type=int, default=3, help="pairs children per tree (alternated with --before)")
    parser.add_argument(
        "--skip", default="", help="phases to skip, comma-separated: crypto,layer,libs,socket,records,pairs"
    )
    parser.add_argument("--node-modules", default=None, help="a node_modules folder holding ws (default bench/.node)")
    args = parser.parse_args(argv if argv is not None else [])
    skip = set(filter(None, args.skip.split(",")))
    work = Path(tempfile.mkdtemp(prefix="rtload-bench-tls-"))
    cert, key = self_signed(work)
    result: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "openssl": ssl.OPENSSL_VERSION,
        "argv": argv if argv is not None else [],
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    try:
        if "crypto" not in skip:
            result["crypto"] = _crypto()
            print(f"bench tls: crypto {json.dumps(result['crypto'])}", flush=True)
        if "layer" not in skip:
            result["layer"] = _layer(cert, key, args.sessions, args.frames)
            print(f"bench tls: layer {json.dumps(result['layer'])}", flush=True)
        if "libs" not in skip:
            result["libs"] = _libs(cert, key, args.sessions, args.frames)
            print(f"bench tls: libs {json.dumps(result['libs'])}", flush=True)
        if "socket" not in skip:
            result["socket"] = _socket_paths(cert, key, args.sessions, args.rounds)
            print(f"bench tls: socket {json.dumps(result['socket'])}", flush=True)
        modules = _node_modules(args.node_modules)
        if modules is None or shutil.which("node") is None:
            result["peer"] = "skipped: node and the ws package (bench/.node, --node-modules) are needed"
            skip |= {"records", "pairs"}
        servers: list[Server] = []
        try:
            if not skip >= {"records", "pairs"}:
                os.environ["IDLE_MS"] = "600000"  # the peer's responses stay open between rounds
                try:
                    tls_server = Server(modules, tls=(cert, key))  # type: ignore[arg-type]
                    servers.append(tls_server)
                    plain_server = Server(modules)  # type: ignore[arg-type]
                    servers.append(plain_server)
                finally:
                    os.environ.pop("IDLE_MS", None)
            if "records" not in skip:
                result["peer_records"] = _records(tls_server, cert)
                print(f"bench tls: records {json.dumps(result['peer_records'])}", flush=True)
            if "pairs" not in skip:
                urls = (plain_server.url, tls_server.url)
                trees: dict[str, Path | None] = {"after": None}
                if args.before:
                    trees = {"before": _export(args.before, work / "before"), "after": None}
                    result["before"] = args.before
                runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
                for _ in range(args.repeats):
                    for name, tree in trees.items():
                        row = _pairs_child(urls, cert, args.sessions, args.rounds, args.batch, False, tree)
                        runs[name].append(row)
                        print(f"bench tls: pairs {name} {json.dumps(row)}", flush=True)
                pairs: dict[str, Any] = {"runs": runs}
                for name, rows in runs.items():
                    pairs[name] = {
                        k: round(statistics.median(r[k] for r in rows), 3)
                        for k in ("plain_us_per_pair", "tls_us_per_pair", "tls_minus_plain_us", "tls_over_plain")
                    }
                if "before" in runs:
                    b, a = pairs["before"], pairs["after"]
                    pairs["tls_cost_after_over_before"] = round(a["tls_minus_plain_us"] / b["tls_minus_plain_us"], 3)
                pairs["breakdown"] = _pairs_child(urls, cert, args.sessions, args.rounds, args.batch, True, None)
                print(f"bench tls: breakdown {json.dumps(pairs['breakdown'])}", flush=True)
                result["pairs"] = pairs
                result["floor"] = _floor(result)
        finally:
            for server in servers:
                server.stop()
    finally:
        result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        with contextlib.suppress(OSError, ValueError):  # the record of what was tried, kept across runs
            kept = json.loads(RESULTS.read_text()).get("tried_not_kept")
            if kept:
                result["tried_not_kept"] = kept
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(f"bench tls: wrote {RESULTS}", flush=True)
        shutil.rmtree(work, ignore_errors=True)


def _floor(result: dict[str, Any]) -> dict[str, Any] | None:
    """The pairs' TLS cost against the negotiated cipher's own: how much of it is the cipher."""
    cipher = (result.get("peer_records") or {}).get("cipher")
    name = CIPHERS.get(cipher[0]) if cipher else None
    crypto = (result.get("crypto") or {}).get(name or "")
    pairs = (result.get("pairs") or {}).get("after")
    if not crypto or not pairs:
        return None
    floor = {
        "cipher": name,
        "cipher_us_per_pair": crypto["us_per_pair"],
        "tls_minus_plain_us": pairs["tls_minus_plain_us"],
        "cipher_share_of_the_tls_cost": round(crypto["us_per_pair"] / pairs["tls_minus_plain_us"], 3),
    }
    sockets = result.get("socket")
    if sockets:  # the transport's TLS cost were its reads an SSL socket's (kernel stamps kept by a peek)
        floor["ssl_socket_tls_cost_us_estimate"] = round(
            pairs["tls_minus_plain_us"] * sockets["ssl_socket_peek_tls_cost_over_bio"], 2
        )
    libs = result.get("libs") or {}
    cold = [v for k, v in libs.items() if k.startswith("connections_") and k != "connections_1"]
    if cold and "raw_c_over_stdlib" in cold[0]:  # the transport's TLS cost were its calls C on the newer OpenSSL
        floor["raw_c_tls_cost_us_estimate"] = round(pairs["tls_minus_plain_us"] * cold[0]["raw_c_over_stdlib"], 2)
    with contextlib.suppress(OSError, ValueError, KeyError, statistics.StatisticsError):
        # What 85% of plain leaves for TLS, from the latest alternated ladders: a plain session
        # costs one core / (sessions * 10 pairs a second); at 85% a TLS one may cost 1 / 0.85 of it.
        ladders = json.loads(LADDERS.read_text())
        plain = statistics.median(r["plain"]["sessions_sustained"] for r in ladders["rounds"])
        core_us = 1e6 / (plain * 10)
        floor["ladder_plain_sessions"] = plain
        floor["ladder_core_us_per_plain_pair"] = round(core_us, 1)
        floor["budget_us_per_pair_at_85pct"] = round(core_us * (1 / 0.85 - 1), 1)
        tls = statistics.median(r["tls"]["sessions_sustained"] for r in ladders["rounds"])
        floor["ladder_tls_cost_us_per_pair"] = round(1e6 / (tls * 10) - core_us, 1)
    return floor


if __name__ == "__main__":
    main(sys.argv[1:])
