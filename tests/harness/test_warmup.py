"""First-use costs paid at init (loadtest/locust/warmup.py), not on the audio clock mid-run.

Before: every run's end made 2-3% of the last second's frames late (Locust's stop() maps every
module's file for ``inspect`` on first use, ~30 ms), and each spawn message held a worker's loop
~0.3 s (Locust rebuilt its default argument parser once per option sent), so the summary said
the load generator was the bottleneck at 60 users on 2 workers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import big_ca_bundle

from .conftest import free_port, mock_args, rtload_run, rtload_runs, run_dir

PROBE = """
import json, sys, time, inspect
import gevent.monkey; gevent.monkey.patch_all()
import locust.runners  # noqa
import loadtest.session.client  # noqa
from loadtest.locust import warmup
from locust import argument_parser
if sys.argv[1] == "warm":
    warmup.warm_up()
t0 = time.perf_counter(); inspect.stack(); t1 = time.perf_counter()
argument_parser.default_args_dict(); t2 = time.perf_counter()
print(json.dumps({"stack_ms": (t1 - t0) * 1e3, "args_ms": (t2 - t1) * 1e3}))
"""


def _probe(mode: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_after_the_warm_up_locusts_stop_and_spawn_calls_cost_a_fraction() -> None:
    cold, warm = _probe("cold"), _probe("warm")
    assert warm["stack_ms"] < cold["stack_ms"] / 4, (cold, warm)
    assert warm["args_ms"] < cold["args_ms"] / 4, (cold, warm)


def test_the_cached_default_arguments_are_locusts_own_and_each_caller_gets_a_copy() -> None:
    code = """
from locust import argument_parser
from loadtest.locust import warmup
made = argument_parser.default_args_dict()
warmup.cache_default_args(); warmup.cache_default_args()
first = argument_parser.default_args_dict()
first["run_time"] = "changed"; first["extra"] = 1
again = argument_parser.default_args_dict()
assert again == made and first is not again, (again, made)
assert argument_parser.default_args_dict.rtload_cached
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


@pytest.mark.e2e
@pytest.mark.timing
def test_a_ramp_on_two_workers_and_the_runs_end_leave_the_workers_audio_on_time(tmp_path: Path) -> None:
    proc = rtload_run(tmp_path, *mock_args(), "--workers", "2", "--users", "40", "--spawn-rate", "20",
                      "--duration", "6s", "--run-id", "warm", "--no-html")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in (run_dir(tmp_path, "warm") / "health.jsonl").read_text().splitlines()]
    workers = [r for r in rows if r["worker_id"] in ("w0", "w1")]
    assert {r["worker_id"] for r in workers} == {"w0", "w1"} and max(r["users"] for r in workers) == 20
    # before: 80-110 ms while users ramped up (each spawn message), ~40 ms at the run's end
    assert max(r["clock_lag_p99_ms"] for r in workers) < 30, workers
    assert max(r["frames_late_pct"] for r in workers) < 1.0, workers


@pytest.mark.e2e
@pytest.mark.timing
def test_a_big_ssl_cert_file_does_not_make_the_verdict_say_bottleneck(tmp_path: Path) -> None:
    # SSL_CERT_FILE is set on many company machines. Its bundle was loaded three times in test_start
    # (run.json, the target, the options) and once in each worker's: ~17 ms each for the system's,
    # ~0.3 s for this one, while the health probe timed the loop. Against a target that refuses
    # every connection (no frames, so the probe's wake-ups stand in for them), the verdict said yes.
    big = big_ca_bundle(tmp_path)
    env = {"SSL_CERT_FILE": str(big), "OPENAI_API_KEY": "sk-test-not-a-key"}
    refused = f"ws://127.0.0.1:{free_port()}"
    common = ("--target", refused, "--users", "2", "--duration", "4s", "--no-html")
    local, workers = rtload_runs(
        tmp_path, ([*common, "--run-id", "local"], env), ([*common, "--workers", "1", "--run-id", "workers"], env)
    )
    for proc, run_id in ((local, "local"), (workers, "workers")):
        assert "Was the load generator the bottleneck? no" in proc.stdout, (run_id, proc.stdout[-1500:])
        rows = [json.loads(line) for line in (run_dir(tmp_path, run_id) / "health.jsonl").read_text().splitlines()]
        sessions = [r for r in rows if r["worker_id"] in ("local", "w0")]
        assert sessions, rows
        assert all((r["clock_lag_p99_ms"] or 0) < 50 and (r["frames_late_pct"] or 0) < 1 for r in sessions), rows
