"""Helpers for the harness's end-to-end tests: real `rtload run` / Locust processes on loopback."""

from __future__ import annotations

import collections
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from loadtest.records.schema import FAULT_EXPECTATIONS
from loadtest.records.writer import read_rows
from tests.support import fast_mock, mock_set_args

# a fast, cheap mock: answers stream 20x faster than real time and start within ~50 ms
FAST_MOCK = mock_set_args(fast_mock(20, (10, 30)))


def rtload_cmd(*args: str) -> list[str]:
    """The ``rtload run`` command line (for tests that start the process themselves)."""
    return [sys.executable, "-m", "loadtest", "run", "--progress-every", "2", *args]


def rtload_run(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """``rtload run`` as a child process (its own Locust children), output captured."""
    cmd = rtload_cmd("--out", str(tmp_path / "reports"), *args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def rtload_runs(
    tmp_path: Path, *runs: tuple[Sequence[str], dict[str, str] | None], timeout: float = 90
) -> list[subprocess.CompletedProcess[str]]:
    """Several ``rtload run`` at once, each ``(args, env)`` as :func:`rtload_run` runs it: the
    independent runs of one test cost the wall time of the longest, not the sum of all."""
    procs = [
        subprocess.Popen(
            rtload_cmd("--out", str(tmp_path / "reports"), *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        for args, env in runs
    ]
    limit = time.monotonic() + timeout
    try:
        outs = [proc.communicate(timeout=max(0.1, limit - time.monotonic())) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return [
        subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        for proc, (out, err) in zip(procs, outs, strict=True)
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mock_args(*sets: str, profile: str = "healthy") -> list[str]:
    out = ["--target", "mock", "--mock-profile", profile]
    for item in (*FAST_MOCK, *sets):
        out += ["--mock-set", item]
    return out


def run_dir(tmp_path: Path, run_id: str) -> Path:
    return tmp_path / "reports" / run_id


def responses(path: Path) -> list[dict]:
    return read_rows(path / "responses.jsonl")


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen]]:
    """Processes a test starts itself; killed at teardown if still running."""
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def assert_agrees_with_truth(path: Path) -> list[dict]:
    """One row per response the mock planned, with the outcome its fault implies.

    A response the client saw created is matched by its id; one the mock planned but never
    announced (``t_created`` null, e.g. the session hit its cap first) is matched, by session, with
    a row that has no response id.
    """
    truth = [r for r in read_rows(path / "mock_truth.jsonl") if r.get("kind") == "response"]
    rows = responses(path)
    assert len(truth) > 0
    assert len(rows) == len(truth), f"{len(rows)} response rows, {len(truth)} in the mock's truth log"
    by_id = collections.Counter(r["response_id"] for r in rows if r.get("response_id"))
    seen = [t for t in truth if t.get("t_created") is not None]
    assert sorted(by_id) == sorted(t["response_id"] for t in seen), "response ids differ from the truth log"
    assert set(by_id.values()) <= {1}, "a response was recorded twice"
    got = {r["response_id"]: (r["outcome"], r["reason"]) for r in rows if r.get("response_id")}
    expected = {t["response_id"]: FAULT_EXPECTATIONS[t["fault"]] for t in seen}
    wrong = [(expected[rid], got[rid]) for rid in expected if got[rid] != expected[rid]]
    unseen = sorted((t["session_id"], FAULT_EXPECTATIONS[t["fault"]]) for t in truth if t.get("t_created") is None)
    anonymous = sorted((r["session_id"], (r["outcome"], r["reason"])) for r in rows if not r.get("response_id"))
    assert anonymous == unseen, "responses the mock never announced do not match the rows without an id"
    assert not wrong, f"outcomes disagree with the truth log: {wrong[:5]}"
    return rows
