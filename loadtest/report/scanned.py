"""The summary's sections that scale with the rows, computed over a run's DuckDB scan.

Each function returns what its pandas twin returns for the same rows (``summary.audio_stats``,
``summary.token_stats``, ``trend.step_groups`` + ``reason_trends``, ``cost.cost_data``,
``stats.time_span``). Counts, extremes and order statistics come from DuckDB; a float sum
(audio mean, underrun total, cost) is numpy's over one column fetched in the rows' order, so it
equals the pandas figure to the last bit (8 bytes a row, one column at a time).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from loadtest.records.scan import Scan, quote
from loadtest.records.schema import OUTCOMES
from loadtest.report import scanstats
from loadtest.report.cost import PRICE_KEYS, USAGE_COLUMNS, PriceTable, group_cost
from loadtest.report.scanstats import num, text
from loadtest.report.stats import span_of
from loadtest.report.trend import ALPHA as TREND_ALPHA
from loadtest.report.trend import METHOD, count_trends


def column(scan: Scan, expr: str, where: str = "true", dtype: Any = float) -> np.ndarray:
    """One value per row where ``where`` holds, in the rows' order (a numpy array)."""
    return columns_of(scan, {"x": expr}, where, dtype)["x"]


def columns_of(scan: Scan, exprs: dict[str, str], where: str = "true", dtype: Any = float) -> dict[str, np.ndarray]:
    """Several values per row where ``where`` holds, in the rows' order, from one query."""
    select = ", ".join(f"{e} AS {quote(k)}" for k, e in exprs.items())
    got = scan.sql(f"SELECT {select} FROM {{v}} WHERE {where} ORDER BY _ord").fetchnumpy()
    out = {}
    for key in exprs:
        x = got[key]
        if isinstance(x, np.ma.MaskedArray):
            x = x.astype(float).filled(np.nan) if dtype is float else x.filled(0)
        out[key] = np.asarray(x, dtype=dtype)
    return out


def audio_specs() -> dict[str, tuple[str, str]]:
    """The percentiles audio_stats needs (for scanstats.percentiles_many): label -> (value, where)."""
    audio, gaps = f"coalesce({num('audio_ms')}, 0)", f"coalesce({num('max_delta_gap_ms')}, 0)"
    return {"audio": (audio, f"{audio} > 0"), "gaps": (gaps, f"{audio} > 0")}


AUDIO_QS = {"audio": (50, 95), "gaps": (95,)}


def time_span(run: dict[str, Any], scan: Scan, sessions: pd.DataFrame) -> tuple[float | None, float | None]:
    """As ``stats.time_span``: run.json's times when present, else the rows' own."""
    return span_of(run, scanstats.extent(scan, ("t_trigger", "t_done")), sessions)


