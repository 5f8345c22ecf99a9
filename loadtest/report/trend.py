"""Which failures come from load: a Cochran-Armitage test for trend per outcome reason.

For one reason, group i (a load step or a concurrency bucket) has n_i attempts, k_i of them
with that reason, and the load score t_i (the step's users, the bucket's sessions). With
p = sum k / sum n the statistic is

    Z = sum t_i (k_i - n_i p) / sqrt(p (1 - p) (sum n_i t_i^2 - (sum n_i t_i)^2 / N))

(Armitage 1955; Z^2 = N r^2 with r the Pearson correlation of the 0/1 outcome and the load over
all N attempts), two-sided p from the normal distribution. Every reason is tested at once, so
the p-values are Holm-adjusted over the reasons, and a trend is called (``rises`` / ``falls``
with load) only when the adjusted p is below ``ALPHA``; otherwise the reason is ``flat``: no
evidence its rate changes with load (which is not proof that it does not).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from loadtest.records.schema import COMPLETED
from loadtest.report.render import Table, count, pct

ALPHA = 0.01  # strict: a false "rises with load" sends engineers chasing a load problem
METHOD = f"Cochran-Armitage test for trend across load levels, p Holm-adjusted over the reasons, trend when p < {ALPHA}"


def cochran_armitage(counts: np.ndarray, totals: np.ndarray, scores: np.ndarray) -> tuple[float, float] | None:
    """(Z, two-sided p) of the trend of counts/totals over scores; None when it cannot be computed."""
    counts, totals, scores = (np.asarray(a, dtype=float) for a in (counts, totals, scores))
    keep = totals > 0
    counts, totals, scores = counts[keep], totals[keep], scores[keep]
    big_n = totals.sum()
    if big_n <= 0 or np.unique(scores).size < 2:
        return None
    p = counts.sum() / big_n
    spread = (totals * scores**2).sum() - (totals * scores).sum() ** 2 / big_n
    var = p * (1 - p) * spread
    if var <= 0:
        return None
    z = float((scores * (counts - totals * p)).sum() / math.sqrt(var))
    return z, math.erfc(abs(z) / math.sqrt(2))  # two-sided normal tail (no scipy import for it: 0.6 s)


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def _p_words(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.1 else f"p = {p:.2f}"


def _load_words(load: float, unit: str) -> str:
    return f"{int(load) if float(load).is_integer() else round(load, 1)} {unit}"


def step_groups(responses: pd.DataFrame) -> list[tuple[float, pd.DataFrame]]:
    """(the step's users, its responses) per load step of a step run; [] without steps."""
    if responses.empty or "step" not in responses or "users" not in responses:
        return []
    steps = pd.to_numeric(responses["step"], errors="coerce")
    users = pd.to_numeric(responses["users"], errors="coerce")
    slim = responses[[c for c in ("outcome", "reason") if c in responses]]  # all the trend test reads
    out = []
    for key in sorted(steps.dropna().unique()):
        inside = steps == key
        load = users[inside].max()
        if load == load:
            out.append((float(load), slim[inside]))
    return out


def reason_trends(groups: list[tuple[float, pd.DataFrame]], unit: str = "users") -> dict[str, Any]:
    """Per (outcome, reason) seen: counts per load level, the trend test and its reading."""
    groups = sorted(((float(load), frame) for load, frame in groups), key=lambda g: g[0])
    out: dict[str, Any] = {"method": METHOD, "alpha": ALPHA, "loads": [g[0] for g in groups], "reasons": []}
    if len({g[0] for g in groups}) < 2:
        out["note"] = "one load level only, so no trend across load can be tested"
        return out
    totals = np.array([len(f) for _, f in groups], dtype=float)
    parts = []
    for i, (_, frame) in enumerate(groups):
        if frame.empty or "outcome" not in frame:
            continue
        outcome = frame["outcome"]
        bad = frame.loc[outcome.fillna("") != COMPLETED]  # the few non-completed rows, before any string work
        reason = bad["reason"] if "reason" in bad else pd.Series("", index=bad.index)
        parts.append(pd.DataFrame({"o": bad["outcome"].fillna(""), "r": reason.fillna(""), "g": i}))
    keys: dict[tuple[str, str], np.ndarray] = {}
    if parts:
        table = pd.concat(parts, ignore_index=True)
        for (o, r, g), n in table.groupby(["o", "r", "g"], sort=False).size().items():
            keys.setdefault((str(o), str(r) or "(none)"), np.zeros(len(groups)))[int(g)] = n
    return count_trends(out, totals, keys, unit)


def count_trends(
    out: dict[str, Any], totals: np.ndarray, keys: dict[tuple[str, str], np.ndarray], unit: str = "users"
) -> dict[str, Any]:
    """The rest of :func:`reason_trends` from counts: ``out`` (method, loads), the attempts per load
    level and, per (outcome, reason), its counts per level (in the order the reasons were first seen)."""
    scores = np.array(out["loads"], dtype=float)
    rows = []
    for (o, r), counts in keys.items():
        test = cochran_armitage(counts, totals, scores)
        first = 100 * counts[0] / totals[0] if totals[0] else None
        last = 100 * counts[-1] / totals[-1] if totals[-1] else None
        rows.append(
            {
                "outcome": o,
                "reason": r,
                "count": int(counts.sum()),
                "counts": [int(c) for c in counts],
                "rate_first_pct": first,
                "rate_last_pct": last,
                "z": test[0] if test else None,
                "p": test[1] if test else None,
            }
        )
    tested = [row for row in rows if row["p"] is not None]
    for row, adj in zip(tested, holm([row["p"] for row in tested]), strict=True):
        row["p_adjusted"] = adj
    lo, hi = _load_words(scores[0], unit), _load_words(scores[-1], unit)
    for row in rows:
        adj = row.get("p_adjusted")
        row.setdefault("p_adjusted", None)
        if adj is None:
            row["trend"] = "untested"
        elif adj < ALPHA:
            row["trend"] = "rises" if row["z"] > 0 else "falls"
        else:
            row["trend"] = "flat"
        ends = f"{row['rate_first_pct']:.1f}% at {lo} -> {row['rate_last_pct']:.1f}% at {hi}"
        reading = {
            "rises": "rises with load",
            "falls": "falls with load",
            "flat": "flat (no trend with load)",
            "untested": "not testable",
        }[row["trend"]]
        p = f", {_p_words(adj)}" if adj is not None else ""
        row["words"] = f"{row['reason']} ({row['outcome']}) {ends}, {reading}{p}"
    rows.sort(key=lambda row: (row["p_adjusted"] if row["p_adjusted"] is not None else 2.0, -row["count"]))
    out["reasons"] = rows
    return out


def trend_table(trends: dict[str, Any]) -> Table:
    return Table(
        "Failure reasons against load",
        ["outcome", "reason", "count", "rate at lowest load", "rate at highest load", "trend", "p", "p (Holm)"],
        [
            [
                t["outcome"],
                t["reason"],
                count(t["count"]),
                pct(t["rate_first_pct"]),
                pct(t["rate_last_pct"]),
                t["trend"],
                _p_cell(t["p"]),
                _p_cell(t["p_adjusted"]),
            ]
            for t in trends["reasons"]
        ],
        note=trends["method"],
    )


def _p_cell(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}" if p < 0.1 else f"{p:.2f}"


def trend_words(trends: dict[str, Any]) -> list[str]:
    """ "Which failures come from load": a line per reason that rises or falls, one for the flat ones."""
    if not trends["reasons"]:
        return [f"Failures and load: {trends['note']}"] if trends.get("note") else []
    lines = [f"Failures and load ({trends['method']}):"]
    lines.extend("  " + t["words"] for t in trends["reasons"] if t["trend"] in ("rises", "falls"))
    flat = [t for t in trends["reasons"] if t["trend"] == "flat"]
    if flat:
        items = ", ".join(
            f"{t['reason']} {t['rate_first_pct']:.1f}% -> {t['rate_last_pct']:.1f}% ({_p_words(t['p_adjusted'])})"
            for t in flat
        )
        lines.append(f"  flat (no trend with load): {items}")
    untested = [t["reason"] for t in trends["reasons"] if t["trend"] == "untested"]
    if untested:
        lines.append(f"  not testable: {', '.join(untested)}")
    return lines


def trend_verdict(trends: dict[str, Any]) -> str:
    """One line: which reasons rise with load (the summary's verdict)."""
    rising = [t for t in trends["reasons"] if t["trend"] == "rises"]
    if not trends["reasons"]:
        return f"Failures that rise with load: none tested ({trends.get('note') or 'no failures'})."
    if not rising:
        return f"Failures that rise with load: none (Cochran-Armitage, Holm-adjusted p >= {ALPHA} for every reason)."
    return "Failures that rise with load: " + "; ".join(t["words"] for t in rising) + "."
