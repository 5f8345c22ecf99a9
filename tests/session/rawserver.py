"""A tiny raw WebSocket server on loopback that misbehaves on purpose (garbage frames, odd upgrades).

The mock speaks the protocol correctly; these cases need a peer that does not: after the upgrade
it sends ``script`` (raw bytes, or ("sleep", s)), then closes the TCP connection. With ``tls`` (a
server context) it speaks TLS, and two more steps apply: ("reset",) resets the TCP connection
(RST, no close_notify) and ("raw", bytes) writes bytes beneath TLS (a corrupt record). ``request`` keeps
the upgrade request head as received, ``received`` the bytes after it. A refusing ``status_line``
carries ``body``, or with ``echo`` the request head (a gateway that reflects what it was sent).
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
import struct
import threading
from typing import Any

import orjson
from websockets.utils import GUID as _GUID

GUID = _GUID.encode()


def frame(payload: bytes, opcode: int = 0x1, fin: bool = True) -> bytes:
    """An unmasked server frame."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + n.to_bytes(2, "big")
    else:
        head += bytes([127]) + n.to_bytes(8, "big")
    return head + payload


def event(obj: dict[str, Any]) -> bytes:
    return frame(orjson.dumps(obj))


def close(code: int, reason: str = "") -> bytes:
    """A server close frame."""
    return frame(struct.pack("!H", code) + reason.encode(), opcode=0x8)


def gateway_error(message: str) -> bytes:
    """LiteLLM's realtime proxy's own error event (no event_id, no code), as it sends a backend's failure."""
    return event({"type": "error", "error": {"type": "server_error", "message": message}})


def client_frames(data: bytes) -> list[tuple[int, bytes]]:
    """The (opcode, unmasked payload) of each whole frame the client sent (``RawServer.received``)."""
    out: list[tuple[int, bytes]] = []
    off = 0
    while len(data) - off >= 6:
        b0, b1 = data[off], data[off + 1]
        n, head = b1 & 0x7F, 2
        if n == 126:
            n, head = int.from_bytes(data[off + 2 : off + 4], "big"), 4
        elif n == 127:
            n, head = int.from_bytes(data[off + 2 : off + 10], "big"), 10
        mask = data[off + head : off + head + 4] if b1 & 0x80 else b"\0\0\0\0"
        start = off + head + (4 if b1 & 0x80 else 0)
        payload = data[start : start + n]
        if len(payload) < n:
            break
        out.append((b0 & 0x0F, bytes(c ^ mask[i % 4] for i, c in enumerate(payload))))
        off = start + n
    return out


SESSION_CREATED = event(
    {"type": "session.created", "event_id": "e1", "session": {"id": "sess_raw", "type": "realtime"}}
)
SESSION_UPDATED = event({"type": "session.updated", "event_id": "e2", "session": {"id": "sess_raw"}})


def failed_response(response_id: str, message: str = "boom") -> list[bytes]:
    """``response.created`` then ``response.done`` failed with ``server_error`` and ``message``."""
    return [
        event({"type": "response.created", "response": {"id": response_id, "status": "in_progress"}}),
        event({"type": "response.done", "response": {"id": response_id, "status": "failed", "status_details": {
            "type": "failed", "error": {"type": "server_error", "code": None, "message": message}}}}),
    ]  # fmt: skip


def failed_session(response_id: str, message: str = "boom") -> list[Any]:
    """A whole script: the session opens, one response fails with ``message``, then a pause."""
    return [SESSION_CREATED, SESSION_UPDATED, *failed_response(response_id, message), ("sleep", 0.3)]


class RawServer:
    def __init__(
        self,
        script: list[Any],
        status_line: bytes | None = None,
        extra: bytes = b"",
        body: bytes = b"",
        echo: bool = False,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.script = script
        self.status_line = status_line  # e.g. b"HTTP/1.1 503 Service Unavailable" instead of the 101
        self.extra = extra
        self.body = body
        self.echo = echo
        self.request = b""  # the upgrade request head (request line and headers)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.tls = tls
        self.url = f"{'wss' if tls else 'ws'}://127.0.0.1:{self.port}"
        self.received = b""
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        import time

        conn, _ = self.sock.accept()
        conn.settimeout(5)
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            self.request = data.split(b"\r\n\r\n", 1)[0]
            key = next(
                line.split(b":", 1)[1].strip()
                for line in data.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key")
            )
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
            if self.status_line:
                body = self.request if self.echo else self.body
                length = b"\r\nContent-Length: %d\r\n" % len(body)
                conn.sendall(self.status_line + length + self.extra + b"\r\n" + body)
            else:
                conn.sendall(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Accept: " + accept + b"\r\n" + self.extra + b"\r\n"
                )
            for step in self.script:
                if isinstance(step, tuple) and step[0] == "sleep":
                    time.sleep(step[1])
                elif isinstance(step, tuple) and step[0] == "reset":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    conn.close()
                    return
                elif isinstance(step, tuple) and step[0] == "raw":
                    os.write(conn.fileno(), step[1])  # beneath TLS: the peer's TLS sees a corrupt record
                else:
                    conn.sendall(step)
            conn.settimeout(0.5)
            try:
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    self.received += chunk
            except OSError:
                pass
        except OSError:
            pass
        finally:
            conn.close()
            self.sock.close()

    def join(self, timeout: float = 5) -> None:
        self._thread.join(timeout)
