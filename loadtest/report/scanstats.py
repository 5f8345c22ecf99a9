"""The shared statistics of :mod:`loadtest.report.stats`, computed in DuckDB over a run's scan.

A report on a day-long run (10 million rows) aggregates where the rows lie (``RunData.scan``,
:mod:`loadtest.records.scan`): only counts, order statistics and a bounded number of values
reach Python. Every function returns what its pandas twin in ``stats`` returns for the same rows.

Percentiles are exact and equal numpy's default (linear interpolation between the order
statistics at ``(n - 1) * q``): DuckDB finds the two order statistics (``quantile_disc``, which
returns the value of rank ``ceil(n * f)``, asked at ``f = (k + 0.5) / n`` for the k-th), and the
interpolation is numpy's own formula (:func:`linear`). Ties keep the pandas order: groups of equal
count are listed in the order their first row was written (``_ord``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from loadtest.records.scan import Scan, quote
from loadtest.records.schema import COMPLETED, OUTCOMES
from loadtest.report.stats import LATENCIES, PERCENTILES, RATE_NAMES, rate

FEW_GROUPS = 8  # more groups than this: their order statistics come from one sort, not a query each


def num(column: str) -> str:
    """A column as DOUBLE (what pandas' to_numeric gives)."""
    return f"CAST({quote(column)} AS DOUBLE)"


def double(value: float) -> str:
    """A float as a DuckDB DOUBLE, exactly."""
    return f"CAST('{float(value)!r}' AS DOUBLE)"


def text(column: str) -> str:
    """A column as the string pandas' ``fillna("").astype(str)`` gives."""
    return f"coalesce(CAST({quote(column)} AS VARCHAR), '')"


def not_completed() -> str:
    return f"coalesce({quote('outcome')}, '') <> '{COMPLETED}'"


def linear(lo: np.ndarray, hi: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """numpy's linear interpolation (``numpy.lib._function_base_impl._lerp``), bit for bit."""
    diff = np.subtract(hi, lo)
    out = np.asanyarray(np.add(lo, diff * gamma))
    np.subtract(hi, diff * (1 - gamma), out=out, where=gamma >= 0.5, casting="unsafe", dtype=out.dtype)
    return out


def positions(n: int, qs: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower, upper index, gamma) of numpy's percentiles ``qs`` of ``n`` sorted values."""
    quantiles = np.true_divide(np.asanyarray(qs, dtype=float), 100)
    virtual = (n - 1) * quantiles
    lower = np.floor(virtual)
    upper = lower + 1
    lower[virtual < 0] = 0
    upper[virtual < 0] = 0
    top = virtual >= n - 1
    lower[top] = n - 1
    upper[top] = n - 1
    gamma = np.asanyarray(virtual - np.where(top, -1, lower), dtype=float)
    return lower.astype(np.intp), upper.astype(np.intp), gamma


def _picks(scan: Scan, value: str, where: str, n: int, wanted: list[int], params: list[Any]) -> dict[int, float]:
    """The order statistics of ranks ``wanted`` (0-based) of the ``n`` finite values."""
    fractions = [(k + 0.5) / n for k in wanted]
    got = scan.fetchall(
        f"SELECT quantile_disc(x, ?::DOUBLE[]) FROM (SELECT {value} AS x FROM {{v}} WHERE {where}) WHERE isfinite(x)",
        [fractions, *params],
    )[0][0]
    return dict(zip(wanted, got, strict=True))


def _picks_grouped(scan: Scan, value: str, where: str, group: str, wanted: list[tuple[Any, int]]) -> dict:
    """Order statistics per group by one sort: {(group, rank): value}."""
    keys = pa.table({"g": pa.array([g for g, _ in wanted]), "i": pa.array([i for _, i in wanted], pa.int64())})
    scan.con.register("_wanted", keys)
    try:
        rows = scan.fetchall(
            f"SELECT g, i, x FROM (SELECT g, x, row_number() OVER (PARTITION BY g ORDER BY x) - 1 AS i FROM "
            f"(SELECT {group} AS g, {value} AS x FROM {{v}} WHERE {where}) WHERE isfinite(x)) "
            "JOIN _wanted USING (g, i)"
        )
    finally:
        scan.con.unregister("_wanted")
    return {(g, int(i)): x for g, i, x in rows}


def percentiles_by(
    scan: Scan, value: str, where: str = "true", group: str | None = None, qs: Sequence[float] = PERCENTILES
) -> dict[Any, dict[str, Any]]:
    """{group: {"n", "p<q>"..., "max"}} of the finite values of ``value`` (SQL) in the rows where
    ``where`` holds, per value of ``group`` (SQL; None: one group, key None). Groups without a
    finite value are absent."""
    g = group if group is not None else "NULL"
    counts = scan.fetchall(
        f"SELECT g, count(*), max(x) FROM (SELECT {g} AS g, {value} AS x FROM {{v}} WHERE {where}) "
        "WHERE isfinite(x) GROUP BY g"
    )
    plans = {key: (int(n), mx, positions(int(n), qs)) for key, n, mx in counts}
    if group is None or len(plans) <= FEW_GROUPS:
        found = {}
        for key, (n, _, (lo, hi, _)) in plans.items():
            wanted = sorted({int(i) for i in (*lo, *hi)})
            inside = where if group is None else f"({where}) AND {group} IS NOT DISTINCT FROM ?"
            params = [] if group is None else [key]
            found.update({(key, k): v for k, v in _picks(scan, value, inside, n, wanted, params).items()})
    else:
        wanted_pairs = sorted({(key, int(i)) for key, (_, _, (lo, hi, _)) in plans.items() for i in (*lo, *hi)})
        found = _picks_grouped(scan, value, where, group, wanted_pairs)
    out: dict[Any, dict[str, Any]] = {}
    for key, (n, mx, (lo, hi, gamma)) in plans.items():
        a = np.array([found[(key, int(i))] for i in lo], dtype=float)
        b = np.array([found[(key, int(i))] for i in hi], dtype=float)
        values = linear(a, b, gamma)
        row: dict[str, Any] = {"n": n}
        row.update({f"p{q:g}": float(v) for q, v in zip(qs, values, strict=True)})
        row["max"] = float(mx)
        out[key] = row
    return out


def percentiles_many(
    scan: Scan, specs: dict[str, tuple[str, str]], qs: dict[str, Sequence[float]] | None = None
) -> dict[str, dict[str, Any]]:
    """:func:`percentiles_by` of several values at once, in two scans of the rows: ``specs`` maps a
    label to (value SQL, where SQL), ``qs`` a label to its percentiles (default PERCENTILES)."""
    qs = qs or {}
    inside = {k: f"({w}) AND coalesce(isfinite({v}), false)" for k, (v, w) in specs.items()}
    parts = [f"count(*) FILTER (WHERE {inside[k]}), max({v}) FILTER (WHERE {inside[k]})" for k, (v, _) in specs.items()]
    got = scan.fetchall(f"SELECT {', '.join(parts)} FROM {{v}}")[0] if specs else ()
    plans = {}
    for i, label in enumerate(specs):
        n = int(got[2 * i])
        if n:
            plans[label] = (n, got[2 * i + 1], positions(n, qs.get(label, PERCENTILES)))
    wanted = {k: sorted({int(i) for i in (*lo, *hi)}) for k, (_, _, (lo, hi, _)) in plans.items()}
    picks: dict[str, dict[int, float]] = {}
    if plans:
        aggs = [f"quantile_disc({specs[k][0]}, ?::DOUBLE[]) FILTER (WHERE {inside[k]})" for k in plans]
        params = [[(i + 0.5) / plans[k][0] for i in wanted[k]] for k in plans]
        row = scan.fetchall(f"SELECT {', '.join(aggs)} FROM {{v}}", params)[0]
        picks = {k: dict(zip(wanted[k], row[j], strict=True)) for j, k in enumerate(plans)}
    out = {}
    for label in specs:
        wanted_qs = qs.get(label, PERCENTILES)
        if label not in plans:
            out[label] = empty_percentiles(wanted_qs)
            continue
        n, mx, (lo, hi, gamma) = plans[label]
        a = np.array([picks[label][int(i)] for i in lo], dtype=float)
        b = np.array([picks[label][int(i)] for i in hi], dtype=float)
        row_out: dict[str, Any] = {"n": n}
        row_out.update({f"p{q:g}": float(v) for q, v in zip(wanted_qs, linear(a, b, gamma), strict=True)})
        row_out["max"] = float(mx)
        out[label] = row_out
    return out


def outcome_reasons(scan: Scan, where: str = "true") -> list[tuple[str, str, int, int]]:
    """(outcome, reason, count, first row) of every pair, in one scan: what outcome_counts and
    reason_rows are made of."""
    if not scan.has("outcome"):
        return []
    reason = text("reason") if scan.has("reason") else "''"
    rows = scan.fetchall(
        f"SELECT {text('outcome')} AS o, {reason} AS r, count(*), min(_ord) FROM {{v}} WHERE {where} GROUP BY o, r"
    )
    return [(str(o), str(r), int(n), int(first)) for o, r, n, first in rows]


def counts_of(pairs: list[tuple[str, str, int, int]]) -> dict[str, int]:
    """outcome_counts from :func:`outcome_reasons`."""
    by: dict[str, list[int]] = {}
    for o, _, n, first in pairs:
        got = by.setdefault(o, [0, first])
        got[0] += n
        got[1] = min(got[1], first)
    ranked = sorted(by.items(), key=lambda kv: (-kv[1][0], kv[1][1]))
    counts = {o: n for o, (n, _) in ranked}
    out = {o: counts.get(o, 0) for o in OUTCOMES}
    for name, n in counts.items():
        if name not in out:
            out[name or "(none)"] = n
    return out


def rates_of(pairs: list[tuple[str, str, int, int]], total: int) -> dict[str, dict[str, Any]]:
    """outcome_rates from :func:`outcome_reasons`."""
    counts = counts_of(pairs)
    out = {name: {"count": n, "rate_pct": rate(n, total)} for name, n in counts.items()}
    bad = total - counts.get(COMPLETED, 0)
    out["non_completed"] = {"count": bad, "rate_pct": rate(bad, total)}
    return out


def reasons_of(pairs: list[tuple[str, str, int, int]], total: int) -> list[dict[str, Any]]:
    """reason_rows from :func:`outcome_reasons`."""
    bad = sorted((p for p in pairs if p[0] != COMPLETED), key=lambda p: (-p[2], p[3]))
    return [{"outcome": o, "reason": r or "(none)", "count": n, "rate_pct": rate(n, total)} for o, r, n, _ in bad]


def empty_percentiles(qs: Sequence[float] = PERCENTILES) -> dict[str, Any]:
    return {"n": 0, **{f"p{q:g}": None for q in qs}, "max": None}


def percentiles(scan: Scan, column: str, where: str = "true") -> dict[str, Any]:
    """As ``stats.percentiles`` of one column (n, p50, p90, p95, p99, max)."""
    if not scan.has(column):
        return empty_percentiles()
    return percentiles_by(scan, num(column), where).get(None) or empty_percentiles()


def count(scan: Scan, where: str = "true") -> int:
    return int(scan.fetchall(f"SELECT count(*) FROM {{v}} WHERE {where}")[0][0])


def outcome_counts(scan: Scan, where: str = "true") -> dict[str, int]:
    """As ``stats.outcome_counts``: every known outcome (0 when absent), then any unknown ones."""
    return counts_of(outcome_reasons(scan, where))


def outcome_rates(scan: Scan, where: str = "true", total: int | None = None) -> dict[str, dict[str, Any]]:
    """As ``stats.outcome_rates``: {outcome: {count, rate_pct}} plus ``non_completed``."""
    pairs = outcome_reasons(scan, where)
    return rates_of(pairs, sum(p[2] for p in pairs) if total is None else total)


def reason_rows(scan: Scan, where: str = "true", total: int | None = None) -> list[dict[str, Any]]:
    """As ``stats.reason_rows``: per (outcome, reason) of the non-completed attempts, most frequent
    first (ties in the order they were first seen)."""
    pairs = outcome_reasons(scan, where)
    return reasons_of(pairs, sum(p[2] for p in pairs) if total is None else total)


def extent(scan: Scan, columns: Sequence[str]) -> list[float]:
    """Min and max of each column's finite values (as ``stats.time_span`` gathers them), in one pass
    over the rows, once per scan (html asks for the span in five sections: 0.7 s each at 10M rows)."""
    key = ("extent", tuple(columns))
    if key not in scan.memo:
        cols = [c for c in columns if scan.has(c)] if scan.rows else []
        times: list[float] = []
        if cols:
            parts = ", ".join(
                f"min({num(c)}) FILTER (WHERE isfinite({num(c)})), max({num(c)}) FILTER (WHERE isfinite({num(c)}))"
                for c in cols
            )
            row = scan.fetchall(f"SELECT {parts} FROM {{v}}")[0]
            for lo, hi in zip(row[::2], row[1::2], strict=True):
                if lo is not None:
                    times.extend((float(lo), float(hi)))
        scan.memo[key] = times
    return list(scan.memo[key])


def distinct(scan: Scan, column: str) -> list[str]:
    """As ``summary._distinct``: the column's non-empty values, sorted."""
    if not scan.has(column):
        return []
    rows = scan.fetchall(f"SELECT DISTINCT CAST({quote(column)} AS VARCHAR) FROM {{v}} WHERE {quote(column)} <> ''")
    return sorted(str(r[0]) for r in rows)


def group_keys(scan: Scan, by: str) -> list[str]:
    """The values of ``by`` as pandas groups them (``fillna("").astype(str)``, sorted)."""
    return sorted(str(r[0]) for r in scan.fetchall(f"SELECT DISTINCT {text(by)} FROM {{v}}"))


def group_rows(scan: Scan, by: str, whole: tuple[dict, dict] | None = None) -> list[dict[str, Any]]:
    """As ``stats.group_rows``: per value of ``by``, attempts, outcome rates, ttfa/done p50 and p95.
    ``whole``: the run's outcome rates and {"ttfa", "done"} percentiles, used when there is one group."""
    if not scan.rows or not scan.has(by):
        return []
    key = text(by)
    keys = group_keys(scan, by)
    if len(keys) == 1 and whole is not None:  # one group: the whole run's figures
        lat_all = whole[1]
        lat = {label: {keys[0]: lat_all[label]} for label in ("ttfa", "done")}
    else:
        lat = {label: percentiles_by(scan, num(LATENCIES[label][1]), group=key) for label in ("ttfa", "done")}
    out = []
    for value in keys:
        where = f"{key} = '" + value.replace("'", "''") + "'"
        if len(keys) == 1 and whole is not None:
            total, rates = scan.rows, whole[0]
        else:
            pairs = outcome_reasons(scan, where)
            total = sum(p[2] for p in pairs)
            rates = rates_of(pairs, total)
        row: dict[str, Any] = {by: value or "(none)", "responses": total}
        for name in RATE_NAMES:
            row[f"{name}_pct"] = rates[name]["rate_pct"]
        for label in ("ttfa", "done"):
            pct = lat[label].get(value) or empty_percentiles()
            row[f"{label}_p50"] = pct["p50"]
            row[f"{label}_p95"] = pct["p95"]
        out.append(row)
    return out
