"""Audio evidence: the audio a caller heard, kept while a response is open, written only when it
ends badly (or is sampled).

:class:`AudioKeep` sits on the per-delta path, so it copies nothing: it holds references to the
decoded delta payloads the tracker already made (the bytes the analyzer reads) and their arrival
times, up to ``max_bytes`` of audio (60 s by default); past that it only counts. The session drops
it when the response ends (:func:`take`), so nothing outlives the response. Only a kept response
pays for decoding, resampling and the WAV (:func:`evidence`, via :mod:`loadtest.audio.playback`).

Modes (``--keep-audio``): ``none``; ``failed`` (default): every response that did not complete and
had audio; ``sample``: those, plus a ``sample_rate`` share of the completed ones (the run directory
bounds how many of those it keeps, apart from the failures).
"""

from __future__ import annotations

from array import array
from typing import Any

KEEP_MODES = ("none", "failed", "sample")
DEFAULT_KEEP_S = 60.0
DEFAULT_SAMPLE_RATE = 0.05


def check_mode(mode: str) -> str:
    if mode not in KEEP_MODES:
        raise ValueError(f"keep_audio {mode!r}: use one of {', '.join(KEEP_MODES)}")
    return mode


class AudioKeep:
    """References to one open response's audio deltas and their arrival times (bounded)."""

    __slots__ = ("arrivals", "chunks", "dropped", "kept_bytes", "max_bytes")

    def __init__(self, max_bytes: int) -> None:
        self.chunks: list[bytes] = []
        self.arrivals = array("d")
        self.kept_bytes = 0
        self.max_bytes = max_bytes
        self.dropped = 0  # deltas past the cap (counted, not kept)

    def add(self, raw: bytes, t: float) -> None:
        if self.kept_bytes >= self.max_bytes:
            self.dropped += 1
            return
        self.chunks.append(raw)
        self.arrivals.append(t)
        self.kept_bytes += len(raw)


def new_keep(mode: str, audio_format: str, max_s: float = DEFAULT_KEEP_S) -> AudioKeep | None:
    """The keep for a new response, or None when audio is not kept."""
    if mode == "none" or max_s <= 0:
        return None
    from loadtest.audio.convert import bytes_per_second  # numpy and soxr: not at import

    return AudioKeep(int(max_s * bytes_per_second(audio_format)))


def wanted(mode: str, completed: bool, draw: float, sample_rate: float = DEFAULT_SAMPLE_RATE) -> bool:
    """Whether a response that ended (``completed`` or not) is kept; ``draw`` is uniform in [0, 1)."""
    if mode == "none":
        return False
    if not completed:
        return True
    return mode == "sample" and draw < sample_rate


def evidence(keep: AudioKeep, audio_format: str, jitter_buffer_ms: float) -> tuple[bytes, dict[str, Any]]:
    """The WAV and the trace note (``audio.playback``) of a kept response."""
    from loadtest.audio.playback import render

    played = render(
        keep.chunks, keep.arrivals, audio_format, jitter_buffer_ms=jitter_buffer_ms, complete=not keep.dropped
    )
    note = played.timeline()
    if keep.dropped:
        note["deltas_not_kept"] = keep.dropped
    t0 = keep.arrivals[0] if keep.arrivals else None
    return played.wav, {"t": t0, "dir": "note", "type": "audio.playback", "t0": t0, **note}
