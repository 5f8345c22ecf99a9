"""Helpers every test folder shares (one place, so they are written once).

- :func:`fast_mock`: mock overrides that keep loopback tests short (audio faster than real
  time, small service latencies), as a dict for ``start_mock``/``mock_server``;
  :func:`mock_set_args` gives them as ``--mock-set`` values for the command line.
- :func:`run_child`: run ``python -m <module> <args>`` (a driver that patches gevent, say) and
  return the JSON object on its last stdout line.
- :func:`timed_wait`, :func:`peak_hz`, :func:`connect`: a timed ``concurrency.wait``, the peak
  frequency of a signal, and a WebSocket to the mock in either dialect.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KEY = "mock-key"


def fast_mock(speed: float = 20.0, latency_ms: tuple[float, float] = (5, 10), **extra: Any) -> dict[str, Any]:
    """Mock overrides: audio ``speed`` x real time, created and first delta within ``latency_ms``;
    ``extra`` adds any other dotted override (``faults.stall.rate=...`` as ``**{"faults.stall.rate": 1}``)."""
    return {
        "audio.speed": speed,
        "latency.created_ms": list(latency_ms),
        "latency.first_delta_ms": list(latency_ms),
        **extra,
    }


def mock_set_args(overrides: dict[str, Any]) -> list[str]:
    """The same overrides as ``--mock-set`` values (``audio.speed=20``, ``latency.created_ms=[10,30]``)."""

    def text(value: Any) -> str:
        if isinstance(value, list | tuple):
            return "[" + ",".join(text(v) for v in value) + "]"
        return f"{value:g}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)

    return [f"{k}={text(v)}" for k, v in overrides.items()]


def run_child(
    module: str, *args: str, timeout: float = 60, env: dict[str, str] | None = None, clean_stderr: bool = False
) -> dict[str, Any]:
    """``python -m module args`` in the repository; asserts it succeeded (and, with ``clean_stderr``,
    that nothing failed inside it either); its last stdout line as JSON."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    if clean_stderr:
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def timed_wait(event: Any, timeout: float) -> tuple[bool, float]:
    """``concurrency.wait(event, timeout)`` and how long it took (s)."""
    from loadtest.session import concurrency

    t0 = time.monotonic()
    result = concurrency.wait(event, timeout)
    return result, time.monotonic() - t0


def peak_hz(pcm: np.ndarray, rate: int) -> float:
    """The strongest frequency of ``pcm`` (Hann-windowed FFT)."""
    spec = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / rate)[int(np.argmax(spec))])


def connect(base: str, dialect: str, key: str = KEY) -> Any:
    """A WebSocket client to the mock at ``base``: GA on the OpenAI path, preview on Azure's."""
    from tests.mock.wsclient import Client, azure_preview_url, openai_url

    if dialect == "ga":
        return Client(openai_url(base), {"Authorization": f"Bearer {key}"})
    return Client(azure_preview_url(base), {"api-key": key})
