"""One mock WebRTC call: its peer connection (aiortc), the session that runs over it, and its end.

The call answers the caller's SDP offer (:meth:`RtcCall.answer`), then waits for the caller to
connect (ICE on the host candidates of the address it was reached on, DTLS, the ``oai-events``
data channel); the :class:`~loadtest.mock.session.MockSession` then runs as over a WebSocket, with
:class:`~loadtest.mock.rtc_channel.ChannelSocket` as its connection and
:class:`~loadtest.mock.rtc_media.AnswerTrack` as its audio. The call ends when the caller closes
or the session hangs up (a ``drop`` closes the peer connection at once; an expiry after its last
event has gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from typing import Any, Protocol

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from websockets.exceptions import ConnectionClosed

from loadtest.audio.rtp_lane import PacketClock, RtpOut, receiver_reports_enabled, tap_ice
from loadtest.mock.context import SessionContext
from loadtest.mock.routing import Route
from loadtest.mock.rtc_channel import ChannelSocket
from loadtest.mock.rtc_media import AnswerTrack, input_rate, pump_caller_audio, tap_caller_audio
from loadtest.mock.session import MockSession

EVENTS_CHANNEL = "oai-events"


class OfferRejected(Exception):
    """The offer could not be answered (aiortc could not use it)."""


class CallHost(Protocol):
    """What a call needs of the mock server."""

    context: SessionContext

    def session_truth(self, route: Route | None, fault: str, status: int, params: dict[str, Any],
                      **extra: Any) -> None: ...  # fmt: skip


class RtcCall:
    def __init__(self, host: CallHost, route: Route, index: int, clock: PacketClock | None = None) -> None:
        self.host = host
        self.route = route
        self.id = "rtc_" + uuid.uuid4().hex
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.clock = clock  # the lean RTP lane (rtp_lane); None: aiortc's own sender and queue
        context = host.context
        garbage_every = int(context.profile["webrtc"]["garbage_every_packets"])

        def garbage_sent() -> None:
            context.stats.rtp_garbage_sent += 1

        self.track = AnswerTrack(self._track_event, clock, garbage_every, garbage_sent)
        self.socket = ChannelSocket(self.track, self._hang_up)
        self.session = MockSession(host.context, self.socket, route, index, media=self.track, transport="webrtc")
        self.socket.emit = self.session.send
        self.ready = asyncio.Event()  # the session runs: the caller's audio flows into it
        self._connected = asyncio.Event()  # connected, or failed (then self._failed)
        self._failed = False
        self._wants_channel = True
        self._tasks: set[asyncio.Task[Any]] = set()
        self._on_rtp: Any = None  # the caller's packets into the session (tap_caller_audio)
        self._closing: asyncio.Task[None] | None = None
        self.run_task: asyncio.Task[None] | None = None  # (the endpoint's task running the call)
        self.pc.on("datachannel", self._on_channel)
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    # ---- setting up -----------------------------------------------------------------------------
    async def answer(self, sdp: str, session: dict[str, Any] | None) -> str:
        """Apply the call's session (raises :class:`~loadtest.mock.validate.Invalid`) and answer
        the offer (raises :class:`OfferRejected`); returns the answer's SDP."""
        if session:
            self.session.apply_session(session)
        self._wants_channel = any(line.startswith("m=application ") for line in sdp.splitlines())
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except Exception as exc:  # aiortc raises ValueError and others for what it cannot use
            await self.pc.close()
            raise OfferRejected(str(exc) or type(exc).__name__) from None
        if any(t.kind == "audio" for t in self.pc.getTransceivers()):
            sender = self.pc.addTrack(self.track)
            if self.clock is not None:
                self.track.out = RtpOut(sender, on_start=self.track.start)
        try:
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        except Exception as exc:
            await self.pc.close()
            raise OfferRejected(str(exc) or type(exc).__name__) from None
        if self.clock is not None and self._on_rtp is not None:  # the caller's RTP straight off ICE
            audio = next((t for t in self.pc.getTransceivers() if t.kind == "audio"), None)
            dtls = None if audio is None else audio.receiver.transport
            if dtls is not None:  # (with the receiver's statistics: its RTCP receiver reports go out)
                receiver = audio.receiver if receiver_reports_enabled() else None  # type: ignore[union-attr]
                tap_ice(dtls.transport, dtls, self._on_rtp, receiver=receiver)
        return str(self.pc.localDescription.sdp)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _on_channel(self, channel: Any) -> None:
        if channel.label != EVENTS_CHANNEL or self.socket.channel is not None:
            return
        self.socket.attach(channel)
        self._connected.set()

    def _on_track(self, track: Any) -> None:
        if track.kind != "audio":
            return
        session = self.session
        if os.environ.get("RTLOAD_MOCK_RTC_JITTER") != "1":  # (=1: aiortc's own path, the bench's A/B)
            for transceiver in self.pc.getTransceivers():
                if transceiver.receiver.track is track:
                    self._on_rtp = tap_caller_audio(transceiver.receiver,
                                                    lambda: input_rate(session.cfg["input_format"]))  # fmt: skip

        async def pump() -> None:
            with contextlib.suppress(ConnectionClosed):
                await pump_caller_audio(track, lambda: input_rate(session.cfg["input_format"]), session.append_input,
                                        self.ready)  # fmt: skip

        self._spawn(pump())

    def _on_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and not self._wants_channel:
            self._connected.set()
        elif state in ("failed", "closed"):
            if not self._connected.is_set():
                self._failed = True
                self._connected.set()
            self.socket.ended(None)

    def _track_event(self, event: dict[str, Any]) -> None:
        self.socket.event_from_track(event)

    # ---- running -----------------------------------------------------------------------------
    async def run(self) -> None:
        """Wait for the caller, run the session, close the call (the server releases its capacity)."""
        stats = self.host.context.stats
        try:
            try:
                timeout = float(self.host.context.profile["webrtc"]["connect_timeout_s"])
                await asyncio.wait_for(self._connected.wait(), timeout)
            except TimeoutError:
                self._failed = True
            if self._failed:
                self.host.session_truth(self.route, "none", 201, {}, session_id=self.session.id, call_id=self.id,
                                        ended_by="not_connected", transport="webrtc")  # fmt: skip
                return
            stats.sessions_opened += 1
            stats.sessions_active += 1
            stats.sessions_max = max(stats.sessions_max, stats.sessions_active)
            try:
                self.ready.set()
                await self.session.run()
            finally:
                stats.sessions_active -= 1
        finally:
            await self.close()

    def _hang_up(self) -> None:
        if self._closing is None:
            self._closing = self._spawn(self._close(graceful=self.socket.close_code is not None))

    async def _close(self, graceful: bool) -> None:
        channel = self.socket.channel
        if graceful and channel is not None:  # let the last events (an expiry's error) leave first
            for _ in range(50):
                if channel.readyState != "open" or not channel.bufferedAmount:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.05)
        self.track.stop()
        await self.pc.close()

    async def close(self) -> None:
        """Close the call now (idempotent)."""
        self.socket.ended(None)
        if self._closing is None:
            self._closing = self._spawn(self._close(graceful=False))
        with contextlib.suppress(Exception):
            await self._closing
        for task in list(self._tasks):
            task.cancel()
