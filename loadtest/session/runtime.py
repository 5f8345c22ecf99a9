"""What the sessions of one process share, in one place with one owner: the process's audio clock
(:class:`~loadtest.session.pacer.Pacer`), its shared receiver
(:class:`~loadtest.session.reactor.Reactor`), the pool of audio its open responses may keep as
evidence (:class:`~loadtest.session.evidence.AudioPool`) and its figures (:class:`ProcessFigures`: how late
audio frames went out, how long reads waited, how many sessions are open).

A :class:`SessionRuntime` is made explicitly; nothing is made or installed at import. Sessions
take one (``RealtimeSession(runtime=...)``); without one they use the process's
(:func:`process_runtime`, made on first call). The harness owns the process's runtime in a
Locust process: it hands it to every session and reads its figures once a second for the health
rows. ``RTLOAD_SHARED_CLOCK=0`` / ``RTLOAD_SHARED_RECEIVER=0`` (read when a runtime is made) turn
the shared clock / receiver off for A/B comparisons; ``RTLOAD_KEEP_AUDIO_MB`` sizes the audio pool.

This is also where transports are made (:meth:`SessionRuntime.new_transport`), so the session
core never names the transport it talks to, and the transport and the shared receiver are
wired here rather than importing each other.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from loadtest.session.evidence import DEFAULT_POOL_MB, AudioPool
from loadtest.session.lagstats import LagStats
from loadtest.session.link import Transport
from loadtest.session.pacer import Pacer
from loadtest.session.reactor import Reactor, epoll_class
from loadtest.session.transport import WebSocketTransport


class ProcessFigures:
    """The process-wide figures the harness reads into its health rows."""

    __slots__ = ("frame_lag", "open_sessions", "receive_lag")

    def __init__(self) -> None:
        # how late each realtime audio frame went out (ms) against its slot on the audio clock
        self.frame_lag = LagStats()
        # how long the newest bytes of each read had waited in the socket (ms, kernel stamps)
        self.receive_lag = LagStats()
        self.open_sessions = 0  # connections open (past the upgrade, not yet closed) in this process


class SessionRuntime:
    """One process's shared audio clock, shared receiver and figures (see the module docstring)."""

    def __init__(
        self,
        *,
        shared_clock: bool | None = None,
        shared_receiver: bool | None = None,
        keep_audio_mb: float | None = None,
    ) -> None:
        if shared_clock is None:
            shared_clock = os.environ.get("RTLOAD_SHARED_CLOCK", "1") != "0"
        if shared_receiver is None:
            shared_receiver = os.environ.get("RTLOAD_SHARED_RECEIVER", "1") != "0"
        if keep_audio_mb is None:
            keep_audio_mb = float(os.environ.get("RTLOAD_KEEP_AUDIO_MB", DEFAULT_POOL_MB))
        self.figures = ProcessFigures()
        # the audio all open responses may hold for --keep-audio (loadtest.session.evidence)
        self.audio_pool = AudioPool(int(keep_audio_mb * 1024 * 1024))
        self.pacer = Pacer(enabled=shared_clock)
        self.reactor: Reactor | None = Reactor(self.pacer) if shared_receiver and epoll_class() is not None else None

    def new_transport(
        self, kind: str = "websocket", audio_event: str = "", realtime_audio: bool = True, **options: Any
    ) -> Transport:
        """A transport for one connection: a WebSocket over a socket (read by the shared receiver
        where it can be), or a WebRTC call (``kind="webrtc"``: on the process's WebRTC loop, made
        on first use; ``audio_event`` names the dialect's audio delta its RTP audio is given as,
        ``realtime_audio`` paces the caller's packets at 20 ms, else 1 ms)."""
        if kind == "webrtc":
            from loadtest.session.webrtc import WebRTCTransport

            return WebRTCTransport(
                audio_event=audio_event,
                realtime_audio=realtime_audio,
                receive_lag=self.figures.receive_lag,
                **options,
            )
        return WebSocketTransport(receiver=self.reactor, receive_lag=self.figures.receive_lag, **options)

    def prepare(self, kind: str, audio: Iterable[bytes] = ()) -> None:
        """Get ``kind``'s transports ready before the first session needs one: for WebRTC, import
        aiortc and PyAV (about half a second of one core, which would otherwise stall every session
        of the process at the first call), start the WebRTC loop with one throw-away offer, and
        encode the ``audio`` append events to Opus (or the audio clock would, at their first send)."""
        if kind == "webrtc":
            from loadtest.session.webrtc import warm_up

            warm_up(audio=audio)


_PROCESS: SessionRuntime | None = None


def process_runtime() -> SessionRuntime:
    """The process's runtime, made on first call."""
    global _PROCESS
    if _PROCESS is None:
        _PROCESS = SessionRuntime()
    return _PROCESS
