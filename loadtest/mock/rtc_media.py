"""The media of a mock WebRTC call: the model's answer as an Opus track, the caller's track in.

:class:`AnswerTrack` is the session's :class:`~loadtest.mock.host.AnswerAudio`: the session queues
each delta (the same deltas the WebSocket path sends), and the track plays it in real time as
20 ms Opus packets (RTP clock 48 kHz; the mock's 24 kHz audio is what Opus encodes, each answer once
per process, :func:`answer_packets`: an encoder costs ~0.4 ms a frame, more than all the rest of a
call). While no response is playing the line carries silence (50 packets a second, as WebRTC
senders do); while a playing response has nothing queued (a ``stall``, a ``hang``) no packet
leaves, and the next one's RTP timestamp says how long the gap was. It reports
``output_audio_buffer.started`` when a response's first packet leaves and
``output_audio_buffer.stopped`` when its last has left after ``response.done``, as the services
do over WebRTC; :meth:`AnswerTrack.clear` drops what is queued (a barge-in, a client's
``output_audio_buffer.clear``).

:func:`pump_caller_audio` feeds the caller's decoded Opus audio, resampled to the session's input
rate, into the session's input buffer and VAD (what ``input_audio_buffer.append`` feeds over a
WebSocket).
"""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import av
import numpy as np
import pybase64
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from loadtest.audio import opus
from loadtest.audio.rtp_lane import PacketClock, RtpOut
from loadtest.mock.speech import Answer, Delta
from loadtest.protocol.dialects import AUDIO_FORMATS

RATE = 24000  # what the mock's answers are made at, and what Opus encodes here
FRAME = 480  # 20 ms at 24 kHz
FRAME_MS = 20.0
RTP_RATE = 48000
RTP_FRAME = 960
RTP_TIME_BASE = fractions.Fraction(1, RTP_RATE)


def pcm16(b64: bytes) -> np.ndarray:
    """int16 samples of one pcm16 delta (base64 of 24 kHz little-endian samples)."""
    data = pybase64.b64decode(b64)
    return np.frombuffer(data[: len(data) - len(data) % 2], dtype="<i2")


_SILENCE: bytes | None = None
_ENCODED: dict[int, list[bytes]] = {}  # id(answer) -> its 20 ms Opus packets (answers live as long as the bank)


def _opus_encoder() -> av.AudioCodecContext:
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = RATE
    codec.layout = "mono"
    codec.format = "s16"
    codec.bit_rate = 32000
    codec.time_base = fractions.Fraction(1, RATE)
    return codec  # type: ignore[no-any-return]


