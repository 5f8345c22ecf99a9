"""The seam between the session core and whatever carries its events: no sockets here.

The session core (:mod:`loadtest.session.client`) talks to "a transport": it opens it
(:class:`Handshake`), sends event messages (JSON bytes) and audio appends, hands it an
``on_message(data, t)`` callback to deliver every server event with its arrival time until the
connection ends (:class:`CloseInfo`), tells it while a response waits for its first output, and
closes or drops it. :class:`Transport` is that interface. The WebSocket over a socket
(:mod:`loadtest.session.transport`, over the socket-free :mod:`loadtest.session.wire`) is one;
a WebRTC transport (events on a data channel, audio on a media track) would be another, and the
core would not know which carries its events.

A transport may be read by the process's shared receiver (:mod:`loadtest.session.reactor`)
instead of by a loop of its own: it then offers itself as a :class:`ReadSource` (a file
descriptor that becomes readable and one non-blocking read), and the receiver is handed to it
as a :class:`SharedReceiver`. Neither module imports the other; a TLS connection is a
:class:`ReadSource` like any other (its read decrypts all that the bytes read complete).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

CLOSE_ABNORMAL = 1006  # the connection was lost without a close frame
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005  # a close frame without a code
CLOSE_INVALID_DATA = 1007  # RFC 6455: a text message that is not UTF-8 (this client closes with it)
INVALID_UTF8 = "invalid UTF-8"  # how CloseInfo.protocol_error begins when that was the failure

OnMessage = Callable[[bytes, float], None]

# A transport whose audio trails the events (WebRTC: the answer streams in real time after the
# service sent response.done) holds that response.done until the audio has come, and says so at
# once with this event ({"type": ..., "response_id": ...}): the response's deadline (trigger ->
# response.done) is then met, and only its idle rule applies while the audio plays.
RESPONSE_GENERATED = "rtload.response.generated"


@dataclass(slots=True)
class Handshake:
    """What opening the connection did."""

    ok: bool = False
    status: int | None = None  # 101, the refusing HTTP status, or None when no HTTP response came
    ms: float | None = None  # connect() call -> response (or failure)
    error: str | None = None  # one line, secrets redacted
    failure: str | None = None  # a transport's own reason for a failed open (WebRTC: webrtc_ice_failed...)
    headers: dict[str, str] = field(default_factory=dict)  # response headers of note
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

    code: int | None = None  # the close code received (1006 when the connection just went away)
    reason: str = ""
    by_server: bool = True  # the server closed (frame or EOF) rather than this client
    protocol_error: str | None = None  # something this client could not parse (the connection failed)
    t: float = 0.0


@dataclass(frozen=True, slots=True)
class NetworkFigures:
    """What RTCP says of a WebRTC call's path (None: not known, and always over a WebSocket)."""

    rtp_lost: int | None = None  # the server's media packets that never arrived (RFC 3550's count)
    rtt_ms: float | None = None  # round-trip time from the server's receiver reports
    peer_rtp_lost: int | None = None  # our packets the server reports lost (its latest report)


NO_NETWORK_FIGURES = NetworkFigures()


class Transport(Protocol):
    """What the session core needs of a connection (see the module docstring)."""

    bytes_sent: int
    bytes_received: int
    rtp_dropped: int  # WebRTC: the server's media packets dropped as not SRTP/RTP (0 elsewhere)
    network: NetworkFigures  # WebRTC: the call's RTCP figures (all None elsewhere)

    def connect(self, url: str, headers: list[tuple[str, str]], timeout: float) -> Handshake: ...
    def add_secret(self, secret: str) -> None: ...
    def send(self, message: bytes) -> bool: ...
    def send_paced(self, message: bytes) -> bool: ...
    def receive_loop(self, on_message: OnMessage) -> CloseInfo: ...
    def set_awaiting_output(self, awaiting: bool) -> None: ...
    def close(self, code: int = 1000, reason: str = "") -> None: ...
    def abort(self) -> None: ...
    def release(self) -> None: ...  # the connection is over and recorded: break its reference cycles
    @property
    def open(self) -> bool: ...


class ReadSource(Protocol):
    """A connection the shared receiver reads: a descriptor to watch, one non-blocking read."""

    awaiting_output: bool  # a response waits for its first output: read before the others

    def fileno(self) -> int: ...
    def read_ready(self, on_message: OnMessage) -> CloseInfo | None:
        """Read what is there (never blocks); how the connection ended, if it did."""
        ...

    def read_ended(self, on_message: OnMessage) -> CloseInfo | None:
        """The connection was dropped on our side: deliver what is complete, say how it ended."""
        ...


class SharedReceiver(Protocol):
    """The process's one receive loop, as a transport sees it."""

    def serve(self, source: ReadSource, on_message: OnMessage) -> CloseInfo:
        """Read ``source`` until its connection ends (blocks the caller)."""
        ...

    def set_awaiting_output(self, source: ReadSource, awaiting: bool) -> None: ...
    def dropped(self, source: ReadSource) -> None:
        """``source`` is dropping its connection: end its watch now."""
        ...
