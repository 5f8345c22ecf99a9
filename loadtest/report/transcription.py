"""The input-transcription section of the reports: how the transcripts of the callers' audio came back.

Pure functions over the responses DataFrame (the ``TRANSCRIPTION_COLUMNS``), over the rows that
carry ``input_transcription`` (the turns whose audio was to be transcribed; a run without it, or
written before it, has no section):

- turns per state (``completed``, ``failed``, ``missing``: no transcription event came), each a
  share of those turns with its Wilson interval;
- the first delta and the completion, in ms from the commit, each percentile with its
  distribution-free order-statistic interval;
- the failures by their error code;
- the word error rate against the turn's expected transcript (a fraction, shown in %): mean,
  percentiles, and how many turns had any error;
- per scenario when there are several, so the transcription-only scenario reads apart from
  spoken conversations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from loadtest.report.confidence import DEFAULT_CONFIDENCE, percentile_intervals, rate_interval_pct
from loadtest.report.render import Table, count, interval_table, pct, with_interval
from loadtest.report.stats import PERCENTILES, finite, numbers, rate

TRANSCRIPTION_COLUMNS = [
    "input_transcription",
    "input_transcript_first_ms",
    "input_transcript_done_ms",
    "input_transcription_error",
    "input_transcript_wer",
]
STATES = ("completed", "failed", "missing")
PERCENTS = (50, 95, 99)
LATENCY_TITLES = {
    "first_delta": "first transcription delta (from the commit)",
    "completed": "transcription completed (from the commit)",
}
# `report capacity` per load step (p95) and `report compare`: label -> column
STEP_LATENCIES = {"input_transcript_done": "input_transcript_done_ms"}
COMPARE_TITLES = {
    "input_transcript_first": "transcript first delta",
    "input_transcript_done": "transcript completed",
}


def transcribed(frame: pd.DataFrame) -> np.ndarray:
    """Rows whose audio was to be transcribed (``input_transcription`` set)."""
    if "input_transcription" not in frame:
        return np.zeros(len(frame), dtype=bool)
    return frame["input_transcription"].astype(object).fillna("").astype(str).ne("").to_numpy()


def has_transcription(frame: pd.DataFrame) -> bool:
    return bool(transcribed(frame).any())


def _states(rows: pd.DataFrame, confidence: float) -> list[dict[str, Any]]:
    state = rows["input_transcription"].astype(str)
    seen = state.value_counts()
    names = [*STATES, *(str(s) for s in seen.index if s not in STATES)]
    n = len(rows)
    return [
        {
            "state": name,
            "count": int(seen.get(name, 0)),
            "rate_pct": rate(int(seen.get(name, 0)), n),
            "ci_pct": rate_interval_pct(int(seen.get(name, 0)), n, confidence),
        }
        for name in names
    ]


def _errors(rows: pd.DataFrame) -> list[dict[str, Any]]:
    failed = rows[rows["input_transcription"].astype(str) == "failed"]
    if failed.empty:
        return []
    column = "input_transcription_error"
    errors = failed[column] if column in failed else pd.Series("", index=failed.index)
    counts = errors.astype(object).fillna("").astype(str).replace("", "(none)").value_counts()
    return [{"error": str(e), "count": int(k), "rate_pct": rate(int(k), len(rows))} for e, k in counts.items()]


def wer_stats(values: np.ndarray) -> dict[str, Any]:
    """Word error rates (fractions): n, mean, percentiles, max, turns with any error / with none."""
    out: dict[str, Any] = {"n": int(values.size), "mean": float(values.mean()) if values.size else None}
    out.update({f"p{p}": float(np.percentile(values, p)) if values.size else None for p in PERCENTILES})
    out["max"] = float(values.max()) if values.size else None
    out["with_errors"] = int((values > 0).sum())
    out["exact"] = int((values == 0).sum())
    return out


def _by_scenario(rows: pd.DataFrame) -> list[dict[str, Any]]:
    if "scenario" not in rows:
        return []
    keys = rows["scenario"].astype(object).fillna("").astype(str)
    if keys.nunique() < 2:
        return []
    out = []
    for key, group in rows.groupby(keys, sort=True):
        state = group["input_transcription"].astype(str)
        done = finite(numbers(group, "input_transcript_done_ms"))
        wer = finite(numbers(group, "input_transcript_wer"))
        out.append(
            {
                "scenario": key or "(none)",
                "turns": len(group),
                "completed_pct": rate(int((state == "completed").sum()), len(group)),
                "failed_pct": rate(int((state == "failed").sum()), len(group)),
                "done_p95": float(np.percentile(done, 95)) if done.size else None,
                "wer_mean": float(wer.mean()) if wer.size else None,
            }
        )
    return out


def transcription_data(responses: pd.DataFrame, confidence: float = DEFAULT_CONFIDENCE) -> dict[str, Any] | None:
    """The section's figures (JSON-ready), or None when no row carries ``input_transcription``."""
    mask = transcribed(responses)
    if not mask.any():
        return None
    rows = responses[mask]
    latency = {
        "first_delta": numbers(rows, "input_transcript_first_ms"),
        "completed": numbers(rows, "input_transcript_done_ms"),
    }
    return {
        "confidence": confidence,
        "turns": len(rows),
        "states": _states(rows, confidence),
        "latency_ms": {k: percentile_intervals(v, PERCENTS, confidence) for k, v in latency.items()},
        "errors": _errors(rows),
        "wer": wer_stats(finite(numbers(rows, "input_transcript_wer"))),
        "by_scenario": _by_scenario(rows),
    }


