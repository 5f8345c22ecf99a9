"""What a caller heard: a response's kept audio rendered on a real-time player's clock.

:func:`render` takes the decoded delta payloads of one response (as the wire carried them: pcm16
24 kHz or G.711 8 kHz) and their arrival times, and returns

* the WAV a caller would have heard: 24 kHz PCM16 mono (G.711 decoded and resampled), starting
  when the player started (first arrival plus the jitter buffer), with digital silence wherever
  the player ran dry (an underrun: a delta arrived after the audio before it had finished playing);
* the playback timeline: per delta when it arrived, when the player needed it and when it played;
  the underruns (where in the WAV, how long) and the silent stretches inside the received audio
  (content silence, e.g. the server sending silence), on the same WAV clock.

The player model is :class:`~loadtest.audio.analysis.AudioAnalyzer`'s: it starts at the first
arrival (plus ``jitter_buffer_ms``), plays deltas in order, and resumes at a late delta's arrival.
This runs once per kept response, off the per-delta path.
"""

from __future__ import annotations

import io
import math
import wave
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loadtest.audio.convert import BYTES_PER_SAMPLE, FORMAT_RATES, PCM_RATE, check_format, from_wire, resample

WINDOW_MS = 20.0
SILENCE_REL_DB = -35.0  # as the analyzer: this far below the speech level is silent
SILENCE_FLOOR_DBFS = -60.0
MIN_MARK_MS = 200.0  # silent stretches and underruns shorter than this are not marked
_FULL_SCALE_SQ = 32768.0**2


@dataclass(slots=True)
class Playback:
    """One response's audio as heard: the WAV bytes and the timeline (all times in ms)."""

    wav: bytes
    audio_format: str
    jitter_buffer_ms: float
    arrival_ms: list[float] = field(default_factory=list)  # since the first arrival
    need_ms: list[float] = field(default_factory=list)  # when the player needed the delta
    start_ms: list[float] = field(default_factory=list)  # when it played (= WAV position + jitter)
    dur_ms: list[float] = field(default_factory=list)
    underruns: list[tuple[float, float]] = field(default_factory=list)  # (WAV position, length)
    silences: list[tuple[float, float]] = field(default_factory=list)  # (WAV position, length)
    audio_ms: float = 0.0  # received audio
    wav_ms: float = 0.0  # audio plus the underruns' silence
    complete: bool = True  # False when the keep cap cut the response's audio short

    def timeline(self) -> dict[str, Any]:
        """The trace's ``audio.playback`` note (JSON-ready)."""
        r = _rounded
        return {
            "format": self.audio_format,
            "wav_rate": PCM_RATE,
            "jitter_buffer_ms": self.jitter_buffer_ms,
            "audio_ms": round(self.audio_ms, 1),
            "wav_ms": round(self.wav_ms, 1),
            "complete": self.complete,
            "deltas": {
                "arrival_ms": r(self.arrival_ms),
                "need_ms": r(self.need_ms),
                "start_ms": r(self.start_ms),
                "dur_ms": r(self.dur_ms),
            },
            "underruns": [{"at_ms": round(a, 1), "ms": round(b, 1)} for a, b in self.underruns],
            "silences": [{"at_ms": round(a, 1), "ms": round(b, 1)} for a, b in self.silences],
        }


def _rounded(values: Sequence[float]) -> list[float]:
    return [round(v, 1) for v in values]


