"""Does memory stay flat over a soak? The harness's workers, its master and the mock, for 30 minutes.

``rtload run --target mock --shape soak --scenario conversation --users 200 --session-lifetime 60s
--workers 2 --duration 30m`` on loopback: 200 realtime-paced sessions, each recycled at 60 s (a new
WebSocket every minute per user, five spoken turns each), every row shipped from the two worker
processes to the master, which writes the run directory; the embedded mock serves every session.

The figure is each process's RSS slope after the warm-up (MB per hour, a least-squares line through
the samples; ``loadtest.report.memory.rss_trend``, the same line ``rtload report summary`` and
``rtload report soak`` print): the workers' and the master's from ``health.jsonl``'s ``rss_mb``
(one sample a second), the mock's sampled here with psutil every 5 s. Goal: under 5 MB per hour each.

    python -m bench soak                                   # the full form: 30 minutes, 200 sessions
    python -m bench.bench_soak --duration 4m --sessions 40 --results /tmp/soak.json   # a short form

Writes bench/results/soak.json (or ``--results``). Loopback only; bounded by ``--duration`` plus the
drain at the end (a hard stop at twice the duration plus five minutes).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "soak.json"
GOAL_MB_PER_H = 5.0


def _seconds(text: str) -> float:
    from loadtest.locust.shapes import parse_duration

    try:
        value = parse_duration(text)
    except ValueError:
        value = None
    if not value or value <= 0:
        raise argparse.ArgumentTypeError(f"cannot read duration {text!r}; write e.g. 30m or 90s")
    return float(value)


def _sample_mock(root_pid: int, stop: threading.Event, samples: list[tuple[float, float]], every_s: float) -> None:
    """RSS (MB) of the embedded mock (a child of the master started with ``-m loadtest mock``)."""
    import psutil

    mock: Any = None
    while not stop.wait(every_s):
        try:
            if mock is None or not mock.is_running():
                mock = None
                for child in psutil.Process(root_pid).children(recursive=True):
                    cmd = child.cmdline()
                    if "loadtest" in cmd and "mock" in cmd:
                        mock = child
                        break
            if mock is not None:
                samples.append((time.time(), mock.memory_info().rss / 1e6))
        except psutil.Error:
            mock = None


def _health(run_dir: Path) -> tuple[dict[str, list[tuple[float, float]]], dict[str, int]]:
    """Each process's (t, rss_mb) samples, and the most users each worker ran at once."""
    by_worker: dict[str, list[tuple[float, float]]] = {}
    users: dict[str, int] = {}
    path = run_dir / "health.jsonl"
    if not path.exists():
        return by_worker, users
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        worker = str(row.get("worker_id") or "local")
        if row.get("t") is not None and row.get("rss_mb") is not None:
            by_worker.setdefault(worker, []).append((row["t"], row["rss_mb"]))
        if worker != "master" and row.get("users") is not None:
            users[worker] = max(users.get(worker, 0), int(row["users"]))
    return by_worker, users


