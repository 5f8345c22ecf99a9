"""A call's RTP audio beside aiortc's media pipeline: pre-encoded Opus packets out on one paced
clock for every call of the loop, and the peer's packets in straight from the ICE connection.

aiortc sends a track's audio from one task per sender: the track's ``recv`` sleeps until the
packet is due (a timer and a task wake-up per packet), the encoder packs it, an ``RtpPacket`` is
built with its header extensions and serialized, and four coroutines hand it down to SRTP and the
socket. It receives through the ICE connection's queue: a task wake-up per datagram, then parsing,
routing and the receiver's coroutine. At 50 packets a second each way per call, that machinery,
not the audio, was most of a WebRTC call's CPU on both ends (``bench/results/webrtc_ab.json``,
``rtp_lane``). Here, on the same connection, DTLS-SRTP keys and ICE pair:

- :class:`RtpOut` writes one packet synchronously: a header made once from the negotiated
  parameters (payload type, SSRC, the ``mid`` extension) with its sequence number, timestamp and
  marker patched in, protected and sent by the DTLS transport's own ``_send_rtp`` (which never
  suspends); the sender's counters move as aiortc's would, so its RTCP sender reports stay true.
- :class:`PacketClock` paces every call's queued packets on one timer: it fires at the earliest
  packet due, at most once per ``tick_s``, and sends each line's due packets (a packet leaves at
  most ``tick_s`` after its time; its RTP timestamp is its time, not its departure).
- :func:`tap_ice` takes SRTP packets off the ICE connection as they arrive (before its queue),
  unprotects and parses them (:func:`parse`) and hands the payload on; DTLS, SCTP (the data
  channel) and RTCP go aiortc's way. Given the connection's ``RTCRtpReceiver``, it also keeps
  that receiver's per-SSRC statistics (:class:`ReceivedStream`: highest sequence, loss, jitter),
  which aiortc's own RTP path would have kept: the receiver's RTCP task then sends the peer its
  receiver reports (RFC 3550 6.4.2, about once a second) as a browser does, and the peer's sender
  reports reach the receiver (their SSRC routed to it), so the reports carry LSR/DLSR for its
  round-trip time.

Only aiortc's objects of one connection are touched, on its loop's thread.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import struct
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

log = logging.getLogger("loadtest.rtp")

RTP_VERSION = 0x80
_SEQ_TS = struct.Struct("!HI")
_SSRC = struct.Struct("!I")
# the most received SSRCs a call keeps statistics for (and routes sender reports of): a call has
# one; a server sending under ever new SSRCs would otherwise grow both by 50 a second (an RTCP
# receiver report carries at most 31 report blocks)
MAX_STREAMS = 8
_EXT_LEN = struct.Struct("!H")
TICK_S = 0.005
OnRtp = Callable[[bytes, int, int, float], None]  # (payload, RTP timestamp, sequence, arrival)


def parse(data: bytes) -> tuple[bytes, int, int] | None:
    """An RTP packet's payload, timestamp and sequence number (None: not a valid RTP packet)."""
    size = len(data)
    if size < 12 or data[0] & 0xC0 != RTP_VERSION:
        return None
    first = data[0]
    pos = 12 + 4 * (first & 0x0F)
    if first & 0x10:  # a header extension: its profile, length in words, then the words
        if size < pos + 4:
            return None
        pos += 4 + 4 * _EXT_LEN.unpack_from(data, pos + 2)[0]
    end = size - data[-1] if first & 0x20 else size  # padding: its count is the last byte
    if end < pos:
        return None
    sequence, timestamp = _SEQ_TS.unpack_from(data, 2)
    return data[pos:end], timestamp, sequence


