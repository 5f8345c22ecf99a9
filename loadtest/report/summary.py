"""`rtload report summary`: what happened in one run, in one page."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from loadtest.records.reader import RunData
from loadtest.records.schema import MASTER_WORKER_ID
from loadtest.records.worker_loss import loss_line
from loadtest.report import scanned, scanstats
from loadtest.report.cost import USAGE_COLUMNS, PriceTable, cost_data, cost_words, load_prices, money
from loadtest.report.function_calls import function_call_data, function_call_tables
from loadtest.report.memory import memory_note, memory_trends
from loadtest.report.render import Report, Table, count, ms, num, pct
from loadtest.report.sections import WEBSOCKET, transports
from loadtest.report.stats import (
    LATENCIES,
    LATENCY_TITLES,
    PERCENTILES,
    finite,
    group_rows,
    outcome_rates,
    percentiles,
    reason_rows,
    time_span,
)
from loadtest.report.transcription import transcription_data, transcription_tables
from loadtest.report.trend import reason_trends, step_groups, trend_table, trend_verdict

# Columns of responses.jsonl the summary reads (ids and free text are left on disk); a run with
# function calls, input transcription or WebRTC rows adds its sections' (sections.optional_columns).
RESPONSE_COLUMNS = [
    "run_id",
    "target",
    "scenario",
    "outcome",
    "reason",
    "t_trigger",
    "t_done",
    "created_ms",
    "ttfa_ms",
    "ttft_ms",
    "done_ms",
    "audio_ms",
    "audio_deltas",
    "underrun_ms",
    "longest_underrun_ms",
    "max_delta_gap_ms",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "step",
    "users",
    *USAGE_COLUMNS,
]
SESSION_COLUMNS = [
    "session_id", "target", "scenario", "t_start", "t_open", "t_end", "handshake_ms", "handshake_status", "rtp_dropped",
    "rtp_lost", "rtt_ms", "peer_rtp_lost",
]  # fmt: skip

# "Was the load generator the bottleneck?": any worker over one of these (health.jsonl); the
# master (no sessions, so no frames or reads of its own) on its CPU only.
HEALTH_LIMITS = {
    "cpu_percent": 90.0,  # p95 of a worker's CPU samples, % of one core
    "clock_lag_p99_ms": 50.0,  # worst p99 event-loop lag
    "frames_late_pct": 1.0,  # worst share of audio frames sent late
    "recv_lag_p99_ms": 50.0,  # worst p99 wait of a ready connection for its read (deltas pile up)
}


def audio_stats(responses: pd.DataFrame) -> dict[str, Any]:
    if responses.empty:
        return {"responses_with_audio": 0}
    audio = pd.to_numeric(responses["audio_ms"], errors="coerce").fillna(0).to_numpy(dtype=float)
    with_audio = audio > 0
    underrun = pd.to_numeric(responses["underrun_ms"], errors="coerce").fillna(0).to_numpy(dtype=float)
    gaps = pd.to_numeric(responses["max_delta_gap_ms"], errors="coerce").fillna(0).to_numpy(dtype=float)
    longest = pd.to_numeric(responses["longest_underrun_ms"], errors="coerce").fillna(0).to_numpy(dtype=float)
    a = audio[with_audio]
    return {
        "responses_with_audio": int(with_audio.sum()),
        "audio_ms_mean": float(a.mean()) if a.size else None,
        "audio_ms_p50": float(np.percentile(a, 50)) if a.size else None,
        "audio_ms_p95": float(np.percentile(a, 95)) if a.size else None,
        "stalls": int((responses["reason"].fillna("") == "audio_stall").sum()),
        "responses_with_underrun": int((underrun > 0).sum()),
        "underrun_ms_total": float(underrun.sum()),
        "longest_underrun_ms_max": float(longest.max()) if longest.size else None,
        "max_delta_gap_ms_p95": float(np.percentile(gaps[with_audio], 95)) if a.size else None,
        "max_delta_gap_ms_max": float(gaps.max()) if gaps.size else None,
    }


def token_stats(responses: pd.DataFrame, minutes: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("input_tokens", "output_tokens", "total_tokens"):
        vals = finite(responses[name]) if name in responses else np.array([])
        out[name.removesuffix("_tokens")] = int(vals.sum())
        if name == "total_tokens":
            out["responses_with_usage"] = int(vals.size)
            out["per_response_mean"] = float(vals.mean()) if vals.size else None
            out["per_minute"] = float(vals.sum() / minutes) if minutes else None
    return out


def health_stats(health: pd.DataFrame | None) -> dict[str, Any] | None:
    """Per worker worst figures and the verdict; None without a health.jsonl."""
    if health is None:
        return None
    if health.empty:
        return {"samples": 0, "workers": [], "bottleneck": None, "verdict": "health.jsonl has no samples"}
    workers = []
    reasons = []
    for worker, frame in health.groupby(health["worker_id"].fillna("").astype(str), sort=True):
        cpu = finite(frame["cpu_percent"])
        row = {
            "worker_id": worker or "(local)",
            "samples": len(frame),
            "cpu_percent_p95": float(np.percentile(cpu, 95)) if cpu.size else None,
            "cpu_percent_max": float(cpu.max()) if cpu.size else None,
            "rss_mb_max": float(finite(frame["rss_mb"]).max()) if finite(frame["rss_mb"]).size else None,
            "clock_lag_p99_ms_max": float(finite(frame["clock_lag_p99_ms"]).max())
            if finite(frame["clock_lag_p99_ms"]).size
            else None,
            "frames_late_pct_max": float(finite(frame["frames_late_pct"]).max())
            if finite(frame["frames_late_pct"]).size
            else None,
            "recv_lag_p99_ms_max": float(finite(frame["recv_lag_p99_ms"]).max())
            if "recv_lag_p99_ms" in frame and finite(frame["recv_lag_p99_ms"]).size
            else None,
            "users_max": float(finite(frame["users"]).max()) if finite(frame["users"]).size else None,
        }
        checks = (
            ("cpu_percent_p95", "cpu_percent", "CPU p95 {v:.0f}% >= {lim:.0f}%"),
            ("clock_lag_p99_ms_max", "clock_lag_p99_ms", "clock lag p99 {v:.0f} ms >= {lim:.0f} ms"),
            ("frames_late_pct_max", "frames_late_pct", "{v:.1f}% of audio frames late >= {lim:.1f}%"),
            ("recv_lag_p99_ms_max", "recv_lag_p99_ms", "receive lag p99 {v:.0f} ms >= {lim:.0f} ms"),
        )
        for key, limit_key, text in checks:
            if worker == MASTER_WORKER_ID and limit_key != "cpu_percent":
                continue  # the master runs no sessions: its loop's lag delays no frame and no read
            value, limit = row[key], HEALTH_LIMITS[limit_key]
            if value is not None and value >= limit:
                reasons.append(f"worker {row['worker_id']}: " + text.format(v=value, lim=limit))
        workers.append(row)
    bottleneck = bool(reasons)
    if bottleneck:
        verdict = "yes, the load generator may have been the bottleneck: " + "; ".join(reasons)
    else:
        verdict = (
            "no: every worker stayed under CPU p95 {cpu:.0f}%, clock lag p99 {lag:.0f} ms, {late:.1f}% late frames"
            " and receive lag p99 {recv:.0f} ms"
        ).format(
            recv=HEALTH_LIMITS["recv_lag_p99_ms"],
            cpu=HEALTH_LIMITS["cpu_percent"],
            lag=HEALTH_LIMITS["clock_lag_p99_ms"],
            late=HEALTH_LIMITS["frames_late_pct"],
        )
    return {
        "samples": len(health),
        "workers": workers,
        "bottleneck": bottleneck,
        "reasons": reasons,
        "verdict": verdict,
    }


def _distinct(frame: pd.DataFrame, col: str) -> list[str]:
    if col not in frame:
        return []
    return sorted(str(v) for v in frame[col].dropna().unique() if v)


def row_sections(data: RunData, prices: PriceTable) -> dict[str, Any]:
    """The sections that scale with the rows, from the pandas frames (see scanned_sections)."""
    responses, sessions = data.responses, data.sessions
    start, end = time_span(data.run, responses, sessions)
    duration = (end - start) if start is not None and end is not None else None
    minutes = duration / 60 if duration else None
    steps = step_groups(responses)
    latency = {}
    for label, (frame_name, col) in LATENCIES.items():
        frame = sessions if frame_name == "sessions" else responses
        latency[label] = percentiles(frame.get(col, []))
    return {
        "span": (start, end, duration),
        "responses": len(responses),
        "targets": _distinct(responses, "target"),
        "scenarios": _distinct(responses, "scenario"),
        "outcomes": outcome_rates(responses),
        "reasons": reason_rows(responses),
        "latency_ms": latency,
        "audio": audio_stats(responses),
        "tokens": token_stats(responses, minutes),
        "by_target": group_rows(responses, "target"),
        "by_scenario": group_rows(responses, "scenario"),
        "transports": sorted(set(transports(responses))),
        "by_transport": group_rows(responses.assign(transport=transports(responses)), "transport")
        if "transport" in responses
        else [],
        "trends": reason_trends(steps) if len(steps) >= 2 else None,  # a step run only
        "cost": cost_data(responses, sessions, prices, end),
    }


def scanned_sections(data: RunData, prices: PriceTable) -> dict[str, Any]:
    """As :func:`row_sections`, aggregated in DuckDB over ``data.scan`` (a run of any size)."""
    rows, sessions = data.scan, data.sessions
    start, end = scanned.time_span(data.run, rows, sessions)
    duration = (end - start) if start is not None and end is not None else None
    minutes = duration / 60 if duration else None
    # every latency and the audio's percentiles in two scans, outcomes and reasons in one
    specs = {label: (scanstats.num(col), "true") for label, (frame, col) in LATENCIES.items() if frame == "responses"}
    pct = scanstats.percentiles_many(rows, {**specs, **scanned.audio_specs()}, scanned.AUDIO_QS)
    latency = {
        label: percentiles(sessions.get(col, [])) if frame_name == "sessions" else pct[label]
        for label, (frame_name, col) in LATENCIES.items()
    }
    pairs = scanstats.outcome_reasons(rows)
    outcomes = scanstats.rates_of(pairs, rows.rows)
    whole = (outcomes, latency)
    return {
        "span": (start, end, duration),
        "responses": rows.rows,
        "targets": scanstats.distinct(rows, "target"),
        "scenarios": scanstats.distinct(rows, "scenario"),
        "outcomes": outcomes,
        "reasons": scanstats.reasons_of(pairs, rows.rows),
        "latency_ms": latency,
        "audio": scanned.audio_stats(rows, pct),
        "tokens": scanned.token_stats(rows, minutes),
        "by_target": scanstats.group_rows(rows, "target", whole),
        "by_scenario": scanstats.group_rows(rows, "scenario", whole),
        **_scanned_transports(rows, whole),
        "trends": scanned.step_trends(rows),
        "cost": scanned.cost_data(rows, sessions, prices, end),
    }


def _scanned_transports(rows: Any, whole: tuple[dict, dict]) -> dict[str, Any]:
    """The run's transports (an empty one is websocket) and, when one is not websocket, the
    by-transport table (as the pandas path, which reads the column only for such a run)."""
    seen = sorted({value or WEBSOCKET for value in scanstats.distinct(rows, "transport")} or {WEBSOCKET})
    if seen != [WEBSOCKET] and scanstats.count(rows, "coalesce(transport, '') = ''"):  # older rows beside
        seen = sorted({*seen, WEBSOCKET})
    if seen == [WEBSOCKET]:
        return {"transports": seen, "by_transport": []}
    table = scanstats.group_rows(rows, "transport", whole)
    for row in table:  # (the scan names an empty value "(none)")
        if row["transport"] in ("", "(none)"):
            row["transport"] = WEBSOCKET
    return {"transports": seen, "by_transport": table}


def failed_line(run: dict[str, Any]) -> str | None:
    """The top line for a run whose Locust process failed before its end (run.json ``status:
    "failed"``, with the ``error`` it stopped on), else None."""
    if run.get("status") != "failed":
        return None
    return f"INCOMPLETE: the run failed before its end: {run.get('error') or 'no reason recorded'}"


def summary_data(data: RunData, prices: PriceTable | None = None) -> dict[str, Any]:
    table = prices or load_prices()
    rows = scanned_sections(data, table) if data.scan is not None else row_sections(data, table)
    start, end, duration = rows.pop("span")
    return {
        "run": {
            "run_id": data.run_id,
            "path": str(data.path),
            "in_progress": data.in_progress,
            "incomplete": loss_line(data.run) or failed_line(data.run),  # workers lost, the run failed (None: none)
            "t_start": start,
            "t_end": end,
            "duration_s": duration,
            "responses": rows.pop("responses"),
            "sessions": len(data.sessions),
            "targets": rows.pop("targets"),
            "scenarios": rows.pop("scenarios"),
            "transports": rows.pop("transports"),
            "rtp_dropped": rtp_dropped(data.sessions),
            "webrtc_path": webrtc_path(data.sessions),  # None: no session has RTCP figures
        },
        "outcomes": rows["outcomes"],
        "reasons": rows["reasons"],
        "latency_ms": rows["latency_ms"],
        "audio": rows["audio"],
        "tokens": rows["tokens"],
        "by_target": rows["by_target"],
        "by_scenario": rows["by_scenario"],
        "by_transport": rows["by_transport"],
        # the optional sections read data.responses: every row (pandas) or, when the run was
        # scanned, only their own columns (read only for a run that has them: report/sections.py)
        "function_calls": function_call_data(data.responses),  # None: the run made no call
        "input_transcription": transcription_data(data.responses),  # None: no turn was transcribed
        "health": health_stats(data.health),
        "trends": rows["trends"],
        "cost": rows["cost"],
        "memory": memory_trends(data.health),
    }


def rtp_dropped(sessions: pd.DataFrame) -> dict[str, int]:
    """WebRTC: the server's media packets dropped as not authentic SRTP or not RTP, and in how many sessions."""
    if "rtp_dropped" not in sessions.columns or sessions.empty:
        return {"packets": 0, "sessions": 0}
    counts = pd.to_numeric(sessions["rtp_dropped"], errors="coerce").fillna(0)
    return {"packets": int(counts.sum()), "sessions": int((counts > 0).sum())}


