"""The statistics every report shares: outcome counts and rates, latency percentiles, spans.

Definitions (documented in the README "Reports" section):
- A rate is a share of all response attempts in the group (cancelled included), in percent.
  ``non_completed`` is every attempt whose outcome is not ``completed``.
- Latency percentiles use numpy's default (linear interpolation) over the rows that have
  the value, whatever their outcome; ``n`` says how many rows that was.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from loadtest.records.schema import COMPLETED, OUTCOMES

PERCENTILES: tuple[int, ...] = (50, 90, 95, 99)
RATE_NAMES: tuple[str, ...] = (*OUTCOMES, "non_completed")
# label -> (frame, column): the latencies every report knows, in the order of a response
LATENCIES: dict[str, tuple[str, str]] = {
    "handshake": ("sessions", "handshake_ms"),
    "created": ("responses", "created_ms"),
    "ttfa": ("responses", "ttfa_ms"),
    "ttft": ("responses", "ttft_ms"),
    "done": ("responses", "done_ms"),
}
LATENCY_TITLES: dict[str, str] = {
    "handshake": "handshake (WebSocket upgrade)",
    "created": "response.created",
    "ttfa": "first audio delta",
    "ttft": "first transcript/text delta",
    "done": "response.done",
}


def finite(values: Any) -> np.ndarray:
    arr = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return arr[np.isfinite(arr)]


def numbers(frame: pd.DataFrame, col: str) -> np.ndarray:
    """A column as floats, one per row (NaN where empty; all NaN when the frame lacks the column)."""
    if col not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def percentiles(values: Any) -> dict[str, float | int | None]:
    """n, p50, p90, p95, p99 and max of the finite values (None when there are none)."""
    arr = finite(values)
    out: dict[str, float | int | None] = {"n": int(arr.size)}
    if arr.size == 0:
        out.update({f"p{p}": None for p in PERCENTILES})
        out["max"] = None
        return out
    qs = np.percentile(arr, PERCENTILES)
    out.update({f"p{p}": float(q) for p, q in zip(PERCENTILES, qs, strict=True)})
    out["max"] = float(arr.max())
    return out


def outcome_counts(responses: pd.DataFrame) -> dict[str, int]:
    """Attempts per outcome: every known outcome (0 when absent), then any unknown ones."""
    if responses.empty or "outcome" not in responses:
        return {o: 0 for o in OUTCOMES}
    counts = responses["outcome"].fillna("").astype(str).value_counts()
    out = {o: int(counts.get(o, 0)) for o in OUTCOMES}
    for name, count in counts.items():
        if name not in out:
            out[str(name) or "(none)"] = int(count)
    return out


def rate(count: int, total: int) -> float | None:
    return 100.0 * count / total if total else None


def outcome_rates(responses: pd.DataFrame) -> dict[str, dict[str, float | int | None]]:
    """{outcome: {count, rate_pct}} plus ``non_completed``."""
    counts = outcome_counts(responses)
    total = len(responses)
    out = {name: {"count": n, "rate_pct": rate(n, total)} for name, n in counts.items()}
    bad = total - counts.get(COMPLETED, 0)
    out["non_completed"] = {"count": bad, "rate_pct": rate(bad, total)}
    return out


def reason_rows(responses: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per (outcome, reason) of the non-completed attempts, most frequent first."""
    if responses.empty:
        return []
    bad = responses[responses["outcome"].fillna("") != COMPLETED]
    if bad.empty:
        return []
    grouped = (
        bad.assign(outcome=bad["outcome"].fillna("").astype(str), reason=bad["reason"].fillna("").astype(str))
        .groupby(["outcome", "reason"], sort=False)
        .size()
        .sort_values(ascending=False, kind="stable")
    )
    total = len(responses)
    return [
        {"outcome": o, "reason": r or "(none)", "count": int(n), "rate_pct": rate(int(n), total)}
        for (o, r), n in grouped.items()
    ]


def time_span(
    run: dict[str, Any], responses: pd.DataFrame, sessions: pd.DataFrame
) -> tuple[float | None, float | None]:
    """Start and end of the run: run.json's times when present, else the rows' own."""
    times: list[float] = []
    for col in ("t_trigger", "t_done"):
        if col in responses and len(responses):
            arr = finite(responses[col])
            if arr.size:
                times.extend((float(arr.min()), float(arr.max())))
    return span_of(run, times, sessions)


def span_of(run: dict[str, Any], times: list[float], sessions: pd.DataFrame) -> tuple[float | None, float | None]:
    """run.json's start and end where it has them, else the extremes of ``times`` (the responses'
    first and last times, however found) and the sessions' own."""
    start = next((run[k] for k in ("t_start", "start", "started_at") if isinstance(run.get(k), int | float)), None)
    end = next(
        (run[k] for k in ("t_end", "end", "ended_at", "finished_at") if isinstance(run.get(k), int | float)), None
    )
    times = list(times)
    for col in ("t_start", "t_end"):
        if col in sessions and len(sessions):
            arr = finite(sessions[col])
            if arr.size:
                times.extend((float(arr.min()), float(arr.max())))
    if start is None and times:
        start = min(times)
    if end is None and times:
        end = max(times)
    return (float(start) if start is not None else None, float(end) if end is not None else None)


def group_rows(responses: pd.DataFrame, by: str) -> list[dict[str, Any]]:
    """Per value of ``by``: attempts, outcome rates and the main latency percentiles."""
    if responses.empty or by not in responses:
        return []
    out = []
    keys = responses[by].fillna("").astype(str)
    for key, frame in responses.groupby(keys, sort=True):
        row: dict[str, Any] = {by: key or "(none)", "responses": len(frame)}
        rates = outcome_rates(frame)
        for name in RATE_NAMES:
            row[f"{name}_pct"] = rates[name]["rate_pct"]
        for label in ("ttfa", "done"):
            pct = percentiles(frame[LATENCIES[label][1]])
            row[f"{label}_p50"] = pct["p50"]
            row[f"{label}_p95"] = pct["p95"]
        out.append(row)
    return out
