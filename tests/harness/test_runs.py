"""End-to-end: `rtload run` drives real Locust processes against the real mock on loopback.

Each run is bounded (a few seconds of load, a hard subprocess timeout) and checks what the
harness recorded against the mock's ground-truth log in the run directory.
"""

from __future__ import annotations

import collections
import csv
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import psutil
import pytest
from locust.runners import HEARTBEAT_INTERVAL, HEARTBEAT_LIVENESS

from loadtest.records.writer import read_rows
from tests.support import broken_test_start

from .conftest import (
    assert_agrees_with_truth,
    free_port,
    mock_args,
    responses,
    rtload_cmd,
    rtload_run,
    rtload_runs,
    run_dir,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FAULTS = [
    "faults.server_error.rate=0.2",
    "faults.text_only.rate=0.1",
    "faults.missing_audio.rate=0.1",
]


def test_local_run_agrees_with_truth_and_fail_on_sets_exit_code(tmp_path: Path) -> None:
    done = rtload_run(
        tmp_path,
        *mock_args(*FAULTS),
        "--scenario", "quick_text", "--users", "3", "--spawn-rate", "10", "--duration", "6s",
        "--deadline", "8s", "--run-id", "local",
        "--fail-on", "completed<1%,server_error>0",
    )  # fmt: skip
    path = run_dir(tmp_path, "local")
    rows = assert_agrees_with_truth(path)
    faults = collections.Counter(r["reason"] for r in rows)
    assert faults[""] > 0 and faults["server_error"] > 0  # the run produced both kinds
    # --fail-on: exit 1 and one line naming the crossed threshold (and only that one)
    assert done.returncode == 1, done.stderr
    crossed = [line for line in done.stderr.splitlines() if "--fail-on crossed" in line]
    assert len(crossed) == 1 and "server_error" in crossed[0] and "completed" not in crossed[0]
    # progress lines, the summary, and Locust's own statistics
    assert "step 0 users" in done.stdout and "responses" in done.stdout
    run = orjson.loads((path / "run.json").read_bytes())
    assert run["status"] == "finished" and run["scenario"] == "quick_text"
    assert run["target"]["url"].startswith("ws://127.0.0.1:") and run["mock"]["profile"] == "healthy"
    # Locust's own statistics count what the records count: one request per response, failures
    # for everything but completed/cancelled, named "<outcome>: <reason>"
    stats = {row["Name"]: row for row in csv.DictReader(io.StringIO((path / "locust_stats.csv").read_text()))}
    assert stats["quick_text"]["Type"] == "realtime"
    assert int(stats["quick_text"]["Request Count"]) == len(rows)
    failed = [r for r in rows if r["outcome"] not in ("completed", "cancelled")]
    assert int(stats["quick_text"]["Failure Count"]) == len(failed) > 0
    failures = list(csv.DictReader(io.StringIO((path / "locust_failures.csv").read_text())))
    assert sum(int(f["Occurrences"]) for f in failures) == len(failed)
    page = (path / "locust.html").read_text()
    assert "quick_text" in page and "failed: server_error" in page
    health = read_rows(path / "health.jsonl")
    assert health and {"cpu_percent", "rss_mb", "clock_lag_p99_ms", "frames_late_pct", "users"} <= set(health[0])


def test_same_run_passes_when_no_threshold_is_crossed(tmp_path: Path) -> None:
    done = rtload_run(
        tmp_path, *mock_args(), "--scenario", "quick_text", "--users", "2", "--duration", "3s",
        "--run-id", "ok", "--fail-on", "failed>0,ttfa_p95>5s",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "rtload run: done" in done.stdout
    assert all(r["outcome"] == "completed" for r in responses(run_dir(tmp_path, "ok")))


def test_a_gate_the_run_cannot_measure_fails_the_run(tmp_path: Path) -> None:
    # every response fails before its first audio (the target refuses every connection): a CI gate on
    # ttfa alone passed such a run (exit 0, "done"), as if its latency had been fine
    refused = f"ws://127.0.0.1:{free_port()}"
    done = rtload_run(
        tmp_path, "--target", refused, "--users", "1", "--duration", "2s", "--run-id", "blind", "--no-html",
        "--fail-on", "ttfa_p95>1500ms", env={"OPENAI_API_KEY": "sk-test-not-a-key"},
    )  # fmt: skip
    assert done.returncode == 1, done.stdout[-1500:] + done.stderr[-1500:]
    rows = responses(run_dir(tmp_path, "blind"))
    assert rows and all(r["outcome"] == "failed" and r["ttfa_ms"] is None for r in rows)
    lines = [line for line in done.stderr.splitlines() if "--fail-on" in line]
    assert len(lines) == 1 and "ttfa_p95 cannot be measured: no response has a ttfa_ms" in lines[0], done.stderr
    assert "rtload run: done" not in done.stdout


def test_a_bug_at_test_start_fails_the_run_in_one_line_instead_of_dropping_every_record(tmp_path: Path) -> None:
    # Locust logs an exception raised in a test_start listener and runs the test on: users with no
    # session inputs failed in a tight loop (240,000 log lines in 4 s), every record was dropped, and
    # `rtload run` said "done, 0 responses" with exit 0. Now the process says it in one line, exits 1,
    # and the run fails: a worker is lost (INCOMPLETE), a standalone run is closed as failed.
    base = ["--scenario", "quick_text", "--users", "2", "--spawn-rate", "10", "--duration", "4s", "--no-html",
            *mock_args()]  # fmt: skip
    worker, local = rtload_runs(
        tmp_path,
        ([*base, "--workers", "1", "--run-id", "w"], broken_test_start(tmp_path / "w_site", "worker")),
        ([*base, "--run-id", "l"], broken_test_start(tmp_path / "l_site", "local")),
    )
    said = "internal error while {} started the test: RuntimeError: injected at test start (a bug in rtload"
    for done, log, where in ((worker, "worker-0.log", "worker w0"), (local, "locust.log", "local")):
        assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
        assert "rtload run: done" not in done.stdout
        text = (run_dir(tmp_path, done.args[done.args.index("--run-id") + 1]) / log).read_text()
        lines = [ln for ln in text.splitlines() if ln.startswith("rtload: ")]
        assert len(lines) == 1 and lines[0].startswith(f"rtload: {said.format(where)}"), text[-3000:]
        assert "Traceback" in text and len(text.splitlines()) < 100, text[-3000:]  # its stack, and no loop
    w, loc = run_dir(tmp_path, "w"), run_dir(tmp_path, "l")
    assert f"a worker exited with code 1; see {w / 'worker-0.log'}" in worker.stdout
    assert [r["worker_id"] for r in orjson.loads((w / "run.json").read_bytes())["workers_lost"]] == ["w0"]
    assert "INCOMPLETE: worker w0 was lost" in worker.stdout and "worker w0 lost" in worker.stderr
    run = orjson.loads((loc / "run.json").read_bytes())
    assert (run["status"], run["stopped_by"]) == ("failed", "internal_error") and "injected" in run["error"]
    assert "INCOMPLETE: the run failed before its end: internal error while local" in local.stdout
    assert f"Locust exited with code 1; see {loc / 'locust.log'}" in local.stderr


def test_master_and_two_workers_step_shape(tmp_path: Path) -> None:
    """Distributed: workers ship records to the master, which alone writes the run directory."""
    done = rtload_run(
        tmp_path,
        *mock_args(*FAULTS),
        "--scenario", "quick_text", "--workers", "2", "--shape", "step",
        "--users", "4", "--step-users", "2", "--step-duration", "5s", "--duration", "",
        "--spawn-rate", "20", "--deadline", "8s", "--run-id", "dist",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    path = run_dir(tmp_path, "dist")
    rows = assert_agrees_with_truth(path)
    assert {r["worker_id"] for r in rows} == {"w0", "w1"}
    # the step shape: step 0 holds 2 users, step 1 holds 4; every record says which
    assert {(r["step"], r["users"]) for r in rows} == {(0, 2), (1, 4)}
    sessions = read_rows(path / "sessions.jsonl")
    assert {s["worker_id"] for s in sessions} == {"w0", "w1"}
    assert max(s["concurrency"] or 0 for s in sessions) <= 4
    health_workers = {h["worker_id"] for h in read_rows(path / "health.jsonl")}
    assert {"w0", "w1", "master"} <= health_workers
    run = orjson.loads((path / "run.json").read_bytes())
    assert run["workers"] == 2 and run["shape"]["steps"] == [2, 4]
    assert not (path / "worker-0.log").read_text().count("Traceback")


def test_master_and_worker_as_separate_commands_on_loopback(tmp_path: Path, procs: list[subprocess.Popen]) -> None:
    """Cross-machine mode, both ends on this machine: `rtload run --master` and `rtload run --worker`.

    Each process runs in its own empty folder and the master's paths are relative, so a row the
    worker wrote itself would land in the worker's folder instead of reaching the master's.
    """
    port = str(free_port())
    master_dir, worker_dir = tmp_path / "master", tmp_path / "worker"
    master_dir.mkdir()
    worker_dir.mkdir()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    master = subprocess.Popen(
        rtload_cmd(
            "--master", "--expect-workers", "1", "--master-port", port, "--out", "reports", "--run-id", "xm",
            *mock_args(*FAULTS), "--scenario", "quick_text", "--users", "4", "--spawn-rate", "20",
            "--duration", "8s", "--deadline", "8s",
        ),
        cwd=master_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    procs.append(master)
    worker_log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(
        rtload_cmd("--worker", "--master-host", "127.0.0.1", "--master-port", port, "--out", "reports"),
        cwd=worker_dir, stdout=worker_log, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    procs.append(worker)
    out, err = master.communicate(timeout=75)  # the master ends the run by itself...
    worker.wait(timeout=20)  # ...and its worker goes with it
    worker_log.close()
    worker_out = (tmp_path / "worker.log").read_text()
    assert master.returncode == 0, err + out
    assert worker.returncode == 0, worker_out
    assert f"worker of 127.0.0.1:{port}" in worker_out
    assert "Traceback" not in worker_out
    # the mock is on loopback: the master says once that workers elsewhere cannot reach it
    warning = [line for line in err.splitlines() if "reachable --target" in line]
    assert len(warning) == 1 and "127.0.0.1" in warning[0]
    assert f"master on port {port}, 0 local worker(s), expecting 1" in out
    # only the master writes the run directory
    assert list(worker_dir.iterdir()) == []
    assert [p.name for p in (master_dir / "reports").iterdir()] == ["xm"]
    path = master_dir / "reports" / "xm"
    rows = assert_agrees_with_truth(path)
    assert {r["worker_id"] for r in rows} == {"w0"}
    assert collections.Counter(r["reason"] for r in rows)["server_error"] > 0
    assert {s["worker_id"] for s in read_rows(path / "sessions.jsonl")} == {"w0"}
    assert {"w0", "master"} <= {h["worker_id"] for h in read_rows(path / "health.jsonl")}
    run = orjson.loads((path / "run.json").read_bytes())
    assert run["status"] == "finished" and run["mode"] == "master" and run["workers"] == 1
    assert "realtime,quick_text," in (path / "locust_stats.csv").read_text()


def test_spike_shape_records_base_spike_base(tmp_path: Path) -> None:
    """2 users, 6 from 4 s to 8 s, 2 again until 12 s: every record says which part of the spike it saw."""
    done = rtload_run(
        tmp_path,
        *mock_args(),
        "--scenario", "quick_text", "--shape", "spike", "--users", "2", "--spike-users", "6",
        "--spike-at", "4s", "--spike-duration", "4s", "--duration", "12s", "--spawn-rate", "50",
        "--deadline", "5s", "--run-id", "spike",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    path = run_dir(tmp_path, "spike")
    run = orjson.loads((path / "run.json").read_bytes())
    assert run["shape"]["spike_users"] == 6 and run["shape"]["spike_at_s"] == 4 and run["shape"]["duration_s"] == 12
    rows = assert_agrees_with_truth(path)
    assert {(r["step"], r["users"]) for r in rows} == {(0, 2), (1, 6), (2, 2)}
    users_in = collections.defaultdict(set)
    for r in rows:
        users_in[r["step"]].add(r["user_id"])
    assert len(users_in[0]) == 2  # before the spike only the base users ran...
    assert len(users_in[1]) == 6  # ...the spike added four...
    # ...and after it the extra users were stopped (their last responses may start just after)
    late = {r["user_id"] for r in rows if r["step"] == 2 and (r.get("t_trigger") or 0) >= run["t_start"] + 10}
    assert len(late) == 2, late
    # the process's own user count follows the same shape
    running = [h["users"] for h in read_rows(path / "health.jsonl") if h.get("users") is not None]
    assert 2 in running and 6 in running and max(running) == 6


def test_soak_sessions_expire_and_reconnect(tmp_path: Path) -> None:
    done = rtload_run(
        tmp_path,
        *mock_args("session.max_duration_s=2"),
        "--scenario", "text_loop", "--shape", "soak", "--users", "2", "--spawn-rate", "10",
        "--duration", "7s", "--deadline", "5s", "--run-id", "soak",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    path = run_dir(tmp_path, "soak")
    sessions = read_rows(path / "sessions.jsonl")
    expired = [s for s in sessions if s["ended_by"] == "session_expired"]
    assert len(expired) >= 4, collections.Counter(s["ended_by"] for s in sessions)
    per_user = collections.Counter(s["user_id"] for s in sessions)
    assert len(per_user) == 2 and min(per_user.values()) >= 2  # each user reconnected
    truth_sessions = [t for t in read_rows(path / "mock_truth.jsonl") if t.get("kind") == "session"]
    assert len(truth_sessions) == len(sessions)
    assert_agrees_with_truth(path)


def test_soak_sessions_recycled_at_their_lifetime(tmp_path: Path) -> None:
    done = rtload_run(
        tmp_path,
        *mock_args(),
        "--scenario", "text_loop", "--shape", "soak", "--users", "1", "--duration", "4s",
        "--session-lifetime", "1s", "--deadline", "5s", "--run-id", "recycle",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    path = run_dir(tmp_path, "recycle")
    sessions = read_rows(path / "sessions.jsonl")
    assert sum(s["ended_by"] == "lifetime" for s in sessions) >= 2
    assert all(s["duration_s"] < 3 for s in sessions)
    assert_agrees_with_truth(path)


@pytest.mark.timing
def test_a_worker_lost_mid_run_is_recorded_said_and_fails_the_run(
    tmp_path: Path, procs: list[subprocess.Popen]
) -> None:
    """One of two workers is killed mid-run: the master notices within Locust's heartbeat timeout,
    run.json says which worker, when and its last batch; the progress line drops its users; the
    summary and the HTML report say it first; the run ends on time and `rtload run` exits 1."""
    cmd = rtload_cmd("--out", str(tmp_path / "reports"), "--run-id", "lost", *mock_args(), "--scenario", "quick_text",
                     "--workers", "2", "--users", "4", "--spawn-rate", "20", "--duration", "16s")  # fmt: skip
    cmd[cmd.index("--progress-every") + 1] = "1"
    started = time.monotonic()
    parent = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs.append(parent)
    path = run_dir(tmp_path, "lost")
    limit = time.monotonic() + 40
    while {r["worker_id"] for r in responses(path)} != {"w0", "w1"}:
        assert time.monotonic() < limit, "no rows from both workers"
        time.sleep(0.2)
    workers = [p for p in psutil.Process(parent.pid).children() if "--worker" in p.cmdline()]
    assert len(workers) == 2
    t_kill = time.time()
    workers[0].kill()
    out, err = parent.communicate(timeout=90)
    elapsed = time.monotonic() - started
    assert parent.returncode == 1, err
    run = orjson.loads((path / "run.json").read_bytes())
    [lost] = run["workers_lost"]
    dead = lost["worker_id"]
    assert dead in ("w0", "w1") and lost["how"] == "missed heartbeats"
    # noticed within Locust's heartbeat timeout (a missed heartbeat each second, missing after three)
    assert 0 < lost["t_lost"] - t_kill <= HEARTBEAT_LIVENESS * HEARTBEAT_INTERVAL + 2.5
    assert lost["last_batch_t"] <= t_kill + 0.1 and lost["rows_received"] > 0 and lost["last_batch_rows"] >= 0
    rows = responses(path)
    assert not [r for r in rows if r["worker_id"] == dead and (r.get("t_done") or 0) > t_kill + 0.6]
    assert {r["worker_id"] for r in rows} == {"w0", "w1"}  # the rest of the run is recorded
    # the master did not wait for the dead worker's last records (before: stop timeout + 15 s more)
    assert elapsed < 16 + 25, elapsed
    # one line on stderr says why the exit code is 1
    [line] = [line for line in err.splitlines() if "--allow-worker-loss" in line]
    assert line.startswith("rtload: ") and f"worker {dead} lost" in line and "incomplete" in line
    # the progress line after the loss counts the users still running
    after = [line for line in out.splitlines() if "1 worker lost" in line]
    users = [int(line.split(" users ")[1].split("/")[0]) for line in after]
    assert users and users[0] == 2 and max(users) == 2, after  # then 0 as the run ends
    # the summary says it in its first line under the title
    title = out.splitlines().index("Summary of run lost")
    assert out.splitlines()[title + 2].startswith(f"INCOMPLETE: worker {dead} was lost ")
    assert "(1 of 2 workers)" in out.splitlines()[title + 2]
    assert next(line for line in out.splitlines() if line.startswith("state ")).split() == ["state", "incomplete"]
    page = tmp_path / "lost.html"
    made = subprocess.run([sys.executable, "-m", "loadtest", "report", "html", str(path), "-o", str(page)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert made.returncode == 0, made.stderr
    html = page.read_text()
    main = html.index("<main>")
    assert html.index('id="incomplete"') == main + len("<main>") + len('<div class="warn" ')
    assert f"INCOMPLETE: worker {dead} was lost" in html[main : main + 300]
