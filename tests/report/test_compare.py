"""`rtload report compare`: rate differences with Fisher's exact test, latency shifts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from loadtest.records.schema import ResponseRecord
from tests.report.synth import T0, write_run


def _run(path, n: int, failed: int, ttfa_median: float, seed: int):
    rng = np.random.default_rng(seed)
    ttfa = ttfa_median * rng.lognormal(0, 0.3, n)
    responses = [
        ResponseRecord(
            run_id=path.name,
            outcome="failed" if i < failed else "completed",
            reason="server_error" if i < failed else "",
            t_trigger=T0 + i,
            ttfa_ms=float(ttfa[i]),
            done_ms=float(ttfa[i] + 2000),
        )
        for i in range(n)
    ]
    return write_run(path, responses), ttfa


def test_outcome_differences_and_significance(tmp_path, cli) -> None:
    (a, ta), (b, tb) = _run(tmp_path / "a", 400, 4, 600, 1), _run(tmp_path / "b", 300, 21, 800, 2)
    d = cli.json("compare", a.path, b.path)
    failed = next(r for r in d["outcomes"] if r["outcome"] == "failed")
    assert failed["a_count"] == 4 and failed["b_count"] == 21
    assert failed["diff_pp"] == pytest.approx(100 * 21 / 300 - 100 * 4 / 400)
    expected_p = stats.fisher_exact([[4, 396], [21, 279]]).pvalue
    assert failed["fisher_p"] == pytest.approx(expected_p)
    assert failed["significant"] is True and expected_p < 0.05
    cancelled = next(r for r in d["outcomes"] if r["outcome"] == "cancelled")
    assert cancelled["fisher_p"] == pytest.approx(1.0) and cancelled["significant"] is False
    ttfa = next(r for r in d["latency_ms"] if r["metric"] == "ttfa")
    assert ttfa["shift_p50"] == pytest.approx(np.percentile(tb, 50) - np.percentile(ta, 50))
    assert ttfa["shift_p95"] == pytest.approx(np.percentile(tb, 95) - np.percentile(ta, 95))
    assert ttfa["mannwhitney_p"] == pytest.approx(stats.mannwhitneyu(ta, tb, alternative="two-sided").pvalue)
    lo, hi = ttfa["shift_p50_ci95"]
    assert lo < ttfa["shift_p50"] < hi and lo > 0  # B is clearly slower
    text = cli("compare", a.path, b.path).stdout
    assert f"{100 * 21 / 300 - 100 * 4 / 400:+.2f}" in text
    assert f"{expected_p:.2g}" in text


def test_same_distribution_is_not_significant(tmp_path, cli) -> None:
    (a, _), (b, _) = _run(tmp_path / "a", 300, 6, 600, 3), _run(tmp_path / "b", 300, 6, 600, 4)
    d = cli.json("compare", a.path, b.path)
    assert not any(r["significant"] for r in d["outcomes"])
    ttfa = next(r for r in d["latency_ms"] if r["metric"] == "ttfa")
    lo, hi = ttfa["shift_p50_ci95"]
    assert lo < 0 < hi or ttfa["mannwhitney_p"] > 0.01
