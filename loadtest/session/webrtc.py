"""One WebRTC call as a :class:`~loadtest.session.link.Transport`: events on the ``oai-events``
data channel, the caller's audio on an Opus track, the answer's audio from its RTP packets.

The session core does not know it is not talking to a WebSocket. :meth:`WebRTCTransport.connect`
makes the offer on the process's WebRTC loop (:mod:`loadtest.session.rtc_loop`), sends it as the
target's provider documents (:mod:`loadtest.session.rtc_calls`; the HTTP request is made in the
caller's greenlet, on gevent's socket), applies the answer and waits for ICE, DTLS and the data
channel; a refused exchange or a failed ICE/DTLS is a :class:`~loadtest.session.link.Handshake`
with a reason of its own (``failure``). :meth:`send` puts JSON events on the data channel and an
``input_audio_buffer.append``'s audio on the track (as Opus packets, from the moment the harness's
audio clock sends it); an event sent behind audio waits until that audio is out, so a commit never
overtakes the speech it commits.

:meth:`receive_loop` hands the core what the call brings, in arrival order, through an
:class:`~loadtest.session.rtc_answer.AnswerStream`: each data-channel message as it came, and each
RTP packet of the answer (stamped with its arrival on the loop thread, decoded there) as the
dialect's ``output_audio.delta`` of the response whose audio is playing. So time to first audio is
the first RTP packet's arrival, a stall is a gap between packets, inner silence is silence
decoded; ``response.done`` waits for ``output_audio_buffer.stopped`` (see that module).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import http.client
import logging
import os
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from loadtest.audio import opus
from loadtest.audio.rtp_lane import PacketClock, RtpOut, receiver_reports_enabled, tap_ice
from loadtest.protocol.dialects import GA
from loadtest.protocol.targets import redact_text
from loadtest.session import rtc_calls
from loadtest.session.lagstats import LagStats
from loadtest.session.link import CLOSE_ABNORMAL, CloseInfo, Handshake, NetworkFigures, OnMessage
from loadtest.session.rtc_answer import AnswerStream
from loadtest.session.rtc_loop import Inbox, RtcLoop, process_loop
from loadtest.session.rtc_media import RATE, SILENT_PACKET, CallerTrack, is_silent, opus_packets, tap_receiver
from loadtest.session.wire import HEADERS_OF_NOTE

log = logging.getLogger("loadtest.session")

PACKET_S = 0.020  # the caller's packets, one per 20 ms of audio (realtime pacing)
FAST_PACKET_S = 0.001  # fast pacing: one a millisecond (still in order with the events behind them)
_MESSAGE, _AUDIO, _ENDED = 0, 1, 2
_CLOSE_CLIENT = 1000


class _Peer:
    """The aiortc side of one call (touched only on the loop thread)."""

    def __init__(self, inbox: Inbox, packet_s: float, audio_event: str, clock: PacketClock | None = None) -> None:
        from aiortc import RTCConfiguration, RTCPeerConnection

        self.inbox = inbox
        self.answer = AnswerStream(audio_event, self.deliver)
        self.hold_timer: asyncio.TimerHandle | None = None
        self.silent_payload = b""  # the line's idle packet, once seen (no need to decode it again)
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # host candidates only: no STUN, no TURN
        self.track = CallerTrack(packet_s, clock)
        self.transceiver = transceiver = self.pc.addTransceiver(self.track, direction="sendrecv")
        if clock is not None:  # the lean lane (rtp_lane): RTP in and out beside aiortc's tasks
            self.track.out = RtpOut(transceiver.sender)
        self.decoder = opus.decoder(RATE)
        tap_receiver(transceiver.receiver, self.on_packet)
        self.channel = self.pc.createDataChannel(rtc_calls.EVENTS_CHANNEL)
        self.opened = asyncio.get_running_loop().create_future()
        self.ended = False
        self.packets = 0
        self.rtp_dropped = 0  # the server's packets that failed SRTP authentication or RTP parsing
        self.pending: collections.deque[tuple[float, str]] = collections.deque()  # events waiting for audio
        self.flush_armed = False
        self.channel.on("open", self.on_open)
        self.channel.on("message", self.on_message)
        self.channel.on("close", lambda: self.end("the data channel closed"))
        self.pc.on("connectionstatechange", self.on_state)

    # -- events (loop thread) ------------------------------------------------------------------
    def on_open(self) -> None:
        if not self.opened.done():
            self.opened.set_result(True)

    def on_message(self, message: str | bytes) -> None:
        data = message.encode() if isinstance(message, str) else message
        self.answer.event(data, time.time())
        self.arm_hold()

    def on_packet(self, payload: bytes, rtp_timestamp: int, sequence: int, arrival: float) -> None:
        self.packets += 1
        if payload == self.silent_payload:
            pcm, silent = SILENT_PACKET, True
        else:
            pcm = self.decoder.decode(payload)
            # (while a response plays every packet is its audio: silence matters only between them)
            silent = not self.answer.playing and is_silent(pcm)
            if silent and len(payload) <= 16:
                self.silent_payload = payload
        self.answer.audio(pcm, arrival, silent)

    def on_dropped(self) -> None:
        self.rtp_dropped += 1

    def network(self) -> NetworkFigures:
        """What RTCP knows of the path so far (read from any thread: each read is one copy under
        the GIL). aiortc keeps the figures; the lean lane feeds its receiver's (rtp_lane)."""
        streams = list(self.transceiver.receiver._RTCRtpReceiver__remote_streams.values())
        sender = self.transceiver.sender
        rtt = sender._RTCRtpSender__rtt  # smoothed, from the server's reports answering our sender reports
        remote = [v for v in list(sender._RTCRtpSender__stats.values()) if v.type == "remote-inbound-rtp"]
        return NetworkFigures(
            rtp_lost=sum(max(0, stream.packets_lost) for stream in streams) if streams else None,
            rtt_ms=None if rtt is None else round(rtt * 1000.0, 2),
            peer_rtp_lost=remote[-1].packetsLost if remote else None,
        )

    def deliver(self, data: bytes, t: float) -> None:
        """What the answer stream made: to the session's receiver."""
        self.inbox.put((_MESSAGE, data, t))

    def arm_hold(self) -> None:
        """A held response.done is let go after its hold without packets: a timer while one is held."""
        if self.answer.held and self.hold_timer is None:
            wait = self.answer.wait_s(time.time()) or 0.05
            self.hold_timer = asyncio.get_running_loop().call_later(wait, self.check_hold)

    def check_hold(self) -> None:
        self.hold_timer = None
        self.answer.release_stale(time.time())
        self.arm_hold()

    def on_state(self) -> None:
        state = self.pc.connectionState
        if state in ("failed", "closed"):
            self.end(f"the peer connection {state}")
            if not self.opened.done():
                self.opened.set_result(False)

    def end(self, why: str) -> None:
        if not self.ended:
            self.ended = True
            self.answer.release_all()
            self.inbox.put((_ENDED, why, time.time()))

    # -- the handshake ---------------------------------------------------------------------
    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def apply_answer(self, sdp: str) -> None:
        from aiortc import RTCSessionDescription

        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        dtls = self.transceiver.receiver.transport
        if self.track.out is not None and dtls is not None:  # (the lane: the answer's RTP off ICE)
            receiver = self.transceiver.receiver if receiver_reports_enabled() else None
            tap_ice(dtls.transport, dtls, self.on_packet, self.on_dropped, receiver=receiver)

    async def opened_within(self, timeout: float) -> str | None:
        """None once the data channel is open; else the reason it did not open in time."""
        with contextlib.suppress(asyncio.TimeoutError):
            if await asyncio.wait_for(asyncio.shield(self.opened), timeout):
                return None
        return self.failure()

    def failure(self) -> str:
        ice = self.pc.iceConnectionState
        if ice not in ("connected", "completed"):
            return rtc_calls.ICE_FAILED
        dtls = [t.sender.transport.state for t in self.pc.getTransceivers() if t.sender.transport is not None]
        sctp = self.pc.sctp
        if sctp is not None:
            dtls.append(sctp.transport.state)
        if any(state != "connected" for state in dtls) or self.pc.connectionState != "connected":
            return rtc_calls.DTLS_FAILED
        return rtc_calls.CHANNEL_FAILED

    # -- sending -----------------------------------------------------------------------------
    def send_event(self, text: str) -> None:
        """An event behind audio still to go out waits for it (in order with the other events)."""
        loop = asyncio.get_running_loop()
        due = self.track.due()
        if not self.pending and due <= loop.time() + 0.001:
            self.send_now(text)
            return
        self.pending.append((due, text))
        if not self.flush_armed:
            self.flush_armed = True
            loop.call_at(self.pending[0][0], self.flush)

    def flush(self) -> None:
        loop = asyncio.get_running_loop()
        self.flush_armed = False
        pending = self.pending
        while pending and pending[0][0] <= loop.time() + 0.001:
            self.send_now(pending.popleft()[1])
        if pending:
            self.flush_armed = True
            loop.call_at(pending[0][0], self.flush)

    def send_now(self, text: str) -> None:
        if self.channel.readyState == "open":
            with contextlib.suppress(Exception):
                self.channel.send(text)

    def send_audio(self, packets: list[bytes]) -> None:
        if not self.ended:
            self.track.push(packets)

    async def close(self) -> None:
        self.track.stop()
        with contextlib.suppress(Exception):
            await self.pc.close()
        self.end("closed by the client")


