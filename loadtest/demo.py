"""`make demo`: a one-minute capacity sweep against the embedded mock's `flaky` profile with a knee.

What it runs (all on loopback, nothing else needed):

1. ``rtload run --target mock --mock-profile flaky --shape step``: 8, 16, 24, then 32 users held
   15 s each, every user speaking the ``single_turn`` scenario in real time. The mock injects a few
   percent of every fault (server errors, stalls, silence, hangs, drops, text-only answers,
   handshake 5xx/429...) whatever the load, and past 12 open sessions (``capacity.knee_sessions``)
   every further session adds 3% server_error probability: a capacity knee inside the sweep.
   Each injected fault is logged to ``mock_truth.jsonl`` in the run directory.
2. The summary (outcomes with reasons, which failures rise with load, latency, audio, harness
   health) printed at the end.
3. ``rtload report capacity`` with an SLO the flaky background (about 7% failed by design) can
   meet, ``failed<10%,ttfa_p90<1500ms``, so the knee the verdicts find is the load's, and the
   trend test tells the load-driven server_error from the constant faults; then ``rtload report html``.

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


# the knee: past 12 open sessions each further session adds 3% server_error probability; answers are
# streamed 8x faster than real time so each step holds enough turns to judge
KNEE = ("capacity.knee_sessions=12", "capacity.server_error_per_session=0.03", "audio.speed=8")
SLO = "failed<10%,ttfa_p90<1500ms"


def main() -> int:
    run_id = "demo-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    run_dir = OUT / run_id
    print(
        f"demo: a step-load run against the mock's flaky profile, its capacity knee at 12 sessions -> {run_dir}",
        flush=True,
    )
    code = _rtload(
        "run",
        "--target", "mock",
        "--mock-profile", "flaky",
        *(arg for item in KNEE for arg in ("--mock-set", item)),
        "--scenario", "single_turn",
        "--shape", "step",
        "--users", "32",
        "--step-users", "8",
        "--step-duration", "15s",
        "--duration", "",
        "--spawn-rate", "16",
        "--deadline", "12s",
        "--out", str(OUT),
        "--run-id", run_id,
        "--progress-every", "5",
    )  # fmt: skip
    if code != 0:
        print(f"demo: rtload run failed (exit code {code}); see {run_dir}/locust.log", file=sys.stderr)
        return code
    print(f"\ndemo: capacity per step against the SLO {SLO}", flush=True)
    _rtload("report", "capacity", str(run_dir), "--slo", SLO)
    if _rtload("report", "html", str(run_dir), "--slo", SLO) == 0:
        print(f"\ndemo: report written to {run_dir / 'report.html'}", flush=True)
    print(f"demo: records in {run_dir} (responses.jsonl, sessions.jsonl, mock_truth.jsonl, traces/)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
