"""A step run against a mock with a capacity knee: the verdicts find it, and say what load did.

The mock (healthy, answers fast) adds server_error probability for every session past
``capacity.knee_sessions`` (0.15 each), and a constant 10% text_only that has nothing to do with
load. Steps of 2, 4, 6, 8 users: the knee lies at the first step past 4 users. Every expected
figure is computed here from the JSONL rows with scipy, not through the report's code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from loadtest.cli import app

KNEE_SESSIONS = 4
MOCK = [
    "audio.speed=20",
    "latency.created_ms=[10,30]",
    "latency.first_delta_ms=[10,30]",
    "faults.text_only.rate=0.1",
    f"capacity.knee_sessions={KNEE_SESSIONS}",
    "capacity.server_error_per_session=0.15",
    "capacity.latency_ms_per_session=0",
]
SHAPE = ["--shape", "step", "--start-users", "2", "--step-users", "2", "--users", "8"]
SHAPE += ["--step-duration", "6s", "--duration", "24s", "--spawn-rate", "20"]


@pytest.fixture(scope="module")
def knee_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("knee")
    cmd = [sys.executable, "-m", "loadtest", "run", "--target", "mock", "--mock-profile", "healthy"]
    for item in MOCK:
        cmd += ["--mock-set", item]
    cmd += [*SHAPE, "--pacing", "fast", "--out", str(out), "--run-id", "knee", "--progress-every", "0", "--no-html"]
    cmd += ["--fail-on", "failed>1%@95%,text_only>50%@95%"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert (out / "knee" / "responses.jsonl").exists(), done.stderr[-2000:]
    return out / "knee", done


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _report(*args: str) -> dict:
    result = CliRunner().invoke(app, ["report", *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _wilson_pct(k: int, n: int) -> tuple[float, float]:
    got = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return 100 * got.low, 100 * got.high


@pytest.mark.e2e
@pytest.mark.slow
def test_step_run_finds_the_knee_and_tells_load_from_background(knee_run) -> None:
    path, done = knee_run
    rows = _rows(path / "responses.jsonl")
    steps = sorted({r["step"] for r in rows})
    users = {s: max(r["users"] for r in rows if r["step"] == s) for s in steps}
    assert [users[s] for s in steps] == [2, 4, 6, 8], users
    true_knee = next(s for s in steps if users[s] > KNEE_SESSIONS)

    d = _report("capacity", str(path), "--slo", "failed<1%")
    by_step = {row["group"]: row for row in d["rows"]}
    for s in steps:
        mine = [r for r in rows if r["step"] == s]
        failed = sum(r["outcome"] == "failed" for r in mine)
        clause = by_step[f"step {s}"]["clauses"][0]
        assert (clause["count"], clause["n"]) == (failed, len(mine))
        assert (clause["lo"], clause["hi"]) == pytest.approx(_wilson_pct(failed, len(mine)))
    # the knee: broken, within one step of where the mock put it
    knee = int(d["knee"]["group"].split()[1])
    assert abs(knee - true_knee) <= 1 and by_step[d["knee"]["group"]]["verdict"] == "broken"
    # the small clean steps below it are too small to claim failed < 1%: inconclusive, with a count
    # (step 0 is never past the knee; a later one may catch a response drawn as the next step spawns)
    assert by_step["step 0"]["failed_pct"] == 0
    for s in steps[: min(knee, true_knee)]:
        row = by_step[f"step {s}"]
        assert row["responses"] < 300 and row["verdict"] == "inconclusive" and row["more_responses"] > 0
    assert d["max_ok"] is None

    # which failures come from load: server_error rises, the constant text_only is flat
    trends = {t["reason"]: t for t in d["trends"]["reasons"]}
    for reason in ("server_error", "text_only"):
        counts = [sum(r["reason"] == reason for r in rows if r["step"] == s) for s in steps]
        totals = [sum(r["step"] == s for r in rows) for s in steps]
        y = np.concatenate([np.r_[np.ones(k), np.zeros(n - k)] for k, n in zip(counts, totals, strict=True)])
        x = np.repeat([users[s] for s in steps], totals)
        z2 = len(y) * np.corrcoef(x, y)[0, 1] ** 2  # Cochran-Armitage: Z^2 = N r^2
        assert trends[reason]["z"] ** 2 == pytest.approx(z2)
        assert trends[reason]["counts"] == counts
    assert trends["server_error"]["trend"] == "rises"
    assert trends["text_only"]["trend"] == "flat"

    text = CliRunner().invoke(app, ["report", "capacity", str(path), "--slo", "failed<1%"]).stdout
    assert f"Knee: {d['knee']['group']} ({users[knee]} users) broke the SLO: failed = " in text
    assert "Inconclusive: step 0 (2 users)" in text and "more responses at this load would decide it" in text
    assert "flat (no trend with load): text_only " in text
    # the run's own summary says it, and the confident --fail-on failed the run on failed only
    assert "Failures that rise with load: server_error (failed)" in done.stdout
    crossed = [line for line in done.stderr.splitlines() if "--fail-on crossed" in line]
    assert done.returncode == 1 and len(crossed) == 1
    assert "failed = " in crossed[0] and "95% CI" in crossed[0] and "text_only" not in crossed[0]
