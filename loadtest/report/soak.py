"""`rtload report soak`: a long run in time windows, and whether it drifted.

Windows are cut from the run's start by each response's trigger time (default 5 minutes);
a last window shorter than half a window is merged into the one before it.

Drift (documented test): the first window is compared with the last.
- Failure rate (non_completed): Fisher's exact test (two-sided) on the two windows'
  counts. Drift when p < 0.01 and the last window's rate is higher.
- Latency (ttfa and done): Mann-Whitney U (two-sided) on the two windows' values. Drift when
  p < 0.01 and the last window's median is at least 10% higher.
A trend over all windows is reported alongside: Spearman's rank correlation of window
order against the window's failure rate and p95 (rho > 0 means getting worse).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from loadtest.records.reader import RunData
from loadtest.report import scanned
from loadtest.report.confidence import scipy_stats
from loadtest.report.memory import memory_note, memory_table, memory_trends
from loadtest.report.render import Report, Table, count, ms, num, pct
from loadtest.report.soak_scan import scan_windows
from loadtest.report.stats import finite, outcome_rates, time_span

RESPONSE_COLUMNS = ["outcome", "reason", "t_trigger", "t_done", "ttfa_ms", "done_ms"]
DRIFT_ALPHA = 0.01
LATENCY_DRIFT_RATIO = 1.10
_WINDOW = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(s|sec|m|min|h)?\s*$")


def parse_window(text: str) -> float:
    """Seconds of a window like ``30s``, ``5m``, ``1h`` (a bare number is minutes)."""
    m = _WINDOW.match(text or "")
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"cannot read window {text!r}; write e.g. 30s, 5m or 1h")
    unit = (m.group(2) or "m")[0]
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[unit]


def window_index(t: np.ndarray, start: float, seconds: float) -> np.ndarray:
    idx = np.floor((t - start) / seconds).astype(int)
    idx = np.maximum(idx, 0)
    last = idx.max() if idx.size else 0
    if last > 0:
        tail = start + last * seconds
        if (t.max() - tail) < seconds / 2:
            idx = np.where(idx == last, last - 1, idx)
    return idx


def _window_rows(data: RunData, start: float, seconds: float) -> tuple[list[dict[str, Any]], Any]:
    """Per window (pandas): its row and a function giving a window's finite values of a column."""
    r = data.responses
    t = pd.to_numeric(r["t_trigger"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    have = np.isfinite(t)
    frame = r[have]
    idx = window_index(t[have], start, seconds)
    groups = {int(k): g for k, g in frame.groupby(idx, sort=True)}
    rows = []
    for k, g in groups.items():
        rates = outcome_rates(g)
        ttfa, done = finite(g["ttfa_ms"]), finite(g["done_ms"])
        rows.append(
            {
                "window": k,
                "from_s": k * seconds,
                "responses": len(g),
                "non_completed": rates["non_completed"]["count"],
                "non_completed_pct": rates["non_completed"]["rate_pct"],
                "failed_pct": rates["failed"]["rate_pct"],
                "ttfa_p50": float(np.percentile(ttfa, 50)) if ttfa.size else None,
                "ttfa_p95": float(np.percentile(ttfa, 95)) if ttfa.size else None,
                "done_p50": float(np.percentile(done, 50)) if done.size else None,
                "done_p95": float(np.percentile(done, 95)) if done.size else None,
            }
        )
    return rows, lambda k, col: finite(groups[k][col])


def soak_data(data: RunData, seconds: float) -> dict[str, Any]:
    scan = data.scan
    if scan is not None:
        start, _ = scanned.time_span(data.run, scan, data.sessions)
    else:
        start, _ = time_span(data.run, data.responses, data.sessions)
    memory = memory_trends(data.health)
    rows: list[dict[str, Any]] = []
    drift: dict[str, Any] = {}
    empty = not scan.rows if scan is not None else data.responses.empty
    if empty or start is None:
        return {"run_id": data.run_id, "window_s": seconds, "windows": rows, "drift": None, "memory": memory}
    rows, values = _window_rows(data, start, seconds) if scan is None else scan_windows(scan, start, seconds)
    if len(rows) < 2:
        return {"run_id": data.run_id, "window_s": seconds, "windows": rows, "drift": None, "memory": memory}
    f0, f1 = rows[0], rows[-1]
    first_last = [
        [f0["non_completed"], f0["responses"] - f0["non_completed"]],
        [f1["non_completed"], f1["responses"] - f1["non_completed"]],
    ]
    p_fail = float(scipy_stats().fisher_exact(first_last).pvalue)
    drift["non_completed"] = {
        "first_pct": f0["non_completed_pct"],
        "last_pct": f1["non_completed_pct"],
        "fisher_p": p_fail,
        "trend_rho": _spearman([w["non_completed_pct"] for w in rows])[0],
        "trend_p": _spearman([w["non_completed_pct"] for w in rows])[1],
        "drift": bool(p_fail < DRIFT_ALPHA and f1["non_completed_pct"] > f0["non_completed_pct"]),
    }
    for label, col in (("ttfa", "ttfa_ms"), ("done", "done_ms")):
        a, b = values(f0["window"], col), values(f1["window"], col)
        if a.size and b.size:
            p = float(scipy_stats().mannwhitneyu(a, b, alternative="two-sided").pvalue)
            med_a, med_b = float(np.median(a)), float(np.median(b))
            rho, rho_p = _spearman([w[f"{label}_p95"] for w in rows])
            drift[label] = {
                "first_p50": med_a,
                "last_p50": med_b,
                "mannwhitney_p": p,
                "trend_rho": rho,
                "trend_p": rho_p,
                "drift": bool(p < DRIFT_ALPHA and med_b >= med_a * LATENCY_DRIFT_RATIO),
            }
    return {"run_id": data.run_id, "window_s": seconds, "windows": rows, "drift": drift, "memory": memory}


def _spearman(values: list[Any]) -> tuple[float | None, float | None]:
    y = np.array([np.nan if v is None else v for v in values], dtype=float)
    ok = np.isfinite(y)
    if ok.sum() < 3 or np.all(y[ok] == y[ok][0]):
        return None, None
    res = scipy_stats().spearmanr(np.arange(y.size)[ok], y[ok])
    return float(res.statistic), float(res.pvalue)


def build_soak(data: RunData, seconds: float) -> Report:
    d = soak_data(data, seconds)
    table = Table(
        f"Windows of {num(seconds / 60, 2)} min",
        ["from (min)", "responses", "non_completed", "failed", "ttfa p50", "ttfa p95", "done p50", "done p95"],
        [
            [
                num(w["from_s"] / 60, 2),
                count(w["responses"]),
                pct(w["non_completed_pct"]),
                pct(w["failed_pct"]),
                ms(w["ttfa_p50"]),
                ms(w["ttfa_p95"]),
                ms(w["done_p50"]),
                ms(w["done_p95"]),
            ]
            for w in d["windows"]
        ],
    )
    notes = []
    drift = d["drift"]
    if drift is None:
        notes.append(f"Drift: not assessed; the run has {len(d['windows'])} window(s), at least 2 are needed.")
    else:
        nc = drift["non_completed"]
        notes.append(
            f"Failure-rate drift: {'YES' if nc['drift'] else 'no'} (first window {pct(nc['first_pct'])}, "
            f"last {pct(nc['last_pct'])}, Fisher p = {nc['fisher_p']:.2g}; trend rho = {num(nc['trend_rho'], 2)})"
        )
        for label in ("ttfa", "done"):
            if label in drift:
                x = drift[label]
                notes.append(
                    f"{label} latency drift: {'YES' if x['drift'] else 'no'} (median first {ms(x['first_p50'])} ms, "
                    f"last {ms(x['last_p50'])} ms, Mann-Whitney p = {x['mannwhitney_p']:.2g}; "
                    f"p95 trend rho = {num(x['trend_rho'], 2)})"
                )
        notes.append(
            f"Drift = first vs last window differ at p < {DRIFT_ALPHA} and the last is worse "
            f"(latency: median at least {int((LATENCY_DRIFT_RATIO - 1) * 100)}% higher)."
        )
    tables = [table]
    if d["memory"] is not None:
        tables.append(memory_table(d["memory"]))
    notes.append(memory_note(d["memory"]))
    return Report(f"Soak view of run {d['run_id']}", d, tables, notes, list(data.warnings))
