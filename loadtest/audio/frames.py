"""Pre-encoded ``input_audio_buffer.append`` events.

A session streams a fixture as a series of append events, one per frame. Building those JSON
messages (base64 of the frame inside a small JSON object) is done once per process per
``(fixture, frame_ms, audio_format)`` and the bytes are reused by every session: with hundreds of
concurrent sessions the per-send cost is then only the socket write.

Both dialects share the append shape; the bytes before the payload come from
:meth:`loadtest.protocol.dialects.Dialect.append_prefix`, so the message is
``prefix + base64(frame) + b'"}'`` — valid JSON because base64 never needs escaping.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pybase64

from loadtest.audio.convert import BYTES_PER_SAMPLE, FORMAT_RATES, check_format, to_wire
from loadtest.protocol.dialects import Dialect

MIN_FRAME_MS = 20
MAX_FRAME_MS = 500
DEFAULT_FRAME_MS = 100

_PREFIX = Dialect.append_prefix()
_SUFFIX = b'"}'


@dataclass(frozen=True)
class EncodedFrames:
    """Ready-to-send append events for one piece of audio."""

    messages: list[bytes]  # full JSON input_audio_buffer.append events, in order
    frame_ms: int
    audio_format: str
    duration_ms: float  # audio duration of all frames together (the last frame may be shorter)
    audio_bytes: int  # wire audio bytes (before base64) across all frames

    def __len__(self) -> int:
        return len(self.messages)

    @functools.cached_property
    def durations_ms(self) -> tuple[float, ...]:
        """Every frame's audio duration, in order (computed once: each paced turn reads them all)."""
        return tuple(self.frame_duration_ms(i) for i in range(len(self.messages)))

    def frame_duration_ms(self, index: int) -> float:
        """Audio duration of frame ``index`` (every frame is ``frame_ms`` except possibly the last)."""
        if index < len(self.messages) - 1:
            return float(self.frame_ms)
        return self.duration_ms - self.frame_ms * (len(self.messages) - 1)


def check_frame_ms(frame_ms: int) -> int:
    if not MIN_FRAME_MS <= int(frame_ms) <= MAX_FRAME_MS:
        raise ValueError(f"frame_ms must be between {MIN_FRAME_MS} and {MAX_FRAME_MS} ms, got {frame_ms}")
    return int(frame_ms)


def encode_wire(wire: bytes, frame_ms: int = DEFAULT_FRAME_MS, audio_format: str = "pcm16") -> EncodedFrames:
    """Cut already-encoded wire bytes into frames and build the append events."""
    check_format(audio_format)
    frame_ms = check_frame_ms(frame_ms)
    sample_bytes = BYTES_PER_SAMPLE[audio_format]
    bytes_per_ms = FORMAT_RATES[audio_format] * sample_bytes / 1000
    step = round(bytes_per_ms * frame_ms)
    view = memoryview(wire)
    b64 = pybase64.b64encode
    messages = [_PREFIX + b64(view[i : i + step]) + _SUFFIX for i in range(0, len(wire), step)]
    return EncodedFrames(
        messages=messages,
        frame_ms=frame_ms,
        audio_format=audio_format,
        duration_ms=len(wire) / bytes_per_ms,
        audio_bytes=len(wire),
    )


def encode_appends(pcm24k: np.ndarray, frame_ms: int = DEFAULT_FRAME_MS, audio_format: str = "pcm16") -> EncodedFrames:
    """int16 mono 24 kHz samples -> pre-encoded append events of ``frame_ms`` each."""
    return encode_wire(to_wire(pcm24k, audio_format), frame_ms, audio_format)


@functools.lru_cache(maxsize=512)
def silence_appends(duration_ms: float, frame_ms: int = DEFAULT_FRAME_MS, audio_format: str = "pcm16") -> EncodedFrames:
    """Append events carrying ``duration_ms`` of digital silence (cached)."""
    samples = round(duration_ms * 24)
    return encode_appends(np.zeros(samples, dtype=np.int16), frame_ms, audio_format)


@functools.lru_cache(maxsize=512)
def _frames_cached(name: str, frame_ms: int, audio_format: str, root: str | None) -> EncodedFrames:
    from loadtest.audio.fixtures import load_pcm

    return encode_appends(load_pcm(name, Path(root) if root else None), frame_ms, audio_format)


def frames_for(
    name: str | Path, frame_ms: int = DEFAULT_FRAME_MS, audio_format: str = "pcm16", root: Path | None = None
) -> EncodedFrames:
    """Append events for a fixture (manifest name or audio file path), encoded once per process."""
    return _frames_cached(str(name), check_frame_ms(frame_ms), check_format(audio_format), str(root) if root else None)


def decode_appends(frames: EncodedFrames) -> bytes:
    """The wire audio bytes carried by ``frames`` (for tests and checks; parses every message)."""
    import orjson

    return b"".join(pybase64.b64decode(orjson.loads(m)["audio"]) for m in frames.messages)
