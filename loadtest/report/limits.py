"""`rtload report limits`: what the rate limits and session limits did during a run.

Rate limits come from ``rate_limits.jsonl`` (one row per entry of every
``rate_limits.updated``), per limit name: the limit (largest seen), the lowest remaining,
when remaining first reached zero (seconds after the run started), how often it was at
zero, and how many resets were seen (remaining went up between consecutive samples in time
order). Tokens per minute are the ``total_tokens`` of responses bucketed by the minute
their ``response.done`` arrived; headroom = (limit - peak minute) / limit.

``retry-after`` comes from refused upgrades (sessions.retry_after) and, for
``rate_limit_exceeded`` errors, from the "try again in 1.2s" the error message carries.
Peak concurrent sessions is a sweep over every opened session's [t_open, t_end) interval
(a session with no t_end is still open at the end of the run).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from loadtest.records.reader import RunData
from loadtest.report import scanned, scanstats
from loadtest.report.projection import project_limits, projection_lines
from loadtest.report.render import Report, Table, count, ms, num, pct
from loadtest.report.stats import finite, percentiles, rate, time_span

RESPONSE_COLUMNS = ["outcome", "reason", "t_trigger", "t_done", "total_tokens", "error_code", "error_message"]
# the session columns the limits read (rtload report limits reads them all; the html page these)
SESSION_COLUMNS = ["t_start", "t_open", "t_end", "ended_by", "duration_s", "handshake_status", "handshake_ms",
                   "retry_after"]  # fmt: skip
_RETRY_IN = re.compile(r"(?i)try again in\s+([0-9]*\.?[0-9]+)\s*(ms|s|sec|seconds?)?")


def retry_after_from_message(message: Any) -> float | None:
    """Seconds from an error message's "Please try again in 1.234s" (None when absent)."""
    if not isinstance(message, str):
        return None
    m = _RETRY_IN.search(message)
    if not m:
        return None
    value = float(m.group(1))
    return value / 1000 if (m.group(2) or "s").lower() == "ms" else value


def _spread(values: Any) -> dict[str, Any]:
    arr = finite(values)
    if not arr.size:
        return {"n": 0, "p50": None, "max": None}
    return {"n": int(arr.size), "p50": float(np.percentile(arr, 50)), "max": float(arr.max())}


