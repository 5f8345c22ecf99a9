"""Helpers for the harness's end-to-end tests: real `rtload run` / Locust processes on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

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