class WebRTCTransport:
    """A Realtime session over WebRTC (see the module docstring)."""

    def __init__(
        self,
        *,
        audio_event: str = GA.output_audio_delta,
        realtime_audio: bool = True,
        loop: RtcLoop | None = None,
        secrets: tuple[str, ...] = (),
        receive_lag: LagStats | None = None,
        **_ignored: Any,  # the WebSocket's options (deflate, message size, proxy) mean nothing here
    ) -> None:
        self._loop = loop or process_loop()
        self._audio_event = audio_event
        self._packet_s = PACKET_S if realtime_audio else FAST_PACKET_S
        self._secrets = secrets
        self._receive_lag = receive_lag
        self._inbox: Inbox | None = None
        self._peer: _Peer | None = None
        self._open = False
        self._closing = False
        self.awaiting_output = False
        self.bytes_sent = 0
        self.bytes_received = 0

    def add_secret(self, secret: str) -> None:
        self._secrets = (*self._secrets, secret)

    # -- the handshake ---------------------------------------------------------------------
    def connect(self, url: str, headers: list[tuple[str, str]], timeout: float) -> Handshake:
        """Offer, exchange over HTTP, answer, ICE + DTLS + data channel. Never raises."""
        hs = Handshake(t_start=time.time())
        t0 = time.perf_counter()
        deadline = time.monotonic() + timeout
        try:
            self._connect(url, headers, deadline, hs)
        except TimeoutError:
            hs.error = hs.error or f"timed out after {timeout:g}s setting up the WebRTC call"
            if hs.status is None:
                hs.failure = None  # no HTTP answer: connect_error
            elif hs.status // 100 == 2 and hs.failure is None:
                hs.failure = rtc_calls.ICE_FAILED  # answered, never connected
                hs.error = f"ICE did not connect within {timeout:g}s"
        except ValueError as exc:
            hs.error = str(exc)
        except OSError as exc:
            hs.error = f"{type(exc).__name__}: {exc.strerror or exc}"
        except Exception as exc:  # anything the WebRTC stack throws at a strange peer
            hs.error = f"{type(exc).__name__}: {exc}"
            hs.failure = hs.failure or (rtc_calls.SDP_REJECTED if hs.status is not None else None)
        hs.ms = (time.perf_counter() - t0) * 1000.0
        hs.t_end = time.time()
        if hs.error:
            hs.error = redact_text(hs.error.replace("\n", " "), self._secrets)[:300]
        if not hs.ok:
            self.abort()
        return hs

    def _connect(self, url: str, headers: list[tuple[str, str]], deadline: float, hs: Handshake) -> None:
        form = rtc_calls.call_form(url)
        loop = self._loop
        self._inbox = inbox = loop.new_inbox()

        clock = loop.packet_clock if lane_enabled() else None

        async def make() -> tuple[_Peer, str]:
            peer = _Peer(inbox, self._packet_s, self._audio_event, clock)
            return peer, await peer.offer()

        self._peer, offer = loop.call(make(), _left(deadline))
        auth = list(headers)
        if form.client_secrets_url is not None:  # Azure: an ephemeral key first
            status, got, body = _post(
                form.client_secrets_url,
                [*auth, ("Content-Type", "application/json")],
                rtc_calls.client_secret_body(form.model),
                _left(deadline),
            )
            hs.headers.update(got)
            if status // 100 != 2 or (key := rtc_calls.client_secret_value(body)) is None:
                hs.status = status
                hs.error = rtc_calls.error_line(status, body, "client_secrets")
                hs.failure = rtc_calls.refusal_reason(status) if status // 100 != 2 else rtc_calls.SDP_REJECTED
                return
            self.add_secret(key)
            request = [(k, v) for k, v in auth if k.lower() not in ("api-key", "authorization")]
            request += [("Authorization", f"Bearer {key}"), ("Content-Type", "application/sdp")]
            status, got, body = _post(form.calls_url, request, offer.encode(), _left(deadline))
        else:  # OpenAI: the offer and the session configuration in one multipart request
            payload, content_type = rtc_calls.multipart_offer(offer, form.model)
            status, got, body = _post(form.calls_url, [*auth, ("Content-Type", content_type)], payload, _left(deadline))
        self.bytes_sent += len(offer)
        self.bytes_received += len(body)
        hs.status = status
        hs.headers.update(got)
        if status // 100 != 2 or not rtc_calls.is_answer(body):
            hs.error = rtc_calls.error_line(status, body, "realtime/calls")
            hs.failure = rtc_calls.refusal_reason(status) if status // 100 != 2 else rtc_calls.SDP_REJECTED
            return
        peer = self._peer
        try:
            loop.call(peer.apply_answer(body.decode("utf-8", "replace")), _left(deadline))
        except TimeoutError:
            raise
        except Exception as exc:
            hs.error = f"the SDP answer could not be applied: {exc}"
            hs.failure = rtc_calls.SDP_REJECTED
            return
        failure = loop.call(peer.opened_within(max(0.05, _left(deadline) - 0.05)), _left(deadline) + 1.0)
        if failure is not None:
            hs.failure = failure
            hs.error = {
                rtc_calls.ICE_FAILED: "ICE found no working candidate pair",
                rtc_calls.DTLS_FAILED: "the DTLS handshake failed",
                rtc_calls.CHANNEL_FAILED: f"the {rtc_calls.EVENTS_CHANNEL} data channel did not open",
            }[failure]
            return
        self._open = True
        hs.ok = True

    # -- sending -----------------------------------------------------------------------------
    def send(self, message: bytes) -> bool:
        peer = self._peer
        if peer is None or not self._open or peer.ended:
            return False
        packets = opus_packets(message)
        if packets is not None:
            self._loop.soon(peer.send_audio, packets)
            self.bytes_sent += sum(len(p) for p in packets)
            return True
        self._loop.soon(peer.send_event, message.decode("utf-8", "replace"))
        self.bytes_sent += len(message)
        return True

    send_paced = send  # never blocks: the loop thread sends

    def set_awaiting_output(self, awaiting: bool) -> None:
        self.awaiting_output = awaiting

    # -- receiving ---------------------------------------------------------------------------
    def receive_loop(self, on_message: OnMessage) -> CloseInfo:
        """Deliver the call's events and audio (reassembled on the loop thread), in arrival order,
        until it ends."""
        inbox = self._inbox
        if inbox is None or self._peer is None:
            return CloseInfo(code=CLOSE_ABNORMAL, reason="not connected", t=time.time())
        items = inbox.items
        lag = self._receive_lag
        while True:
            inbox.wait()
            now = time.time()
            newest = 0.0
            while items:
                kind, data, t = items.popleft()
                newest = t
                if kind == _MESSAGE:
                    self.bytes_received += len(data)
                    on_message(data, t)
                else:
                    self._open = False
                    by_server = not self._closing
                    code = CLOSE_ABNORMAL if by_server else _CLOSE_CLIENT
                    return CloseInfo(code=code, reason=str(data), by_server=by_server, t=t)
            if newest and lag is not None:
                lag.record((now - newest) * 1000.0)

    @property
    def rtp_dropped(self) -> int:
        """The server's packets dropped so far: not authentic SRTP, or not RTP (the lean lane counts them)."""
        peer = self._peer
        return peer.rtp_dropped if peer is not None else 0

    @property
    def network(self) -> NetworkFigures:
        """The call's RTCP figures (none before the call or after it was released)."""
        peer = self._peer
        if peer is None:
            return NetworkFigures()
        try:
            return peer.network()
        except Exception:  # aiortc's internals (private names) moved: the figures are unknown, not an error
            return NetworkFigures()

    @property
    def audio_packets(self) -> int:
        peer = self._peer
        return peer.answer.audio_packets if peer is not None else 0

    # -- closing -----------------------------------------------------------------------------
    @property
    def open(self) -> bool:
        peer = self._peer
        return self._open and peer is not None and not peer.ended

    def close(self, code: int = 1000, reason: str = "") -> None:
        """End the call (the receiver sees it end). Never raises."""
        self._closing = True
        peer = self._peer
        if peer is not None:
            self._loop.soon(_spawn_close, peer)

    def abort(self) -> None:
        self.close()

    def release(self) -> None:
        self._peer = None
        self._inbox = None