def rate_limit_rows(rl: pd.DataFrame, start: float | None) -> list[dict[str, Any]]:
    rows = []
    if rl.empty:
        return rows
    for name, frame in rl.groupby(rl["name"].fillna("").astype(str), sort=True):
        frame = frame.sort_values("t", kind="stable")
        remaining = pd.to_numeric(frame["remaining"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        limit = finite(frame["limit"])
        times = frame["t"].to_numpy(dtype=float)
        valid = np.isfinite(remaining)
        zero = valid & (remaining <= 0)
        rem = remaining[valid]
        resets = int((np.diff(rem) > 0).sum()) if rem.size > 1 else 0
        first_zero = float(times[zero][0]) if zero.any() else None
        # time spent at zero: from each zero sample to the next sample (the last one counts nothing)
        at_zero = float(np.diff(times)[zero[:-1]].sum()) if times.size > 1 else 0.0
        rows.append(
            {
                "name": name or "(none)",
                "samples": len(frame),
                "limit": float(limit.max()) if limit.size else None,
                "lowest_remaining": float(rem.min()) if rem.size else None,
                "first_zero_s": (first_zero - start) if first_zero is not None and start is not None else first_zero,
                "zero_samples": int(zero.sum()),
                "time_at_zero_s": at_zero,
                "resets": resets,
                "reset_seconds_p50": _spread(frame["reset_seconds"])["p50"],
            }
        )
    return rows


def per_minute(times: np.ndarray, weights: np.ndarray | None, start: float) -> np.ndarray:
    """Sum of ``weights`` (or counts) per whole minute since ``start``."""
    if times.size == 0:
        return np.array([])
    idx = np.floor((times - start) / 60.0).astype(int)
    idx -= idx.min() if idx.min() < 0 else 0
    return np.bincount(idx, weights=weights)


def _response_figures(data: RunData, start: float | None) -> dict[str, Any]:
    """What the limits read of the responses: the rate_limit_exceeded rows' messages, counts, tokens
    and requests per minute, and the rows for the projection (in DuckDB when the run was scanned)."""
    if data.scan is not None:
        scan = data.scan
        reason, outcome = scanstats.text("reason"), scanstats.text("outcome")
        message = scan.has("error_message")
        rle = (
            scan.fetchall(
                f"SELECT {'error_message' if message else 'NULL'} FROM {{v}} WHERE {reason} = 'rate_limit_exceeded' "
                "ORDER BY _ord"
            )
            if scan.has("reason")
            else []
        )
        quota, throttled = scan.fetchall(
            f"SELECT count_if({reason} = 'insufficient_quota'), count_if({outcome} = 'throttled') FROM {{v}}"
        )[0]
        num = scanstats.num
        tpm = np.array([])
        if start is not None and scan.has("t_done") and scan.has("total_tokens"):
            tpm = scanned.per_minute(scan, num("t_done"), num("total_tokens"), start)
        rpm = np.array([])
        if start is not None and scan.has("t_trigger"):
            rpm = scanned.per_minute(
                scan, f"(CASE WHEN isfinite({num('t_trigger')}) THEN {num('t_trigger')} END)", None, start
            )
        return {
            "rle_messages": [m for (m,) in rle],
            "quota": int(quota) if scan.rows else 0,
            "throttled": int(throttled) if scan.rows else 0,
            "tpm": tpm,
            "rpm": rpm,
            "projection": scanned.tokens_frame(scan),
        }
    responses = data.responses
    reasons = responses["reason"].fillna("") if "reason" in responses else pd.Series(dtype=str)
    rle = responses[reasons == "rate_limit_exceeded"] if len(responses) else responses
    t_done = pd.to_numeric(responses.get("t_done"), errors="coerce") if len(responses) else pd.Series(dtype=float)
    tokens = pd.to_numeric(responses.get("total_tokens"), errors="coerce") if len(responses) else pd.Series(dtype=float)
    have = t_done.notna() & tokens.notna() if len(responses) else pd.Series(dtype=bool)
    tpm = (
        per_minute(t_done[have].to_numpy(float), tokens[have].to_numpy(float), start)
        if start is not None
        else np.array([])
    )
    trig = finite(responses["t_trigger"]) if len(responses) else np.array([])
    return {
        "rle_messages": list(rle["error_message"]) if len(rle) else [],
        "quota": int((reasons == "insufficient_quota").sum()),
        "throttled": int((responses["outcome"].fillna("") == "throttled").sum()) if len(responses) else 0,
        "tpm": tpm,
        "rpm": per_minute(trig, None, start) if start is not None else np.array([]),
        "projection": responses,
    }


def limits_data(data: RunData) -> dict[str, Any]:
    sessions, rl = data.sessions, data.rate_limits
    if data.scan is not None:
        start, end = scanned.time_span(data.run, data.scan, sessions)
    else:
        start, end = time_span(data.run, data.responses, sessions)
    rl_rows = rate_limit_rows(rl, start)
    by_name = {r["name"]: r for r in rl_rows}
    got = _response_figures(data, start)
    hs = pd.to_numeric(sessions.get("handshake_status"), errors="coerce") if "handshake_status" in sessions else None
    refused429 = sessions[hs == 429] if hs is not None else sessions.iloc[0:0]
    throttling = {
        "handshake_429": len(refused429),
        "handshake_429_retry_after_s": _spread(refused429["retry_after"]) if len(refused429) else _spread([]),
        "rate_limit_exceeded": len(got["rle_messages"]),
        "rate_limit_exceeded_retry_after_s": _spread([retry_after_from_message(m) for m in got["rle_messages"]]),
        "insufficient_quota": got["quota"],
        "throttled_responses": got["throttled"],
    }
    tpm, rpm = got["tpm"], got["rpm"]
    token_limit = by_name.get("tokens", {}).get("limit")
    request_limit = by_name.get("requests", {}).get("limit")

    def budget(series: np.ndarray, limit: float | None) -> dict[str, Any]:
        peak = float(series.max()) if series.size else None
        return {
            "minutes": int(series.size),
            "peak": peak,
            "mean": float(series.mean()) if series.size else None,
            "limit": limit,
            "headroom_pct": (100.0 * (limit - peak) / limit) if limit and peak is not None else None,
        }

    # sessions
    opened = sessions[pd.to_numeric(sessions["t_open"], errors="coerce").notna()] if len(sessions) else sessions
    ended_by = (
        sessions["ended_by"].fillna("").astype(str).replace("", "(unknown)").value_counts() if len(sessions) else {}
    )
    expired = sessions[sessions["ended_by"].fillna("") == "session_expired"] if len(sessions) else sessions
    refused = sessions[(hs.notna()) & (hs != 101)] if hs is not None else sessions.iloc[0:0]
    refused_rows = [
        {"status": int(status), "count": len(frame), "retry_after_s_p50": _spread(frame["retry_after"])["p50"]}
        for status, frame in refused.groupby(pd.to_numeric(refused["handshake_status"]), sort=True)
    ]
    peak, peak_at = peak_concurrency(opened, end)
    projection = project_limits(
        got["projection"], sessions, {"tokens": token_limit, "requests": request_limit}, end, peak
    )
    return {
        "projection": projection,
        "run_id": data.run_id,
        "rate_limits": rl_rows,
        "throttling": throttling,
        "tokens_per_minute": budget(tpm, token_limit),
        "requests_per_minute": budget(rpm, request_limit),
        "sessions": {
            "count": len(sessions),
            "opened": len(opened),
            "lifetime_s": percentiles(opened["duration_s"]) if len(opened) else percentiles([]),
            "ended_by": {str(k): int(v) for k, v in dict(ended_by).items()},
            "hit_max_duration": len(expired),
            "observed_max_duration_s": float(finite(expired["duration_s"]).max())
            if finite(expired.get("duration_s", [])).size
            else None,
            "longest_session_s": float(finite(opened["duration_s"]).max())
            if len(opened) and finite(opened["duration_s"]).size
            else None,
            "peak_concurrent": peak,
            "peak_concurrent_at_s": (peak_at - start) if peak_at is not None and start is not None else None,
            "refused_upgrades": refused_rows,
            "refused_rate_pct": rate(len(refused), len(sessions)),
            "handshake_ms": percentiles(sessions["handshake_ms"]) if len(sessions) else percentiles([]),
        },
    }


def peak_concurrency(opened: pd.DataFrame, end: float | None) -> tuple[int, float | None]:
    """Most sessions open at once over [t_open, t_end) intervals, and when it was first reached."""
    if opened.empty:
        return 0, None
    t_open = opened["t_open"].to_numpy(dtype=float)
    t_end = pd.to_numeric(opened["t_end"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    t_end = np.where(np.isfinite(t_end), t_end, np.inf if end is None else max(end, np.nanmax(t_open)) + 1e-9)
    times = np.concatenate([t_open, t_end])
    deltas = np.concatenate([np.ones(t_open.size), -np.ones(t_end.size)])
    order = np.lexsort((deltas, times))  # at equal times a close (-1) counts before an open
    running = np.cumsum(deltas[order])
    i = int(np.argmax(running))
    return int(running[i]), float(times[order][i])


def build_limits(data: RunData) -> Report:
    d = limits_data(data)
    tables = [
        Table(
            "Rate limits (rate_limits.updated)",
            [
                "limit",
                "samples",
                "limit value",
                "lowest remaining",
                "first at zero (s)",
                "time at zero (s)",
                "samples at zero",
                "resets",
                "reset p50 (s)",
            ],
            [
                [
                    r["name"],
                    count(r["samples"]),
                    num(r["limit"]),
                    num(r["lowest_remaining"]),
                    num(r["first_zero_s"]),
                    num(r["time_at_zero_s"]),
                    count(r["zero_samples"]),
                    count(r["resets"]),
                    num(r["reset_seconds_p50"], 2),
                ]
                for r in d["rate_limits"]
            ],
            note="first at zero: seconds after the run started; time at zero: from each sample at zero to the next",
        )
    ]
    th = d["throttling"]
    tables.append(
        Table(
            "Throttling",
            ["what", "count", "retry-after p50 (s)", "retry-after max (s)"],
            [
                [
                    "refused upgrades with 429",
                    count(th["handshake_429"]),
                    num(th["handshake_429_retry_after_s"]["p50"], 2),
                    num(th["handshake_429_retry_after_s"]["max"], 2),
                ],
                [
                    "rate_limit_exceeded errors",
                    count(th["rate_limit_exceeded"]),
                    num(th["rate_limit_exceeded_retry_after_s"]["p50"], 2),
                    num(th["rate_limit_exceeded_retry_after_s"]["max"], 2),
                ],
                ["insufficient_quota errors", count(th["insufficient_quota"]), "-", "-"],
                ["throttled responses (all reasons)", count(th["throttled_responses"]), "-", "-"],
            ],
        )
    )
    budget_rows = []
    for label, b in (("tokens per minute", d["tokens_per_minute"]), ("responses per minute", d["requests_per_minute"])):
        budget_rows.append(
            [label, count(b["minutes"]), num(b["peak"]), num(b["mean"]), num(b["limit"]), pct(b["headroom_pct"])]
        )
    tables.append(
        Table(
            "Budget against the limits",
            ["measure", "minutes", "peak", "mean", "limit", "headroom"],
            budget_rows,
            note="headroom = (limit - peak minute) / limit; limits are the largest seen in rate_limits.updated",
        )
    )
    s = d["sessions"]
    tables.append(
        Table(
            "Session limits",
            ["measure", "value"],
            [
                ["sessions", count(s["count"])],
                ["opened", count(s["opened"])],
                ["lifetime p50 (s)", num(s["lifetime_s"]["p50"])],
                ["lifetime p95 (s)", num(s["lifetime_s"]["p95"])],
                ["longest session (s)", num(s["longest_session_s"])],
                ["hit the maximum duration (session_expired)", count(s["hit_max_duration"])],
                ["observed maximum duration (s)", num(s["observed_max_duration_s"])],
                ["peak concurrent sessions", count(s["peak_concurrent"])],
                ["peak reached at (s)", num(s["peak_concurrent_at_s"])],
                [
                    "refused upgrades",
                    f"{sum(r['count'] for r in s['refused_upgrades'])} ({pct(s['refused_rate_pct'])})",
                ],
                ["handshake p50 (ms)", ms(s["handshake_ms"]["p50"])],
                ["handshake p95 (ms)", ms(s["handshake_ms"]["p95"])],
                ["handshake max (ms)", ms(s["handshake_ms"]["max"])],
            ],
        )
    )
    tables.append(
        Table("How sessions ended", ["ended_by", "sessions"], [[k, count(v)] for k, v in s["ended_by"].items()])
    )
    tables.append(
        Table(
            "Refused upgrades by status",
            ["status", "count", "retry-after p50 (s)"],
            [[str(r["status"]), count(r["count"]), num(r["retry_after_s_p50"], 2)] for r in s["refused_upgrades"]],
        )
    )
    pr = d["projection"]
    tables.append(
        Table(
            "Projection: concurrent sessions at each rate limit",
            ["limit", "limit per minute", "use per session-minute", "sessions at the limit", "x the run's peak"],
            [
                [
                    r["limit_name"],
                    num(r["limit_per_min"]),
                    num(r["per_session_minute"]),
                    num(r["sessions_at_limit"], 0) if r["sessions_at_limit"] is not None else "-",
                    num(r["headroom_x"]),
                ]
                for r in pr["limits"]
            ],
            note=f"use per session-minute measured over {pr['session_minutes']:.1f} session-minutes; "
            "the projection assumes every further session uses the limit at that rate",
        )
    )
    notes = projection_lines(pr)
    return Report(f"Limits seen in run {d['run_id']}", d, tables, notes, list(data.warnings))
