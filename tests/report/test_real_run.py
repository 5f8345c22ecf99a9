"""The reports on a real run: `rtload run` against the mock (flaky profile, step shape) on loopback.

Every expected figure is computed here from the JSONL lines themselves (json + numpy), not
through the report's reader.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
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


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("real")
    cmd = [
        sys.executable,
        "-m",
        "loadtest",
        "run",
        "--target",
        "mock",
        "--mock-profile",
        "flaky",
        "--shape",
        "step",
        "--users",
        "6",
        "--step-users",
        "2",
        "--step-duration",
        "5s",
        "--duration",
        "15s",
        "--pacing",
        "fast",
        "--out",
        str(out),
        "--run-id",
        "real",
        "--progress-every",
        "0",
        "--no-summary",
        "--no-html",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    run_dir = out / "real"
    assert (run_dir / "responses.jsonl").exists(), proc.stderr[-2000:]
    return run_dir


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
        assert "mock-key" not in b"".join(zf.read(name) for name in names).decode()
