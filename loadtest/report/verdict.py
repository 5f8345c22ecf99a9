"""An SLO verdict for one group of responses (a load step, a run): met, broken or inconclusive.

Each clause is judged on its confidence interval (``loadtest.report.confidence``): a rate clause
on the Wilson interval of its count among all attempts, a latency percentile clause on the
order-statistic interval of that percentile, a ``_max`` clause on the observed maximum (a
maximum has no interval: it is judged as seen). The group is ``broken`` when any clause is
broken, ``met`` when every clause is met, else ``inconclusive``, with how many more responses at
that load would decide it if what was seen holds: the fewest that break a clause whose estimate
violates it, else the most that any clause needs to be met.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from loadtest.report import confidence as ci
from loadtest.report.slo import Clause
from loadtest.report.stats import LATENCIES, finite, outcome_rates


def _fmt(value: float | None, kind: str) -> str:
    if value is None or (isinstance(value, float) and (math.isinf(value) or value != value)):
        return "-"
    return f"{value:.2f}%" if kind == "rate" else f"{value:.1f} ms"


def interval_text(lo: float | None, hi: float | None, kind: str) -> str:
    """``[1.20%, 8.41%]``; an unbounded side is written as such."""
    left = _fmt(lo, kind) if lo is not None else ("0%" if kind == "rate" else "unbounded")
    right = _fmt(hi, kind) if hi is not None else "unbounded"
    return f"[{left}, {right}]"


def judge_clause(clause: Clause, responses: pd.DataFrame, sessions: pd.DataFrame, confidence: float) -> dict[str, Any]:
    """One clause over one group: value, interval, verdict, and more values/responses to decide it."""
    out: dict[str, Any] = {"clause": clause.text(), "metric": clause.metric, "kind": clause.kind}
    attempts = len(responses)
    if clause.kind == "rate":
        k = int(outcome_rates(responses)[clause.metric]["count"]) if attempts else 0
        interval = ci.rate_interval_pct(k, attempts, confidence)
        out.update({"n": attempts, "count": k, "value": 100 * k / attempts if attempts else None})
        if interval is None:
            out.update({"lo": None, "hi": None, "verdict": ci.INCONCLUSIVE, "more": None, "more_responses": None})
            return out
        lo, hi = interval
        out.update({"lo": lo, "hi": hi, "verdict": ci.judge(clause.holds, lo, hi)})
        more = ci.rate_more_to_decide(k, attempts, clause.holds, confidence) if out["verdict"] == "inconclusive" else 0
        out.update({"more": more, "more_responses": more})
        return out
    base, _, stat = clause.metric.rpartition("_")
    frame_name, col = LATENCIES[base]
    src = sessions if frame_name == "sessions" else responses
    values = finite(src[col]) if col in src else np.array([])
    out["n"] = int(values.size)
    if not values.size:
        out.update({"value": None, "lo": None, "hi": None, "verdict": ci.INCONCLUSIVE})
        out.update({"more": None, "more_responses": None})
        return out
    if stat == "max":
        value = float(values.max())
        out.update({"value": value, "lo": value, "hi": value, "verdict": ci.judge(clause.holds, value, value)})
        out.update({"more": 0, "more_responses": 0})
        return out
    q = int(stat[1:]) / 100
    value = float(np.percentile(values, 100 * q))
    lo, hi = ci.percentile_interval(values, q, confidence)
    verdict = ci.judge(clause.holds, lo, hi)
    more = ci.percentile_more_to_decide(values, q, clause.holds, confidence) if verdict == "inconclusive" else 0
    per_value = attempts / values.size if attempts else 1.0
    out.update(
        {
            "value": value,
            "lo": ci.bound(lo),
            "hi": ci.bound(hi),
            "verdict": verdict,
            "more": more,
            "more_responses": None if more is None else math.ceil(more * per_value),
        }
    )
    return out


def judge_group(
    clauses: list[Clause], responses: pd.DataFrame, sessions: pd.DataFrame, confidence: float
) -> dict[str, Any]:
    """{verdict, clauses: [...], more_responses} for one group of responses."""
    results = [judge_clause(c, responses, sessions, confidence) for c in clauses]
    verdicts = [r["verdict"] for r in results]
    if ci.BROKEN in verdicts:
        return {"verdict": ci.BROKEN, "clauses": results, "more_responses": 0}
    if all(v == ci.MET for v in verdicts):
        return {"verdict": ci.MET, "clauses": results, "more_responses": 0}
    open_ = [(c, r) for c, r in zip(clauses, results, strict=True) if r["verdict"] == ci.INCONCLUSIVE]
    breaking = [r["more_responses"] for c, r in open_ if not c.holds(r["value"]) and r["more_responses"] is not None]
    if breaking:
        more = min(breaking)
    else:
        needs = [r["more_responses"] for _, r in open_]
        more = None if any(n is None for n in needs) else max(needs)
    return {"verdict": ci.INCONCLUSIVE, "clauses": results, "more_responses": more}


def clause_words(result: dict[str, Any], confidence: float) -> str:
    """``failed = 8.70% (95% CI [4.10%, 17.2%]), SLO failed < 5%``."""
    kind = result["kind"]
    if result["value"] is None:
        return f"{result['metric']} = no data, SLO {result['clause']}"
    if result["metric"].endswith("_max"):
        return f"{result['metric']} = {_fmt(result['value'], kind)} (as observed), SLO {result['clause']}"
    level = f"{100 * confidence:g}%"
    return (
        f"{result['metric']} = {_fmt(result['value'], kind)} ({level} CI "
        f"{interval_text(result['lo'], result['hi'], kind)}), SLO {result['clause']}"
    )
