"""Where the limits bite: concurrent sessions at which each rate limit would be reached.

From the run: session-minutes (the sum over opened sessions of their open time, t_open to t_end
or the end of the run), tokens per session-minute (``total_tokens`` of every response over the
session-minutes) and requests per session-minute (responses over the session-minutes). With the
limits seen in ``rate_limits.updated`` (the largest ``limit`` per name, per minute), the sessions
at which a limit is reached = limit / use per session-minute, assuming every further session
uses the limit at the rate this run measured (the same scenario, turn pace and answer length)
and that the limit counts one deployment and key, as the run did.

Refused upgrades: for every session refused with 429 at the upgrade (the Azure concurrency cap,
or a rate limit at connect), the sessions open at that moment (a sweep over [t_open, t_end)); the
first one is where they began.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from loadtest.report.stats import finite

LIMIT_NAMES = {"tokens": ("tokens", "total_tokens"), "requests": ("requests", None)}


def _col(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame or frame.empty:
        return np.array([], dtype=float)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def session_minutes(sessions: pd.DataFrame, end: float | None) -> float:
    t_open, t_end = _col(sessions, "t_open"), _col(sessions, "t_end")
    opened = np.isfinite(t_open)
    if not opened.any():
        return 0.0
    t_open, t_end = t_open[opened], t_end[opened]
    if end is not None:
        t_end = np.where(np.isfinite(t_end), t_end, max(end, float(t_open.max())))
    keep = np.isfinite(t_end)
    return float(np.clip(t_end[keep] - t_open[keep], 0, None).sum() / 60.0)


def open_at(sessions: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    """Sessions open (t_open <= t < t_end) at each of ``times``."""
    t_open, t_end = _col(sessions, "t_open"), _col(sessions, "t_end")
    opened = np.isfinite(t_open)
    t_open, t_end = np.sort(t_open[opened]), t_end[opened]
    t_end = np.sort(np.where(np.isfinite(t_end), t_end, np.inf))  # still open at the end
    return np.searchsorted(t_open, times, side="right") - np.searchsorted(t_end, times, side="right")


def project_limits(
    responses: pd.DataFrame,
    sessions: pd.DataFrame,
    limits: dict[str, float | None],
    end: float | None,
    peak_concurrent: int | None = None,
) -> dict[str, Any]:
    """Per rate limit: use per session-minute, the limit, the sessions at which it is reached."""
    minutes = session_minutes(sessions, end)
    tokens = finite(responses["total_tokens"]) if "total_tokens" in responses else np.array([])
    use = {"tokens": float(tokens.sum()), "requests": float(len(responses))}
    rows = []
    for name in ("tokens", "requests"):
        per = use[name] / minutes if minutes > 0 else None
        limit = limits.get(name)
        at = limit / per if limit and per else None
        rows.append(
            {
                "limit_name": name,
                "limit_per_min": limit,
                "per_session_minute": per,
                "sessions_at_limit": at,
                "headroom_x": at / peak_concurrent if at and peak_concurrent else None,
            }
        )
    status = _col(sessions, "handshake_status")
    refused = sessions[status == 429] if len(sessions) else sessions
    refusal: dict[str, Any] = {"count": len(refused), "first_open_sessions": None, "open_sessions_p50": None}
    if len(refused):
        when = _col(refused, "t_end")
        when = np.where(np.isfinite(when), when, _col(refused, "t_start"))
        when = np.sort(when[np.isfinite(when)])
        if when.size:
            counts = open_at(sessions, when)
            refusal.update(
                {
                    "first_at": float(when[0]),
                    "first_open_sessions": int(counts[0]),
                    "open_sessions_p50": float(np.median(counts)),
                    "open_sessions_min": int(counts.min()),
                }
            )
    return {
        "session_minutes": minutes,
        "tokens": use["tokens"],
        "responses": int(use["requests"]),
        "peak_concurrent": peak_concurrent,
        "limits": rows,
        "refused_429": refusal,
    }


def projection_lines(p: dict[str, Any]) -> list[str]:
    """The projection in words."""
    lines = []
    measured = f"measured over {p['session_minutes']:.1f} session-minutes"
    for row in p["limits"]:
        name, per, limit, at = (
            row["limit_name"],
            row["per_session_minute"],
            row["limit_per_min"],
            row["sessions_at_limit"],
        )
        if per is None:
            lines.append(f"Projection ({name}): no session-minutes recorded, so no rate per session.")
        elif limit is None:
            lines.append(
                f"Projection ({name}): {per:,.1f} {name} per session-minute ({measured}); no {name} limit was seen "
                "in rate_limits.updated."
            )
        else:
            peak = f" (the run peaked at {p['peak_concurrent']})" if p.get("peak_concurrent") else ""
            lines.append(
                f"Projection ({name}): the {limit:,.0f} {name}/min limit is reached at about {at:,.0f} concurrent "
                f"sessions{peak}, assuming each uses {per:,.1f} {name} per session-minute as this run did ({measured})."
            )
    r = p["refused_429"]
    if r["count"] and r["first_open_sessions"] is not None:
        lines.append(
            f"Refused upgrades (429): {r['count']} refused, the first with {r['first_open_sessions']} sessions open "
            f"(median {r['open_sessions_p50']:g} open at a refusal)."
        )
    elif not r["count"]:
        lines.append("Refused upgrades (429): none, so the run found no concurrency cap.")
    return lines