def is_rtcp(data: bytes) -> bool:
    """RTCP rather than RTP (RFC 5761's demultiplexing: packet types 192-223)."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def run_now(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends to its end, synchronously (its result, or its error)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError(f"{coro.__qualname__} suspended; it must complete at once")


class RtpOut:
    """Pre-encoded packets onto one aiortc ``RTCRtpSender``'s connection (see the module docstring).

    Made before the offer (or the answer): it learns the negotiated parameters when aiortc starts
    the sender, once DTLS is up, and then calls ``on_start``."""

    def __init__(self, sender: Any, sequence: int | None = None, timestamp_origin: int | None = None,
                 on_start: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.sender = sender  # (a stream starts at a random sequence number and timestamp: RFC 3550)
        self.sequence = (random.getrandbits(16) if sequence is None else sequence) & 0xFFFF
        self.origin = (random.getrandbits(32) if timestamp_origin is None else timestamp_origin) & 0xFFFFFFFF
        self.header: bytearray | None = None  # the negotiated header (sequence, timestamp patched in)
        self.packets = 0
        self.octets = 0
        self.dropped = 0  # packets due before the connection could carry them
        start = sender.send

        async def send(parameters: Any) -> None:  # aiortc starts the sender: the header is known now
            self.header = _header(parameters, sender._ssrc)
            await start(parameters)
            if on_start is not None:
                on_start()

        sender.send = send

    def send(self, payload: bytes, timestamp: int, marker: bool = False) -> bool:
        """Send one packet now (``timestamp`` in RTP units from the stream's start); False when the
        connection is not (or no longer) up."""
        header = self.header
        transport = self.sender.transport
        if header is None or transport is None or getattr(transport, "_tx_srtp", None) is None:
            self.dropped += 1
            return False
        rtp_timestamp = (self.origin + timestamp) & 0xFFFFFFFF
        header[1] = (header[1] & 0x7F) | (0x80 if marker else 0)
        _SEQ_TS.pack_into(header, 2, self.sequence, rtp_timestamp)
        try:
            run_now(transport._send_rtp(bytes(header) + payload))
        except ConnectionError:
            self.dropped += 1
            return False
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.packets += 1
        self.octets += len(payload)
        sender = self.sender  # its RTCP sender reports read these (aiortc's own names for them)
        sender._RTCRtpSender__packet_count = self.packets
        sender._RTCRtpSender__octet_count = self.octets
        if self.packets % 25 == 1:  # the report's NTP/RTP time pair (twice a second is plenty)
            from aiortc import clock

            sender._RTCRtpSender__ntp_timestamp = clock.current_ntp_time()
            sender._RTCRtpSender__rtp_timestamp = rtp_timestamp
        return True

    def send_garbage(self, size: int = 48) -> bool:
        """One datagram that looks like this stream's SRTP (its first two header bytes) and is not:
        it fails the receiver's authentication, as a broken middlebox's would (the mock's
        ``webrtc.garbage_every_packets``). False when the connection is not up."""
        header = self.header
        transport = self.sender.transport
        if header is None or transport is None or getattr(transport, "_tx_srtp", None) is None:
            return False
        try:
            garbage = bytes(header[:2]) + random.randbytes(max(12, size) - 2)
            run_now(transport.transport._connection.send(garbage))  # (what _send_rtp sends through, unprotected)
        except ConnectionError:
            return False
        return True


def _header(parameters: Any, ssrc: int) -> bytearray:
    """The RTP header every packet of this sender carries: the codec's payload type, its SSRC and
    the ``mid`` header extension when negotiated (BUNDLE routing)."""
    from aiortc.rtp import HeaderExtensionsMap, RtpPacket

    extensions = HeaderExtensionsMap()
    extensions.configure(parameters)
    packet = RtpPacket(payload_type=parameters.codecs[0].payloadType, sequence_number=0, timestamp=0, ssrc=ssrc)
    packet.extensions.mid = parameters.muxId
    return bytearray(packet.serialize(extensions))


class Line(Protocol):
    """What the clock paces: one call's outgoing packets."""

    def pump(self, now: float) -> float | None:
        """Send what is due by ``now`` (loop time); when the next packet is due (None: none queued)."""
        ...


class PacketClock:
    """One timer for every line of a loop (see the module docstring)."""

    def __init__(self, tick_s: float = TICK_S) -> None:
        self.tick_s = tick_s
        self._lines: set[Line] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._at = 0.0
        self.ticks = 0

    def wake(self, line: Line, due: float) -> None:
        """On the loop thread: ``line`` has a packet due at ``due`` (loop time)."""
        self._lines.add(line)
        if self._timer is None or due < self._at - self.tick_s:
            self._arm(due)

    def _arm(self, due: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._at = max(due, loop.time())
        self._timer = loop.call_at(self._at, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self.ticks += 1
        loop = asyncio.get_running_loop()
        now = loop.time()
        soonest: float | None = None
        done: list[Line] = []
        for line in tuple(self._lines):  # (a line may end, or another start, while it sends)
            try:
                due = line.pump(now + 0.0005)
            except Exception:  # one call's failure is its own
                log.exception("an RTP line failed")
                due = None
            if due is None:
                done.append(line)
            elif soonest is None or due < soonest:
                soonest = due
        for line in done:
            self._lines.discard(line)
        if soonest is not None:
            self._arm(max(soonest, now + self.tick_s))

    def forget(self, line: Line) -> None:
        self._lines.discard(line)


def receiver_reports_enabled() -> bool:
    """Whether :func:`tap_ice` keeps the receiver's statistics (so RTCP receiver reports go out);
    ``RTLOAD_RTC_RECEIVER_REPORTS=0``: no reports, as before (the bench's A/B). Read per call."""
    return os.environ.get("RTLOAD_RTC_RECEIVER_REPORTS", "1") != "0"


@functools.cache
def received_stream_class() -> type:
    """The class of a received stream's statistics (:func:`tap_ice` keeps one per SSRC), made on first
    use (aiortc is imported only by WebRTC runs)."""
    from aiortc.rtcrtpreceiver import StreamStatistics

    class ReceivedStream(StreamStatistics):  # type: ignore[misc]
        """aiortc's statistics of one received SSRC (what its receiver reports and ``getStats``
        read), kept from the lane's packets: :meth:`take` is aiortc's ``add`` for a sequence
        number, timestamp and arrival time already in hand (no packet object, no clock read),
        with RFC 3550's jitter (A.8) over RTP timestamps that may wrap."""

        def take(self, sequence: int, timestamp: int, arrival: float) -> None:
            self.packets_received += 1
            last = self.max_seq
            now = int(arrival * self._clockrate)
            if last is None:  # the first packet
                self.base_seq = self.max_seq = sequence
                self._last_arrival, self._last_timestamp = now, timestamp
                return
            if not 0 < (sequence - last) & 0xFFFF < 0x8000:  # a late or repeated packet: counted only
                return
            if sequence < last:
                self.cycles += 1 << 16
            self.max_seq = sequence
            if timestamp != self._last_timestamp:
                span = ((timestamp - self._last_timestamp + 0x80000000) & 0xFFFFFFFF) - 0x80000000
                self._jitter_q4 += abs(now - self._last_arrival - span) - ((self._jitter_q4 + 8) >> 4)
            self._last_arrival, self._last_timestamp = now, timestamp

    return ReceivedStream


def tap_ice(
    ice_transport: Any,
    dtls_transport: Any,
    on_rtp: OnRtp,
    on_dropped: Callable[[], None] | None = None,
    receiver: Any = None,
    clock_rate: int = 48000,
) -> None:
    """Take the connection's SRTP packets as they arrive (see the module docstring): each valid
    one's ``on_rtp(payload, timestamp, sequence, arrival)``; a packet that fails authentication
    or parsing is dropped, as aiortc drops it, and counted by ``on_dropped()``. With the
    connection's ``RTCRtpReceiver`` as ``receiver``, its statistics are kept for its receiver
    reports (``clock_rate``: the codec's RTP clock)."""
    import pylibsrtp

    connection = ice_transport._connection
    queued = connection.data_received
    # what the receiver's RTCP task reports on, and the router that sends it the peer's reports
    # (aiortc fills both in its own RTP path, which the lane's packets skip)
    streams: dict[int, Any] | None = None if receiver is None else receiver._RTCRtpReceiver__remote_streams
    router = None if receiver is None else dtls_transport._rtp_router
    stream_class = None if receiver is None else received_stream_class()

    def received(plain: bytes, sequence: int, timestamp: int, arrival: float) -> None:
        ssrc = _SSRC.unpack_from(plain, 8)[0]
        stream = streams.get(ssrc)  # type: ignore[union-attr]
        if stream is None:  # a new stream: its sender reports go to this receiver
            if len(streams) >= MAX_STREAMS:  # type: ignore[arg-type]
                return  # (its audio still goes on; only its statistics are not kept)
            stream = streams[ssrc] = stream_class(clock_rate)  # type: ignore[index, misc]
            router.ssrc_table.setdefault(ssrc, receiver)  # type: ignore[union-attr]
        stream.take(sequence, timestamp, arrival)

    def data_received(data: bytes, component: int) -> None:
        srtp = dtls_transport._rx_srtp
        if srtp is None or not data or not 127 < data[0] < 192 or is_rtcp(data):
            queued(data, component)  # DTLS, SCTP, RTCP: aiortc's way
            return
        arrival = time.time()
        try:
            plain = srtp.unprotect(data)
            packet = parse(plain)
        except pylibsrtp.Error:
            packet = None
        if packet is not None:
            if streams is not None:
                received(plain, packet[2], packet[1], arrival)
            on_rtp(packet[0], packet[1], packet[2], arrival)
        elif on_dropped is not None:
            on_dropped()

    connection.data_received = data_received
