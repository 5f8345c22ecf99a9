"""Lateness figures (ms) gathered on a hot path and read once a second: the audio clock's frames
(how late each went out) and the shared receiver's reads (how long a ready connection waited).
"""

from __future__ import annotations

from array import array


class LagStats:
    """Lags in ms: a count, the share over ``LATE_MS``, mean, p99 (of the first ``KEEP``) and max."""

    def __init__(self) -> None:
        self.frames = 0
        self.late_frames = 0  # frames more than LATE_MS behind their due time
        self.max_lag_ms = 0.0
        self.sum_lag_ms = 0.0
        self._lags = array("d")  # not a container the garbage collector scans

    LATE_MS = 20.0
    KEEP = 50_000  # per take (a second): ~20,000 frames/s at 2,000 sessions all count

    def record(self, lag_ms: float) -> None:
        self.frames += 1
        self.sum_lag_ms += lag_ms
        if lag_ms > self.max_lag_ms:
            self.max_lag_ms = lag_ms
        if lag_ms > self.LATE_MS:
            self.late_frames += 1
        if len(self._lags) < self.KEEP:
            self._lags.append(lag_ms)

    def take(self) -> dict[str, float]:
        """Figures since the last take (frames, late %, mean/p99/max lag ms), then reset."""
        lags, self._lags = self._lags, array("d")
        frames, late, total, peak = self.frames, self.late_frames, self.sum_lag_ms, self.max_lag_ms
        self.frames = self.late_frames = 0
        self.sum_lag_ms = self.max_lag_ms = 0.0
        p99 = sorted(lags)[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else 0.0
        return {
            "frames": frames,
            "late_pct": 100.0 * late / frames if frames else 0.0,
            "mean_lag_ms": total / frames if frames else 0.0,
            "p99_lag_ms": p99,
            "max_lag_ms": peak,
        }
