"""The media of a mock WebRTC call: the model's answer as an Opus track, the caller's track in.

:class:`AnswerTrack` is the session's :class:`~loadtest.mock.host.AnswerAudio`: the session queues
each delta's audio (the same pre-encoded deltas the WebSocket path sends), and the track plays it
in real time as 20 ms Opus packets (RTP clock 48 kHz; the mock's 24 kHz audio is what Opus
encodes). While no response is playing the line carries silence (50 packets a second, as WebRTC
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
import itertools
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import av
import numpy as np
import pybase64
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from loadtest.protocol.dialects import AUDIO_FORMATS

RATE = 24000  # what the mock's answers are made at, and what Opus encodes here
FRAME = 480  # 20 ms at 24 kHz
RTP_RATE = 48000
RTP_FRAME = 960
RTP_TIME_BASE = fractions.Fraction(1, RTP_RATE)
WIRE_RATES = {"pcm16": 24000, "g711_ulaw": 8000, "g711_alaw": 8000, "pcm16_16000hz": 16000, "pcm16_8000hz": 8000}


def delta_pcm(b64: bytes, fmt: str) -> np.ndarray:
    """int16 24 kHz samples of one delta (base64 wire bytes in ``fmt``)."""
    data = pybase64.b64decode(b64)
    if fmt == "pcm16":
        return np.frombuffer(data[: len(data) - len(data) % 2], dtype="<i2")
    from loadtest.audio.convert import from_wire

    pcm = from_wire(data, fmt)
    rate = WIRE_RATES.get(fmt, RATE)
    if rate == RATE:
        return pcm
    import soxr

    return np.asarray(soxr.resample(pcm, rate, RATE), dtype=np.int16)


_SILENCE: bytes | None = None


def silence_payload() -> bytes:
    """One Opus packet of 20 ms of digital silence (encoded once)."""
    global _SILENCE
    if _SILENCE is None:
        codec = _opus_encoder()
        packets: list[av.Packet] = []
        for index in range(3):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, FRAME), np.int16), format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = RATE, index * FRAME, fractions.Fraction(1, RATE)
            packets += codec.encode(frame)
        _SILENCE = bytes(packets[-1])
    return _SILENCE


def _opus_encoder() -> av.AudioCodecContext:
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = RATE
    codec.layout = "mono"
    codec.format = "s16"
    codec.bit_rate = 32000
    codec.time_base = fractions.Fraction(1, RATE)
    return codec  # type: ignore[no-any-return]


class AnswerTrack(MediaStreamTrack):
    """The answer's audio as Opus packets, paced in real time (see the module's docstring).

    ``on_event`` gets the ``output_audio_buffer.*`` events to send on the data channel.
    """

    kind = "audio"

    def __init__(self, on_event: Callable[[dict[str, Any]], None]) -> None:
        super().__init__()
        self.on_event = on_event
        self._queue: deque[tuple[str, np.ndarray]] = deque()  # (response id, 24 kHz int16 samples)
        self._head: np.ndarray | None = None  # the samples of the queue's first chunk not yet sent
        self._wake = asyncio.Event()
        self._encoder = _opus_encoder()
        self._samples = 0  # samples given to the encoder
        self._t0: float | None = None  # loop time of RTP timestamp 0
        self._rtp = 0  # RTP timestamp of the next packet
        self._idle = True  # the last recv found nothing to send (the next packet resyncs to the clock)
        self._started: set[str] = set()
        self._done: set[str] = set()
        self._first: dict[str, float] = {}
        self.packets = 0

    # ---- the session's side (AnswerAudio) ------------------------------------------------------
    def audio(self, response_id: str, b64: bytes, fmt: str) -> None:
        pcm = delta_pcm(b64, fmt)
        if pcm.size:
            self._queue.append((response_id, pcm))
            self._wake.set()

    def first_audio_at(self, response_id: str) -> float | None:
        return self._first.get(response_id)

    def response_done(self, response_id: str) -> None:
        """``response.done`` was sent: once its audio has left, ``output_audio_buffer.stopped``."""
        self._done.add(response_id)
        if response_id in self._started and not self._has(response_id):
            self._stopped(response_id)
        self._wake.set()  # a last partial frame may now go out (padded)

    def clear(self, response_id: str | None = None) -> bool:
        """Drop the queued audio (of ``response_id``, or all); True when a started response's
        audio was cut (the caller then reports ``output_audio_buffer.cleared``)."""
        cut = False
        first = self._queue[0] if self._queue else None
        kept: deque[tuple[str, np.ndarray]] = deque()
        for chunk in self._queue:
            if response_id is None or chunk[0] == response_id:
                cut = cut or chunk[0] in self._started
            else:
                kept.append(chunk)
        self._queue = kept
        if not kept or kept[0] is not first:
            self._head = None
        for rid in [r for r in self._started if response_id in (None, r)]:
            cut = True
            self._started.discard(rid)
            self._done.discard(rid)
        self._wake.set()  # (a gap may end: the line goes back to silence)
        return cut

    # ---- the sender's side ----------------------------------------------------------------
    def _has(self, response_id: str) -> bool:
        return any(rid == response_id for rid, _ in self._queue)

    def _stopped(self, response_id: str) -> None:
        self._started.discard(response_id)
        self._done.discard(response_id)
        self.on_event({"type": "output_audio_buffer.stopped", "response_id": response_id})

    def _frame_ready(self) -> bool:
        """A whole 20 ms frame of the first queued response is there (or its last, shorter one)."""
        if not self._queue:
            return False
        rid, first = self._queue[0]
        have = (self._head if self._head is not None else first).size
        if have >= FRAME:
            return True
        for other, pcm in itertools.islice(self._queue, 1, None):
            if other != rid:
                return True  # the response's audio ends here: a padded last frame
            have += pcm.size
            if have >= FRAME:
                return True
        return rid in self._done

    def _take(self) -> tuple[str, np.ndarray]:
        rid = self._queue[0][0]
        parts: list[np.ndarray] = []
        need = FRAME
        while need and self._queue and self._queue[0][0] == rid:
            head = self._head if self._head is not None else self._queue[0][1]
            parts.append(head[:need])
            need -= min(need, head.size)
            if head.size > len(parts[-1]):
                self._head = head[len(parts[-1]) :]
            else:
                self._queue.popleft()
                self._head = None
        pcm = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if pcm.size < FRAME:
            pcm = np.concatenate([pcm, np.zeros(FRAME - pcm.size, np.int16)])
        return rid, pcm

    async def recv(self) -> av.Packet:
        loop = asyncio.get_running_loop()
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            if self._started and not self._frame_ready():  # a playing response has nothing queued: a gap
                self._idle = True
                self._wake.clear()
                await self._wake.wait()
                continue
            now = loop.time()
            if self._t0 is None:
                self._t0 = now
            elif self._idle:  # after a gap, the timestamp says how long it was
                self._rtp = max(self._rtp, int((now - self._t0) * RTP_RATE) // RTP_FRAME * RTP_FRAME)
            self._idle = False
            due = self._t0 + self._rtp / RTP_RATE
            if due > now:
                await asyncio.sleep(due - now)
            if self.readyState != "live":
                raise MediaStreamError
            rid: str | None = None
            if self._frame_ready():
                rid, pcm = self._take()
                packet = self._encode(pcm)
                if packet is None:
                    continue
            elif self._started:
                continue  # it became a gap while waiting
            else:
                packet = av.Packet(silence_payload())  # no response playing: the line carries silence
            packet.pts = self._rtp
            packet.time_base = RTP_TIME_BASE
            self._rtp += RTP_FRAME
            self.packets += 1
            if rid is not None:
                if rid not in self._started:
                    self._started.add(rid)
                    self._first.setdefault(rid, time.time())
                    self.on_event({"type": "output_audio_buffer.started", "response_id": rid})
                if rid in self._done and not self._has(rid):
                    self._stopped(rid)
            return packet

    def _encode(self, pcm: np.ndarray) -> av.Packet | None:
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, RATE)
        self._samples += pcm.size
        packets = self._encoder.encode(frame)
        return packets[0] if packets else None

    def stop(self) -> None:
        super().stop()
        self._wake.set()


async def pump_caller_audio(track: MediaStreamTrack, rate_now: Callable[[], int],
                            append: Callable[[np.ndarray, float], Any], ready: asyncio.Event) -> None:  # fmt: skip
    """The caller's track into the session: each decoded frame, resampled to ``rate_now()`` (the
    session's input rate) mono int16, goes to ``append(pcm, ms)`` once ``ready`` is set (frames
    before it are dropped). Returns when the track ends."""
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
        if resampler is None or want != rate:
            resampler, rate = av.AudioResampler(format="s16", layout="mono", rate=want), want
        for out in resampler.resample(frame):
            pcm = out.to_ndarray().reshape(-1)
            if pcm.size:
                await append(pcm, pcm.size * 1000.0 / rate)


def input_rate(fmt: str) -> int:
    """The sample rate of a session input format (what the caller's audio is resampled to)."""
    return AUDIO_FORMATS[fmt][2] if fmt in AUDIO_FORMATS else RATE
