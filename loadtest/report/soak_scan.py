"""The soak report's windows computed in DuckDB over a run's scan (``soak._window_rows``'s twin).

Windows are cut as ``soak.window_index`` cuts them (the same floating-point steps, in SQL);
per window the counts and the exact percentiles come from DuckDB, and the drift test's values
(the first and the last window's, a bounded number) are fetched in the rows' order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from loadtest.records.scan import Scan
from loadtest.report import scanstats
from loadtest.report.scanned import column
from loadtest.report.scanstats import double, num
from loadtest.report.stats import finite, rate


def window_sql(scan: Scan, start: float, seconds: float) -> str:
    """The SQL of a row's window index (``soak.window_index``: a last window shorter than half a
    window is merged into the one before it)."""
    t = num("t_trigger")
    raw = f"greatest(CAST(floor(({t} - {double(start)}) / {double(seconds)}) AS BIGINT), 0)"
    last, t_max = scan.fetchall(f"SELECT max({raw}), max({t}) FROM {{v}} WHERE isfinite({t})")[0]
    if last is not None and last > 0 and (t_max - (start + last * seconds)) < seconds / 2:
        return f"(CASE WHEN {raw} = {int(last)} THEN {int(last) - 1} ELSE {raw} END)"
    return raw


def scan_windows(
    scan: Scan, start: float, seconds: float
) -> tuple[list[dict[str, Any]], Callable[[int, str], np.ndarray]]:
    """The windows' rows, and a function giving a window's finite values of a column."""
    t = num("t_trigger")
    have = f"isfinite({t})"
    w = window_sql(scan, start, seconds)
    counts = scan.fetchall(
        f"SELECT {w} AS k, count(*), count_if({scanstats.not_completed()}), "
        f"count_if(coalesce(outcome, '') = 'failed') FROM {{v}} WHERE {have} GROUP BY k ORDER BY k"
    )
    lat = {col: scanstats.percentiles_by(scan, num(col), have, group=w, qs=(50, 95)) for col in ("ttfa_ms", "done_ms")}
    rows = []
    for k, n, bad, failed in counts:
        n = int(n)
        row: dict[str, Any] = {
            "window": int(k),
            "from_s": int(k) * seconds,
            "responses": n,
            "non_completed": int(bad),
            "non_completed_pct": rate(int(bad), n),
            "failed_pct": rate(int(failed), n),
        }
        for label, col in (("ttfa", "ttfa_ms"), ("done", "done_ms")):
            got = lat[col].get(k)
            row[f"{label}_p50"] = got["p50"] if got else None
            row[f"{label}_p95"] = got["p95"] if got else None
        rows.append(row)

    def values(k: int, col: str) -> np.ndarray:
        return finite(column(scan, num(col), f"{have} AND {w} = {int(k)}"))

    return rows, values
