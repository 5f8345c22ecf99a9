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

RECORD_BYTES = 16 * 1024  # the most plaintext one TLS record carries
EOF = "eof"  # :meth:`TLSLayer.decrypt`'s ending for the end of the stream (clean or not)


class TLSLayer:
    """One client TLS session over memory (see the module docstring). Not thread-safe: the
    transport serialises calls where threads share it."""

    __slots__ = ("_in", "_obj", "_out")

    def __init__(self, context: ssl.SSLContext, server_hostname: str) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = context.wrap_bio(self._in, self._out, server_hostname=server_hostname)

    def handshake(self, data: bytes | None = None) -> bool:
        """Feed ``data`` (the peer's bytes) and advance the handshake: True once done. What to
        send is in :meth:`outgoing`. Raises :class:`ssl.SSLError` (a certificate error among them)."""
        if data:
            self._in.write(data)
        elif data is not None:
            self._in.write_eof()
        try:
            self._obj.do_handshake()
        except ssl.SSLWantReadError:
            return False
        return True

    @property
    def has_outgoing(self) -> bool:
        return self._out.pending > 0

    def outgoing(self) -> bytes:
        """The records waiting to be written (handshake messages, alerts, replies to the peer)."""
        return self._out.read() if self._out.pending else b""

    def encrypt(self, data: bytes) -> bytes:
        """``data`` as TLS records to write (with anything else waiting to go first)."""
        obj = self._obj
        if data:
            n = obj.write(data)  # over memory SSL_write takes it all (records of <= 16 KiB) in one call
            if n < len(data):  # (not seen; kept so a partial write could never lose bytes)
                view = memoryview(data)[n:]
                while view:
                    view = view[obj.write(view) :]
        return self._out.read()

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
        if data:
            incoming.write(data)
        else:
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
        if not data and ending is None:
            ending = EOF
        return (plain if parts is None else b"".join(parts)), ending
