"""The reports on real runs: `rtload run` against the mock on loopback (the flaky profile on a
step shape, and for `compare` a second, healthy run with a high server_error rate).

Every expected figure is computed here from the JSONL lines themselves (json + numpy), not
through the report's reader.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from loadtest.cli import app


def _rows(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def _report(*args: str) -> dict:
    result = CliRunner().invoke(app, ["report", *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _run_cmd(out: Path, run_id: str, *args: str) -> list[str]:
    common = ["--pacing", "fast", "--out", str(out), "--run-id", run_id, "--progress-every", "0"]
    return [sys.executable, "-m", "loadtest", "run", "--target", "mock", *args, *common, "--no-summary", "--no-html"]


# A: the flaky profile on a step shape. B: healthy but for half the responses ending in
# server_error (audio sent faster so the short run has enough responses for Fisher's test).
# Both runs go at once, so B costs next to no wall time.
RUN_A = ("--mock-profile", "flaky", "--shape", "step", "--users", "6", "--step-users", "2")
RUN_A += ("--step-duration", "5s", "--duration", "15s")
RUN_B = ("--mock-profile", "healthy", "--mock-set", "faults.server_error.rate=0.5", "--mock-set", "audio.speed=10")
RUN_B += ("--users", "6", "--spawn-rate", "20", "--duration", "8s")


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("real")
    runs = (("real", RUN_A), ("real-b", RUN_B))
    with contextlib.ExitStack() as stack:
        procs = {}
        for name, args in runs:
            log = stack.enter_context(open(out / f"{name}.log", "w"))
            procs[name] = subprocess.Popen(_run_cmd(out, name, *args), stdout=log, stderr=subprocess.STDOUT)
        for proc in procs.values():
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    for name in procs:
        assert (out / name / "responses.jsonl").exists(), (out / f"{name}.log").read_text()[-2000:]
    return out / "real", out / "real-b"


@pytest.fixture(scope="module")
def real_run(real_runs: tuple[Path, Path]) -> Path:
    return real_runs[0]


@pytest.mark.e2e
@pytest.mark.slow
def test_reports_on_a_real_mock_run(real_run: Path) -> None:
    responses = _rows(real_run / "responses.jsonl")
    sessions = _rows(real_run / "sessions.jsonl")
    assert len(responses) >= 10
    n = len(responses)
    summary = _report("summary", str(real_run))
    counts = Counter(r["outcome"] for r in responses)
    assert summary["run"]["responses"] == n and summary["run"]["in_progress"] is False
    for outcome in ("completed", "failed", "truncated", "throttled", "cancelled"):
        assert summary["outcomes"][outcome]["count"] == counts[outcome]
    ttfa = np.array([r["ttfa_ms"] for r in responses if r.get("ttfa_ms") is not None])
    assert summary["latency_ms"]["ttfa"]["p95"] == pytest.approx(np.percentile(ttfa, 95))
    handshake = np.array([s["handshake_ms"] for s in sessions if s.get("handshake_ms") is not None])
    assert summary["latency_ms"]["handshake"]["p50"] == pytest.approx(np.percentile(handshake, 50))
    assert summary["health"] is not None and summary["health"]["samples"] > 0

    capacity = _report("capacity", str(real_run), "--slo", "failed<50%")
    steps = sorted({r["step"] for r in responses if r.get("step") is not None})
    assert capacity["grouping"] == "step" and len(capacity["rows"]) == len(steps) >= 2
    for row, step in zip(capacity["rows"], steps, strict=True):
        rows = [r for r in responses if r.get("step") == step]
        assert row["responses"] == len(rows)
        assert row["users"] == max(r["users"] for r in rows)

    limits = _report("limits", str(real_run))
    opened = [(s["t_open"], s["t_end"]) for s in sessions if s.get("t_open") is not None]
    brute = max(sum(1 for a, b in opened if a <= t and (b is None or t < b)) for t, _ in opened)
    assert limits["sessions"]["peak_concurrent"] == brute

    failures = _report("failures", str(real_run))
    bad = [r for r in responses if r["outcome"] != "completed"]
    assert failures["failures"] == len(bad)
    bundle = real_run.parent / "bundle.zip"
    result = CliRunner().invoke(app, ["report", "failures", str(real_run), "--bundle", str(bundle)])
    assert result.exit_code == 0
    with zipfile.ZipFile(bundle) as zf:
        names = set(zf.namelist())
        traces = {r["trace_file"] for r in bad if r.get("trace_file") and (real_run / r["trace_file"]).exists()}
        assert traces <= names
        recordings = {r["audio_file"] for r in bad if r.get("audio_file") and (real_run / r["audio_file"]).exists()}
        assert recordings <= names  # the WAVs beside their traces
        text = [name for name in names if not name.endswith(".wav")]  # audio has no text to scrub
        assert "mock-key" not in b"".join(zf.read(name) for name in text).decode()


OUTCOMES = ("completed", "failed", "truncated", "throttled", "cancelled")


def _outcome_counts(rows: list[dict]) -> dict[str, int]:
    counts = Counter(r["outcome"] for r in rows)
    out = {o: counts[o] for o in OUTCOMES}
    out["non_completed"] = len(rows) - counts["completed"]
    return out


@pytest.mark.e2e
@pytest.mark.slow
def test_compare_on_two_real_runs(real_runs: tuple[Path, Path]) -> None:
    run_a, run_b = real_runs
    a, b = _rows(run_a / "responses.jsonl"), _rows(run_b / "responses.jsonl")
    na, nb = len(a), len(b)
    assert na >= 10 and nb >= 20
    d = _report("compare", str(run_a), str(run_b))
    assert (d["a"]["responses"], d["b"]["responses"]) == (na, nb)
    ka, kb = _outcome_counts(a), _outcome_counts(b)
    got = {r["outcome"]: r for r in d["outcomes"]}
    assert set(got) == set(ka)
    for name in ka:
        p = stats.fisher_exact([[ka[name], na - ka[name]], [kb[name], nb - kb[name]]]).pvalue
        row = got[name]
        assert (row["a_count"], row["b_count"]) == (ka[name], kb[name])
        assert row["a_rate_pct"] == pytest.approx(100 * ka[name] / na)
        assert row["b_rate_pct"] == pytest.approx(100 * kb[name] / nb)
        assert row["diff_pp"] == pytest.approx(100 * kb[name] / nb - 100 * ka[name] / na, abs=1e-9)
        assert row["fisher_p"] == pytest.approx(p)
        assert row["significant"] is bool(p < 0.05)
    # B fails half its responses on purpose; the flaky A a few percent at most
    assert kb["failed"] > ka["failed"] and got["failed"]["diff_pp"] > 20
    reasons_a = Counter((r["outcome"], r["reason"] or "(none)") for r in a if r["outcome"] != "completed")
    reasons_b = Counter((r["outcome"], r["reason"] or "(none)") for r in b if r["outcome"] != "completed")
    assert reasons_b[("failed", "server_error")] >= 10
    got_reasons = {(r["outcome"], r["reason"]): r for r in d["reasons"]}
    assert set(got_reasons) == set(reasons_a) | set(reasons_b)
    for key, row in got_reasons.items():
        k1, k2 = reasons_a[key], reasons_b[key]
        p = stats.fisher_exact([[k1, na - k1], [k2, nb - k2]]).pvalue
        assert (row["a_count"], row["b_count"]) == (k1, k2)
        assert row["fisher_p"] == pytest.approx(p) and row["significant"] is bool(p < 0.05)
    for metric, col in (("ttfa", "ttfa_ms"), ("done", "done_ms")):
        va = np.array([r[col] for r in a if r.get(col) is not None])
        vb = np.array([r[col] for r in b if r.get(col) is not None])
        row = next(x for x in d["latency_ms"] if x["metric"] == metric)
        assert (row["a_n"], row["b_n"]) == (va.size, vb.size)
        for q in (50, 95):
            assert row[f"shift_p{q}"] == pytest.approx(np.percentile(vb, q) - np.percentile(va, q))
        mw = stats.mannwhitneyu(va, vb, alternative="two-sided").pvalue
        assert row["mannwhitney_p"] == pytest.approx(mw) and row["significant"] is bool(mw < 0.05)
    text = CliRunner().invoke(app, ["report", "compare", str(run_a), str(run_b)]).stdout
    failed_line = next(line for line in text.splitlines() if line.startswith("failed "))
    p_failed = stats.fisher_exact([[ka["failed"], na - ka["failed"]], [kb["failed"], nb - kb["failed"]]]).pvalue
    assert f"{100 * kb['failed'] / nb - 100 * ka['failed'] / na:+.2f}" in failed_line
    assert f"{p_failed:.2g}" in failed_line and failed_line.rstrip().endswith("*") is bool(p_failed < 0.05)


@pytest.mark.e2e
@pytest.mark.slow
def test_soak_windows_on_a_real_run(real_run: Path) -> None:
    responses = [r for r in _rows(real_run / "responses.jsonl") if r.get("t_trigger") is not None]
    start = json.loads((real_run / "run.json").read_text())["t_start"]
    window = 4.0
    t = np.array([r["t_trigger"] for r in responses])
    # the documented cut: from the run start by trigger time; a last window under half a window
    # joins the one before
    idx = np.maximum(np.floor((t - start) / window).astype(int), 0)
    if idx.max() > 0 and t.max() - (start + idx.max() * window) < window / 2:
        idx[idx == idx.max()] -= 1
    expected = {}
    for k in sorted(set(idx.tolist())):
        rows = [r for r, i in zip(responses, idx, strict=True) if i == k]
        expected[k] = rows
    d = _report("soak", str(real_run), "--window", "4s")
    assert d["window_s"] == window
    assert [w["window"] for w in d["windows"]] == list(expected) and len(expected) >= 3
    assert sum(w["responses"] for w in d["windows"]) == len(responses)
    for w in d["windows"]:
        rows = expected[w["window"]]
        bad = sum(r["outcome"] != "completed" for r in rows)
        assert w["from_s"] == pytest.approx(w["window"] * window)
        assert w["responses"] == len(rows) and w["non_completed"] == bad
        assert w["non_completed_pct"] == pytest.approx(100 * bad / len(rows))
        assert w["failed_pct"] == pytest.approx(100 * sum(r["outcome"] == "failed" for r in rows) / len(rows))
        ttfa = [r["ttfa_ms"] for r in rows if r.get("ttfa_ms") is not None]
        assert w["ttfa_p50"] == (pytest.approx(np.percentile(ttfa, 50)) if ttfa else None)
    first, last = expected[min(expected)], expected[max(expected)]
    k0, k1 = (sum(r["outcome"] != "completed" for r in x) for x in (first, last))
    p = stats.fisher_exact([[k0, len(first) - k0], [k1, len(last) - k1]]).pvalue
    assert d["drift"]["non_completed"]["fisher_p"] == pytest.approx(p)


@pytest.mark.e2e
@pytest.mark.slow
def test_html_on_a_real_run_is_self_contained_and_carries_its_numbers(real_run: Path, tmp_path: Path) -> None:
    responses = _rows(real_run / "responses.jsonl")
    out = tmp_path / "real.html"
    result = CliRunner().invoke(app, ["report", "html", str(real_run), "-o", str(out), "--slo", "failed<50%"])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I), "the page must load nothing"
    assert not re.search(r"<script|<link|<iframe|@import", text, re.I)
    assert set(re.findall(r"url\((.)", text)) <= {"#"}, "only in-page references (the SVG clip paths)"
    kept = [r for r in responses if r["outcome"] != "completed" and r.get("audio_file")]
    assert text.count("<svg") == 6 + min(len(kept), 4)  # the plots, and the worst kept failures' timelines
    assert text.count("<audio controls") == min(len(kept), 4)
    assert "rtload report: real" in text
    n = len(responses)
    counts = _outcome_counts(responses)
    assert f"<b>{n}</b><span>responses</span>" in text
    for name in ("completed", "failed", "truncated", "throttled"):
        assert f"<b>{100 * counts[name] / n:.2f}%</b><span>{name}</span>" in text
    ttfa = np.array([r["ttfa_ms"] for r in responses if r.get("ttfa_ms") is not None])
    assert f"<b>{np.percentile(ttfa, 95):.0f} ms</b><span>first audio p95</span>" in text
    # the summary's outcome table and latency row, the capacity rows per step
    assert f"<td>{counts['completed']}</td><td>{100 * counts['completed'] / n:.2f}%</td>" in text
    assert f"<td>{np.percentile(ttfa, 50):.1f}</td>" in text
    for step in sorted({r["step"] for r in responses if r.get("step") is not None}):
        k = sum(r.get("step") == step for r in responses)
        assert re.search(rf"<td class=\"?l\"?>step {step}</td><td>\d+</td><td>{k}</td>", text), step


def _hand_cost(row: dict, prices: dict) -> float:
    """One row's cost by hand: cached tokens are part of the input; GA splits them into text and audio."""
    cached, cached_audio = row["input_cached_tokens"] or 0, row["input_cached_audio_tokens"] or 0
    cached_text = cached - cached_audio
    return (
        (row["input_text_tokens"] - cached_text) * prices["text_input"]
        + cached_text * prices["text_cached_input"]
        + (row["input_audio_tokens"] - cached_audio) * prices["audio_input"]
        + cached_audio * prices["audio_cached_input"]
        + row["output_text_tokens"] * prices["text_output"]
        + row["output_audio_tokens"] * prices["audio_output"]
    ) / 1e6


