"""Did the load generator's own memory grow over the run? (``health.jsonl``'s ``rss_mb``)

A soak is only as good as the harness's own flatness: a process whose memory grows for hours ends
in swapping or the OOM killer, and its latencies with it. Per process (``worker_id``), the first
:data:`WARMUP_SHARE` of its samples' span (at most :data:`WARMUP_MAX_S`) is the warm-up (imports,
the first sessions, the allocator finding its level); a least-squares line through the rest gives
the slope in MB per hour. Memory *grew* when the slope reaches :data:`GROWTH_MB_PER_H` and the line
rises at least :data:`MIN_GROWTH_MB` over the window, so a short run's allocator noise is not read
as a trend; a window shorter than :data:`MIN_WINDOW_S` is not assessed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from loadtest.report.render import Table, count, num

WARMUP_MAX_S = 300.0
WARMUP_SHARE = 0.2
MIN_WINDOW_S = 120.0
GROWTH_MB_PER_H = 5.0
MIN_GROWTH_MB = 10.0


def rss_trend(t: Any, rss_mb: Any, warmup_s: float | None = None) -> dict[str, Any]:
    """The slope (MB/h) of ``rss_mb`` against ``t`` (Unix s) after the warm-up, and whether it grew."""
    t = np.asarray(t, dtype=float)
    rss = np.asarray(rss_mb, dtype=float)
    ok = np.isfinite(t) & np.isfinite(rss)
    t, rss = t[ok], rss[ok]
    out: dict[str, Any] = {
        "samples": int(t.size),
        "warmup_s": None,
        "window_s": None,
        "rss_start_mb": None,
        "rss_end_mb": None,
        "rss_max_mb": round(float(rss.max()), 1) if rss.size else None,
        "slope_mb_per_h": None,
        "grew": None,
    }
    if t.size < 3:
        return out
    order = np.argsort(t, kind="stable")
    t, rss = t[order], rss[order]
    span = float(t[-1] - t[0])
    warm = min(WARMUP_MAX_S, WARMUP_SHARE * span) if warmup_s is None else float(warmup_s)
    keep = t >= t[0] + warm
    tw, rw = t[keep], rss[keep]
    window = float(tw[-1] - tw[0]) if tw.size else 0.0
    out.update(warmup_s=round(warm, 1), window_s=round(window, 1))
    if tw.size < 3 or window < MIN_WINDOW_S:
        return out
    slope_per_s, intercept = np.polyfit(tw - tw[0], rw, 1)
    per_h = float(slope_per_s * 3600.0)
    out.update(
        rss_start_mb=round(float(intercept), 1),
        rss_end_mb=round(float(intercept + slope_per_s * window), 1),
        slope_mb_per_h=round(per_h, 2),
        grew=bool(per_h >= GROWTH_MB_PER_H and slope_per_s * window >= MIN_GROWTH_MB),
    )
    return out


def memory_trends(health: pd.DataFrame | None) -> dict[str, Any] | None:
    """Per process RSS trends and one verdict line; None without health samples."""
    if health is None or health.empty or "rss_mb" not in health or "t" not in health:
        return None
    workers = []
    for worker, frame in health.groupby(health["worker_id"].fillna("").astype(str), sort=True):
        trend = rss_trend(pd.to_numeric(frame["t"], errors="coerce"), pd.to_numeric(frame["rss_mb"], errors="coerce"))
        workers.append({"worker_id": worker or "(local)", **trend})
    grown = [w for w in workers if w["grew"]]
    assessed = [w for w in workers if w["slope_mb_per_h"] is not None]
    if grown:
        verdict = "YES: " + "; ".join(
            f"worker {w['worker_id']} +{w['slope_mb_per_h']:.1f} MB/h after warm-up "
            f"({w['rss_start_mb']:.0f} -> {w['rss_end_mb']:.0f} MB over {w['window_s'] / 60:.0f} min)"
            for w in grown
        )
    elif assessed:
        top = max(assessed, key=lambda w: w["slope_mb_per_h"])
        verdict = (
            f"no: no process grew by {GROWTH_MB_PER_H:g} MB/h and {MIN_GROWTH_MB:g} MB after warm-up (highest "
            f"slope: worker {top['worker_id']} {top['slope_mb_per_h']:+.1f} MB/h over {top['window_s'] / 60:.0f} min)"
        )
    else:
        verdict = f"not assessed: under {MIN_WINDOW_S / 60:g} min of health samples after the warm-up"
    return {"workers": workers, "grew": bool(grown) if assessed else None, "verdict": verdict}


def memory_note(trends: dict[str, Any] | None) -> str:
    """The report line: did the harness's memory grow over the run?"""
    if trends is None:
        return "Did the load generator's memory grow? unknown: the run has no health.jsonl samples"
    return f"Did the load generator's memory grow? {trends['verdict']}"


MEMORY_COLUMNS = ["worker", "samples", "warm-up (min)", "window (min)", "rss start MB", "rss end MB", "rss max MB"]
MEMORY_COLUMNS += ["MB/h", "grew"]


def memory_table(trends: dict[str, Any]) -> Table:
    """Per process: RSS after warm-up (fitted start and end), the maximum and the slope."""
    return Table(
        "Load generator memory (rss_mb after warm-up)",
        MEMORY_COLUMNS,
        [
            [
                w["worker_id"],
                count(w["samples"]),
                num(None if w["warmup_s"] is None else w["warmup_s"] / 60),
                num(None if w["window_s"] is None else w["window_s"] / 60),
                num(w["rss_start_mb"]),
                num(w["rss_end_mb"]),
                num(w["rss_max_mb"]),
                num(w["slope_mb_per_h"], 2),
                "-" if w["grew"] is None else ("YES" if w["grew"] else "no"),
            ]
            for w in trends["workers"]
        ],
    )
