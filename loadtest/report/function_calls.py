"""The function-calls section of the reports: what a run's tool round trips did.

Pure functions over the responses DataFrame (the ``FUNCTION_COLUMNS``; a run written before them,
or one that made no call, has no section):

- calls per function name (``function_names``; calls a row counts beyond its names are
  ``(unnamed)``) and the share whose arguments were valid JSON matching the tool's parameters
  (``function_args_valid``, paired with the names row by row), with its Wilson interval;
- percentiles, each with its distribution-free order-statistic interval: arguments done
  (``function_args_ms``, per call, from the trigger), the tool round trip (``tool_round_trip_ms``
  on a follow-up: the last call's arguments done to the follow-up's first output), the simulated
  tool latency and the round trip less it (what the service and the network added), the final
  answer (``final_answer_ms``, the turn's trigger to its last response's first output) of the turns
  that called a tool (their last response is a follow-up) and of the turns that did not;
- the chain depth distribution (responses per ``chain_depth``, how many of them called again);
- the responses of the chains (callers and follow-ups, and any row with a function-call reason)
  that did not complete, by outcome and reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loadtest.report.confidence import DEFAULT_CONFIDENCE, percentile_intervals, rate_interval_pct
from loadtest.report.render import Table, count, interval_table, ms, pct, with_interval
from loadtest.report.stats import finite, numbers, rate, reason_rows

FUNCTION_COLUMNS = [
    "function_calls",
    "function_names",
    "function_args_ms",
    "function_args_valid",
    "chain_depth",
    "tool_latency_ms",
    "tool_round_trip_ms",
    "final_answer_ms",
]
# Where the API broke a chain (the function-call support's reasons; any row with one is in a chain).
FUNCTION_REASONS = (
    "function_arguments_cut",
    "function_arguments_invalid",
    "function_call_timeout",
    "followup_rejected",
)
PERCENTS = (50, 95, 99)
LATENCY_TITLES = {
    "arguments_done": "arguments done",
    "tool_round_trip": "tool round trip",
    "tool_latency": "tool latency (simulated)",
    "round_trip_less_tool": "round trip less tool latency",
    "final_answer_called": "final answer, turns that called",
    "final_answer_direct": "final answer, turns without a call",
}
# The latencies `report capacity` shows per load step (p95) and `report compare` shifts: label -> column.
STEP_LATENCIES = {"tool_round_trip": "tool_round_trip_ms", "final_answer": "final_answer_ms"}
COMPARE_TITLES = {
    "tool_round_trip": "tool round trip",
    "final_answer": "final answer (every turn)",
    "final_answer_called": "final answer (turns that called)",
    "arguments_done": "arguments done",
}
UNNAMED = "(unnamed)"
_NAMES = pa.list_(pa.string())
_FLOATS = pa.list_(pa.float64())
_BOOLS = pa.list_(pa.bool_())


def _lists(frame: pd.DataFrame, col: str, kind: pa.DataType) -> pa.Array:
    """A list column as Arrow (object arrays of numpy arrays or pandas' Arrow lists alike)."""
    if col not in frame:
        return pa.nulls(len(frame), kind)
    return pa.array(frame[col], type=kind, from_pandas=True)


def _lengths(lists: pa.Array) -> np.ndarray:
    return pc.fill_null(pc.list_value_length(lists), 0).to_numpy(zero_copy_only=False).astype(int)


def has_calls(frame: pd.DataFrame) -> bool:
    """The rows hold a function call or a follow-up."""
    return bool(np.nansum(numbers(frame, "function_calls")) > 0 or (numbers(frame, "chain_depth") > 0).any())


def _masks(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(calls per row, calling rows, follow-up rows)."""
    calls = np.nan_to_num(numbers(frame, "function_calls"))
    return calls, calls > 0, np.nan_to_num(numbers(frame, "chain_depth")) > 0


def _per_call(frame: pd.DataFrame, calls: np.ndarray, confidence: float) -> dict[str, Any]:
    """Calls by name, argument validity and arguments-done times of the calling rows ``frame``."""
    names = _lists(frame, "function_names", _NAMES)
    args = _lists(frame, "function_args_ms", _FLOATS)
    valid = _lists(frame, "function_args_valid", _BOOLS)
    n_names, n_valid, n_args = _lengths(names), _lengths(valid), _lengths(args)
    flat_names = pc.list_flatten(names).to_numpy(zero_copy_only=False).astype(object)
    rows = pd.DataFrame({"name": flat_names})
    rows["valid"] = _paired(valid, n_names == n_valid, n_names)
    rows["args_ms"] = _paired(args, n_names == n_args, n_names)
    unnamed = int(np.maximum(calls - n_names, 0).sum())
    by_name = []
    for name, group in rows.groupby("name", sort=False):
        by_name.append(_name_row(str(name), group, confidence))
    if unnamed:
        by_name.append({**_name_row(UNNAMED, rows.iloc[0:0], confidence), "calls": unnamed})
    by_name.sort(key=lambda r: (-r["calls"], r["name"]))
    flat_valid = pc.drop_null(pc.list_flatten(valid)).to_numpy(zero_copy_only=False).astype(bool)
    k, n = int(flat_valid.sum()), int(flat_valid.size)
    return {
        "by_name": by_name,
        "arguments": {
            "checked": n,
            "valid": k,
            "valid_pct": rate(k, n),
            "valid_ci_pct": rate_interval_pct(k, n, confidence),
        },
        "arguments_ms": finite(pc.list_flatten(args).to_numpy(zero_copy_only=False)),
    }


def _paired(lists: pa.Array, same: np.ndarray, n_names: np.ndarray) -> np.ndarray:
    """Per flattened name, the value at the same place of ``lists`` (NaN where a row's lengths differ)."""
    out = np.full(int(n_names.sum()), np.nan, dtype=float)
    if not same.any():
        return out
    flat = pc.list_flatten(lists.filter(pa.array(same))).cast(pa.float64())  # bools as 0/1, nulls as NaN
    out[np.repeat(same, n_names)] = flat.to_numpy(zero_copy_only=False)
    return out


def _name_row(name: str, group: pd.DataFrame, confidence: float) -> dict[str, Any]:
    checked = group["valid"].dropna() if len(group) else pd.Series(dtype=float)
    k, n = int((checked > 0).sum()), int(checked.size)
    args = finite(group["args_ms"]) if len(group) else np.array([])
    return {
        "name": name,
        "calls": len(group),
        "checked": n,
        "valid": k,
        "valid_pct": rate(k, n),
        "valid_ci_pct": rate_interval_pct(k, n, confidence),
        "arguments_done_p50": float(np.percentile(args, 50)) if args.size else None,
        "arguments_done_p95": float(np.percentile(args, 95)) if args.size else None,
    }


def _in_chain(frame: pd.DataFrame, calling: np.ndarray, followup: np.ndarray) -> np.ndarray:
    reasons = frame["reason"].astype(str).isin(FUNCTION_REASONS).to_numpy() if "reason" in frame else False
    return calling | followup | reasons


def function_call_data(responses: pd.DataFrame, confidence: float = DEFAULT_CONFIDENCE) -> dict[str, Any] | None:
    """The section's figures (JSON-ready), or None when the rows hold no call."""
    if not has_calls(responses):
        return None
    calls, calling, followup = _masks(responses)
    depth = np.nan_to_num(numbers(responses, "chain_depth")).astype(int)
    per_call = _per_call(responses[calling], calls[calling], confidence)
    round_trip, tool = numbers(responses, "tool_round_trip_ms"), numbers(responses, "tool_latency_ms")
    final = numbers(responses, "final_answer_ms")
    called = calling | followup
    latency = {
        "arguments_done": per_call.pop("arguments_ms"),
        "tool_round_trip": round_trip,
        "tool_latency": tool,
        "round_trip_less_tool": round_trip - tool,
        "final_answer_called": final[called],
        "final_answer_direct": final[~called],
    }
    chains = []
    for d in sorted(set(depth[called].tolist())):
        at = called & (depth == d)
        chains.append(
            {"depth": d, "responses": int(at.sum()), "called": int((at & calling).sum()), "calls": int(calls[at].sum())}
        )
    chain_rows = responses[_in_chain(responses, calling, followup)]
    return {
        "confidence": confidence,
        "responses_with_calls": int(calling.sum()),
        "calls": int(calls.sum()),
        "parallel": int((calls > 1).sum()),  # responses with more than one call
        "followups": int(followup.sum()),
        "chains": int((calling & (depth == 0)).sum()),  # turns whose first response called
        "deepest": int(depth[called].max()) if called.any() else 0,
        **per_call,
        "latency_ms": {k: percentile_intervals(v, PERCENTS, confidence) for k, v in latency.items()},
        "chain_depth": chains,
        "chain_responses": len(chain_rows),
        "failures": reason_rows(chain_rows),
    }


def compare_values(responses: pd.DataFrame) -> dict[str, Any] | None:
    """What `report compare` sets side by side: values per latency, (k, n) per rate; None without calls."""
    if not has_calls(responses):
        return None
    _, calling, followup = _masks(responses)
    final = numbers(responses, "final_answer_ms")
    valid = pc.drop_null(pc.list_flatten(_lists(responses[calling], "function_args_valid", _BOOLS)))
    args = pc.list_flatten(_lists(responses[calling], "function_args_ms", _FLOATS))
    k = int(np.asarray(valid.to_numpy(zero_copy_only=False), dtype=bool).sum())
    return {
        "latency": {
            "tool_round_trip": finite(numbers(responses, "tool_round_trip_ms")),
            "final_answer": finite(final),
            "final_answer_called": finite(final[calling | followup]),
            "arguments_done": finite(args.to_numpy(zero_copy_only=False)),
        },
        "rates": {"arguments valid": (k, len(valid)), "responses with calls": (int(calling.sum()), len(responses))},
    }


def function_call_tables(d: dict[str, Any] | None) -> list[Table]:
    """The summary's tables for the section (none when the run made no call)."""
    if d is None:
        return []
    level = f"{100 * d['confidence']:g}%"
    a = d["arguments"]
    ci = a["valid_ci_pct"]
    validity = "-" if a["valid_pct"] is None else f"{with_interval(a['valid_pct'], *ci, fmt=pct)} of {a['checked']}"
    tables = [
        Table(
            "Function calls",
            ["measure", "value"],
            [
                ["responses with calls", count(d["responses_with_calls"])],
                ["calls", count(d["calls"])],
                ["responses with parallel calls", count(d["parallel"])],
                ["follow-ups (responses answering calls)", count(d["followups"])],
                ["deepest chain (follow-ups in a row)", count(d["deepest"])],
                [f"arguments valid [{level} CI]", validity],
            ],
            note="valid = the arguments are JSON matching the tool's parameter schema; CI: Wilson score interval",
        ),
        Table(
            "Function calls by name",
            ["function", "calls", "checked", f"valid [{level} CI]", "args done p50", "args done p95"],
            [
                [
                    r["name"],
                    count(r["calls"]),
                    count(r["checked"]),
                    with_interval(r["valid_pct"], *(r["valid_ci_pct"] or (None, None)), fmt=pct),
                    ms(r["arguments_done_p50"]),
                    ms(r["arguments_done_p95"]),
                ]
                for r in d["by_name"]
            ],
            note="args done: ms from the trigger to the call's arguments .done",
        ),
        interval_table(
            d["latency_ms"],
            LATENCY_TITLES,
            f"Tool round trip and final answer (ms, {level} intervals)",
            PERCENTS,
            "arguments done: the trigger to a call's arguments .done; tool round trip: the last call's arguments "
            ".done to the follow-up's first output; final answer: the trigger to the turn's last response's first "
            "output; intervals: distribution-free, from order statistics (unbounded: too few values for it)",
        ),
        Table(
            "Chain depth",
            ["depth", "responses", "called again", "calls"],
            [[str(c["depth"]), count(c["responses"]), count(c["called"]), count(c["calls"])] for c in d["chain_depth"]],
            note="depth 0: a turn's first response; n: the n-th follow-up of its chain",
        ),
    ]
    if d["failures"]:
        tables.append(
            Table(
                "Function-call chains that did not complete",
                ["outcome", "reason", "count", "share of chain responses"],
                [[r["outcome"], r["reason"], count(r["count"]), pct(r["rate_pct"])] for r in d["failures"]],
            )
        )
    return tables
