"""Audio evidence: the audio a caller heard, kept while a response is open, written only when it
ends badly (or is sampled).

:class:`AudioKeep` sits on the per-delta path, so it copies nothing: it holds references to the
decoded delta payloads the tracker already made (the bytes the analyzer reads) and their arrival
times, up to ``max_bytes`` of audio (60 s by default), drawing on the process's :class:`AudioPool`
(all open responses together hold at most 512 MB); past either it only counts. The session drops
it when the response ends, so nothing outlives the response, and a dropped keep returns its share
of the pool. Only a kept response
pays for decoding, resampling and the WAV (:func:`evidence`, via :mod:`loadtest.audio.playback`).

Modes (``--keep-audio``): ``none``; ``failed`` (default): every response that did not complete and
had audio; ``sample``: those, plus a ``sample_rate`` share of the completed ones (the run directory
bounds how many of those it keeps, apart from the failures).
"""

from __future__ import annotations

import logging
import threading
from array import array
from typing import Any

log = logging.getLogger("loadtest.session")

KEEP_MODES = ("none", "failed", "sample")
DEFAULT_KEEP_S = 60.0
DEFAULT_SAMPLE_RATE = 0.05
DEFAULT_POOL_MB = 512  # audio held by all the open responses of one process, at most
BLOCK_BYTES = 256 * 1024  # a keep reserves from the pool in blocks (no lock per delta)


def check_mode(mode: str) -> str:
    if mode not in KEEP_MODES:
        raise ValueError(f"keep_audio {mode!r}: use one of {', '.join(KEEP_MODES)}")
    return mode


class AudioPool:
    """The bytes of audio all open responses of one process may hold (one per
    :class:`~loadtest.session.runtime.SessionRuntime`): a keep reserves blocks as it grows and
    returns them when it is dropped, so thousands of open sessions cannot hold unbounded audio."""

    def __init__(self, limit_bytes: int = DEFAULT_POOL_MB * 1024 * 1024) -> None:
        self.limit = limit_bytes
        self.held = 0
        self.refused = 0  # reservations refused (a response's audio kept only in part)
        self._lock = threading.Lock()

    def reserve(self, n: int) -> bool:
        with self._lock:
            if self.held + n > self.limit:
                self.refused += 1
                return False
            self.held += n
            return True

    def release(self, n: int) -> None:
        with self._lock:
            self.held -= n


class AudioKeep:
    """References to one open response's audio deltas and their arrival times (bounded)."""

    __slots__ = ("arrivals", "chunks", "dropped", "kept_bytes", "max_bytes", "pool", "reserved")

    def __init__(self, max_bytes: int, pool: AudioPool | None = None) -> None:
        self.chunks: list[bytes] = []
        self.arrivals = array("d")
        self.kept_bytes = 0
        self.max_bytes = max_bytes
        self.pool = pool
        self.reserved = 0 if pool is not None else max_bytes
        self.dropped = 0  # deltas past the cap or the pool (counted, not kept)

    def add(self, raw: bytes, t: float) -> None:
        n = self.kept_bytes + len(raw)
        if n > self.reserved and not self._grow(n):
            self.dropped += 1
            return
        self.chunks.append(raw)
        self.arrivals.append(t)
        self.kept_bytes = n

    def _grow(self, n: int) -> bool:
        if n > self.max_bytes or self.dropped:  # once cut short, it stays cut (no holes in the middle)
            return False
        block = min(max(BLOCK_BYTES, n - self.reserved), self.max_bytes - self.reserved)
        if not self.pool.reserve(block):  # type: ignore[union-attr] - reserved < max_bytes only with a pool
            return False
        self.reserved += block
        return True

    def __del__(self) -> None:
        # dropped (the response ended, or its session went away): its reservation goes back
        pool = self.pool
        if pool is not None and self.reserved:
            pool.release(self.reserved)
            self.reserved = 0


def new_keep(
    mode: str, audio_format: str, max_s: float = DEFAULT_KEEP_S, pool: AudioPool | None = None
) -> AudioKeep | None:
    """The keep for a new response (drawing on ``pool`` when given), or None when audio is not kept."""
    if mode == "none" or max_s <= 0:
        return None
    from loadtest.audio.convert import bytes_per_second  # numpy and soxr: not at import

    return AudioKeep(int(max_s * bytes_per_second(audio_format)), pool)


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


def keep(tracker: Any, completed: bool, rec: Any, name: str, cfg: Any, rng: Any, sink: Any) -> dict[str, Any] | None:
    """Write the WAV of a response worth keeping (``rec.audio_file``); the trace's playback note, or
    None. The tracker's kept audio is dropped here either way: nothing of it outlives the response."""
    kept, tracker.kept_audio = tracker.kept_audio, None
    store = getattr(sink, "audio", None)
    if kept is None or not kept.chunks or store is None:
        return None
    if not wanted(cfg.keep_audio, completed, rng.random(), cfg.keep_audio_sample):
        return None
    try:
        wav, note = evidence(kept, tracker.audio_format, cfg.jitter_buffer_ms)
        rec.audio_file = store(name, wav, completed)
    except Exception:
        log.exception("audio evidence failed")
        return None
    if rec.audio_file is None:
        return None
    note["wav"] = rec.audio_file
    return note