def _by_minute(t: tuple[float, ...], rss: tuple[float, ...]) -> list[float]:
    """The median RSS (MB) of each minute from the first sample: the curve behind the slope."""
    import numpy as np

    ts, rs = np.asarray(t), np.asarray(rss)
    minute = ((ts - ts.min()) // 60).astype(int)
    return [round(float(np.median(rs[minute == m])), 1) for m in range(int(minute.max()) + 1) if (minute == m).any()]


def _rows(run_dir: Path, name: str, record_type: type, columns: list[str]) -> Any:
    """A record file's rows as the reports read them: its Parquet segments (the writer rolls the
    JSONL as the run goes) and its live JSONL."""
    from loadtest.records.reader import read_frame

    path = run_dir / f"{name}.jsonl"
    frame, _ = read_frame(path, record_type, columns, [], cache=False)
    return frame


def _count(run_dir: Path, name: str, record_type: type) -> int:
    return len(_rows(run_dir, name, record_type, ["outcome"] if name == "responses" else ["session_id"]))


def _outcomes(run_dir: Path) -> dict[str, int]:
    from loadtest.records.schema import ResponseRecord

    frame = _rows(run_dir, "responses", ResponseRecord, ["outcome"])
    return {str(k): int(v) for k, v in frame["outcome"].fillna("unknown").value_counts().items()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=_seconds, default=1800.0, help="run time, e.g. 30m (default) or 4m")
    parser.add_argument("--sessions", type=int, default=200, help="concurrent sessions (Locust users)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (0: one standalone process)")
    parser.add_argument("--lifetime", default="60s", help="session lifetime: each session is recycled at this age")
    parser.add_argument("--scenario", default="conversation")
    parser.add_argument(
        "--warmup", type=_seconds, default=None, help="left out of the slope (default: 5 min, or 20%% when shorter)"
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv if argv is not None else [])

    from loadtest.report.memory import rss_trend

    rtload = Path(sys.executable).with_name("rtload")
    out_dir = Path(tempfile.mkdtemp(prefix="rtload-soak-"))
    run_id = "soak"
    cmd = [
        str(rtload), "run", "--target", "mock", "--shape", "soak", "--scenario", args.scenario,
        "--users", str(args.sessions), "--spawn-rate", str(max(2, args.sessions // 10)),
        "--session-lifetime", args.lifetime, "--duration", f"{int(args.duration)}s",
        "--workers", str(args.workers), "--out", str(out_dir), "--run-id", run_id,
        "--no-summary", "--no-html", "--progress-every", "60",
    ]  # fmt: skip
    print("running:", " ".join(cmd), flush=True)
    load_before = os.getloadavg()
    started = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)
    mock_samples: list[tuple[float, float]] = []
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_mock, args=(proc.pid, stop, mock_samples, 5.0), daemon=True)
    sampler.start()
    try:
        rc = proc.wait(timeout=2 * args.duration + 300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        rc = proc.wait(timeout=60)
    finally:
        stop.set()
        sampler.join(10)
    elapsed = time.time() - started
    run_dir = out_dir / run_id

    from loadtest.records.schema import ResponseRecord, SessionRecord

    responses = _count(run_dir, "responses", ResponseRecord) if (run_dir / "run.json").exists() else 0
    if not responses:  # nothing ran (e.g. the workers never got going): keep the last figures
        raise RuntimeError(f"the soak recorded no responses (exit code {rc}); see {run_dir}/locust.log")
    health, users = _health(run_dir)
    processes: dict[str, Any] = {}
    series = dict(sorted(health.items()))
    if mock_samples:
        series["mock"] = mock_samples
    for name, rows in series.items():
        t, rss = zip(*rows, strict=True)
        role = "mock" if name == "mock" else "master" if name == "master" else "harness"
        processes[name] = {"role": role, **rss_trend(t, rss, args.warmup), "rss_mb_by_minute": _by_minute(t, rss)}
    slopes = [p["slope_mb_per_h"] for p in processes.values()]
    passed = bool(slopes) and all(s is not None and s < GOAL_MB_PER_H for s in slopes)
    result = {
        "bench": "soak",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_before": [round(x, 2) for x in load_before],
            "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "config": {
            "duration_s": args.duration,
            "sessions": args.sessions,
            "workers": args.workers,
            "session_lifetime": args.lifetime,
            "scenario": args.scenario,
            "target": "embedded mock (healthy), realtime pacing",
        },
        "exit_code": rc,
        "elapsed_s": round(elapsed, 1),
        "responses": responses,
        "users_per_worker_max": users,
        "sessions_recorded": _count(run_dir, "sessions", SessionRecord),
        "outcomes": _outcomes(run_dir),
        "processes": processes,
        "goal_mb_per_h": GOAL_MB_PER_H,
        "passed": passed,
        "run_dir": str(run_dir),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    for name, p in processes.items():
        print(
            f"{name:>10} ({p['role']}): {p['slope_mb_per_h']} MB/h after {p['warmup_s']} s warm-up "
            f"(rss {p['rss_start_mb']} -> {p['rss_end_mb']} MB, max {p['rss_max_mb']} MB, {p['samples']} samples)"
        )
    print(f"responses {result['responses']}, goal < {GOAL_MB_PER_H} MB/h each: {'met' if passed else 'NOT met'}")
    print(f"wrote {args.results}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