def render(
    chunks: Sequence[bytes],
    arrivals: Sequence[float],
    audio_format: str = "pcm16",
    *,
    jitter_buffer_ms: float = 0.0,
    complete: bool = True,
) -> Playback:
    """The WAV and timeline of deltas ``chunks`` (wire bytes) that arrived at ``arrivals`` (s)."""
    check_format(audio_format)
    rate = FORMAT_RATES[audio_format]
    width = BYTES_PER_SAMPLE[audio_format]
    out = Playback(b"", audio_format, jitter_buffer_ms, complete=complete)
    if not chunks:
        out.wav = wav_bytes(np.zeros(0, dtype=np.int16))
        return out
    t0 = arrivals[0]
    play_end = t0 + jitter_buffer_ms / 1000.0
    gaps: list[tuple[int, int]] = []  # (received sample at 24 kHz where it falls, silent samples)
    received = 0.0  # seconds of received audio so far
    starved = 0.0  # seconds of underrun so far
    for data, arrival in zip(chunks, arrivals, strict=True):
        seconds = len(data) / (rate * width)
        need = play_end
        if arrival > play_end:  # the player ran dry: the caller heard nothing until this arrived
            gap = arrival - play_end
            if gap * 1000 >= MIN_MARK_MS:
                out.underruns.append(((received + starved) * 1000, gap * 1000))
            starved += gap
            gaps.append((round(received * PCM_RATE), round(gap * PCM_RATE)))
            play_end = arrival
        out.arrival_ms.append((arrival - t0) * 1000)
        out.need_ms.append((need - t0) * 1000)
        out.start_ms.append((play_end - t0) * 1000)
        out.dur_ms.append(seconds * 1000)
        play_end += seconds
        received += seconds
    out.audio_ms = received * 1000
    # decode (and resample) the received audio in one piece: no seams at delta boundaries
    audio = _at_24k(b"".join(chunks), audio_format)
    pieces: list[np.ndarray] = []
    pos = 0
    for at, length in gaps:
        at = min(at, audio.size)
        pieces += [audio[pos:at], np.zeros(length, dtype=np.int16)]
        pos = at
    pieces.append(audio[pos:])
    pcm = np.concatenate(pieces)
    out.wav_ms = pcm.size * 1000 / PCM_RATE
    out.silences = _content_silences(pcm, out.underruns)
    out.wav = wav_bytes(pcm)
    return out


def _at_24k(data: bytes, audio_format: str) -> np.ndarray:
    samples = from_wire(data, audio_format)
    rate = FORMAT_RATES[audio_format]
    return samples if rate == PCM_RATE else resample(samples, rate, PCM_RATE)


def _content_silences(pcm: np.ndarray, underruns: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Silent stretches of at least :data:`MIN_MARK_MS` inside the speech that are not underruns."""
    win = round(PCM_RATE * WINDOW_MS / 1000)
    n = pcm.size // win
    if n == 0:
        return []
    x = pcm[: n * win].astype(np.float32).reshape(n, win)
    ms = np.einsum("ij,ij->i", x, x) / win
    played = np.ones(n, dtype=bool)  # windows of received audio (not an underrun's silence)
    for at, length in underruns:
        lo, hi = int(at // WINDOW_MS), math.ceil((at + length) / WINDOW_MS)
        played[lo:hi] = False
    floor_sq = _FULL_SCALE_SQ * 10 ** (SILENCE_FLOOR_DBFS / 10)
    audible = ms[played & (ms >= floor_sq)]
    if not audible.size:
        return []
    level_db = 10 * math.log10(float(np.percentile(audible, 90)) / _FULL_SCALE_SQ)
    thr_sq = _FULL_SCALE_SQ * 10 ** (max(level_db + SILENCE_REL_DB, SILENCE_FLOOR_DBFS) / 10)
    silent = (ms < thr_sq) & played
    loud = np.flatnonzero(~silent & played)
    if not loud.size:
        return []
    inner = silent[loud[0] : loud[-1] + 1]
    edges = np.diff(np.concatenate(([0], inner.view(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    marks = []
    for s, e in zip(starts, ends, strict=True):
        length = (e - s) * WINDOW_MS
        if length >= MIN_MARK_MS:
            marks.append((float((loud[0] + s) * WINDOW_MS), float(length)))
    return marks


def wav_bytes(pcm: np.ndarray, rate: int = PCM_RATE) -> bytes:
    """int16 mono samples as a WAV file."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(pcm, dtype="<i2").tobytes())
    return buf.getvalue()