def webrtc_path(sessions: pd.DataFrame) -> dict[str, Any] | None:
    """WebRTC sessions' RTCP figures: the round-trip time's spread over the sessions that measured
    one, and packets lost each way (totals, and in how many sessions); None when no session has any."""
    present = [c for c in ("rtp_lost", "rtt_ms", "peer_rtp_lost") if c in sessions.columns]
    if sessions.empty or not present:
        return None
    figures = {c: pd.to_numeric(sessions[c], errors="coerce") for c in present}
    if not any(v.notna().any() for v in figures.values()):
        return None
    rtt = figures.get("rtt_ms", pd.Series(dtype=float)).dropna()
    out: dict[str, Any] = {
        "sessions_with_rtt": len(rtt),
        "rtt_p50_ms": round(float(rtt.quantile(0.5)), 2) if len(rtt) else None,
        "rtt_p95_ms": round(float(rtt.quantile(0.95)), 2) if len(rtt) else None,
        "rtt_max_ms": round(float(rtt.max()), 2) if len(rtt) else None,
    }
    for column, name in (("rtp_lost", "lost_inbound"), ("peer_rtp_lost", "lost_outbound")):
        known = figures.get(column, pd.Series(dtype=float)).dropna()
        out[name] = {"packets": int(known.sum()), "sessions": int((known > 0).sum()), "sessions_known": len(known)}
    return out