def audio_stats(scan: Scan, pct: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """As ``summary.audio_stats`` (``pct``: the percentiles of audio_specs, when computed already)."""
    if not scan.rows:
        return {"responses_with_audio": 0}
    audio, under = f"coalesce({num('audio_ms')}, 0)", f"coalesce({num('underrun_ms')}, 0)"
    gaps, longest = f"coalesce({num('max_delta_gap_ms')}, 0)", f"coalesce({num('longest_underrun_ms')}, 0)"
    with_audio, stalls, with_underrun, longest_max, gap_max = scan.fetchall(
        f"SELECT count_if({audio} > 0), count_if({text('reason')} = 'audio_stall'), count_if({under} > 0), "
        f"max({longest}), max({gaps}) FROM {{v}}"
    )[0]
    values = columns_of(scan, {"a": audio, "u": under})
    a = values["a"][values["a"] > 0]
    pct = pct or scanstats.percentiles_many(scan, audio_specs(), AUDIO_QS)
    got, gap = pct["audio"], pct["gaps"]
    return {
        "responses_with_audio": int(with_audio),
        "audio_ms_mean": float(a.mean()) if a.size else None,
        "audio_ms_p50": got["p50"] if a.size else None,
        "audio_ms_p95": got["p95"] if a.size else None,
        "stalls": int(stalls),
        "responses_with_underrun": int(with_underrun),
        "underrun_ms_total": float(values["u"].sum()),
        "longest_underrun_ms_max": float(longest_max),
        "max_delta_gap_ms_p95": gap["p95"] if a.size else None,
        "max_delta_gap_ms_max": float(gap_max),
    }


def token_stats(scan: Scan, minutes: float | None) -> dict[str, Any]:
    """As ``summary.token_stats`` (token counts are whole numbers: their sums are exact in any order)."""
    out: dict[str, Any] = {}
    names = [n for n in ("input_tokens", "output_tokens", "total_tokens") if scan.has(n)]
    parts = [
        f"sum({num(n)}) FILTER (WHERE isfinite({num(n)})), count(*) FILTER (WHERE isfinite({num(n)}))" for n in names
    ]
    got = scan.fetchall(f"SELECT {', '.join(parts)} FROM {{v}}")[0] if names else ()
    sums = {n: ((got[2 * i] or 0.0), int(got[2 * i + 1])) for i, n in enumerate(names)}
    for name in ("input_tokens", "output_tokens", "total_tokens"):
        total, n = sums.get(name, (0.0, 0))
        out[name.removesuffix("_tokens")] = int(total)
        if name == "total_tokens":
            out["responses_with_usage"] = n
            out["per_response_mean"] = float(total / n) if n else None
            out["per_minute"] = float(total / minutes) if minutes else None
    return out


def step_trends(scan: Scan) -> dict[str, Any] | None:
    """As ``reason_trends(step_groups(responses))`` for a step run (None: fewer than two steps)."""
    if not scan.rows or not scan.has("step") or not scan.has("users"):
        return None
    step, users = num("step"), num("users")
    valid = f"{step} IS NOT NULL AND NOT isnan({step})"
    steps = scan.fetchall(
        f"SELECT s, max(u) FILTER (WHERE NOT isnan(u)), count(*) FROM (SELECT {step} AS s, {users} AS u FROM {{v}} "
        f"WHERE {valid}) GROUP BY s ORDER BY s"
    )
    groups = [(float(load), s, int(n)) for s, load, n in steps if load is not None]
    if len(groups) < 2:
        return None
    groups.sort(key=lambda g: g[0])  # stable: equal loads keep the step order, as reason_trends sorts
    out: dict[str, Any] = {"method": METHOD, "alpha": TREND_ALPHA, "loads": [g[0] for g in groups], "reasons": []}
    if len({g[0] for g in groups}) < 2:
        out["note"] = "one load level only, so no trend across load can be tested"
        return out
    index = {s: i for i, (_, s, _) in enumerate(groups)}
    totals = np.array([n for _, _, n in groups], dtype=float)
    bad = scan.fetchall(
        f"SELECT {step} AS s, {text('outcome')} AS o, {text('reason')} AS r, count(*), min(_ord) FROM {{v}} "
        f"WHERE {valid} AND {scanstats.not_completed()} GROUP BY s, o, r"
    )
    seen = sorted((index[s], first, o, r, n) for s, o, r, n, first in bad if s in index)
    keys: dict[tuple[str, str], np.ndarray] = {}
    for i, _, o, r, n in seen:
        keys.setdefault((str(o), str(r) or "(none)"), np.zeros(len(groups)))[i] = n
    return count_trends(out, totals, keys)


def _codes(scan: Scan, by: str) -> tuple[str, list[str]]:
    """SQL giving each row the code of its ``by`` value among the sorted values, and the values."""
    keys = scanstats.group_keys(scan, by)
    cases = " ".join(f"WHEN '{k.replace(chr(39), chr(39) * 2)}' THEN {i}" for i, k in enumerate(keys))
    return (f"CAST(CASE {text(by)} {cases} END AS INTEGER)" if keys else "CAST(0 AS INTEGER)"), keys


def response_costs(scan: Scan, table: PriceTable) -> tuple[str, dict[str, Any]]:
    """As ``cost.response_costs``: the SQL of each row's cost (NULL when unpriced; the same
    arithmetic in the same order), with a join it needs registered, and why rows went unpriced."""
    detail = USAGE_COLUMNS[1:]
    has_usage = " OR ".join(f"coalesce(isfinite({num(c)}), false)" for c in detail)
    rows = scan.fetchall(f"SELECT {text('deployment')} AS d, count(*) FROM {{v}} WHERE {has_usage} GROUP BY d")
    no_usage = scan.rows - sum(int(n) for _, n in rows)
    unknown: dict[str, int] = {}
    priced: dict[str, list[float]] = {}
    for name, n in sorted(rows):
        model = table.lookup(name)
        if model is None:
            unknown[name or "(none)"] = int(n)
        else:
            priced[name] = [float(table.models[model][k]) for k in PRICE_KEYS]
    cols = {"_d": pa.array(list(priced), pa.string())}
    for i, k in enumerate(PRICE_KEYS):
        cols[f"_{k}"] = pa.array([p[i] for p in priced.values()], pa.float64())
    prices = pa.table(cols)
    scan.con.register("_prices", prices)
    z = {c: f"coalesce({num(c)}, 0)" for c in detail}
    given = f"coalesce(isfinite({num('input_cached_audio_tokens')}), false)"
    cached_audio = (
        f"(CASE WHEN {given} THEN {z['input_cached_audio_tokens']}"
        f" ELSE greatest({z['input_cached_tokens']} - {z['input_text_tokens']}, 0) END)"
    )
    cached_text = f"greatest({z['input_cached_tokens']} - {cached_audio}, 0)"
    kinds = {
        "text_input": f"greatest({z['input_text_tokens']} - {cached_text}, 0)",
        "text_cached_input": cached_text,
        "audio_input": f"greatest({z['input_audio_tokens']} - {cached_audio}, 0)",
        "audio_cached_input": cached_audio,
        "text_output": z["output_text_tokens"],
        "audio_output": z["output_audio_tokens"],
    }
    terms = " + ".join(f"({kinds[k]}) * _{k}" for k in PRICE_KEYS)
    cost = f"CASE WHEN {has_usage} THEN ({terms}) / 1e6 END"
    return cost, {"no_usage": int(no_usage), "unknown_models": unknown}


def cost_data(scan: Scan, sessions: pd.DataFrame, table: PriceTable, end: float | None) -> dict[str, Any]:
    """As ``cost.cost_data``: the run's cost overall and by target and scenario."""
    cost, unpriced = response_costs(scan, table)
    target, targets = _codes(scan, "target")
    scenario, scenarios = _codes(scan, "scenario")
    # a code column only where there are groups to split (one target, one scenario: the whole run's
    # costs), and NaN rather than NULL: 8 bytes a row reach numpy, no masked copies (10M rows a run)
    codes = {k: e for k, e, keys in (("t", target, targets), ("s", scenario, scenarios)) if len(keys) > 1}
    extra = "".join(f", {e} AS {k}" for k, e in codes.items())
    got = scan.sql(
        f"SELECT coalesce({cost}, CAST('NaN' AS DOUBLE)) AS c{extra} FROM {{v}} "
        f"LEFT JOIN _prices ON {text('deployment')} = _prices._d ORDER BY _ord"
    ).fetchnumpy()
    scan.con.unregister("_prices")
    costs = np.asarray(got.pop("c"), dtype=float)
    for k in ("t", "s"):
        if k not in codes:
            got[k] = np.zeros(costs.size, dtype=np.int8)
    out: dict[str, Any] = {
        "estimate": True,
        "prices": {"path": table.path, "date": table.date, "currency": table.currency},
        "unpriced": unpriced,
        "total": group_cost(costs, sessions, end),
    }
    for by, codes, keys in (("target", got["t"], targets), ("scenario", got["s"], scenarios)):
        rows = []
        if scan.rows:
            codes = np.asarray(codes)
            s_keys = sessions[by].fillna("").astype(str) if by in sessions else pd.Series("", index=sessions.index)
            for code, key in enumerate(keys):
                group = group_cost(costs[codes == code], sessions[s_keys == key], end)
                rows.append({by: key or "(none)", **group})
        out[f"by_{by}"] = rows
    return out


def tokens_frame(scan: Scan) -> pd.DataFrame:
    """One row per response with its ``total_tokens`` alone (what ``projection.project_limits``
    reads of the responses: their count and the tokens' sum, exact in any order: whole numbers)."""
    out = pd.DataFrame(index=pd.RangeIndex(scan.rows))
    if scan.has("total_tokens"):
        out["total_tokens"] = column(scan, num("total_tokens"))
    return out


def per_minute(scan: Scan, times: str, weights: str | None, start: float) -> np.ndarray:
    """As ``limits.per_minute`` of the rows where ``times`` (and ``weights``) are numbers: the
    same floor((t - start) / 60) in SQL, the counts or the sums (whole numbers) per minute."""
    have = f"coalesce(isfinite({times}), false)"  # (pandas would make garbage of an infinite time)
    if weights is not None:
        have += f" AND {weights} IS NOT NULL AND NOT isnan({weights})"
    k = f"CAST(floor(({times} - {scanstats.double(start)}) / 60.0) AS BIGINT)"
    got = scan.fetchall(
        f"SELECT {k} AS k, {'sum(' + weights + ')' if weights else 'count(*)'} FROM {{v}} WHERE {have} GROUP BY k"
    )
    if not got:
        return np.array([])
    keys = np.array([g[0] for g in got], dtype=np.int64)
    keys -= keys.min() if keys.min() < 0 else 0
    out = np.zeros(int(keys.max()) + 1, dtype=float if weights is not None else np.int64)
    out[keys] = [g[1] for g in got]
    return out


def _buckets(scan: Scan, start: float) -> tuple[float, str]:
    """``plots._time_buckets`` in SQL: the bucket width, and the SQL of a row's bucket."""
    from loadtest.report.plots import bucket_seconds

    t = num("t_trigger")
    top = scan.fetchall(f"SELECT max({t}) FILTER (WHERE NOT isnan({t})), count_if(isfinite({t})) FROM {{v}}")[0]
    span = float(top[0] - start) if top[1] else 0.0
    width = bucket_seconds(max(span, 1.0))
    return width, f"CAST(floor(({t} - {scanstats.double(start)}) / {scanstats.double(width)}) AS BIGINT)"


def outcome_buckets(scan: Scan, start: float) -> tuple[dict[str, np.ndarray], float, int]:
    """As ``plots.outcome_buckets``: the same buckets, counted in DuckDB (n = -1: no rows)."""
    if not scan.rows:
        return {}, 1.0, -1
    width, k = _buckets(scan, start)
    got = scan.fetchall(
        f"SELECT {k} AS k, {text('outcome')} AS o, count(*) FROM {{v}} WHERE isfinite({num('t_trigger')}) GROUP BY k, o"
    )
    n = max((int(b) for b, _, _ in got), default=-1) + 1
    counts = {name: np.zeros(n) for name in OUTCOMES}
    for b, o, c in got:
        if o in counts:
            counts[o][int(b)] = float(c)
    return counts, width, n


LATENCY_BUCKETS_AT_ONCE = 8  # time buckets (of ~40) whose rows are read by one query


def latency_buckets(scan: Scan, start: float) -> tuple[list[pd.Series], float]:
    """As ``plots.latency_lines`` of the run's rows (width 0: no rows): the same pandas quantiles,
    one time bucket's rows at a time (a bucket's quantile depends on its rows alone), so a
    day-long run's latencies are never in memory at once."""
    from loadtest.report.plots import latency_lines

    if not scan.rows:
        return [], 0.0
    width, k = _buckets(scan, start)
    have = f"isfinite({num('t_trigger')})"
    parts: list[list[pd.Series]] = []
    keys = [int(b) for (b,) in scan.fetchall(f"SELECT DISTINCT {k} AS k FROM {{v}} WHERE {have} ORDER BY k")]
    for at in range(0, len(keys), LATENCY_BUCKETS_AT_ONCE):  # a few buckets a query: few scans, little memory
        lo, hi = keys[at], keys[min(at + LATENCY_BUCKETS_AT_ONCE, len(keys)) - 1]
        got = scan.sql(  # in no particular order: a quantile sorts its values
            f"SELECT {k} AS b, {num('ttfa_ms')} AS ttfa, {num('done_ms')} AS done FROM {{v}} "
            f"WHERE {have} AND {k} BETWEEN {lo} AND {hi}"
        ).fetchnumpy()
        frame = pd.DataFrame(
            {c: x.astype(float).filled(np.nan) if np.ma.isMaskedArray(x) else x for c, x in got.items()}
        )
        frame["b"] = frame["b"].astype(np.int64)
        parts.append(latency_lines(frame))
    if not parts:
        return [pd.Series(dtype=float) for _ in range(3)], width
    return [pd.concat([p[i] for p in parts]) for i in range(len(parts[0]))], width


def gap_values(scan: Scan) -> tuple[np.ndarray | None, np.ndarray]:
    """As ``plots.gap_values`` (None: no rows): the audio rows' values from DuckDB, in no order
    (a percentile and a histogram do not depend on it)."""
    if not scan.rows:
        return None, np.array([])
    audio = f"coalesce({num('audio_ms')} > 0 AND NOT isnan({num('audio_ms')}), false)"  # NaN is no audio
    gaps, under = num("max_delta_gap_ms"), num("longest_underrun_ms")
    got = scan.sql(f"SELECT {gaps} AS x FROM {{v}} WHERE {audio} AND isfinite({gaps})").fetchnumpy()["x"]
    over = scan.sql(f"SELECT {under} AS x FROM {{v}} WHERE {audio} AND isfinite({under}) AND {under} > 0")
    return np.asarray(got, dtype=float), np.asarray(over.fetchnumpy()["x"], dtype=float)
