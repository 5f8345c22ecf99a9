"""The mock's own counters (``GET /_mock/stats``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

LAG_BUCKETS_MS = (1, 5, 10, 20, 50, 100, 250, 1000)


@dataclass(slots=True)
class Stats:
    """The mock's own counters; ``lag`` is how late each paced send left versus its schedule."""

    started: float = field(default_factory=time.time)
    sessions_opened: int = 0
    sessions_active: int = 0
    sessions_max: int = 0
    refused: int = 0
    responses: int = 0
    events: int = 0
    deltas: int = 0
    appends: int = 0
    drops: int = 0
    lag_count: int = 0
    lag_sum: float = 0.0
    lag_max: float = 0.0
    lag_hist: list[int] = field(default_factory=lambda: [0] * (len(LAG_BUCKETS_MS) + 1))
    loop_lag_max: float = 0.0
    playback_checked: int = 0  # audio deltas checked against a real-time player's need
    playback_late: int = 0  # ... that left after the player needed them (the mock fell behind)
    faults: dict[str, int] = field(default_factory=dict)
    rtp_garbage_sent: int = 0  # WebRTC: datagrams of garbage sent on answer lines (webrtc.garbage_every_packets)

    def lag(self, seconds: float) -> None:
        ms = max(0.0, seconds * 1000.0)
        self.lag_count += 1
        self.lag_sum += ms
        if ms > self.lag_max:
            self.lag_max = ms
        for i, edge in enumerate(LAG_BUCKETS_MS):
            if ms <= edge:
                self.lag_hist[i] += 1
                return
        self.lag_hist[-1] += 1

    def lag_quantile(self, q: float) -> float:
        """Upper edge (ms) of the bucket holding quantile ``q`` of the schedule lag."""
        if not self.lag_count:
            return 0.0
        need = q * self.lag_count
        seen = 0
        for i, count in enumerate(self.lag_hist):
            seen += count
            if seen >= need:
                return float(LAG_BUCKETS_MS[i]) if i < len(LAG_BUCKETS_MS) else self.lag_max
        return self.lag_max

    def snapshot(self) -> dict[str, Any]:
        return {
            "uptime_s": round(time.time() - self.started, 3),
            "sessions_opened": self.sessions_opened,
            "sessions_active": self.sessions_active,
            "sessions_max": self.sessions_max,
            "refused": self.refused,
            "responses": self.responses,
            "events": self.events,
            "audio_deltas": self.deltas,
            "appends": self.appends,
            "drops": self.drops,
            "faults": dict(self.faults),
            "rtp_garbage_sent": self.rtp_garbage_sent,
            "schedule_lag_ms": {
                "count": self.lag_count,
                "mean": round(self.lag_sum / self.lag_count, 3) if self.lag_count else 0.0,
                "p50_le": self.lag_quantile(0.5),
                "p99_le": self.lag_quantile(0.99),
                "p999_le": self.lag_quantile(0.999),
                "max": round(self.lag_max, 3),
                "buckets_le_ms": list(LAG_BUCKETS_MS),
                "histogram": list(self.lag_hist),
            },
            "loop_lag_max_ms": round(self.loop_lag_max * 1000.0, 3),
            "playback": {"deltas_checked": self.playback_checked, "late_for_player": self.playback_late},
        }
