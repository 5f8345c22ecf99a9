"""The report's plots, drawn with matplotlib's SVG backend and returned as inline ``<svg>`` text."""

from __future__ import annotations

import io
import math
import re
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from loadtest.records.schema import OUTCOMES
from loadtest.report.stats import finite

OUTCOME_COLOURS = {
    "completed": "#2ca02c",
    "failed": "#d62728",
    "truncated": "#ff7f0e",
    "throttled": "#9467bd",
    "cancelled": "#8c8c8c",
}
P50_COLOUR = "#1f77b4"
P95_COLOUR = "#17becf"
DONE_COLOUR = "#e377c2"
KNEE_COLOUR = "#d62728"
RATE_COLOUR = "#d62728"
THROUGHPUT_COLOUR = "#1f77b4"
RL_COLOURS = ("#bcbd22", "#8c564b", "#17becf", "#7f7f7f")
GAP_COLOUR = "#1f77b4"
UNDERRUN_COLOUR = "#ff7f0e"
FIGSIZE = (6.4, 3.2)

plt.rcParams.update(
    {
        "svg.fonttype": "none",
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.color": "#e6e6e6",
        "grid.linewidth": 0.6,
        "axes.titlesize": 10,
        "axes.titleweight": "bold",
        "legend.frameon": False,
        "legend.fontsize": 8,
    }
)


def to_svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    text = re.sub(r"^<\?xml[^>]*>\s*", "", text)
    text = re.sub(r"<!DOCTYPE[^>]*>\s*", "", text)
    return re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)


def _empty(ax: Any, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#888888")
    ax.set_xticks([])
    ax.set_yticks([])


def _headroom(ax: Any) -> None:
    """Start the y axis at 0 and leave room above the lines for the legend."""
    top = max(
        (np.nanmax(line.get_ydata()) for line in ax.get_lines() if np.isfinite(line.get_ydata()).any()), default=1
    )
    ax.set_ylim(0, max(float(top), 1.0) * 1.3)


def bucket_seconds(span: float, target: int = 40) -> float:
    """A round bucket width giving about ``target`` buckets over ``span`` seconds."""
    raw = max(span / target, 1.0)
    for nice in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200):
        if raw <= nice:
            return float(nice)
    return 3600.0 * math.ceil(raw / 3600)