def compare_values(responses: pd.DataFrame) -> dict[str, Any] | None:
    """What `report compare` sets side by side (WER in %); None without transcription."""
    mask = transcribed(responses)
    if not mask.any():
        return None
    rows = responses[mask]
    state = rows["input_transcription"].astype(str)
    return {
        "latency": {
            "input_transcript_first": finite(numbers(rows, "input_transcript_first_ms")),
            "input_transcript_done": finite(numbers(rows, "input_transcript_done_ms")),
        },
        "wer_pct": 100 * finite(numbers(rows, "input_transcript_wer")),
        "rates": {f"transcription {s}": (int((state == s).sum()), len(rows)) for s in ("failed", "missing")},
    }


def _wer(value: float | None) -> str:
    return "-" if value is None else pct(100 * value)


def transcription_tables(d: dict[str, Any] | None) -> list[Table]:
    """The summary's tables for the section (none when no turn was transcribed)."""
    if d is None:
        return []
    level = f"{100 * d['confidence']:g}%"
    w = d["wer"]
    tables = [
        Table(
            "Input transcription",
            ["state", "turns", f"rate [{level} CI]"],
            [
                [s["state"], count(s["count"]), with_interval(s["rate_pct"], *(s["ci_pct"] or (None, None)), fmt=pct)]
                for s in d["states"]
            ],
            note="turns whose audio was to be transcribed; missing = no transcription event came; CI: Wilson score",
        ),
        interval_table(
            d["latency_ms"],
            LATENCY_TITLES,
            f"Input transcription times (ms, {level} intervals)",
            PERCENTS,
            "intervals: distribution-free, from order statistics (unbounded: too few values for that percentile)",
        ),
        Table(
            "Word error rate (input transcripts against the expected text)",
            ["measure", "value"],
            [
                ["turns scored", count(w["n"])],
                ["mean", _wer(w["mean"])],
                *([f"p{p}", _wer(w[f"p{p}"])] for p in PERCENTILES),
                ["max", _wer(w["max"])],
                ["turns with any error", count(w["with_errors"])],
                ["turns transcribed exactly", count(w["exact"])],
            ],
        ),
    ]
    if d["errors"]:
        tables.append(
            Table(
                "Input transcription failures by error",
                ["error", "turns", "share of transcribed turns"],
                [[e["error"], count(e["count"]), pct(e["rate_pct"])] for e in d["errors"]],
            )
        )
    if d["by_scenario"]:
        tables.append(
            Table(
                "Input transcription by scenario",
                ["scenario", "turns", "completed", "failed", "completed p95 ms", "WER mean"],
                [
                    [
                        r["scenario"],
                        count(r["turns"]),
                        pct(r["completed_pct"]),
                        pct(r["failed_pct"]),
                        "-" if r["done_p95"] is None else f"{r['done_p95']:.1f}",
                        _wer(r["wer_mean"]),
                    ]
                    for r in d["by_scenario"]
                ],
            )
        )
    return tables