def webrtc_path_note(path: dict[str, Any] | None) -> str | None:
    if path is None:
        return None
    rtt = (
        f"round-trip p50 {num(path['rtt_p50_ms'])} ms, p95 {num(path['rtt_p95_ms'])} ms, max "
        f"{num(path['rtt_max_ms'])} ms over {path['sessions_with_rtt']} session(s)"
        if path["sessions_with_rtt"]
        else "no round-trip time measured (no receiver report answered a sender report)"
    )
    inbound, outbound = path["lost_inbound"], path["lost_outbound"]
    return (
        f"WebRTC path (RTCP): {rtt}; the server's packets lost on the way here: {inbound['packets']} in "
        f"{inbound['sessions']} of {inbound['sessions_known']} session(s); ours the server reported lost: "
        f"{outbound['packets']} in {outbound['sessions']} of {outbound['sessions_known']} session(s)"
    )


def rtp_dropped_note(dropped: dict[str, int]) -> str | None:
    if not dropped["packets"]:
        return None
    return (
        f"{dropped['packets']} media packets from the server were dropped in {dropped['sessions']} WebRTC "
        "session(s): they failed SRTP authentication or were not RTP (something on the path sends garbage "
        "media); their responses may show stalls or missing audio for it"
    )


def group_table(title: str, key: str, rows: list[dict[str, Any]]) -> Table:
    return Table(
        title,
        [
            key,
            "responses",
            "completed",
            "failed",
            "truncated",
            "throttled",
            "cancelled",
            "ttfa p50",
            "ttfa p95",
            "done p95",
        ],
        [
            [
                str(r[key]),
                count(r["responses"]),
                *(pct(r[f"{n}_pct"]) for n in ("completed", "failed", "truncated", "throttled", "cancelled")),
                ms(r["ttfa_p50"]),
                ms(r["ttfa_p95"]),
                ms(r["done_p95"]),
            ]
            for r in rows
        ],
    )


