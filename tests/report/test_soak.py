"""`rtload report soak`: windows and drift detection."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from loadtest.records.schema import ResponseRecord
from loadtest.report.soak import parse_window
from tests.report.synth import T0, write_run

WINDOW_S = 300
PER_WINDOW = 120


def _soak(path, fail_per_window: list[int], ttfa_medians: list[float], seed: int = 5):
    rng = np.random.default_rng(seed)
    responses = []
    for w, (fails, median) in enumerate(zip(fail_per_window, ttfa_medians, strict=True)):
        t = T0 + w * WINDOW_S + np.sort(rng.uniform(0, WINDOW_S, PER_WINDOW))
        for i in range(PER_WINDOW):
            bad = i % (PER_WINDOW // fails) == 0 if fails else False
            responses.append(
                ResponseRecord(
                    run_id=path.name,
                    outcome="failed" if bad else "completed",
                    reason="server_error" if bad else "",
                    t_trigger=float(t[i]),
                    ttfa_ms=float(median * rng.lognormal(0, 0.2)),
                    done_ms=float(median * 4 * rng.lognormal(0, 0.2)),
                )
            )
    run = {"run_id": path.name, "t_start": T0, "t_end": T0 + len(fail_per_window) * WINDOW_S}
    return write_run(path, responses, run=run)


def test_windows_match_numpy_and_drift_is_detected(tmp_path, cli) -> None:
    run = _soak(tmp_path / "drifting", [1, 2, 3, 6, 12, 20], [500, 520, 560, 640, 760, 900])
    d = cli.json("soak", run.path)
    assert d["window_s"] == 300 and len(d["windows"]) == 6
    for w, row in enumerate(d["windows"]):
        rows = [r for r in run.responses if T0 + w * WINDOW_S <= r.t_trigger < T0 + (w + 1) * WINDOW_S]
        assert row["responses"] == len(rows)
        assert row["non_completed_pct"] == pytest.approx(100 * sum(r.outcome != "completed" for r in rows) / len(rows))
        assert row["ttfa_p95"] == pytest.approx(np.percentile([r.ttfa_ms for r in rows], 95))
    first = [r for r in run.responses if r.t_trigger < T0 + WINDOW_S]
    last = [r for r in run.responses if r.t_trigger >= T0 + 5 * WINDOW_S]
    k0, k1 = sum(r.outcome != "completed" for r in first), sum(r.outcome != "completed" for r in last)
    p = stats.fisher_exact([[k0, len(first) - k0], [k1, len(last) - k1]]).pvalue
    nc = d["drift"]["non_completed"]
    assert nc["fisher_p"] == pytest.approx(p) and p < 0.01
    assert nc["drift"] is True and nc["trend_rho"] == pytest.approx(1.0)
    mw = stats.mannwhitneyu([r.ttfa_ms for r in first], [r.ttfa_ms for r in last], alternative="two-sided").pvalue
    assert d["drift"]["ttfa"]["mannwhitney_p"] == pytest.approx(mw)
    assert d["drift"]["ttfa"]["drift"] is True
    text = cli("soak", run.path).stdout
    assert "Failure-rate drift: YES" in text and "ttfa latency drift: YES" in text


def test_stable_run_has_no_drift(tmp_path, cli) -> None:
    run = _soak(tmp_path / "stable", [2] * 6, [500] * 6)
    d = cli.json("soak", run.path)
    assert d["drift"]["non_completed"]["fisher_p"] == pytest.approx(1.0)
    assert d["drift"]["non_completed"]["drift"] is False
    assert d["drift"]["ttfa"]["drift"] is False
    ten = cli.json("soak", run.path, "--window", "10m")
    assert len(ten["windows"]) == 3 and ten["windows"][0]["responses"] == 2 * PER_WINDOW


def test_window_option() -> None:
    assert parse_window("5m") == 300 and parse_window("30s") == 30 and parse_window("1h") == 3600
    assert parse_window("2") == 120
    for bad in ("", "five", "0m", "-1m"):
        with pytest.raises(ValueError, match=r"write e\.g\. 30s, 5m or 1h"):
            parse_window(bad)


def test_short_run_says_drift_needs_two_windows(tmp_path, cli) -> None:
    run = _soak(tmp_path / "short", [1], [500])
    assert "at least 2 are needed" in cli("soak", run.path).stdout
    result = cli("soak", run.path, "--window", "soon", code=2)
    assert "cannot read window 'soon'" in result.stderr


def _windows(run, n: int) -> list[list]:
    return [[r for r in run.responses if T0 + w * WINDOW_S <= r.t_trigger < T0 + (w + 1) * WINDOW_S] for w in range(n)]


def test_done_drift_and_the_trends(tmp_path, cli) -> None:
    run = _soak(tmp_path / "drifting", [1, 2, 3, 6, 12, 20], [500, 520, 560, 640, 760, 900])
    windows = _windows(run, 6)
    d = cli.json("soak", run.path)
    for row, rows in zip(d["windows"], windows, strict=True):
        done = np.array([r.done_ms for r in rows])
        assert row["done_p50"] == pytest.approx(np.median(done))
        assert row["done_p95"] == pytest.approx(np.percentile(done, 95))
        assert row["ttfa_p50"] == pytest.approx(np.median([r.ttfa_ms for r in rows]))
        assert row["failed_pct"] == pytest.approx(100 * sum(r.outcome == "failed" for r in rows) / len(rows))
    first = np.array([r.done_ms for r in windows[0]])
    last = np.array([r.done_ms for r in windows[-1]])
    done = d["drift"]["done"]
    assert done["first_p50"] == pytest.approx(np.median(first))
    assert done["last_p50"] == pytest.approx(np.median(last))
    mw = stats.mannwhitneyu(first, last, alternative="two-sided").pvalue
    assert done["mannwhitney_p"] == pytest.approx(mw)
    assert done["drift"] is bool(mw < 0.01 and np.median(last) >= 1.1 * np.median(first)) is True
    order = np.arange(6)
    for label, col in (("ttfa", "ttfa_ms"), ("done", "done_ms")):
        p95 = [np.percentile([getattr(r, col) for r in rows], 95) for rows in windows]
        trend = stats.spearmanr(order, p95)
        assert d["drift"][label]["trend_rho"] == pytest.approx(trend.statistic)
        assert d["drift"][label]["trend_p"] == pytest.approx(trend.pvalue, abs=1e-12)
    rates = [100 * sum(r.outcome != "completed" for r in rows) / len(rows) for rows in windows]
    trend = stats.spearmanr(order, rates)
    assert d["drift"]["non_completed"]["trend_rho"] == pytest.approx(trend.statistic)
    assert d["drift"]["non_completed"]["trend_p"] == pytest.approx(trend.pvalue, abs=1e-12)
    done_p95 = [np.percentile([r.done_ms for r in rows], 95) for rows in windows]
    assert stats.spearmanr(order, done_p95).statistic == pytest.approx(1.0)  # a whole number prints bare
    text = cli("soak", run.path).stdout
    line = next(line for line in text.splitlines() if line.startswith("done latency drift"))
    assert line == (
        f"done latency drift: YES (median first {np.median(first):.1f} ms, last {np.median(last):.1f} ms, "
        f"Mann-Whitney p = {mw:.2g}; p95 trend rho = 1)"
    )


def test_a_flat_failure_rate_has_no_trend(tmp_path, cli) -> None:
    run = _soak(tmp_path / "stable", [2] * 6, [500] * 6)
    windows = _windows(run, 6)
    d = cli.json("soak", run.path)
    nc = d["drift"]["non_completed"]
    assert nc["trend_rho"] is None and nc["trend_p"] is None  # every window at 2/120
    assert "trend rho = -)" in cli("soak", run.path).stdout
    p95 = [np.percentile([r.done_ms for r in rows], 95) for rows in windows]
    trend = stats.spearmanr(np.arange(6), p95)
    assert d["drift"]["done"]["trend_p"] == pytest.approx(trend.pvalue)
    first, last = (np.array([r.done_ms for r in windows[i]]) for i in (0, -1))
    assert d["drift"]["done"]["mannwhitney_p"] == pytest.approx(
        stats.mannwhitneyu(first, last, alternative="two-sided").pvalue
    )
    assert d["drift"]["done"]["drift"] is False
