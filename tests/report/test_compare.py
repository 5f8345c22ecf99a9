"""`rtload report compare`: rate differences with Fisher's exact test, latency shifts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from loadtest.records.schema import ResponseRecord, SessionRecord
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


# (outcome, reason) -> count; the two runs share some reasons and not others, and two reasons tie
# on their combined count (8) so the order of the table is seen to be stable.
BAD_A = {
    ("failed", "server_error"): 3,
    ("truncated", "audio_stall"): 8,
    ("truncated", "incomplete_max_output_tokens"): 5,
    ("throttled", "rate_limit_exceeded"): 2,
    ("cancelled", "turn_detected"): 4,
}
BAD_B = {
    ("failed", "server_error"): 25,
    ("failed", "connection_dropped"): 8,
    ("truncated", "audio_stall"): 8,
    ("truncated", "incomplete_max_output_tokens"): 3,
    ("throttled", "rate_limit_exceeded"): 10,
}
LABELS = {"handshake": "handshake_ms", "created": "created_ms", "ttfa": "ttfa_ms", "ttft": "ttft_ms", "done": "done_ms"}


def _rich_run(path, n: int, bad: dict, scale: float, seed: int):
    """Every latency the compare knows (sessions carry the handshake), with many reasons."""
    rng = np.random.default_rng(seed)
    kinds = [k for k, c in bad.items() for _ in range(c)]
    kinds += [("completed", "")] * (n - len(kinds))
    kinds = [kinds[i] for i in rng.permutation(n)]
    responses, sessions = [], []
    for i, (outcome, reason) in enumerate(kinds):
        created = float(200 * rng.lognormal(0, 0.3))
        audio = outcome not in ("failed", "throttled")
        ttfa = created + float(400 * scale * rng.lognormal(0, 0.3)) if audio else None
        responses.append(
            ResponseRecord(
                run_id=path.name,
                session_id=f"s{i // 2}",
                outcome=outcome,
                reason=reason,
                t_trigger=T0 + i,
                created_ms=created,
                ttfa_ms=ttfa,
                ttft_ms=ttfa + 25 if ttfa is not None else None,
                done_ms=created + float(2500 * scale * rng.lognormal(0, 0.3)),
            )
        )
    for s in range(n // 2):
        sessions.append(
            SessionRecord(
                run_id=path.name,
                session_id=f"s{s}",
                t_start=T0 + 2 * s - 0.2,
                t_open=T0 + 2 * s - 0.1,
                t_end=T0 + 2 * s + 1.9,
                handshake_ms=float(80 * rng.lognormal(0, 0.4)),
                handshake_status=101,
            )
        )
    return write_run(path, responses, sessions)


def _latency(run, col: str) -> np.ndarray:
    rows = run.sessions if col == "handshake_ms" else run.responses
    return np.array([getattr(r, col) for r in rows if getattr(r, col) is not None], dtype=float)


def _bootstrap(a: np.ndarray, b: np.ndarray, q: float, seed: int = 12345, k: int = 4000) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    ia, ib = rng.integers(0, a.size, (k, a.size)), rng.integers(0, b.size, (k, b.size))
    diffs = np.percentile(b[ib], q, axis=1) - np.percentile(a[ia], q, axis=1)
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return float(lo), float(hi)


@pytest.fixture(scope="module")
def rich(tmp_path_factory):
    root = tmp_path_factory.mktemp("rich")
    return _rich_run(root / "a", 400, BAD_A, 1.0, 11), _rich_run(root / "b", 350, BAD_B, 1.3, 12)


def test_reasons_table(rich, cli) -> None:
    a, b = rich
    na, nb = len(a.responses), len(b.responses)
    d = cli.json("compare", a.path, b.path)
    keys = set(BAD_A) | set(BAD_B)
    expected = sorted(keys, key=lambda k: (-(BAD_A.get(k, 0) + BAD_B.get(k, 0)), k))
    assert [(r["outcome"], r["reason"]) for r in d["reasons"]] == expected
    text = cli("compare", a.path, b.path).stdout.split("\nReasons\n")[1].split("\n\n")[0].splitlines()[2:]
    assert len(text) == len(expected)
    for row, line, key in zip(d["reasons"], text, expected, strict=True):
        ka, kb = BAD_A.get(key, 0), BAD_B.get(key, 0)
        p = stats.fisher_exact([[ka, na - ka], [kb, nb - kb]]).pvalue
        assert (row["a_count"], row["b_count"]) == (ka, kb)
        assert row["a_rate_pct"] == pytest.approx(100 * ka / na)
        assert row["b_rate_pct"] == pytest.approx(100 * kb / nb)
        assert row["fisher_p"] == pytest.approx(p) and row["significant"] is bool(p < 0.05)
        cells = [*key, str(ka), f"{100 * ka / na:.2f}%", str(kb), f"{100 * kb / nb:.2f}%", f"{p:.2g}"]
        assert line.split() == cells + (["*"] if p < 0.05 else [])
    sig = {(r["outcome"], r["reason"]): r["significant"] for r in d["reasons"]}
    assert sig[("failed", "server_error")] and sig[("failed", "connection_dropped")]
    assert not sig[("truncated", "audio_stall")] and not sig[("truncated", "incomplete_max_output_tokens")]


def test_every_latency_shift_and_its_p95_interval(rich, cli) -> None:
    a, b = rich
    d = cli.json("compare", a.path, b.path)
    assert [r["metric"] for r in d["latency_ms"]] == list(LABELS)
    text = cli("compare", a.path, b.path).stdout.split("\nLatency shifts (ms)\n")[1].splitlines()[2:7]
    for row, line in zip(d["latency_ms"], text, strict=True):
        va, vb = _latency(a, LABELS[row["metric"]]), _latency(b, LABELS[row["metric"]])
        assert (row["a_n"], row["b_n"]) == (va.size, vb.size)
        cells = line.split("  ")
        cells = [c.strip() for c in cells if c.strip()]
        for q in (50, 95):
            pa, pb = np.percentile(va, q), np.percentile(vb, q)
            assert row[f"a_p{q}"] == pytest.approx(pa) and row[f"b_p{q}"] == pytest.approx(pb)
            assert row[f"shift_p{q}"] == pytest.approx(pb - pa)
            lo, hi = row[f"shift_p{q}_ci95"]
            assert f"{pb - pa:+.1f} [{lo:+.1f}, {hi:+.1f}]" in cells
        mw = stats.mannwhitneyu(va, vb, alternative="two-sided").pvalue
        assert row["mannwhitney_p"] == pytest.approx(mw) and row["significant"] is bool(mw < 0.05)
        assert cells[cells.index(f"{mw:.2g}") :] == [f"{mw:.2g}", "*"][: 2 if mw < 0.05 else 1]
        # the p95 interval against an independent bootstrap (10x the resamples, another seed)
        lo, hi = row["shift_p95_ci95"]
        ref_lo, ref_hi = _bootstrap(va, vb, 95)
        width = ref_hi - ref_lo
        assert lo == pytest.approx(ref_lo, abs=0.25 * width) and hi == pytest.approx(ref_hi, abs=0.25 * width)
        assert lo <= row["shift_p95"] <= hi
    by = {r["metric"]: r for r in d["latency_ms"]}
    assert not by["handshake"]["significant"] and not by["created"]["significant"]  # same distributions
    for metric in ("ttfa", "ttft", "done"):  # B is 30% slower
        assert by[metric]["significant"] and by[metric]["shift_p95_ci95"][0] > 0


def test_slo_verdict_per_run_on_its_intervals(tmp_path, cli) -> None:
    # A: 4 failed of 400, B: 21 of 300 against failed<3%: Wilson (scipy) decides each run's verdict
    (a, _), (b, _) = _run(tmp_path / "a", 400, 4, 600, 1), _run(tmp_path / "b", 300, 21, 800, 2)
    d = cli.json("compare", a.path, b.path, "--slo", "failed<3%", "--confidence", "90%")
    for side, k, n in (("a", 4, 400), ("b", 21, 300)):
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.9, method="wilson")
        clause = d["slo"][side]["clauses"][0]
        assert (clause["lo"], clause["hi"]) == pytest.approx((100 * ci.low, 100 * ci.high))
        expected = "met" if 100 * ci.high < 3 else "broken" if 100 * ci.low >= 3 else "inconclusive"
        assert d["slo"][side]["verdict"] == expected
    assert (d["slo"]["a"]["verdict"], d["slo"]["b"]["verdict"]) == ("met", "broken")
    failed = next(r for r in d["outcomes"] if r["outcome"] == "failed")
    a_clause = d["slo"]["a"]["clauses"][0]
    assert failed["a_ci_pct"] == pytest.approx([a_clause["lo"], a_clause["hi"]])
    text = cli("compare", a.path, b.path, "--slo", "failed<3%").stdout
    assert "SLO per run (95% confidence intervals)" in text and "broken" in text
    assert cli("compare", a.path, b.path, "--slo", "fast", code=2)