def latency_table(latency: dict[str, dict[str, Any]], title: str = "Latency (ms, from the trigger)") -> Table:
    return Table(
        title,
        ["latency", "n", *(f"p{p}" for p in PERCENTILES), "max"],
        [
            [LATENCY_TITLES[label], count(v["n"]), *(ms(v[f"p{p}"]) for p in PERCENTILES), ms(v["max"])]
            for label, v in latency.items()
        ],
        note="handshake is measured from connect(); the others from the response's trigger",
    )


def cost_table(c: dict[str, Any]) -> Table:
    cur = c["prices"]["currency"]
    rows = []
    for label, key, groups in (("run", None, [c["total"]]), ("target", "target", c["by_target"])):
        for g in groups:
            rows.append(_cost_row(f"{label}: {g[key]}" if key else "whole run", g))
    rows.extend(_cost_row(f"scenario: {g['scenario']}", g) for g in c["by_scenario"])
    return Table(
        f"Cost (estimate at the list prices of {c['prices']['date']})",
        ["", "responses", "priced", f"cost {cur}", f"{cur} per response", f"{cur} per session-minute",
         f"{cur} per 1,000 conversation minutes"],
        rows,
        note="conversation minutes = session-minutes (each opened session's t_open to t_end)",
    )  # fmt: skip


