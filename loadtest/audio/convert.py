"""Sample-rate and wire-format conversion.

The harness keeps speech as int16 mono 24 kHz (the Realtime API's ``pcm16`` rate). ``to_wire``
turns that into the bytes a session sends for an audio format; ``from_wire`` turns received bytes
back into int16 samples at the format's own rate (24 kHz for pcm16, 8 kHz for G.711).
"""

from __future__ import annotations

import numpy as np
import soxr

from loadtest.audio import g711

PCM_RATE = 24000
G711_RATE = 8000

# wire format name -> (sample rate, bytes per sample); the names of dialects.AUDIO_FORMATS, plus
# Voice Live's narrower PCM16 rates (``pcm16_16000hz`` both ways, ``pcm16_8000hz`` output only)
FORMAT_RATES: dict[str, int] = {
    "pcm16": PCM_RATE, "g711_ulaw": G711_RATE, "g711_alaw": G711_RATE, "pcm16_16000hz": 16000, "pcm16_8000hz": 8000,
}  # fmt: skip
BYTES_PER_SAMPLE: dict[str, int] = {"pcm16": 2, "g711_ulaw": 1, "g711_alaw": 1, "pcm16_16000hz": 2, "pcm16_8000hz": 2}


def check_format(audio_format: str) -> str:
    """``audio_format`` if known, else ValueError naming the known ones."""
    if audio_format not in FORMAT_RATES:
        raise ValueError(f"unknown audio format {audio_format!r}: use one of {', '.join(FORMAT_RATES)}")
    return audio_format


def bytes_per_second(audio_format: str) -> int:
    """Wire bytes per second of audio in ``audio_format``."""
    return FORMAT_RATES[check_format(audio_format)] * BYTES_PER_SAMPLE[audio_format]


def float_to_int16(samples: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] -> int16, rounded and clipped (no wrap-around on overs)."""
    scaled = np.rint(np.asarray(samples, dtype=np.float64) * 32768.0)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def resample(pcm: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample int16 mono audio with soxr (high quality), clip-safe back to int16."""
    arr = np.asarray(pcm)
    if from_rate == to_rate:
        return arr.astype(np.int16, copy=False)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int16)
    out = soxr.resample(arr.astype(np.float32) / 32768.0, from_rate, to_rate, quality="HQ")
    return float_to_int16(out)


def to_wire(pcm24k: np.ndarray, audio_format: str) -> bytes:
    """int16 mono 24 kHz samples -> the bytes sent for ``audio_format`` (pcm16 is little-endian)."""
    check_format(audio_format)
    if audio_format == "pcm16":
        return np.asarray(pcm24k, dtype="<i2").tobytes()
    if audio_format.startswith("pcm16_"):
        return np.asarray(resample(pcm24k, PCM_RATE, FORMAT_RATES[audio_format]), dtype="<i2").tobytes()
    narrow = resample(pcm24k, PCM_RATE, G711_RATE)
    return g711.ulaw_encode(narrow) if audio_format == "g711_ulaw" else g711.alaw_encode(narrow)


def from_wire(data: bytes, audio_format: str) -> np.ndarray:
    """Received bytes -> int16 samples at the format's rate (24 kHz pcm16, 8 kHz G.711, 16 or 8 kHz
    for Voice Live's pcm16_16000hz / pcm16_8000hz)."""
    check_format(audio_format)
    if audio_format.startswith("pcm16"):
        usable = len(data) - (len(data) % 2)
        return np.frombuffer(data, dtype="<i2", count=usable // 2).astype(np.int16, copy=False)
    return g711.ulaw_decode(data) if audio_format == "g711_ulaw" else g711.alaw_decode(data)