def encode(pcm: np.ndarray) -> list[bytes]:
    """24 kHz int16 samples as 20 ms Opus packets, one per frame (the last one padded)."""
    frames = max(1, -(-pcm.size // FRAME))
    padded = np.zeros(frames * FRAME, np.int16)
    padded[: pcm.size] = pcm
    codec = _opus_encoder()
    packets: list[av.Packet] = []
    for index in range(frames):
        frame = av.AudioFrame.from_ndarray(padded[index * FRAME : (index + 1) * FRAME].reshape(1, -1), format="s16",
                                           layout="mono")  # fmt: skip
        frame.sample_rate, frame.pts, frame.time_base = RATE, index * FRAME, fractions.Fraction(1, RATE)
        packets += codec.encode(frame)
    packets += codec.encode(None)
    out = [bytes(packet) for packet in packets[:frames]]
    if len(out) < frames:
        out += [silence_payload()] * (frames - len(out))
    return out


def silence_payload() -> bytes:
    """One Opus packet of 20 ms of digital silence (encoded once)."""
    global _SILENCE
    if _SILENCE is None:
        _SILENCE = b"\xf8\xff\xfe"  # (a stand-in while encoding the real one)
        _SILENCE = encode(np.zeros(3 * FRAME, np.int16))[-1]
    return _SILENCE


def answer_packets(answer: Answer) -> list[bytes]:
    """The whole answer's audio as Opus packets, encoded once per process (an answer's deltas start
    on 20 ms boundaries, so each delta is a run of them)."""
    packets = _ENCODED.get(id(answer))
    if packets is None:
        pcm = np.concatenate([pcm16(d.b64) for d in answer.deltas["pcm16"]])
        packets = _ENCODED[id(answer)] = encode(pcm)
    return packets


def prepare(answers: list[Answer]) -> None:
    """Encode every answer now (the first call's audio then costs nothing to send)."""
    silence_payload()
    for answer in answers:
        answer_packets(answer)


class AnswerTrack(MediaStreamTrack):
    """The answer's audio as Opus packets, paced in real time (see the module's docstring).

    ``on_event`` gets the ``output_audio_buffer.*`` events to send on the data channel.
    """

    kind = "audio"

    def __init__(
        self, on_event: Callable[[dict[str, Any]], None], clock: PacketClock | None = None, garbage_every: int = 0,
        on_garbage: Callable[[], None] | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.on_event = on_event
        self._garbage_every = garbage_every  # (the lane only) a datagram of garbage after every N packets
        self._on_garbage = on_garbage
        self._clock = clock  # the lean lane (rtp_lane): the clock sends through ``out``
        self._ended: asyncio.Future[None] | None = None
        self.out: RtpOut | None = None
        self._queue: deque[tuple[str, bytes]] = deque()  # (response id, one 20 ms Opus packet)
        self._queued: dict[str, int] = {}  # response id -> its packets in the queue
        self._wake = asyncio.Event()
        self._t0: float | None = None  # loop time of RTP timestamp 0
        self._rtp = 0  # RTP timestamp of the next packet
        self._idle = True  # the last recv found nothing to send (the next packet resyncs to the clock)
        self._started: set[str] = set()
        self._done: set[str] = set()
        self._first: dict[str, float] = {}
        self.packets = 0

    # ---- the session's side (AnswerAudio) ------------------------------------------------------
    def audio(self, response_id: str, answer: Answer | None, delta: Delta) -> None:
        if answer is None:
            packets = [silence_payload()] * max(1, round(delta.dur_ms / FRAME_MS))
        else:
            every = answer_packets(answer)
            first = round(delta.start_ms / FRAME_MS)
            packets = every[first : max(first + 1, math.ceil((delta.start_ms + delta.dur_ms) / FRAME_MS - 1e-6))]
        if packets:
            self._queue.extend((response_id, packet) for packet in packets)
            self._queued[response_id] = self._queued.get(response_id, 0) + len(packets)
            self._kick()

    def first_audio_at(self, response_id: str) -> float | None:
        return self._first.get(response_id)

    def response_done(self, response_id: str) -> None:
        """``response.done`` was sent: once its audio has left, ``output_audio_buffer.stopped``."""
        self._done.add(response_id)
        if response_id in self._started and not self._queued.get(response_id):
            self._stopped(response_id)
        self._kick()

    def clear(self, response_id: str | None = None) -> bool:
        """Drop the queued audio (of ``response_id``, or all); True when a started response's
        audio was cut (the caller then reports ``output_audio_buffer.cleared``)."""
        kept = deque(chunk for chunk in self._queue if response_id is not None and chunk[0] != response_id)
        self._queue = kept
        self._queued = {rid: n for rid, n in self._queued.items() if response_id is not None and rid != response_id}
        cut = False
        for rid in [r for r in self._started if response_id in (None, r)]:
            cut = True
            self._started.discard(rid)
            self._done.discard(rid)
        self._kick()  # (a gap may end: the line goes back to silence)
        return cut

    # ---- the sender's side ----------------------------------------------------------------
    def _kick(self) -> None:
        self._wake.set()
        if self._clock is not None and self.readyState == "live":
            self._clock.wake(self, asyncio.get_running_loop().time())

    def start(self) -> None:
        """The lane: the line's packets start (silence until an answer plays)."""
        self._kick()

    def _take(self, now: float) -> tuple[str | None, bytes] | float | None:
        """The next packet when due by ``now`` (its response, its payload); else when it is due
        (loop time), or None in a gap (a playing response with nothing queued)."""
        if self._started and not self._queue:  # a playing response has nothing queued: a gap
            self._idle = True
            return None
        if self._t0 is None:
            self._t0 = now
        elif self._idle:  # after a gap, the timestamp says how long it was
            self._rtp = max(self._rtp, int((now - self._t0) * RTP_RATE) // RTP_FRAME * RTP_FRAME)
        self._idle = False
        due = self._t0 + self._rtp / RTP_RATE
        if due > now:
            return due
        if self._queue:
            rid, payload = self._queue.popleft()
            self._queued[rid] -= 1
            return rid, payload
        return None, silence_payload()  # no response playing: the line carries silence

    def _sent(self, rid: str | None) -> None:
        self._rtp += RTP_FRAME
        self.packets += 1
        if rid is not None:
            if rid not in self._started:
                self._started.add(rid)
                self._first.setdefault(rid, time.time())
                self.on_event({"type": "output_audio_buffer.started", "response_id": rid})
            if rid in self._done and not self._queued.get(rid):
                self._stopped(rid)

    def pump(self, now: float) -> float | None:
        """The clock's call (lean lane): send what is due by ``now``; when the next is due."""
        out = self.out
        while self.readyState == "live" and out is not None:
            got = self._take(now)
            if not isinstance(got, tuple):
                return got
            rid, payload = got
            starts = rid is not None and rid not in self._started
            if starts:
                self._first.setdefault(rid, time.time())  # (stamped as it leaves)
            out.send(payload, self._rtp, marker=starts)
            self._sent(rid)
            every = self._garbage_every
            if every > 0 and self.packets % every == 0 and out.send_garbage() and self._on_garbage is not None:
                self._on_garbage()
        return None

    def _stopped(self, response_id: str) -> None:
        self._started.discard(response_id)
        self._done.discard(response_id)
        self._queued.pop(response_id, None)
        self.on_event({"type": "output_audio_buffer.stopped", "response_id": response_id})

    async def recv(self) -> av.Packet:
        loop = asyncio.get_running_loop()
        if self._clock is not None:  # the lane sends: aiortc's sender task waits here for the end
            self._ended = loop.create_future()  # (only stop() wakes it: not every queued delta)
            if self.readyState == "live":
                await self._ended
            raise MediaStreamError
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            got = self._take(loop.time())
            if got is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            if not isinstance(got, tuple):
                await asyncio.sleep(got - loop.time())
                continue
            rid, payload = got
            packet = av.Packet(payload)
            packet.pts = self._rtp
            packet.time_base = RTP_TIME_BASE
            self._sent(rid)
            return packet

    def stop(self) -> None:
        super().stop()
        self._wake.set()
        if self._clock is not None:
            self._clock.forget(self)
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(None)


async def pump_caller_audio(track: MediaStreamTrack, rate_now: Callable[[], int],
                            append: Callable[[np.ndarray, float], Any], ready: asyncio.Event) -> None:  # fmt: skip
    """The caller's track into the session: each frame at ``rate_now()`` (the session's input rate)
    mono int16 goes to ``append(pcm, ms)`` once ``ready`` is set (frames before it are dropped).
    Frames come decoded at that rate already (:func:`tap_caller_audio`, int16 arrays), or as
    aiortc's 48 kHz frames (its own path), resampled here. Returns when the track ends."""
    resampler: av.AudioResampler | None = None
    rate = 0
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        if not ready.is_set():
            continue
        want = rate_now()
        if isinstance(frame, tuple):  # (pcm, its rate): decoded on arrival
            pcm, at = frame
            if at == want and pcm.size:
                await append(pcm, pcm.size * 1000.0 / at)
            continue
        if resampler is None or want != rate:
            resampler, rate = av.AudioResampler(format="s16", layout="mono", rate=want), want
        for out in resampler.resample(frame):
            pcm = out.to_ndarray().reshape(-1)
            if pcm.size:
                await append(pcm, pcm.size * 1000.0 / rate)


def caller_audio_sink(track: Any, rate_now: Callable[[], int]) -> Callable[[bytes, int, int, float], None]:
    """Decode each of the caller's Opus packets as it arrives, on the loop, at ``rate_now()``
    (libopus decodes at 8 to 48 kHz itself: :mod:`loadtest.audio.opus`), into ``track`` (what
    :func:`pump_caller_audio` reads) as ``(int16 array, rate)``."""
    decoders: dict[int, opus.Decoder] = {}

    def on_packet(payload: bytes, timestamp: int, sequence: int, arrival: float) -> None:
        if not payload or track.readyState != "live":
            return
        rate = rate_now()
        decoder = decoders.get(rate)
        if decoder is None:
            decoders.clear()  # (the session's input rate changed: a new stream from here)
            decoder = decoders[rate] = opus.decoder(rate)
        pcm = decoder.decode(payload)
        if pcm:  # (a corrupt packet decodes to nothing: a gap)
            track._queue.put_nowait((np.frombuffer(pcm, dtype="<i2"), rate))

    return on_packet


def tap_caller_audio(receiver: Any, rate_now: Callable[[], int]) -> Callable[[bytes, int, int, float], None]:
    """The caller's packets into ``receiver``'s track through :func:`caller_audio_sink` (returned,
    for the lean lane's :func:`~loadtest.audio.rtp_lane.tap_ice`), instead of through aiortc's
    jitter buffer and its decoder thread: that thread's queue was a thread wake-up (the GIL handed
    over and back) per packet, half the mock's CPU at 40 calls (bench/results/webrtc_ab.json), and
    its 48 kHz frames needed a resampler each. The decoder thread stays, idle; it still ends the
    track when the receiver stops."""
    on_packet = caller_audio_sink(receiver.track, rate_now)

    async def handle(packet: Any, arrival_time_ms: int) -> None:
        on_packet(packet.payload, packet.timestamp, packet.sequence_number, 0.0)

    receiver._handle_rtp_packet = handle
    return on_packet


def input_rate(fmt: str) -> int:
    """The sample rate of a session input format (what the caller's audio is resampled to)."""
    return AUDIO_FORMATS[fmt][2] if fmt in AUDIO_FORMATS else RATE
