"""`rtload report capacity`: load steps against the SLO, the highest load that met it, the knee.

Rows are the load shape's steps (``step``, with ``users`` the shape's user count) when the
run recorded them, otherwise buckets of ``concurrency`` (each distinct value when there are
few, else equal-width bins). Per row: attempts, responses per minute (attempts divided by
the span of their trigger times), outcome rates, latency percentiles, and the SLO verdict
judged on confidence intervals (``loadtest.report.verdict``): met, broken or inconclusive.
Rows are ordered by load; the knee is the first ``broken`` row, the highest load that met the
SLO is the last ``met`` row before the knee. ``slo_met``/``violations`` keep the plain reading
of the observed values alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from loadtest.records.reader import RunData
from loadtest.report import function_calls, scanned, scanstats, transcription
from loadtest.report.confidence import BROKEN, DEFAULT_CONFIDENCE, INCONCLUSIVE, MET
from loadtest.report.limits import peak_concurrency, rate_limit_rows
from loadtest.report.projection import project_limits, projection_lines
from loadtest.report.render import Report, Table, count, ms, num, pct
from loadtest.report.slo import STATS, Clause, evaluate
from loadtest.report.stats import LATENCIES, RATE_NAMES, finite, outcome_rates, percentiles, time_span
from loadtest.report.trend import reason_trends, trend_words
from loadtest.report.verdict import clause_words, interval_text, judge_group

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
    "t_done",
    "total_tokens",
]
# Per step beside the latencies above, when the run has them (read only then: sections.optional_columns).
STEP_LATENCIES = {**function_calls.STEP_LATENCIES, **transcription.STEP_LATENCIES}
STEP_TITLES = {
    "tool_round_trip": "tool rt p95",
    "final_answer": "final answer p95",
    "input_transcript_done": "transcript p95",
}
STEP_NOTES = {
    "tool_round_trip": "tool rt = a call's arguments done to its follow-up's first output",
    "final_answer": "final answer = the turn's trigger to its last response's first output",
    "input_transcript_done": "transcript = the commit to the input transcription's completion",
}
SESSION_COLUMNS = ["step", "concurrency", "handshake_ms", "handshake_status", "t_start", "t_open", "t_end"]


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


def _scan_steps(data: RunData) -> dict[float, dict[str, Any]] | None:
    """The load steps of a scanned run with their labels and users, as :func:`_groups` finds
    them (None: the run has no steps, so it is bucketed by concurrency in pandas)."""
    scan = data.scan
    if not scan.rows or not scan.has("step"):
        return None
    step = scanstats.num("step")
    users = f"max({scanstats.num('users')}) FILTER (WHERE NOT isnan({scanstats.num('users')}))"
    rows = scan.fetchall(
        f"SELECT {step} AS s, {users if scan.has('users') else 'NULL'} FROM {{v}} "
        f"WHERE {step} IS NOT NULL AND NOT isnan({step}) GROUP BY s ORDER BY s"
    )
    if not rows:
        return None
    return {float(s): {"label": f"step {int(s)}", "users": None if u is None else float(u)} for s, u in rows}


def _scanned(data: RunData, buckets: int) -> tuple[str, Any, pd.Series, dict, pd.DataFrame]:
    """(grouping, a function giving a group's rows, session keys, info, the whole run's rows or
    an empty frame) of a scanned run: a step run reads one step's rows at a time from DuckDB
    (a day-long run never in memory at once); a run without steps reads its rows, as before."""
    from loadtest.records.reader import scan_frame

    scan, sessions = data.scan, data.sessions
    cols = [c for c in [*RESPONSE_COLUMNS, *STEP_LATENCIES.values()] if scan.has(c)]
    info = _scan_steps(data)
    if info is None:
        responses = scan_frame(scan, cols, compact=True)
        grouping, r_keys, s_keys, info = _groups(responses, sessions, buckets)
        return grouping, lambda key: responses[r_keys == key], s_keys, info, responses
    s_keys = pd.to_numeric(sessions["step"], errors="coerce") if "step" in sessions else pd.Series(dtype=float)
    step = scanstats.num("step")

    def rows_of(key: float) -> pd.DataFrame:
        return scan_frame(scan, cols, where=f"{step} = {scanstats.double(key)}", compact=True)

    return "step", rows_of, s_keys, info, pd.DataFrame(index=pd.RangeIndex(0))


def capacity_data(
    data: RunData,
    clauses: list[Clause],
    slo_text: str,
    buckets: int = 10,
    confidence: float = DEFAULT_CONFIDENCE,
) -> dict[str, Any]:
    responses, sessions = data.responses, data.sessions
    if data.scan is not None:
        grouping, rows_of, s_keys, info, responses = _scanned(data, buckets)
    else:
        grouping, r_keys, s_keys, info = _groups(responses, sessions, buckets)

        def rows_of(key: Any) -> pd.DataFrame:
            return responses[r_keys == key]

    rows = []
    frames = []
    for key, meta in info.items():
        frame = rows_of(key)
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
        for label, col in STEP_LATENCIES.items():
            if col in frame:
                p = percentiles(frame[col])
                row[label] = {k: p[k] for k in ("n", "p50", "p95", "p99")}
        row["violations"] = evaluate(clauses, values)
        row["slo_met"] = not row["violations"]
        judged = judge_group(clauses, frame, sess, confidence)
        row["verdict"] = judged["verdict"]
        row["clauses"] = judged["clauses"]
        row["more_responses"] = judged["more_responses"]
        rows.append(row)
        frames.append((row, frame[[c for c in ("outcome", "reason") if c in frame]]))  # what the trend test reads
    order = sorted(range(len(rows)), key=lambda i: (_load(rows[i]), rows[i]["key"]))
    rows = [rows[i] for i in order]
    frames = [frames[i] for i in order]
    knee = next((i for i, r in enumerate(rows) if r["verdict"] == BROKEN), None)
    before = rows[:knee] if knee is not None else rows
    met = [r for r in before if r["verdict"] == MET]
    max_ok = met[-1] if met else None
    recovered = [r["group"] for r in rows[knee + 1 :] if r["verdict"] == MET] if knee is not None else []
    return {
        "run_id": data.run_id,
        "grouping": grouping,
        "slo": {"text": slo_text, "clauses": [c.text() for c in clauses]},
        "confidence": confidence,
        "intervals": {"rate": "Wilson score", "percentile": "order statistics (distribution-free)"},
        "rows": rows,
        "max_ok": {"group": max_ok["group"], "users": max_ok["users"]} if max_ok else None,
        "knee": (
            {
                "group": rows[knee]["group"],
                "users": rows[knee]["users"],
                "violations": [clause_words(c, confidence) for c in rows[knee]["clauses"] if c["verdict"] == BROKEN],
            }
            if knee is not None
            else None
        ),
        "inconclusive": [
            {
                "group": r["group"],
                "users": r["users"],
                "responses": r["responses"],
                "more_responses": r["more_responses"],
            }
            for r in before
            if r["verdict"] == INCONCLUSIVE
        ],
        "met_again_after_knee": recovered,
        "projection": _projection(data),
        "trends": reason_trends(
            [(r["users"], f) for r, f in frames if r["users"] is not None],
            "users" if grouping == "step" else "open sessions",
        ),
    }


def _projection(data: RunData) -> dict[str, Any]:
    if data.scan is not None:  # the tokens (whole numbers: their sum is exact in any order) and the count
        start, end = scanned.time_span(data.run, data.scan, data.sessions)
        responses = scanned.tokens_frame(data.scan)
    else:
        start, end = time_span(data.run, data.responses, data.sessions)
        responses = data.responses
    by_name = {r["name"]: r["limit"] for r in rate_limit_rows(data.rate_limits, start)}
    sessions = data.sessions
    opened = sessions[pd.to_numeric(sessions["t_open"], errors="coerce").notna()] if len(sessions) else sessions
    peak, _ = peak_concurrency(opened, end)
    limits = {"tokens": by_name.get("tokens"), "requests": by_name.get("requests")}
    return project_limits(responses, sessions, limits, end, peak)


def _load(row: dict[str, Any]) -> float:
    return row["users"] if row["users"] is not None else float("inf")


def more_words(more: int | None) -> str:
    if more is None:
        return "more responses at this load would not decide it (the estimate sits on the threshold, or no data)"
    return f"about {more:,} more responses at this load would decide it, if what was seen holds"


def verdict_lines(d: dict[str, Any]) -> list[str]:
    if d["grouping"] == "none":
        return ["No load steps or concurrency were recorded, so there is no capacity curve."]
    level = f"{100 * d['confidence']:g}%"
    lines = [
        f"SLO: {', '.join(d['slo']['clauses'])}; judged at {level} confidence (a step is met when the whole "
        "interval meets every clause, broken when the whole interval of one clause breaks it, else inconclusive)"
    ]
    unit = "users" if d["grouping"] == "step" else "open sessions"
    if d["max_ok"]:
        lines.append(
            f"Highest load that met the SLO with {level} confidence: {d['max_ok']['group']} "
            f"({num(d['max_ok']['users'])} {unit})."
        )
    elif d["knee"] and not d["inconclusive"]:
        lines.append("No load level met the SLO (the lowest already broke it).")
    else:
        lines.append(f"No load level met the SLO with {level} confidence.")
    if d["knee"]:
        why = "; ".join(d["knee"]["violations"])
        lines.append(f"Knee: {d['knee']['group']} ({num(d['knee']['users'])} {unit}) broke the SLO: {why}.")
        if d["met_again_after_knee"]:
            lines.append(
                f"Note: the SLO was met again after the knee at {', '.join(d['met_again_after_knee'])} (noisy?)."
            )
    else:
        lines.append(f"Knee: not found; no load level broke the SLO with {level} confidence.")
    for r in d["inconclusive"]:
        lines.append(
            f"Inconclusive: {r['group']} ({num(r['users'])} {unit}), {r['responses']} responses: "
            f"{more_words(r['more_responses'])}."
        )
    lines.extend(trend_words(d["trends"]))
    lines.extend(projection_lines(d["projection"]))
    return lines


def verdict_cell(row: dict[str, Any]) -> str:
    if row["verdict"] == BROKEN:
        return "BROKEN"
    if row["verdict"] == INCONCLUSIVE:
        more = row["more_responses"]
        return "inconclusive" if more is None else f"inconclusive (+{more:,})"
    return "met"


def build_capacity(
    data: RunData,
    clauses: list[Clause],
    slo_text: str,
    buckets: int = 10,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Report:
    d = capacity_data(data, clauses, slo_text, buckets, confidence)
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
    ]
    extra = [k for k in STEP_LATENCIES if any(r.get(k, {}).get("n") for r in d["rows"])]
    columns.extend([*(STEP_TITLES[k] for k in extra), "SLO"])
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
            *(ms(r[k]["p95"]) for k in extra),
            verdict_cell(r),
        ]
        for r in d["rows"]
    ]
    level = f"{100 * d['confidence']:g}%"
    note = (
        f"latencies in ms; rates are shares of attempts; SLO at {level} confidence, (+N) = about N more "
        "responses at that load would decide it"
    )
    if extra:
        note += "; " + "; ".join(STEP_NOTES[k] for k in extra)
    table = Table(f"Capacity by {d['grouping']}", columns, rows, note=note)
    clause_table = Table(
        f"SLO clauses per {d['grouping']} ({level} confidence intervals)",
        ["load", "clause", "n", "value", "interval", "verdict"],
        [
            [
                r["group"],
                c["clause"],
                count(c["n"]),
                "-" if c["value"] is None else (pct(c["value"]) if c["kind"] == "rate" else ms(c["value"])),
                "as observed" if c["metric"].endswith("_max") else interval_text(c["lo"], c["hi"], c["kind"]),
                c["verdict"],
            ]
            for r in d["rows"]
            for c in r["clauses"]
        ],
        note="rates: Wilson score interval over all attempts; percentiles: distribution-free order-statistic interval",
    )
    tables = [table, clause_table]
    return Report(f"Capacity of run {d['run_id']}", d, tables, verdict_lines(d), list(data.warnings))
