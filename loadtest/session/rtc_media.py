"""The audio of a WebRTC call: the caller's speech as Opus packets on a paced track, the answer's
RTP packets decoded to the PCM16 the analyzer reads.

The session core hands its transport the same pre-encoded ``input_audio_buffer.append`` events it
sends over a WebSocket (:mod:`loadtest.audio.frames`). :func:`opus_packets` turns one event's audio
(24 kHz PCM16) into 20 ms Opus packets once per process (the events are shared by every session,
so each distinct frame is encoded once, as its JSON is built once), and :class:`CallerTrack` sends
them: each append's packets go out from the moment the harness's audio clock sent the append, one
every 20 ms (RTP timestamps at 48 kHz from the same clock). aiortc packs pre-encoded packets
without encoding them again.

The answer's packets are taken from the RTP receiver as they arrive (:func:`tap_receiver`), before
aiortc's jitter buffer (which holds audio back by four packets) and its decoder thread: each is
stamped with its arrival time and decoded here by libopus to 24 kHz mono
(:mod:`loadtest.audio.opus`).
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import logging
import time
from collections.abc import Callable
from typing import Any

import av
import numpy as np
import pybase64
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from loadtest.audio.rtp_lane import PacketClock, RtpOut
from loadtest.protocol.dialects import Dialect

log = logging.getLogger("loadtest.session")

RATE = 24000  # the harness's PCM16 (input and analysis)
RTP_RATE = 48000  # Opus's RTP clock
PACKET_S = 0.020
PACKET_SAMPLES = int(RTP_RATE * PACKET_S)
APPEND_PREFIX = Dialect.append_prefix()
_SUFFIX = b'"}'
_TIME_BASE = fractions.Fraction(1, RTP_RATE)
SILENT_PACKET = b"\x00\x00" * int(RATE * PACKET_S)  # 20 ms of digital silence at 24 kHz
SILENT_PEAK = 1  # decoded samples within +-1: digital silence (what an idle line decodes to)
_ENCODED: dict[bytes, list[bytes]] = {}  # append event -> its Opus packets (the process's cache)
_ENCODED_CAP = 20000


def append_audio(message: bytes) -> bytes | None:
    """The PCM16 of an ``input_audio_buffer.append`` event (None for any other event)."""
    if not message.startswith(APPEND_PREFIX) or not message.endswith(_SUFFIX):
        return None
    return pybase64.b64decode(message[len(APPEND_PREFIX) : -len(_SUFFIX)])


def encode_opus(pcm: bytes, rate: int = RATE) -> list[bytes]:
    """20 ms Opus packets (mono, VoIP mode) of ``pcm`` (the tail padded with silence)."""
    step = int(rate * PACKET_S) * 2
    if len(pcm) % step:
        pcm = pcm + b"\x00" * (step - len(pcm) % step)
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = rate
    codec.layout = "mono"
    codec.format = "s16"
    codec.bit_rate = 32000
    codec.time_base = fractions.Fraction(1, rate)
    codec.options = {"application": "voip"}
    out: list[bytes] = []
    samples = np.frombuffer(pcm, dtype="<i2")
    n = step // 2
    for i in range(0, len(samples), n):
        frame = av.AudioFrame.from_ndarray(samples[i : i + n].reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        frame.pts = i
        out += [bytes(p) for p in codec.encode(frame)]
    out += [bytes(p) for p in codec.encode(None)]
    return out[: len(samples) // n] if len(out) > len(samples) // n else out


def opus_packets(message: bytes) -> list[bytes] | None:
    """The Opus packets of one append event (cached), or None when it is not an append."""
    packets = _ENCODED.get(message)
    if packets is not None:
        return packets
    pcm = append_audio(message)
    if pcm is None:
        return None
    packets = encode_opus(pcm)
    if len(_ENCODED) < _ENCODED_CAP:
        _ENCODED[message] = packets
    return packets


def is_silent(pcm: bytes) -> bool:
    """The packet decoded to digital silence."""
    if not pcm:
        return True
    samples = np.frombuffer(pcm, dtype="<i2")
    return int(samples.max()) <= SILENT_PEAK and int(samples.min()) >= -SILENT_PEAK


class CallerTrack(MediaStreamTrack):
    """The caller's microphone: Opus packets pushed by the harness, sent one per 20 ms.

    With a ``clock`` (the lean lane, :mod:`loadtest.audio.rtp_lane`) the clock sends them through
    ``out`` and aiortc's sender task waits in :meth:`recv` until the track ends; without one, aiortc
    takes them from :meth:`recv` (its own sender, ``RTLOAD_RTC_LANE=0``)."""

    kind = "audio"

    def __init__(self, packet_s: float = PACKET_S, clock: PacketClock | None = None) -> None:
        super().__init__()
        self._packet_s = packet_s  # how far apart the packets go out (20 ms: real time)
        self._queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._next_due = 0.0
        self._t0: float | None = None
        self._last = -1.0  # when the last packet sent was due
        self._clock = clock
        self.out: RtpOut | None = None
        self.packets_sent = 0

    def push(self, packets: list[bytes]) -> float:
        """On the loop thread: queue one append's packets from now (or behind the queued ones);
        returns when the last of them is due (loop time)."""
        loop = asyncio.get_running_loop()
        due = max(loop.time(), self._next_due)
        if not packets:
            return due
        first = due
        for payload in packets:
            self._queue.append((due, payload))
            due += self._packet_s
        self._next_due = due
        if self._clock is not None:
            if self.readyState == "live":
                self._clock.wake(self, first)
            return due
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return due

    def due(self) -> float:
        """When the last queued packet is due (loop time; now when none is queued)."""
        return max(asyncio.get_running_loop().time(), self._next_due)

    def _timestamp(self, due: float) -> int:
        if self._t0 is None:
            self._t0 = due
        # RTP time follows the audio clock: a pause between turns is a jump, as a muted microphone's
        return round((due - self._t0) / self._packet_s) * PACKET_SAMPLES

    def pump(self, now: float) -> float | None:
        """The clock's call (lean lane): send the packets due by ``now``; the next one's time."""
        queue = self._queue
        out = self.out
        while queue and queue[0][0] <= now:
            due, payload = queue.popleft()
            talkspurt = due - self._last > 1.5 * self._packet_s  # (RFC 3551: the marker starts one)
            self._last = due
            if out is not None and out.send(payload, self._timestamp(due), talkspurt):
                self.packets_sent += 1
        return queue[0][0] if queue and self.readyState == "live" else None

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._clock is not None:  # the lane sends: aiortc's sender waits here for the end
            self._waiter = loop.create_future()
            await self._waiter
            raise MediaStreamError
        while not self._queue:
            self._waiter = loop.create_future()
            await self._waiter
            self._waiter = None
            if self.readyState != "live":
                raise MediaStreamError
        due, payload = self._queue.popleft()
        delay = due - loop.time()
        if delay > 0.001:
            await asyncio.sleep(delay)
        packet = av.Packet(payload)
        packet.pts = self._timestamp(due)
        packet.time_base = _TIME_BASE
        self.packets_sent += 1
        return packet

    def stop(self) -> None:
        super().stop()
        if self._clock is not None:
            self._clock.forget(self)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _InertThread:
    """What aiortc's receiver gets for its decoder thread: nothing runs (the transport decodes)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        return None

    def start(self) -> None:
        return None

    def join(self, timeout: float | None = None) -> None:
        return None