def warm_up(loop: RtcLoop | None = None, audio: Iterable[bytes] = ()) -> None:
    """Start the WebRTC loop and make (and drop) one offer, and encode ``audio`` (append events) to
    Opus: the first call's one-off costs up front."""
    loop = loop or process_loop()
    opus.libopus()
    for message in audio:
        opus_packets(message)

    async def offer_once() -> None:
        from aiortc import RTCPeerConnection

        pc = RTCPeerConnection()
        pc.addTransceiver("audio", direction="sendrecv")
        pc.createDataChannel(rtc_calls.EVENTS_CHANNEL)
        await pc.setLocalDescription(await pc.createOffer())
        await pc.close()

    try:
        loop.call(offer_once(), 20.0)
    except Exception:  # the first real call will say what is wrong
        log.exception("the WebRTC warm-up failed")


_CLOSING: set[asyncio.Task[None]] = set()  # closes in flight (the loop keeps only weak references)


def _spawn_close(peer: _Peer) -> None:
    task = asyncio.ensure_future(peer.close())
    _CLOSING.add(task)
    task.add_done_callback(_CLOSING.discard)


def lane_enabled() -> bool:
    """RTP through the lean lane (:mod:`loadtest.audio.rtp_lane`); ``RTLOAD_RTC_LANE=0``: aiortc's
    own sender task and receive queue (the bench's A/B)."""
    return os.environ.get("RTLOAD_RTC_LANE", "1") != "0"


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _post(url: str, headers: list[tuple[str, str]], body: bytes, timeout: float) -> tuple[int, dict[str, str], bytes]:
    """One HTTP POST (gevent's socket under Locust): status, the headers of note, the body."""
    parts = urlsplit(url)
    conn_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_class(parts.hostname or "", parts.port, timeout=timeout)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("POST", path, body=body, headers={**dict(headers), "Content-Length": str(len(body))})
        response = conn.getresponse()
        data = response.read()
        got = {
            name: value for name in (*HEADERS_OF_NOTE, "location") if (value := response.getheader(name)) is not None
        }
        return response.status, got, data
    except TimeoutError:
        raise
    finally:
        conn.close()
