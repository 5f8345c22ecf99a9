"""Intervals and trend tests behind the verdicts, against hand-worked values, scipy and simulation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from loadtest.report import confidence as ci
from loadtest.report.trend import cochran_armitage, holm, reason_trends

Z95 = 1.959963984540054


def test_wilson_hand_worked() -> None:
    # 0 of 15: the upper end is z^2 / (n + z^2) (the "up to about 20%")
    lo, hi = ci.wilson(0, 15)
    assert lo == 0.0 and hi == pytest.approx(Z95**2 / (15 + Z95**2)) and hi == pytest.approx(0.2039, abs=1e-4)
    # 5 of 10: the textbook [0.237, 0.763]
    assert ci.wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)


@pytest.mark.parametrize(("k", "n", "conf"), [(0, 15, 0.95), (3, 40, 0.95), (17, 200, 0.9), (199, 200, 0.99)])
def test_wilson_matches_scipy(k: int, n: int, conf: float) -> None:
    expected = sps.binomtest(k, n).proportion_ci(confidence_level=conf, method="wilson")
    assert ci.wilson(k, n, conf) == pytest.approx((expected.low, expected.high), abs=1e-9)


def test_wilson_covers_the_true_rate_about_95_percent() -> None:
    rng = np.random.default_rng(7)
    covered = trials = 0
    for n in (20, 50, 200, 1000):
        for p in (0.01, 0.05, 0.2, 0.5):
            ks = rng.binomial(n, p, 2000)
            for k in ks:
                lo, hi = ci.wilson(int(k), n)
                covered += lo <= p <= hi
                trials += 1
    assert 0.93 < covered / trials < 0.97


def test_order_statistic_interval_hand_worked() -> None:
    # the median of 10 values: [x(2), x(9)], the classic table entry (coverage 97.9%)
    values = np.arange(10, 110, 10, dtype=float)  # 10, 20, ..., 100
    assert ci.percentile_interval(values, 0.5) == (20.0, 90.0)
    # a p99 from 100 values cannot be bounded from above
    lo, hi = ci.percentile_interval(np.arange(100, dtype=float), 0.99)
    assert math.isinf(hi) and lo < 99


def test_order_statistic_interval_covers_the_true_quantile() -> None:
    rng = np.random.default_rng(3)
    for q, n in ((0.5, 30), (0.95, 200), (0.99, 1000)):
        true = -math.log(1 - q)  # exponential(1)
        hits = sum(
            lo <= true <= hi for lo, hi in (ci.percentile_interval(rng.exponential(size=n), q) for _ in range(1500))
        )
        assert 0.94 <= hits / 1500 <= 0.995, (q, n, hits)  # distribution-free: at least 95%, a bit over


def test_more_to_decide_zero_of_fifteen() -> None:
    # 0 failures stays 0: Wilson's upper end z^2/(n+z^2) < 1% once n > 99 z^2 = 380.3, so n = 381
    assert ci.rate_more_to_decide(0, 15, lambda v: v < 1.0) == 381 - 15
    # an estimate on the threshold never decides
    assert ci.rate_more_to_decide(1, 100, lambda v: v < 1.0) is None


def test_judge_uses_the_whole_interval() -> None:
    below = lambda v: v < 5.0  # noqa: E731
    assert ci.judge(below, 1.0, 4.9) == ci.MET
    assert ci.judge(below, 5.0, 9.0) == ci.BROKEN
    assert ci.judge(below, 3.0, 7.0) == ci.INCONCLUSIVE
    assert ci.judge(below, -math.inf, 4.0) == ci.MET
    assert ci.judge(below, 4.0, math.inf) == ci.INCONCLUSIVE


@pytest.mark.parametrize(("text", "value"), [("0.9", 0.9), ("95", 0.95), ("99%", 0.99)])
def test_parse_confidence(text: str, value: float) -> None:
    assert ci.parse_confidence(text) == pytest.approx(value)


@pytest.mark.parametrize("bad", ["high", "0.3", "100%", "-1"])
def test_parse_confidence_refuses(bad: str) -> None:
    with pytest.raises(ValueError, match="confidence"):
        ci.parse_confidence(bad)


def test_cochran_armitage_hand_worked() -> None:
    # 0/10 at load 1, 5/10 at load 2: p = 0.25, T = -2.5 + 5 = 2.5, spread = 50 - 900/20 = 5,
    # var = 0.25 * 0.75 * 5 = 0.9375, Z = 2.5 / sqrt(0.9375) = 2.582
    z, p = cochran_armitage(np.array([0, 5]), np.array([10, 10]), np.array([1, 2]))
    assert z == pytest.approx(2.5 / math.sqrt(0.9375))
    assert p == pytest.approx(0.00982, abs=5e-5)


def test_cochran_armitage_is_n_r_squared() -> None:
    # Z^2 = N r^2, r = Pearson correlation of the 0/1 outcome with the load over every attempt
    counts, totals, scores = np.array([2, 3, 9, 14]), np.array([60, 80, 90, 70]), np.array([4, 8, 12, 16])
    y = np.concatenate([np.r_[np.ones(k), np.zeros(n - k)] for k, n in zip(counts, totals, strict=True)])
    x = np.repeat(scores, totals)
    r = np.corrcoef(x, y)[0, 1]
    z, _ = cochran_armitage(counts, totals, scores)
    assert z**2 == pytest.approx(totals.sum() * r**2)
    assert cochran_armitage(np.array([1, 2]), np.array([10, 10]), np.array([5, 5])) is None


def test_holm_hand_worked() -> None:
    # sorted 0.01, 0.02, 0.04 -> 3*0.01, max(0.03, 2*0.02), max(0.04, 1*0.04)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])


def _frame(load_counts: dict[str, int], n: int) -> pd.DataFrame:
    rows = []
    for reason, k in load_counts.items():
        outcome = "failed" if reason == "server_error" else "truncated"
        rows += [{"outcome": outcome, "reason": reason}] * k
    rows += [{"outcome": "completed", "reason": ""}] * (n - len(rows))
    return pd.DataFrame(rows)


def test_reason_trends_rising_and_flat() -> None:
    groups = [
        (4, _frame({"server_error": 1, "text_only": 5}, 100)),
        (8, _frame({"server_error": 6, "text_only": 4}, 100)),
        (12, _frame({"server_error": 20, "text_only": 6}, 100)),
    ]
    d = reason_trends(groups)
    by = {t["reason"]: t for t in d["reasons"]}
    assert by["server_error"]["trend"] == "rises" and by["server_error"]["p_adjusted"] < 0.001
    assert by["server_error"]["rate_first_pct"] == 1.0 and by["server_error"]["rate_last_pct"] == 20.0
    assert by["text_only"]["trend"] == "flat" and by["text_only"]["p_adjusted"] > 0.5
    assert "server_error (failed) 1.0% at 4 users -> 20.0% at 12 users, rises with load, p < 0.001" in [
        t["words"] for t in d["reasons"]
    ]
    assert reason_trends(groups[:1])["reasons"] == []
