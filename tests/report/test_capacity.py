"""`rtload report capacity`: per-step figures, the SLO grammar, the knee and why."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from loadtest.report.slo import SloError, parse_slo
from tests.report.synth import RAMP_STEP_S, ramp_run


def _wilson_pct(k: int, n: int, conf: float = 0.95) -> tuple[float, float]:
    got = sps.binomtest(k, n).proportion_ci(confidence_level=conf, method="wilson")
    return 100 * got.low, 100 * got.high


def _quantile_interval(values: np.ndarray, q: float, conf: float = 0.95) -> tuple[float, float]:
    """By the definition: the widest ranks l, u with P(B < l) < a/2 and P(B >= u) <= a/2, B ~ Bin(n, q)."""
    x, n, a = np.sort(values), len(values), 1 - conf
    lo_rank = max((j for j in range(1, n + 1) if sps.binom.cdf(j - 1, n, q) < a / 2), default=0)
    hi_rank = min((j for j in range(1, n + 1) if sps.binom.sf(j - 1, n, q) <= a / 2), default=n + 1)
    return (x[lo_rank - 1] if lo_rank else -np.inf, x[hi_rank - 1] if hi_rank <= n else np.inf)


def _verdict(sides: list[tuple[float, float]], threshold: list[float]) -> str:
    """Clauses 'value < threshold' over their intervals: met / broken / inconclusive."""
    if any(lo >= t for (lo, _), t in zip(sides, threshold, strict=True)):
        return "broken"
    if all(hi < t for (_, hi), t in zip(sides, threshold, strict=True)):
        return "met"
    return "inconclusive"


def _expected_steps(ramp):
    steps = {}
    for step in range(5):
        rows = [r for r in ramp.responses if r.step == step]
        n = len(rows)
        trig = np.array([r.t_trigger for r in rows])
        ttfa = np.array([r.ttfa_ms for r in rows if r.ttfa_ms is not None])
        hs = np.array([s.handshake_ms for s in ramp.sessions if s.step == step])
        steps[step] = {
            "users": 10 * (step + 1),
            "responses": n,
            "rpm": n / ((trig.max() - trig.min()) / 60),
            "failed_pct": 100 * sum(r.outcome == "failed" for r in rows) / n,
            "non_completed_pct": 100 * sum(r.outcome != "completed" for r in rows) / n,
            "ttfa_p95": np.percentile(ttfa, 95),
            "ttfa_p95_ci": _quantile_interval(ttfa, 0.95),
            "failed_ci": _wilson_pct(sum(r.outcome == "failed" for r in rows), n),
            "ttfa_p50": np.percentile(ttfa, 50),
            "done_p95": np.percentile([r.done_ms for r in rows], 95),
            "handshake_p95": np.percentile(hs, 95),
        }
    return steps


def test_per_step_rows_knee_and_reason(ramp, cli) -> None:
    expected = _expected_steps(ramp)
    slo = "failed<3%,ttfa_p95<1200ms"
    d = cli.json("capacity", ramp.path, "--slo", slo)
    assert d["grouping"] == "step"
    assert [r["users"] for r in d["rows"]] == [10, 20, 30, 40, 50]
    first_broken = None
    for row, step in zip(d["rows"], range(5), strict=True):
        e = expected[step]
        assert row["responses"] == e["responses"]
        assert row["responses_per_min"] == pytest.approx(e["rpm"])
        assert row["failed_pct"] == pytest.approx(e["failed_pct"])
        assert row["non_completed_pct"] == pytest.approx(e["non_completed_pct"])
        assert row["ttfa"]["p95"] == pytest.approx(e["ttfa_p95"])
        assert row["done"]["p95"] == pytest.approx(e["done_p95"])
        assert row["handshake"]["p95"] == pytest.approx(e["handshake_p95"])
        assert row["slo_met"] is bool(e["failed_pct"] < 3 and e["ttfa_p95"] < 1200)  # the observed values alone
        failed, ttfa = row["clauses"]
        assert (failed["lo"], failed["hi"]) == pytest.approx(e["failed_ci"])
        assert (ttfa["lo"], ttfa["hi"]) == pytest.approx(e["ttfa_p95_ci"])
        verdict = _verdict([e["failed_ci"], e["ttfa_p95_ci"]], [3, 1200])
        assert row["verdict"] == verdict, step
        if verdict == "broken" and first_broken is None:
            first_broken = step
    # computed independently above: which step is the knee, the last met before it, and why
    assert first_broken is not None and first_broken > 0
    assert d["knee"]["group"] == f"step {first_broken}"
    met_before = [s for s in range(first_broken) if d["rows"][s]["verdict"] == "met"]
    assert d["max_ok"]["group"] == f"step {met_before[-1]}"
    e = expected[first_broken]
    reasons = d["knee"]["violations"]
    lo, hi = e["ttfa_p95_ci"]
    ttfa_words = f"ttfa_p95 = {e['ttfa_p95']:.1f} ms (95% CI [{lo:.1f} ms, {hi:.1f} ms]), SLO ttfa_p95 < 1200 ms"
    assert (ttfa_words in reasons) == (lo >= 1200)
    text = cli("capacity", ramp.path, "--slo", slo).stdout
    assert f"Highest load that met the SLO with 95% confidence: step {met_before[-1]}" in text
    assert f"Knee: step {first_broken} ({10 * (first_broken + 1)} users) broke the SLO: {reasons[0]}" in text
    assert f"{e['ttfa_p95']:.1f}" in text and f"{expected[0]['rpm']:.1f}" in text


def test_rate_only_slo_moves_the_knee(ramp, cli) -> None:
    expected = _expected_steps(ramp)
    d = cli.json("capacity", ramp.path, "--slo", "non_completed<=2%")
    counts = [sum(r.outcome != "completed" for r in ramp.responses if r.step == s) for s in range(5)]
    knee = next(s for s in range(5) if _wilson_pct(counts[s], expected[s]["responses"])[0] > 2)
    assert d["knee"]["group"] == f"step {knee}"
    loose = cli.json("capacity", ramp.path, "--slo", "failed<50%,done_p95<60s")
    assert loose["knee"] is None and loose["max_ok"]["users"] == 50
    assert [r["verdict"] for r in loose["rows"]] == ["met"] * 5
    assert "Knee: not found" in cli("capacity", ramp.path, "--slo", "failed<50%").stdout


def test_concurrency_buckets_without_steps(tmp_path, cli) -> None:
    run = ramp_run(tmp_path / "nosteps", with_step=False)
    d = cli.json("capacity", run.path)
    assert d["grouping"] == "concurrency"
    assert [r["users"] for r in d["rows"]] == [10, 20, 30, 40, 50]
    rows = [r for r in run.responses if r.concurrency == 30]
    ttfa = np.array([r.ttfa_ms for r in rows if r.ttfa_ms is not None])
    assert d["rows"][2]["ttfa"]["p95"] == pytest.approx(np.percentile(ttfa, 95))
    bucketed = cli.json("capacity", run.path, "--buckets", "2")
    assert len(bucketed["rows"]) == 2
    assert sum(r["responses"] for r in bucketed["rows"]) == len(run.responses)


def test_slo_grammar() -> None:
    clauses = parse_slo("failed<1%, ttfa_p95<1.2s,done_p99<=8000ms,completed>=95")
    assert [(c.metric, c.op, c.threshold) for c in clauses] == [
        ("failed", "<", 1.0),
        ("ttfa_p95", "<", 1200.0),
        ("done_p99", "<=", 8000.0),
        ("completed", ">=", 95.0),
    ]
    for bad, words in (
        ("ttfa_p97<100ms", "unknown SLO metric 'ttfa_p97'"),
        ("failed<1ms", "failed is a rate"),
        ("ttfa_p95<5%", "ttfa_p95 is a latency"),
        ("failed 1%", "cannot read SLO clause 'failed 1%'"),
        ("", "empty SLO"),
    ):
        with pytest.raises(SloError, match=words):
            parse_slo(bad)


def test_bad_slo_is_one_line_exit_2(ramp, cli) -> None:
    result = cli("capacity", ramp.path, "--slo", "latency<fast", code=2)
    assert "cannot read SLO clause 'latency<fast'" in result.stderr
    assert "Traceback" not in result.stderr


def test_step_span_is_the_trigger_span(ramp) -> None:
    # guard on the synthetic data itself: each step spans just under RAMP_STEP_S seconds
    trig = [r.t_trigger for r in ramp.responses if r.step == 0]
    assert 0.9 * RAMP_STEP_S < max(trig) - min(trig) < RAMP_STEP_S


def _clean_steps(path, sizes: list[int]):
    from loadtest.records.schema import ResponseRecord
    from tests.report.synth import T0, write_run

    rows = [
        ResponseRecord(run_id=path.name, step=s, users=4 * (s + 1), outcome="completed", t_trigger=T0 + s * 60 + i,
                       ttfa_ms=500.0 + i, done_ms=2000.0)
        for s, n in enumerate(sizes)
        for i in range(n)
    ]  # fmt: skip
    return write_run(path, rows)


def test_zero_failures_in_fifteen_is_inconclusive_with_the_responses_to_decide(tmp_path, cli) -> None:
    # the case: 0 failed of 15 against failed < 1% is consistent with up to ~20% failing;
    # the Wilson upper end z^2/(n+z^2) drops under 1% from n = 381, so 366 more decide it
    run = _clean_steps(tmp_path / "clean", [15, 400])
    d = cli.json("capacity", run.path, "--slo", "failed<1%")
    small, big = d["rows"]
    assert small["verdict"] == "inconclusive" and small["more_responses"] == 381 - 15
    assert small["clauses"][0]["hi"] == pytest.approx(100 * 1.959964**2 / (15 + 1.959964**2), rel=1e-5)
    assert big["verdict"] == "met" and d["max_ok"]["group"] == "step 1" and d["knee"] is None
    text = cli("capacity", run.path, "--slo", "failed<1%").stdout
    assert "inconclusive (+366)" in text
    assert "Inconclusive: step 0 (4 users), 15 responses: about 366 more responses at this load" in text
    assert "Highest load that met the SLO with 95% confidence: step 1 (8 users)." in text


def test_confidence_option_sets_the_intervals(ramp, cli) -> None:
    d = cli.json("capacity", ramp.path, "--slo", "failed<3%", "--confidence", "90%")
    assert d["confidence"] == pytest.approx(0.9)
    rows = [r for r in ramp.responses if r.step == 4]
    expected = _wilson_pct(sum(r.outcome == "failed" for r in rows), len(rows), 0.9)
    clause = d["rows"][4]["clauses"][0]
    assert (clause["lo"], clause["hi"]) == pytest.approx(expected)
    result = cli("capacity", ramp.path, "--confidence", "sure", code=2)
    assert "cannot read confidence 'sure'" in result.stderr