class _NoDecoderThreads:
    """``threading`` as aiortc's receiver module sees it: its decoder thread is inert, the rest is
    ``threading``'s."""

    Thread = _InertThread

    def __getattr__(self, name: str) -> Any:
        import threading

        return getattr(threading, name)


def tap_receiver(receiver: Any, on_packet: Callable[[bytes, int, int, float], None]) -> None:
    """Take ``receiver``'s RTP packets as they arrive: ``on_packet(payload, rtp_timestamp, sequence,
    arrival)`` on the loop thread, instead of aiortc's jitter buffer and decoder.

    aiortc (1.9-1.16) starts a decoder thread per receiver in ``receive()``; under gevent's
    patching it would be a greenlet of a hub that never runs in the loop thread (and its start
    would block that thread), so the receiver module's ``threading`` is replaced by one whose only
    use does nothing. RTP reaches ``_handle_rtp_packet`` from the DTLS transport's router.
    """
    import aiortc.rtcrtpreceiver as rtp_receiver

    if not isinstance(rtp_receiver.threading, _NoDecoderThreads):
        rtp_receiver.threading = _NoDecoderThreads()  # type: ignore[assignment]

    async def handle(packet: Any, arrival_time_ms: int) -> None:
        on_packet(packet.payload, packet.timestamp, packet.sequence_number, time.time())

    receiver._handle_rtp_packet = handle
