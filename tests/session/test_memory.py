"""A finished session leaves nothing behind: memory does not grow with the responses of a soak."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.session.helpers import FAST_MOCK

ROOT = Path(__file__).resolve().parents[2]
# bytes; a retained session graph was ~20-35 KB a response, a finished session now leaves ~10 bytes
RETAINED_PER_RESPONSE_LIMIT = 500


@pytest.mark.e2e
def test_thousands_of_text_turns_leave_no_memory_per_response(mock_server) -> None:
    """1,200 text turns (240 sessions of 5 turns, 20 at a time, under gevent as Locust runs them)
    after a warm-up, with the cyclic collector off as the harness's thresholds nearly have it: the
    traced memory grows by far less than a response's objects, and no object of a session's graph
    (client, router, trackers, transport, websockets' protocol) is left in a reference cycle."""
    mock = mock_server(overrides=FAST_MOCK)
    proc = subprocess.run(
        [sys.executable, "-m", "tests.session.memory_driver", mock.url, "20", "5", "300", "1200"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["responses"] >= 1200 and out["sessions"] >= 240, out
    assert set(out["outcomes"]) == {"completed/"}, out["outcomes"]
    leftovers = [(kind, n) for kind, n in out["garbage_kinds"] if kind.startswith(("loadtest.", "websockets."))]
    assert leftovers == [], f"finished sessions left reference cycles: {out['garbage_kinds']}"
    assert out["unreachable"] < out["sessions"], out  # not one object a session, let alone ~280
    assert out["growth_per_response"] < RETAINED_PER_RESPONSE_LIMIT, out
