"""`make demo`: a one-minute capacity sweep against the embedded mock's `flaky` profile.

What it runs (all on loopback, nothing else needed):

1. ``rtload run --target mock --mock-profile flaky --shape step``: 4, 8, then 12 users held
   20 s each, every user speaking the ``single_turn`` scenario in real time. The mock injects a few
   percent of every fault (server errors, stalls, silence, hangs, drops, text-only answers,
   handshake 5xx/429...) and logs each one to ``mock_truth.jsonl`` in the run directory.
2. The summary (outcomes with reasons, latency, audio, harness health) printed at the end.
3. ``rtload report html`` and ``rtload report capacity`` on the run directory.

The run directory is ``reports/demo-<time>/``; open its ``report.html`` in a browser.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

OUT = Path("reports")


def _rtload(*args: str) -> int:
    return subprocess.call([sys.executable, "-m", "loadtest", *args])


def main() -> int:
    run_id = "demo-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    run_dir = OUT / run_id
    print(f"demo: a step-load run against the mock's flaky profile -> {run_dir}", flush=True)
    code = _rtload(
        "run",
        "--target", "mock",
        "--mock-profile", "flaky",
        "--scenario", "single_turn",
        "--shape", "step",
        "--users", "12",
        "--step-users", "4",
        "--step-duration", "20s",
        "--duration", "",
        "--spawn-rate", "4",
        "--deadline", "12s",
        "--out", str(OUT),
        "--run-id", run_id,
        "--progress-every", "5",
    )  # fmt: skip
    if code != 0:
        print(f"demo: rtload run failed (exit code {code}); see {run_dir}/locust.log", file=sys.stderr)
        return code
    print("\ndemo: capacity per step", flush=True)
    _rtload("report", "capacity", str(run_dir))
    if _rtload("report", "html", str(run_dir)) == 0:
        print(f"\ndemo: report written to {run_dir / 'report.html'}", flush=True)
    print(f"demo: records in {run_dir} (responses.jsonl, sessions.jsonl, mock_truth.jsonl, traces/)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
