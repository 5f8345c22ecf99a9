"""`rtload report capacity`: load steps against the SLO, the highest load that met it, the knee.

Rows are the load shape's steps (``step``, with ``users`` the shape's user count) when the
run recorded them, otherwise buckets of ``concurrency`` (each distinct value when there are
few, else equal-width bins). Per row: attempts, responses per minute (attempts divided by
the span of their trigger times), outcome rates, latency percentiles. Rows are ordered by
load; the knee is the first row that breaks the SLO, the highest load that met it is the
last row before the knee.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from loadtest.records.reader import RunData
from loadtest.report.render import Report, Table, count, ms, num, pct
from loadtest.report.slo import STATS, Clause, evaluate
from loadtest.report.stats import LATENCIES, RATE_NAMES, finite, outcome_rates, percentiles

RESPONSE_COLUMNS = [
    "outcome",
    "reason",
    "step",
    "users",
    "concurrency",
    "t_trigger",
    "created_ms",
    "ttfa_ms",
    "ttft_ms",
    "done_ms",
]
SESSION_COLUMNS = ["step", "concurrency", "handshake_ms", "handshake_status"]


def _groups(responses: pd.DataFrame, sessions: pd.DataFrame, buckets: int) -> tuple[str, pd.Series, pd.Series, dict]:
    """(grouping name, response group keys, session group keys, key -> label/users)."""
    steps = pd.to_numeric(responses.get("step"), errors="coerce") if "step" in responses else None
    if steps is not None and steps.notna().any():
        s_steps = pd.to_numeric(sessions["step"], errors="coerce") if "step" in sessions else pd.Series(dtype=float)
        users = pd.to_numeric(responses.get("users"), errors="coerce") if "users" in responses else None
        info = {}
        for key in sorted(steps.dropna().unique()):
            u = users[steps == key].dropna() if users is not None else pd.Series(dtype=float)
            info[key] = {"label": f"step {int(key)}", "users": float(u.max()) if len(u) else None}
        return "step", steps, s_steps, info
    conc = pd.to_numeric(responses.get("concurrency"), errors="coerce") if "concurrency" in responses else None
    if conc is None or not conc.notna().any():
        return "none", pd.Series(dtype=float), pd.Series(dtype=float), {}
    s_conc = (
        pd.to_numeric(sessions["concurrency"], errors="coerce") if "concurrency" in sessions else pd.Series(dtype=float)
    )
    values = np.sort(conc.dropna().unique())
    if values.size <= buckets:
        info = {v: {"label": f"{num(v)} open", "users": float(v)} for v in values}
        return "concurrency", conc, s_conc, info
    edges = np.linspace(values.min(), values.max(), buckets + 1)

    def bucket(series: pd.Series) -> pd.Series:
        idx = np.clip(
            np.searchsorted(edges, series.to_numpy(dtype=float, na_value=np.nan), side="right") - 1, 0, buckets - 1
        )
        return pd.Series(np.where(series.notna(), idx, np.nan), index=series.index)

    r_keys, s_keys = bucket(conc), bucket(s_conc)
    info = {}
    for key in sorted(r_keys.dropna().unique()):
        inside = conc[r_keys == key]
        info[key] = {
            "label": f"{num(edges[int(key)])}-{num(edges[int(key) + 1])} open",
            "users": float(inside.median()),
        }
    return "concurrency", r_keys, s_keys, info


def capacity_data(data: RunData, clauses: list[Clause], slo_text: str, buckets: int = 10) -> dict[str, Any]:
    responses, sessions = data.responses, data.sessions
    grouping, r_keys, s_keys, info = _groups(responses, sessions, buckets)
    rows = []
    for key, meta in info.items():
        frame = responses[r_keys == key]
        sess = sessions[s_keys == key] if len(s_keys) else sessions.iloc[0:0]
        trig = finite(frame["t_trigger"])
        span_min = (trig.max() - trig.min()) / 60 if trig.size > 1 else None
        row: dict[str, Any] = {
            "group": meta["label"],
            "key": float(key),
            "users": meta["users"],
            "responses": len(frame),
            "span_min": span_min,
            "responses_per_min": len(frame) / span_min if span_min else None,
        }
        rates = outcome_rates(frame)
        values: dict[str, Any] = {}
        for name in RATE_NAMES:
            row[f"{name}_pct"] = values[name] = rates[name]["rate_pct"]
        for label, (frame_name, col) in LATENCIES.items():
            src = sess if frame_name == "sessions" else frame
            p = percentiles(src.get(col, []))
            for stat in STATS:
                values[f"{label}_{stat}"] = p[stat]
            row[label] = {k: p[k] for k in ("n", "p50", "p95", "p99")}
        row["violations"] = evaluate(clauses, values)
        row["slo_met"] = not row["violations"]
        rows.append(row)
    rows.sort(key=lambda r: (r["users"] if r["users"] is not None else float("inf"), r["key"]))
    knee = next((i for i, r in enumerate(rows) if not r["slo_met"]), None)
    ok_rows = rows[:knee] if knee is not None else rows
    max_ok = ok_rows[-1] if ok_rows else None
    recovered = [r["group"] for r in rows[knee + 1 :] if r["slo_met"]] if knee is not None else []
    return {
        "run_id": data.run_id,
        "grouping": grouping,
        "slo": {"text": slo_text, "clauses": [c.text() for c in clauses]},
        "rows": rows,
        "max_ok": {"group": max_ok["group"], "users": max_ok["users"]} if max_ok else None,
        "knee": (
            {"group": rows[knee]["group"], "users": rows[knee]["users"], "violations": rows[knee]["violations"]}
            if knee is not None
            else None
        ),
        "met_again_after_knee": recovered,
    }


def verdict_lines(d: dict[str, Any]) -> list[str]:
    if d["grouping"] == "none":
        return ["No load steps or concurrency were recorded, so there is no capacity curve."]
    lines = [f"SLO: {', '.join(d['slo']['clauses'])}"]
    unit = "users" if d["grouping"] == "step" else "open sessions"
    if d["max_ok"]:
        lines.append(f"Highest load that met the SLO: {d['max_ok']['group']} ({num(d['max_ok']['users'])} {unit}).")
    else:
        lines.append("No load level met the SLO (the lowest already broke it).")
    if d["knee"]:
        why = "; ".join(d["knee"]["violations"])
        lines.append(f"Knee: {d['knee']['group']} ({num(d['knee']['users'])} {unit}) broke the SLO: {why}.")
        if d["met_again_after_knee"]:
            lines.append(
                f"Note: the SLO was met again after the knee at {', '.join(d['met_again_after_knee'])} (noisy?)."
            )
    else:
        lines.append("Knee: not reached; every load level met the SLO.")
    return lines


def build_capacity(data: RunData, clauses: list[Clause], slo_text: str, buckets: int = 10) -> Report:
    d = capacity_data(data, clauses, slo_text, buckets)
    columns = [
        "load",
        "users",
        "responses",
        "resp/min",
        "completed",
        "failed",
        "truncated",
        "throttled",
        "non_completed",
        "ttfa p50",
        "ttfa p95",
        "done p95",
        "handshake p95",
        "SLO",
    ]
    rows = [
        [
            r["group"],
            num(r["users"]),
            count(r["responses"]),
            num(r["responses_per_min"]),
            *(pct(r[f"{n}_pct"]) for n in ("completed", "failed", "truncated", "throttled", "non_completed")),
            ms(r["ttfa"]["p50"]),
            ms(r["ttfa"]["p95"]),
            ms(r["done"]["p95"]),
            ms(r["handshake"]["p95"]),
            "met" if r["slo_met"] else "BROKEN",
        ]
        for r in d["rows"]
    ]
    table = Table(f"Capacity by {d['grouping']}", columns, rows, note="latencies in ms; rates are shares of attempts")
    return Report(f"Capacity of run {d['run_id']}", d, [table], verdict_lines(d), list(data.warnings))
