"""Start the mock as its own process (for tests, the demo and the harness)."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtest.mock.profile import format_override
from loadtest.mock.truth import read_truth

READY_PREFIX = "rtload mock: listening on "


@dataclass
class MockProcess:
    url: str  # "ws://127.0.0.1:<port>" (base URL; targets add the path)
    port: int
    truth_path: Path | None
    popen: subprocess.Popen[str] | None = field(default=None, repr=False)
    log_path: Path | None = None

    def truth(self) -> list[dict[str, Any]]:
        """Rows of the truth log so far (a torn last line is skipped)."""
        return read_truth(self.truth_path) if self.truth_path else []

    def stats(self) -> dict[str, Any]:
        """The mock's own counters (``GET /_mock/stats``)."""
        import json
        import urllib.request

        with urllib.request.urlopen(self.url.replace("ws://", "http://") + "/_mock/stats", timeout=5) as resp:
            return json.loads(resp.read())

    def stop(self, timeout: float = 5) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; idempotent."""
        proc = self.popen
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def __enter__(self) -> MockProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_mock(
    *,
    profile: str = "healthy",
    seed: int = 0,
    truth_path: Path | None = None,
    api_key: str = "mock-key",
    host: str = "127.0.0.1",
    port: int = 0,
    overrides: dict[str, object] | None = None,
    log_path: Path | None = None,
    ready_timeout: float = 20.0,
) -> MockProcess:
    """Run ``python -m loadtest mock`` and return once it prints its ready line."""
    cmd = [sys.executable, "-m", "loadtest", "mock", "--host", host, "--port", str(port), "--profile", profile,
           "--seed", str(seed), "--api-key", api_key, "--exit-with-parent"]  # fmt: skip
    if truth_path is not None:
        cmd += ["--truth", str(truth_path)]
    for key, value in (overrides or {}).items():
        cmd += ["--set", format_override(key, value)]
    err = open(log_path, "a") if log_path else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # stdin stays open while this process lives: the mock stops by itself if we die without stop()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    if log_path:
        err.close()  # type: ignore[union-attr]
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True, name="mock-stdout").start()
    deadline = time.monotonic() + ready_timeout
    seen: list[str] = []
    while True:
        left = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(0.01, left))
        except queue.Empty:
            line = ""
        if line is None or (line == "" and time.monotonic() >= deadline):
            proc.kill() if proc.poll() is None else None
            proc.wait()
            why = "exited" if line is None else f"was not ready within {ready_timeout} s"
            detail = "".join(seen).strip() or (f"see {log_path}" if log_path else "no output")
            raise RuntimeError(f"mock server {why} (exit code {proc.returncode}): {detail}")
        if line.startswith(READY_PREFIX):
            url = line[len(READY_PREFIX) :].strip()
            return MockProcess(url=url, port=int(url.rsplit(":", 1)[1]), truth_path=truth_path, popen=proc,
                               log_path=log_path)  # fmt: skip
        if line:
            seen.append(line)
