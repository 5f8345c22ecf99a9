"""Plain HTTP requests (with a body) on the mock's WebSocket port.

The ``websockets`` server reads only ``GET`` upgrade requests and no bodies. The WebRTC routes
are ``POST`` requests with a body (an SDP offer, a form, JSON), so the mock's connection
(:class:`~loadtest.mock.server.MockConnection`) looks at the first bytes it receives: a ``GET``
goes to ``websockets`` unchanged; any other method is read here as one whole request
(:class:`RequestReader`), then ``websockets`` is handed a placeholder ``GET`` so that its
``process_request`` hook answers it (with :func:`http_response`) and closes the connection, as it
does for every refused upgrade.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.datastructures import Headers
from websockets.http11 import Response

MAX_HEAD = 16 * 1024
MAX_BODY = 1024 * 1024
PLACEHOLDER_GET = b"GET /_mock/http HTTP/1.1\r\nHost: mock\r\n\r\n"
REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
           405: "Method Not Allowed", 411: "Length Required", 413: "Payload Too Large", 415: "Unsupported Media Type",
           429: "Too Many Requests", 500: "Internal Server Error", 501: "Not Implemented",
           503: "Service Unavailable"}  # fmt: skip


@dataclass(slots=True)
class HttpRequest:
    """One plain HTTP request; ``error`` is set when it could not be read (``(status, message)``)."""

    method: str
    path: str  # with the query
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    error: tuple[int, str] | None = None


class RequestReader:
    """Collects the bytes of one HTTP/1.1 request until its head and ``Content-Length`` body are in."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> HttpRequest | None:
        """The request once complete (or one carrying its ``error``), else None (more bytes needed)."""
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD:
                return HttpRequest("", "", error=(400, "The request head is too large."))
            return None
        head = bytes(self.buffer[:end]).decode("latin-1")
        line, _, rest = head.partition("\r\n")
        parts = line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return HttpRequest("", "", error=(400, f"Not an HTTP/1.1 request line: {line[:80]!r}."))
        method, path = parts[0], parts[1]
        headers = Headers()
        for raw in rest.split("\r\n") if rest else ():
            name, sep, value = raw.partition(":")
            if not sep or not name.strip():
                return HttpRequest(method, path, error=(400, f"Not an HTTP header line: {raw[:80]!r}."))
            headers[name.strip()] = value.strip()
        if "chunked" in headers.get("Transfer-Encoding", "").lower():
            return HttpRequest(method, path, headers, error=(411, "Send the body with a Content-Length header."))
        try:
            length = int(headers.get("Content-Length", "0"))
        except ValueError:
            return HttpRequest(method, path, headers, error=(400, "The Content-Length header is not a number."))
        if length > MAX_BODY:
            return HttpRequest(method, path, headers, error=(413, f"The body is larger than {MAX_BODY} bytes."))
        body = bytes(self.buffer[end + 4 :])
        if len(body) < length:
            return None
        return HttpRequest(method, path, headers, body[:length])


def http_response(status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> Response:
    """A complete HTTP response (``Connection: close``) for ``websockets`` to send."""
    out = Headers()
    out["Content-Type"] = content_type
    out["Content-Length"] = str(len(body))
    out["Connection"] = "close"
    for name, value in (headers or {}).items():
        out[name] = value
    return Response(status, REASONS.get(status, "Error"), out, body)


def json_error(status: int, code: str | None, message: str, headers: dict[str, str] | None = None,
               error_type: str = "invalid_request_error", param: str | None = None) -> Response:  # fmt: skip
    """The services' JSON error body: ``{"error": {"message", "type", "param", "code"}}``."""
    error: dict[str, Any] = {"message": message, "type": error_type, "param": param, "code": code}
    return http_response(status, orjson.dumps({"error": error}), "application/json", headers)


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return http_response(status, orjson.dumps(body), "application/json", headers)
