"""TLS as bytes in, bytes out: an :class:`ssl.SSLObject` over two :class:`ssl.MemoryBIO` s. No sockets.

The transport keeps one plain non-blocking socket for ``ws://`` and ``wss://`` alike and puts
this layer between it and the wire: ciphertext read from the socket goes into :meth:`TLSLayer.decrypt`,
which returns all the plaintext it completes (so nothing decrypted is ever left inside the TLS
object where a readiness check on the socket would not see it); plaintext to send goes through
:meth:`TLSLayer.encrypt`, which returns the records to write. The socket's reads are then the
shared receiver's like any other (kernel arrival stamps included), and a send that cannot be
written yet is ciphertext in the connection's backlog, written in order.
"""

from __future__ import annotations

import ssl
import threading

RECORD_BYTES = 16 * 1024  # the most plaintext one TLS record carries
EOF = "eof"  # :meth:`TLSLayer.decrypt`'s ending for the end of the stream (clean or not)


_local = threading.local()  # this thread's shared pair of memory BIOs (see thread_bios)


def thread_bios() -> tuple[ssl.MemoryBIO, ssl.MemoryBIO]:
    """The pair of memory BIOs (incoming, outgoing) shared by every layer made here with ``shared=True``."""
    bios: tuple[ssl.MemoryBIO, ssl.MemoryBIO] | None = getattr(_local, "bios", None)
    if bios is None:
        bios = _local.bios = (ssl.MemoryBIO(), ssl.MemoryBIO())
    return bios


class TLSLayer:
    """One client TLS session over memory (see the module docstring). Not thread-safe: the
    transport serialises calls where threads share it.

    ``shared=True``: the layer uses its thread's pair of memory BIOs (:func:`thread_bios`), which
    every other shared layer of the thread uses too, and must be called from that thread only (the
    transport's gevent mode: every TLS call is on the hub's thread and none yields). Each call
    leaves both BIOs empty: what the TLS object did not take (a record's first bytes stay inside
    it; anything else, kept here) and what it made for the peer move out before it returns. With
    thousands of connections, each connection's own pair of 8 KiB BIO buffers is cold by its next
    record; one pair stays in cache (bench/bench_tls.py ``layer``: 0.86x the layer's time per
    pair at 1,500 connections)."""

    __slots__ = ("_in", "_left", "_made", "_obj", "_out", "_shared")

    def __init__(self, context: ssl.SSLContext, server_hostname: str, shared: bool = False) -> None:
        if shared:
            self._in, self._out = thread_bios()
        else:
            self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._shared = shared
        self._left = b""  # (shared) the peer's bytes the TLS object has not taken yet
        self._made = b""  # (shared) records made for the peer, not handed out yet
        self._obj = context.wrap_bio(self._in, self._out, server_hostname=server_hostname)

    def _settle(self) -> None:
        """(shared) Empty both BIOs into this layer before another layer uses them."""
        if self._in.pending:
            self._left += self._in.read()
        if self._out.pending:
            self._made += self._out.read()

    def handshake(self, data: bytes | None = None) -> bool:
        """Feed ``data`` (the peer's bytes; ``b""``: the stream ended) and advance the handshake:
        True once done. What to send is in :meth:`outgoing`. Raises :class:`ssl.SSLError` (a
        certificate error among them)."""
        incoming = self._in
        if self._left:
            incoming.write(self._left)
            self._left = b""
        if data:
            incoming.write(data)
        elif data is not None:
            if self._shared:  # (an end written into a shared BIO would end every layer's stream)
                self._settle()
                raise ssl.SSLEOFError(ssl.SSL_ERROR_EOF, "EOF occurred in violation of protocol")
            incoming.write_eof()
        try:
            self._obj.do_handshake()
        except ssl.SSLWantReadError:
            return False
        finally:
            if self._shared:
                self._settle()
        return True

    @property
    def has_outgoing(self) -> bool:
        return bool(self._made) or self._out.pending > 0

    def outgoing(self) -> bytes:
        """The records waiting to be written (handshake messages, alerts, replies to the peer)."""
        made = self._made
        if self._out.pending:
            made += self._out.read()
        self._made = b""
        return made

    def encrypt(self, data: bytes) -> bytes:
        """``data`` as TLS records to write (with anything else waiting to go first)."""
        obj = self._obj
        if data:
            n = obj.write(data)  # over memory SSL_write takes it all (records of <= 16 KiB) in one call
            if n < len(data):  # (not seen; kept so a partial write could never lose bytes)
                view = memoryview(data)[n:]
                while view:
                    view = view[obj.write(view) :]
        out = self._out.read()
        if self._made:
            out = self._made + out
            self._made = b""
        return out

    def decrypt(self, data: bytes | memoryview) -> tuple[bytes, str | None]:
        """Feed what the socket read (``b""``: its end) and return (every byte of plaintext it
        completes, how the stream ended: None while it lives, :data:`EOF`, or a TLS error's text).

        ``data`` may be a view of a buffer the caller reuses: it is copied in before this returns.
        The loop stops when neither the incoming BIO nor the TLS object holds a byte (no failed
        read, no exception raised and caught per call: that costs as much as the read itself);
        only a record that is not complete yet ends it with ``SSLWantReadError``. Each read asks
        for what the records in hand can hold at most (one record's plaintext is at most 16 KiB
        and never more than its ciphertext), so the bytes made are not a 64 KiB block shrunk."""
        incoming = self._in
        if self._left:
            incoming.write(self._left)
            self._left = b""
        if data:
            incoming.write(data)
        elif not self._shared:  # (shared: the end is this layer's alone, below)
            incoming.write_eof()
        obj = self._obj
        plain = b""
        parts: list[bytes] | None = None
        ending: str | None = None
        try:
            while True:
                n = incoming.pending + obj.pending()
                if not n:
                    break
                chunk = obj.read(n if n < RECORD_BYTES else RECORD_BYTES)
                if not chunk:  # the peer's close_notify
                    ending = EOF
                    break
                if not plain:
                    plain = chunk
                elif parts is None:
                    parts = [plain, chunk]
                else:
                    parts.append(chunk)
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            ending = EOF
        except ssl.SSLError as exc:
            ending = f"TLS error: {exc.reason or exc}"
        if self._shared:
            self._settle()
            if ending is not None:
                self._left = b""  # (what follows a stream's end is never read)
        if not data and ending is None:
            ending = EOF
        return (plain if parts is None else b"".join(parts)), ending
