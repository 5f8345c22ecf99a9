"""Reports aggregated in DuckDB over a run's scan (issue 18): exact percentiles equal to numpy's,
the scan holding every row once in the reader's order, and every scanned report equal to the
same report computed in pandas on the same rows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from loadtest.records import rolling, scan, segments
from loadtest.records.reader import open_scan, read_run
from loadtest.records.schema import RESPONSES_FILE, ResponseRecord, columns
from loadtest.report import scanstats
from loadtest.report.compare import build_compare
from loadtest.report.failures import build_failures, failed_responses, select_failures
from loadtest.report.render import render
from loadtest.report.soak import RESPONSE_COLUMNS as SOAK_COLUMNS
from loadtest.report.soak import build_soak
from loadtest.report.summary import RESPONSE_COLUMNS, SESSION_COLUMNS, build_summary
from tests.report.synth import SynthRun, ramp_run


def _scan_of(values: dict[str, list]) -> scan.Scan:
    table = pa.table(values)
    con = scan.connect()
    found = scan.Scan(con, table.schema, table.num_rows)
    scan.build_view(con, table.schema, [], [(0, table)])
    return found


@pytest.mark.parametrize("seed", range(12))
def test_percentiles_equal_numpy_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    x = rng.gamma(2.0, 300.0, n)
    if seed % 3 == 0:
        x = np.round(x, 0)  # many ties
    x[rng.uniform(size=n) < 0.05] = np.nan
    got = scanstats.percentiles_by(_scan_of({"x": x}), "x", qs=(50, 90, 95, 99, 99.9, 0, 100, 33.3))[None]
    finite = x[np.isfinite(x)]
    for q in (50, 90, 95, 99, 99.9, 0, 100, 33.3):
        assert got[f"p{q:g}"] == float(np.percentile(finite, q)), q  # equal, not close
    assert got["n"] == finite.size and got["max"] == finite.max()


@pytest.mark.parametrize("groups", [3, 40])  # a query per group, and one sort for many groups
def test_grouped_percentiles_equal_numpy_per_group(groups: int) -> None:
    rng = np.random.default_rng(groups)
    n = 5000
    g = rng.integers(0, groups, n)
    x = rng.lognormal(6, 0.5, n)
    got = scanstats.percentiles_by(_scan_of({"x": x, "g": g}), "x", group="g", qs=(50, 95))
    assert sorted(got) == sorted(set(g.tolist()))
    for key, row in got.items():
        part = x[g == key]
        assert row["n"] == part.size
        assert row["p50"] == float(np.percentile(part, 50)) and row["p95"] == float(np.percentile(part, 95))


def test_numpy_linear_positions_match_numpy_on_tiny_arrays() -> None:
    for n in range(1, 12):
        values = np.sort(np.random.default_rng(n).normal(size=n))
        lo, hi, gamma = scanstats.positions(n, [0, 10, 25, 50, 66.6, 95, 99, 100])
        got = scanstats.linear(values[lo], values[hi], gamma)
        np.testing.assert_array_equal(got, np.percentile(values, [0, 10, 25, 50, 66.6, 95, 99, 100]))


def _rolled(src: SynthRun | Path, dst: Path, roll_bytes: int = 60_000) -> Path:
    """A copy of a run whose responses are rolled into segments (the last piece left as JSONL,
    one rolled piece left unconverted), as a long run leaves them."""
    src = src.path if isinstance(src, SynthRun) else src
    shutil.copytree(src, dst)
    path = dst / RESPONSES_FILE
    lines = path.read_bytes().splitlines(keepends=True)
    pieces, piece, size = [], [], 0
    for line in lines:
        piece.append(line)
        size += len(line)
        if size >= roll_bytes:
            pieces.append(piece)
            piece, size = [], 0
    path.write_bytes(b"".join(piece))
    live = path.read_bytes()
    for i, chunk in enumerate(pieces, start=1):
        path.write_bytes(b"".join(chunk))
        rolled = segments.roll(path, i)
        if i != 2:  # the second stays a rolled JSONL (a conversion not done yet)
            rolling.convert(rolled, ResponseRecord)
    path.write_bytes(live)
    return dst


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("scan")
    plain = ramp_run(base / "ramp").path
    return plain, _rolled(plain, base / "ramp-rolled")


def test_the_scan_holds_every_row_once_in_the_readers_order(runs) -> None:
    plain, rolled = runs
    assert len(segments.parts(rolled / RESPONSES_FILE)) >= 3
    assert any(not p.is_segment for p in segments.parts(rolled / RESPONSES_FILE))
    expected = read_run(plain, response_columns=["response_id"]).responses["response_id"].fillna("").tolist()
    for run in (plain, rolled):
        found, torn = open_scan(run / RESPONSES_FILE, ResponseRecord, ["response_id"], [])
        got = [r[0] or "" for r in found.fetchall("SELECT response_id FROM {v} ORDER BY _ord")]
        assert got == expected and found.rows == len(expected) and not torn


def _json(report) -> str:
    return render(report, "json")


def _both(run: Path, cols: list[str], **kw):
    pandas_side = read_run(run, response_columns=cols, **kw)
    scanned_side = read_run(run, scan_responses=cols, **kw)
    assert scanned_side.scan is not None and scanned_side.responses.empty
    return pandas_side, scanned_side


def test_scanned_summary_equals_the_pandas_summary(runs) -> None:
    for run in runs:
        a, b = _both(run, RESPONSE_COLUMNS, session_columns=SESSION_COLUMNS)
        assert _json(build_summary(a)) == _json(build_summary(b))
        assert json.loads(_json(build_summary(b)))["run"]["responses"] == len(a.responses)


def test_scanned_soak_equals_the_pandas_soak(runs) -> None:
    for run in runs:
        a, b = _both(run, SOAK_COLUMNS, with_rate_limits=False)
        for seconds in (30.0, 60.0, 7.0):
            assert _json(build_soak(a, seconds)) == _json(build_soak(b, seconds))


def test_scanned_compare_equals_the_pandas_compare(runs) -> None:
    plain, rolled = runs
    cols = [*RESPONSE_COLUMNS, "provider", "model_class"]
    a1, a2 = _both(plain, cols, session_columns=SESSION_COLUMNS)
    b1, b2 = _both(rolled, cols, session_columns=SESSION_COLUMNS)
    assert _json(build_compare(a1, b1)) == _json(build_compare(a2, b2))


def test_scanned_failures_select_the_same_rows(runs) -> None:
    for run in runs:
        a = read_run(run, response_where=failed_responses())
        b = read_run(run, scan_responses=columns(ResponseRecord))
        select_failures(b)
        assert len(b.responses) == len(a.responses) > 0
        assert _json(build_failures(a, secrets=[])) == _json(build_failures(b, secrets=[]))


def test_a_segment_without_a_column_reads_it_as_empty(tmp_path) -> None:
    path = tmp_path / RESPONSES_FILE
    old = pa.table({"run_id": ["r", "r"], "outcome": ["completed", "failed"], "schema_version": [1, 1]})
    (tmp_path / "responses.segments").mkdir()
    segments.write_segment(old, segments.segment_path(path, 1))
    path.write_bytes(b'{"run_id": "r", "outcome": "completed", "ttfa_ms": 5.0, "schema_version": 1}\n')
    found, _ = open_scan(path, ResponseRecord, ["outcome", "ttfa_ms"], [])
    assert found.fetchall("SELECT outcome, ttfa_ms FROM {v} ORDER BY _ord") == [
        ("completed", None),
        ("failed", None),
        ("completed", 5.0),
    ]
    assert scanstats.percentiles(found, "ttfa_ms")["p50"] == 5.0


@pytest.mark.parametrize("seed", range(8))
def test_rank_sum_mann_whitney_equals_scipy_on_all_values(seed: int) -> None:
    from scipy import stats

    from loadtest.report.compare import mannwhitney_p

    rng = np.random.default_rng(seed)
    na, nb = (int(x) for x in rng.integers(1, 4000, 2)) if seed else (5, 3000)  # seed 0: a small side (scipy's exact)
    a, b = rng.gamma(3.0, 100.0, na), rng.gamma(3.0, 100.0 + 5 * seed, nb)
    if seed % 2:
        a, b = np.round(a, 0), np.round(b, 0)  # many ties, across the runs too
    xa, ca = np.unique(a, return_counts=True)
    xb, cb = np.unique(b, return_counts=True)
    assert mannwhitney_p(xa, ca, xb, cb) == stats.mannwhitneyu(a, b, alternative="two-sided").pvalue  # equal


def test_scanned_latency_shift_draws_the_same_bootstrap_rows_as_numpy() -> None:
    from loadtest.report.compare import BOOT_MAX, ScannedValues, shift_row

    rng = np.random.default_rng(3)
    sides = []
    for shift in (0.0, 20.0):
        x = np.round(rng.gamma(4.0, 80.0, BOOT_MAX + 5000) + shift, 2)
        x[rng.uniform(size=x.size) < 0.03] = np.nan  # positions count the finite values only
        sides.append((x[np.isfinite(x)], ScannedValues(_scan_of({"x": x}), "x")))
    (a, sa), (b, sb) = sides
    assert sa.size > BOOT_MAX and sb.size > BOOT_MAX
    assert shift_row("ttfa", sa, sb) == shift_row("ttfa", a, b)  # equal: the same draws, the same test


@pytest.mark.parametrize("seed", range(6))
def test_percentiles_from_distinct_value_counts_equal_numpy(seed: int) -> None:
    from loadtest.report.compare import ScannedValues

    rng = np.random.default_rng(seed)
    x = rng.gamma(2.0, 300.0, int(rng.integers(1, 2000)))
    x = np.round(x, 0) if seed % 2 else x
    x[rng.uniform(size=x.size) < 0.05] = np.nan
    got, finite = ScannedValues(_scan_of({"x": x}), "x"), x[np.isfinite(x)]
    if not finite.size:
        return
    assert got.size == finite.size
    for q in (0, 1, 50, 95, 99.9, 100):
        assert got.percentile(q) == float(np.percentile(finite, q)), q  # equal, not close


def test_one_set_of_resamples_gives_each_percentiles_own_interval() -> None:
    from loadtest.report.compare import bootstrap_shift_ci, bootstrap_shift_cis

    rng = np.random.default_rng(8)
    a, b = np.round(rng.gamma(3, 100, 900), 2), np.round(rng.gamma(3, 110, 1100), 2)
    assert bootstrap_shift_cis(a, b, (50, 95)) == {q: bootstrap_shift_ci(a, b, q) for q in (50, 95)}


@pytest.mark.parametrize("share", [0.02, 0.5, 0.97])  # few rows hold, half, nearly all (the other branch)
def test_ords_at_finds_the_rows_at_positions_among_those_that_hold(share: float) -> None:
    rng = np.random.default_rng(int(share * 100))
    tables = [pa.table({"x": np.where(rng.uniform(size=n) < share, 1.0, np.nan)}) for n in (300, 1, 700, 450)]
    con = scan.connect()
    found = scan.Scan(con, tables[0].schema, sum(t.num_rows for t in tables))
    scan.build_view(con, tables[0].schema, [], [(pos, t) for pos, t in zip((0, 2, 3, 7), tables, strict=True)])
    ords = np.array([o for (o,) in found.fetchall("SELECT _ord FROM {v} ORDER BY _ord")])
    holds = np.array([x == x for (x,) in found.fetchall("SELECT x FROM {v} ORDER BY _ord")])  # not NaN
    expected = ords[holds]
    positions = rng.permutation(expected.size)[: max(1, expected.size // 3)]
    got = scan.ords_at(found, "isfinite(x)", positions)
    np.testing.assert_array_equal(got, expected[positions])


def test_scanned_capacity_equals_the_pandas_capacity(runs, tmp_path) -> None:
    from loadtest.report.capacity import RESPONSE_COLUMNS as CAPACITY_COLUMNS
    from loadtest.report.capacity import SESSION_COLUMNS as CAPACITY_SESSIONS
    from loadtest.report.capacity import build_capacity
    from loadtest.report.slo import parse_slo

    unstepped = ramp_run(tmp_path / "no-steps", with_step=False).path  # concurrency buckets: its rows in pandas
    clauses = parse_slo("failed<5%,ttfa_p95<1200ms")
    for run in (*runs, unstepped):
        a = read_run(run, response_columns=CAPACITY_COLUMNS, session_columns=CAPACITY_SESSIONS, compact=True)
        b = read_run(run, scan_responses=CAPACITY_COLUMNS, session_columns=CAPACITY_SESSIONS, compact=True)
        assert b.scan is not None and b.responses.empty
        for buckets in (10, 3):
            want = _json(build_capacity(a, clauses, "s", buckets=buckets))
            assert _json(build_capacity(b, clauses, "s", buckets=buckets)) == want
            assert json.loads(want)["rows"]


def test_scanned_limits_equal_the_pandas_limits(runs) -> None:
    from loadtest.report.limits import RESPONSE_COLUMNS as LIMITS_COLUMNS
    from loadtest.report.limits import build_limits

    for run in runs:
        a = read_run(run, response_columns=LIMITS_COLUMNS, compact=True)
        b = read_run(run, scan_responses=LIMITS_COLUMNS, compact=True)
        want = _json(build_limits(a))
        assert _json(build_limits(b)) == want
        d = json.loads(want)
        assert d["tokens_per_minute"]["minutes"] > 1 and d["throttling"]["rate_limit_exceeded"] > 0


def test_the_scanned_page_equals_the_pandas_page(runs, monkeypatch) -> None:
    import re

    import matplotlib

    from loadtest.report import html
    from loadtest.report.slo import parse_slo

    monkeypatch.setitem(matplotlib.rcParams, "svg.hashsalt", "rtload")  # the SVG ids, else random
    clauses = parse_slo("failed<1%,ttfa_p95<1200ms")
    for run in runs[1:]:  # the rolled run (segments, a rolled piece, the live file): ~4 s a run
        a = read_run(run, response_columns=html.RESPONSE_COLUMNS, compact=True)
        b = read_run(run, scan_responses=html.RESPONSE_COLUMNS, session_columns=html.SESSION_COLUMNS, compact=True)
        assert b.scan is not None and not len(b.responses.columns)  # every plot fetches its own columns
        assert len(b.sessions.columns) < len(a.sessions.columns)  # the page's sessions: only what it reads
        pages = [re.sub(r"generated [^·]*·", "", html.build_html(d, clauses, "s")) for d in (a, b)]
        assert pages[0] == pages[1] and pages[0].count("<svg") >= 6