def _cost_row(label: str, g: dict[str, Any]) -> list[str]:
    return [
        label,
        count(g["responses"]),
        count(g["priced"]),
        money(g["cost"]),
        money(g["per_response"]),
        money(g["per_session_minute"]),
        money(g["per_1000_minutes"]),
    ]


def build_summary(data: RunData, prices: PriceTable | None = None) -> Report:
    d = summary_data(data, prices)
    run = d["run"]
    state = "still being written" if run["in_progress"] else "incomplete" if run["incomplete"] else "complete"
    tables = [
        Table(
            "Run",
            ["field", "value"],
            [
                ["run", run["run_id"]],
                ["state", state],
                ["duration", f"{num(run['duration_s'])} s"],
                ["responses", count(run["responses"])],
                ["sessions", count(run["sessions"])],
                ["targets", ", ".join(run["targets"]) or "-"],
                ["scenarios", ", ".join(run["scenarios"]) or "-"],
                ["transport", ", ".join(run["transports"]) or "websocket"],
            ],
        ),
        Table(
            "Outcomes",
            ["outcome", "count", "rate"],
            [
                [name, count(d["outcomes"][name]["count"]), pct(d["outcomes"][name]["rate_pct"])]
                for name in d["outcomes"]
            ],
            note="rates are shares of all response attempts; non_completed = everything but completed",
        ),
        Table(
            "Reasons",
            ["outcome", "reason", "count", "rate"],
            [[r["outcome"], r["reason"], count(r["count"]), pct(r["rate_pct"])] for r in d["reasons"]],
        ),
        latency_table(d["latency_ms"]),
        *function_call_tables(d["function_calls"]),
        *transcription_tables(d["input_transcription"]),
    ]
    a = d["audio"]
    tables.append(
        Table(
            "Audio",
            ["measure", "value"],
            [
                ["responses with audio", count(a.get("responses_with_audio"))],
                ["audio ms per response (mean)", ms(a.get("audio_ms_mean"))],
                ["audio ms per response (p50)", ms(a.get("audio_ms_p50"))],
                ["audio ms per response (p95)", ms(a.get("audio_ms_p95"))],
                ["stalls (audio_stall)", count(a.get("stalls"))],
                ["responses with playback underrun", count(a.get("responses_with_underrun"))],
                ["underrun total ms", ms(a.get("underrun_ms_total"))],
                ["longest underrun ms", ms(a.get("longest_underrun_ms_max"))],
                ["largest delta gap p95 ms", ms(a.get("max_delta_gap_ms_p95"))],
                ["largest delta gap max ms", ms(a.get("max_delta_gap_ms_max"))],
            ],
        )
    )
    t = d["tokens"]
    tables.append(
        Table(
            "Tokens",
            ["measure", "value"],
            [
                ["input", count(t["input"])],
                ["output", count(t["output"])],
                ["total", count(t["total"])],
                ["responses with usage", count(t["responses_with_usage"])],
                ["per response (mean)", num(t["per_response_mean"])],
                ["per minute", num(t["per_minute"])],
            ],
        )
    )
    if d["trends"] is not None and d["trends"]["reasons"]:
        tables.append(trend_table(d["trends"]))
    tables.append(cost_table(d["cost"]))
    tables.append(group_table("By target", "target", d["by_target"]))
    tables.append(group_table("By scenario", "scenario", d["by_scenario"]))
    if len(d["by_transport"]) > 1:
        tables.append(group_table("By transport", "transport", d["by_transport"]))
    notes = [trend_verdict(d["trends"])] if d["trends"] is not None else []
    notes.extend(cost_words(d["cost"]))
    dropped = rtp_dropped_note(run["rtp_dropped"])
    if dropped is not None:
        notes.append(dropped)
    path = webrtc_path_note(run["webrtc_path"])
    if path is not None:
        notes.append(path)
    h = d["health"]
    if h is not None and h.get("workers"):
        tables.append(
            Table(
                "Load generator health",
                [
                    "worker",
                    "samples",
                    "cpu p95 %",
                    "cpu max %",
                    "rss max MB",
                    "clock lag p99 ms",
                    "frames late %",
                    "recv lag p99 ms",
                    "users",
                ],
                [
                    [
                        w["worker_id"],
                        count(w["samples"]),
                        num(w["cpu_percent_p95"]),
                        num(w["cpu_percent_max"]),
                        num(w["rss_mb_max"]),
                        ms(w["clock_lag_p99_ms_max"]),
                        num(w["frames_late_pct_max"], 2),
                        ms(w["recv_lag_p99_ms_max"]),
                        count(w["users_max"]),
                    ]
                    for w in h["workers"]
                ],
            )
        )
    if h is not None:
        notes.append(f"Was the load generator the bottleneck? {h['verdict']}")
    else:
        notes.append("Was the load generator the bottleneck? unknown: the run has no health.jsonl")
    notes.append(memory_note(d["memory"]))
    headline = [run["incomplete"]] if run["incomplete"] else []
    return Report(f"Summary of run {run['run_id']}", d, tables, notes, list(data.warnings), headline)