def _time_buckets(responses: pd.DataFrame, start: float) -> tuple[np.ndarray, np.ndarray, float]:
    t = pd.to_numeric(responses["t_trigger"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    ok = np.isfinite(t)
    span = float(np.nanmax(t) - start) if ok.any() else 0.0
    width = bucket_seconds(max(span, 1.0))
    idx = np.full(t.shape, -1)
    idx[ok] = np.floor((t[ok] - start) / width).astype(int)
    return idx, ok, width


def outcome_buckets(responses: pd.DataFrame, start: float) -> tuple[dict[str, np.ndarray], float, int]:
    """Per outcome, its responses per time bucket; the bucket width; the number of buckets."""
    idx, ok, width = _time_buckets(responses, start)
    n = idx[ok].max() + 1 if ok.any() else 0
    outcome = responses["outcome"].fillna("").astype(str).to_numpy()
    counts = {name: np.bincount(idx[ok & (outcome == name)], minlength=n)[:n].astype(float) for name in OUTCOMES}
    return counts, width, int(n)


def outcomes_over_time(
    responses: pd.DataFrame, start: float | None, buckets: tuple[dict[str, np.ndarray], float, int] | None = None
) -> str:
    """``buckets``: :func:`outcome_buckets` computed already (from a run's scan, say)."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ax.set_title("Outcomes over time")
    if start is None or (buckets is None and responses.empty) or (buckets is not None and buckets[2] < 0):
        _empty(ax)
        return to_svg(fig)
    per, width, n = buckets if buckets is not None else outcome_buckets(responses, start)
    x = np.arange(n) * width / 60
    bottom = np.zeros(n)
    for name in OUTCOMES:
        counts = per[name]
        if counts.sum():
            ax.bar(
                x, counts, width=width / 60 * 0.9, bottom=bottom, align="edge", color=OUTCOME_COLOURS[name], label=name
            )
            bottom += counts
    ax.set_ylim(0, max(bottom.max(), 1) * 1.3)  # room for the legend above the bars
    ax.set_xlabel("minutes since start")
    ax.set_ylabel(f"responses per {int(width)} s")
    ax.legend(loc="upper left", ncols=3)
    return to_svg(fig)


LATENCY_LINES = (
    ("ttfa", 0.5, P50_COLOUR, "-"),
    ("ttfa", 0.95, P95_COLOUR, "-"),
    ("done", 0.95, DONE_COLOUR, "--"),
)


def latency_lines(frame: pd.DataFrame) -> list[pd.Series]:
    """Per line of LATENCY_LINES, its quantile per time bucket of ``frame`` (columns b, ttfa, done)."""
    return [frame.groupby("b")[col].quantile(q).dropna() for col, q, _, _ in LATENCY_LINES]


def latency_over_time(
    responses: pd.DataFrame, start: float | None, lines: tuple[list[pd.Series], float] | None = None
) -> str:
    """``lines``: :func:`latency_lines` per bucket and the bucket width, computed already (from a scan)."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ax.set_title("Latency percentiles over time")
    if start is None or (lines is None and responses.empty) or (lines is not None and lines[1] <= 0):
        _empty(ax)
        return to_svg(fig)
    if lines is None:
        idx, ok, width = _time_buckets(responses, start)
        frame = pd.DataFrame(
            {"b": idx[ok], "ttfa": responses["ttfa_ms"].to_numpy()[ok], "done": responses["done_ms"].to_numpy()[ok]}
        )
        series_list = latency_lines(frame)
    else:
        series_list, width = lines
    drew = False
    for (col, q, colour, style), series in zip(LATENCY_LINES, series_list, strict=True):
        if len(series):
            ax.plot(
                series.index * width / 60,
                series.to_numpy(),
                style,
                color=colour,
                lw=1.6,
                label=f"{col} p{int(q * 100)}",
            )
            drew = True
    if not drew:
        _empty(ax)
        return to_svg(fig)
    ax.set_xlabel("minutes since start")
    ax.set_ylabel("ms from trigger")
    _headroom(ax)
    ax.legend(loc="upper left", ncols=3)
    return to_svg(fig)


def latency_per_step(cap: dict[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ax.set_title("Latency per load step")
    rows = [r for r in cap["rows"] if r["users"] is not None]
    if not rows:
        _empty(ax)
        return to_svg(fig)
    x = [r["users"] for r in rows]
    for key, stat, colour, style in (
        ("ttfa", "p50", P50_COLOUR, "o-"),
        ("ttfa", "p95", P95_COLOUR, "o-"),
        ("done", "p95", DONE_COLOUR, "s--"),
    ):
        y = [np.nan if r[key][stat] is None else r[key][stat] for r in rows]
        ax.plot(x, y, style, color=colour, lw=1.6, ms=4, label=f"{key} {stat}")
    ax.set_xlabel("users" if cap["grouping"] == "step" else "open sessions")
    ax.set_ylabel("ms from trigger")
    _headroom(ax)
    ax.legend(loc="upper left", ncols=3)
    return to_svg(fig)


def capacity_curve(cap: dict[str, Any]) -> str:
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ax.set_title("Capacity: throughput and non-completed rate")
    rows = [r for r in cap["rows"] if r["users"] is not None]
    if not rows:
        _empty(ax)
        return to_svg(fig)
    x = np.array([r["users"] for r in rows], dtype=float)
    rpm = np.array([np.nan if r["responses_per_min"] is None else r["responses_per_min"] for r in rows], dtype=float)
    bad = np.array([np.nan if r["non_completed_pct"] is None else r["non_completed_pct"] for r in rows], dtype=float)
    ax.plot(x, rpm, "o-", color=THROUGHPUT_COLOUR, lw=1.8, ms=4, label="responses/min")
    ax.set_xlabel("users" if cap["grouping"] == "step" else "open sessions")
    ax.set_ylabel("responses per minute", color=THROUGHPUT_COLOUR)
    ax.set_ylim(bottom=0)
    ax2 = ax.twinx()
    ax2.plot(x, bad, "s--", color=RATE_COLOUR, lw=1.4, ms=4, label="non-completed %")
    ax2.set_ylabel("non-completed %", color=RATE_COLOUR)
    ax2.set_ylim(bottom=0)
    ax2.grid(False)
    ax2.spines["right"].set_visible(True)
    if cap["knee"] is not None and cap["knee"]["users"] is not None:
        ax.axvline(cap["knee"]["users"], color=KNEE_COLOUR, lw=1.5, ls=":")
        ax.annotate(
            f"knee: {cap['knee']['group']}",
            xy=(cap["knee"]["users"], 0.95),
            xycoords=("data", "axes fraction"),
            ha="right",
            va="top",
            color=KNEE_COLOUR,
            fontsize=8,
        )
    if cap["max_ok"] is not None and cap["max_ok"]["users"] is not None:
        ax.axvspan(x.min(), cap["max_ok"]["users"], color="#2ca02c", alpha=0.08, lw=0)
    return to_svg(fig)


def rate_limits_over_time(rl: pd.DataFrame, start: float | None) -> str:
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ax.set_title("Rate-limit remaining over time")
    if rl.empty or start is None:
        _empty(ax, "no rate_limits.updated recorded")
        return to_svg(fig)
    for i, (name, frame) in enumerate(rl.groupby(rl["name"].fillna("").astype(str), sort=True)):
        frame = frame.sort_values("t")
        limit = finite(frame["limit"])
        rem = pd.to_numeric(frame["remaining"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        y = 100 * rem / limit.max() if limit.size and limit.max() > 0 else rem
        ax.step(
            (frame["t"].to_numpy(dtype=float) - start) / 60,
            y,
            where="post",
            color=RL_COLOURS[i % 4],
            lw=1.5,
            label=name,
        )
    ax.set_xlabel("minutes since start")
    ax.set_ylabel("remaining, % of limit")
    ax.set_ylim(bottom=0)
    ax.legend(loc="lower left")
    return to_svg(fig)


def gap_values(responses: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The responses with audio: their finite largest gaps, and their longest underruns over 0."""
    audio = pd.to_numeric(responses["audio_ms"], errors="coerce").fillna(0).to_numpy(dtype=float) > 0
    gaps = pd.to_numeric(responses["max_delta_gap_ms"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)[audio]
    under = pd.to_numeric(responses["longest_underrun_ms"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)[
        audio
    ]
    return gaps[np.isfinite(gaps)], under[np.isfinite(under) & (under > 0)]


def audio_gaps(responses: pd.DataFrame, values: tuple[np.ndarray, np.ndarray] | None = None) -> str:
    """``values``: :func:`gap_values` found already (None with no rows at all)."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ax.set_title("Audio gaps per response")
    if (values is None and responses.empty) or (values is not None and values[0] is None):
        _empty(ax)
        return to_svg(fig)
    gaps, under = values if values is not None else gap_values(responses)
    if not gaps.size:
        _empty(ax, "no audio received")
        return to_svg(fig)
    top = max(float(np.percentile(gaps, 99.5)), float(under.max()) if under.size else 0.0, 1.0)
    bins = np.linspace(0, top, 40)
    ax.hist(np.clip(gaps, 0, top), bins=bins, color=GAP_COLOUR, label="largest gap between deltas")
    if under.size:
        ax.hist(np.clip(under, 0, top), bins=bins, color=UNDERRUN_COLOUR, label="longest underrun (>0)")
    ax.set_yscale("log")  # the rare long gaps are the interesting ones
    ax.set_xlabel("ms (longer values are counted in the last bar)")
    ax.set_ylabel("responses (log scale)")
    ax.legend(loc="upper right")
    return to_svg(fig)


ROUND_TRIP_COLOUR = "#e6550d"
FINAL_ANSWER_COLOUR = "#756bb1"
TRANSCRIPT_COLOUR = "#31a354"
WER_COLOUR = "#de2d26"


def _quantile_lines(ax: Any, responses: pd.DataFrame, start: float, lines: list[tuple[Any, ...]]) -> bool:
    """Per time bucket, the quantile of each (values, q, colour, style, label); whether any line was drawn."""
    idx, ok, width = _time_buckets(responses, start)
    drew = False
    for values, q, colour, style, label in lines:
        frame = pd.DataFrame({"b": idx[ok], "v": np.asarray(values, dtype=float)[ok]})
        series = frame.groupby("b")["v"].quantile(q).dropna() if q is not None else frame.groupby("b")["v"].mean()
        series = series.dropna()
        if len(series):
            ax.plot(series.index * width / 60, series.to_numpy(), style, color=colour, lw=1.6, ms=3, label=label)
            drew = True
    return drew


def _column(responses: pd.DataFrame, col: str) -> np.ndarray:
    if col not in responses:
        return np.full(len(responses), np.nan)
    return pd.to_numeric(responses[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def tool_round_trip_over_time(responses: pd.DataFrame, start: float | None) -> str:
    """The tool round trip (p50, p95) and the final answer of the turns that called (p95) over time."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ax.set_title("Function calls: tool round trip over time")
    if responses.empty or start is None:
        _empty(ax)
        return to_svg(fig)
    rt = _column(responses, "tool_round_trip_ms")
    final = np.where(_column(responses, "chain_depth") > 0, _column(responses, "final_answer_ms"), np.nan)
    lines = [
        (rt, 0.5, ROUND_TRIP_COLOUR, "-", "round trip p50"),
        (rt, 0.95, ROUND_TRIP_COLOUR, "--", "round trip p95"),
        (final, 0.95, FINAL_ANSWER_COLOUR, "-", "final answer p95 (turns that called)"),
    ]
    if not _quantile_lines(ax, responses, start, lines):
        _empty(ax, "no follow-up recorded")
        return to_svg(fig)
    ax.set_xlabel("minutes since start")
    ax.set_ylabel("ms")
    _headroom(ax)
    ax.legend(loc="upper left", ncols=2)
    return to_svg(fig)


def transcription_over_time(responses: pd.DataFrame, start: float | None) -> str:
    """Input transcription first delta and completion (p95, from the commit), and the mean WER, over time."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ax.set_title("Input transcription over time")
    if responses.empty or start is None:
        _empty(ax)
        return to_svg(fig)
    lines = [
        (_column(responses, "input_transcript_first_ms"), 0.95, TRANSCRIPT_COLOUR, "--", "first delta p95"),
        (_column(responses, "input_transcript_done_ms"), 0.95, TRANSCRIPT_COLOUR, "-", "completed p95"),
    ]
    if not _quantile_lines(ax, responses, start, lines):
        _empty(ax, "no transcript recorded")
        return to_svg(fig)
    ax.set_xlabel("minutes since start")
    ax.set_ylabel("ms from the commit")
    _headroom(ax)
    ax.legend(loc="upper left", ncols=2)
    wer = 100 * _column(responses, "input_transcript_wer")
    if np.isfinite(wer).any():
        ax2 = ax.twinx()
        _quantile_lines(ax2, responses, start, [(wer, None, WER_COLOUR, "o:", "WER mean %")])
        ax2.set_ylabel("WER mean %", color=WER_COLOUR)
        ax2.set_ylim(bottom=0)
        ax2.grid(False)
        ax2.spines["right"].set_visible(True)
    return to_svg(fig)