@pytest.mark.e2e
@pytest.mark.slow
def test_cost_of_a_real_run_equals_a_hand_computation(real_run: Path) -> None:
    import tomllib

    import loadtest.report

    table = tomllib.loads((Path(loadtest.report.__file__).parent / "prices.toml").read_text())
    responses = _rows(real_run / "responses.jsonl")
    sessions = _rows(real_run / "sessions.jsonl")
    kinds = ("input_text_tokens", "output_audio_tokens")
    priced = [r for r in responses if any(r.get(k) is not None for k in kinds)]
    assert priced and all(r["deployment"] == "gpt-realtime" for r in priced)
    total = sum(_hand_cost(r, table["models"]["gpt-realtime"]) for r in priced)
    run_end = json.loads((real_run / "run.json").read_text())["t_end"]
    minutes = sum(((s["t_end"] or run_end) - s["t_open"]) for s in sessions if s.get("t_open") is not None) / 60
    d = _report("summary", str(real_run))["cost"]
    assert d["estimate"] is True and d["prices"]["date"] == table["date"]
    assert d["total"]["priced"] == len(priced)
    assert d["total"]["cost"] == pytest.approx(total)
    assert d["total"]["per_response"] == pytest.approx(total / len(priced))
    assert d["total"]["per_session_minute"] == pytest.approx(total / minutes)
    assert d["total"]["per_1000_minutes"] == pytest.approx(1000 * total / minutes)
    text = CliRunner().invoke(app, ["report", "summary", str(real_run)]).stdout
    assert f"Cost (estimate at the list prices of {table['date']})" in text
    assert "not a bill" in text
