"""How many real-time WebRTC sessions does one harness process sustain on one core?

The shipped harness (Locust, ``RealtimeUser``, records, health) with ``--rt-transport webrtc`` in
one process pinned to core 0, against the mock's WebRTC endpoint (``/v1/realtime/calls``, healthy
profile at real time, an aiortc peer per call) pinned to core 1, step load, calls set up at
``SPAWN_RATE`` a second. The stream shape (``bench/harness/bench_webrtc_stream.toml``): a 7.9 s
spoken turn over server VAD, repeated: the caller's audio as Opus packets every 20 ms, the answer's
RTP packets back in real time (the mock keeps its line busy with silence packets between answers).

A step is sustained while, as for the WebSocket ladder (``bench_harness``), >= 95% of the audio
frames went out within 20 ms of their slot on the audio clock (``frames_late_pct`` <= 5), the
clock's p99 lag is under 5 ms, and every user of the step has its call open; the figures beside it:
``recv_lag_p99_ms`` (for WebRTC: how long an item waited between the WebRTC loop thread, where
packets and messages are stamped on arrival, and its session's receiver greenlet: the gevent
hand-off), the harness's and the mock's CPU. The time-to-first-audio error is the first RTP
packet's arrival (``t_first_audio``) minus the mock's send time of that packet (its truth log),
over every response after the first step's ramp-up.

Writes bench/results/webrtc.json. ``python -m bench webrtc`` (about 3 minutes) or
``python -m bench.bench_webrtc --quick`` (two short steps, a smoke check).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench.bench_harness import best, highest

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "webrtc.json"
CLIENT_CORE = 0
MOCK_CORE = 1
LATE_PCT_MAX = 5.0
LAG_P99_MAX_MS = 5.0
# real-time answers (a WebRTC peer streams at playback pace), no token bucket in the way
MOCK_SETTINGS = {
    "audio.speed": 1.0,
    "rate_limits.tokens_per_minute": 100_000_000,
    "rate_limits.requests_per_minute": 1_000_000,
}
SETTLE_S = 6.0  # seconds skipped after a step's users were all started
SPAWN_RATE = 5  # calls set up per second (the mock's aiortc peer: 50 a second was a storm it timed out on)


def pin(core: int) -> Any:
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) <= core:
        return None
    return lambda: os.sched_setaffinity(0, {core})


def load_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_bytes().splitlines():
        with contextlib.suppress(ValueError):
            rows.append(orjson.loads(line))
    return rows


def run_harness(url: str, steps: list[int], step_s: float, work: Path, run_id: str) -> Path:
    step = steps[1] - steps[0] if len(steps) > 1 else steps[0]
    cmd = [
        sys.executable, "-m", "locust", "-f", str(HERE / "harness" / "harness_locustfile.py"),
        "--headless", "-u", str(steps[-1]), "-r", str(SPAWN_RATE), "--only-summary", "--exit-code-on-error", "0",
        "--stop-timeout", "3", "--rt-target", url, "--rt-api-key-env", "RTLOAD_BENCH_KEY",
        "--rt-transport", "webrtc", "--rt-scenario", str(HERE / "harness" / "bench_webrtc_stream.toml"),
        "--rt-shape", "step", "--rt-start-users", str(steps[0]), "--rt-step-users", str(step),
        "--rt-step-duration", f"{step_s}s", "--rt-deadline", "60s", "--rt-keep-audio", "none",
        "--rt-out", str(work), "--rt-run-id", run_id,
    ]  # fmt: skip
    env = {**os.environ, "RTLOAD_BENCH_KEY": "mock-key", "PYTHONUNBUFFERED": "1"}
    with open(work / f"{run_id}.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=pin(CLIENT_CORE))
        try:
            proc.wait(timeout=len(steps) * step_s + 90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if not load_rows(work / run_id / "sessions.jsonl") and not load_rows(work / run_id / "health.jsonl"):
        tail = (work / f"{run_id}.log").read_text(errors="replace").splitlines()[-5:]
        raise RuntimeError("bench webrtc: the harness recorded nothing: " + " | ".join(tail))
    return work / run_id


def step_rows(run_dir: Path, steps: list[int], mock_cpu: list[tuple[float, float]]) -> list[dict[str, Any]]:
    health = load_rows(run_dir / "health.jsonl")
    responses = load_rows(run_dir / "responses.jsonl")
    out = []
    for users in steps:
        samples = [h for h in health if h.get("users") == users]
        if samples:
            t0 = min(h["t"] for h in samples) + SETTLE_S
            samples = [h for h in samples if h["t"] >= t0]
        row: dict[str, Any] = {"users": users, "samples": len(samples)}

        def values(key: str, rows: list[dict[str, Any]] = samples) -> list[float]:
            return [h[key] for h in rows if h.get(key) is not None]

        late, lags, recv, cpu = (
            values(k) for k in ("frames_late_pct", "clock_lag_p99_ms", "recv_lag_p99_ms", "cpu_percent")
        )
        row.update(
            frames_late_pct=round(statistics.mean(late), 3) if late else None,
            lag_p99_ms=round(statistics.median(lags), 3) if lags else None,
            lag_p99_worst_ms=round(max(lags), 3) if lags else None,
            recv_lag_p99_ms=round(statistics.median(recv), 3) if recv else None,
            cpu_percent=round(statistics.mean(cpu), 1) if cpu else None,
        )
        lost = 0
        completed = 0
        if samples:
            t_lo, t_hi = min(h["t"] for h in samples), max(h["t"] for h in samples)
            mcpu = [c for t, c in mock_cpu if t_lo <= t <= t_hi]
            row["mock_cpu_percent"] = round(statistics.mean(mcpu), 1) if mcpu else None
            window = [r for r in responses if r.get("t_trigger") and t_lo <= r["t_trigger"] <= t_hi]
            completed = sum(1 for r in window if r.get("outcome") == "completed")
            # (a response the step's end cut short is the bench's doing: cancelled/client_cancelled)
            lost = sum(1 for r in window if r.get("outcome") not in ("completed", "cancelled"))
        row.update(responses_completed=completed, responses_not_completed=lost)
        row["sustained"] = bool(
            late
            and lags
            and row["frames_late_pct"] <= LATE_PCT_MAX
            and row["lag_p99_ms"] < LAG_P99_MAX_MS
            and lost == 0
        )
        out.append(row)
        print(f"bench webrtc: {users} sessions: {row}", flush=True)
    return out


def ttfa_error(run_dir: Path, truth: Path, skip_s: float) -> dict[str, Any]:
    """The first RTP packet's arrival minus the mock's send time of it, per response."""
    sent = {
        r["response_id"]: r["t_first_audio"]
        for r in load_rows(truth)
        if r.get("t_first_audio") and r.get("response_id")
    }
    if sent and skip_s:
        start = min(sent.values())
        sent = {k: v for k, v in sent.items() if v >= start + skip_s}
    errors = sorted(
        (r["t_first_audio"] - sent[r["response_id"]]) * 1000.0
        for r in load_rows(run_dir / "responses.jsonl")
        if r.get("response_id") in sent and r.get("t_first_audio") is not None
    )
    if not errors:
        return {"responses": 0}

    def p(q: float) -> float:
        return round(errors[min(len(errors) - 1, int(q * len(errors)))], 3)

    return {"responses": len(errors), "p50_ms": p(0.5), "p99_ms": p(0.99), "max_ms": round(errors[-1], 3)}


def outcomes(run_dir: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in load_rows(run_dir / "responses.jsonl"):
        key = r.get("outcome", "") + (f"/{r['reason']}" if r.get("reason") else "")
        counts[key] = counts.get(key, 0) + 1
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two short steps (a smoke check)")
    parser.add_argument("--start", type=int, default=20)
    parser.add_argument("--step", type=int, default=20)
    parser.add_argument("--top", type=int, default=100)
    parser.add_argument("--step-s", type=float, default=30.0)
    args = parser.parse_args(argv if argv is not None else [])
    if args.quick:
        args.start, args.step, args.top, args.step_s = 5, 5, 10, 15.0

    steps = list(range(args.start, args.top + 1, args.step))
    result = measure(steps, args.step_s)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    sustained, error = result["sessions_sustained_per_core"], result["ttfa_error_ms"]
    if args.quick:
        print(json.dumps(result, indent=2))
        return
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"bench webrtc: {sustained} sessions sustained on one core; ttfa error {error}; -> {RESULTS}")


def measure(steps: list[int], step_s: float) -> dict[str, Any]:
    """One ladder run: the harness and the mock as the module's docstring says."""
    import psutil

    from loadtest.mock.process import start_mock

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-webrtc-") as tmp:
        work = Path(tmp)
        truth = work / "truth.jsonl"
        mock = start_mock(truth_path=truth, log_path=work / "mock.log", overrides=MOCK_SETTINGS)
        mock_cpu: list[tuple[float, float]] = []
        try:
            proc = psutil.Process(mock.popen.pid)
            with contextlib.suppress(OSError):
                proc.cpu_affinity([MOCK_CORE])
            import threading

            stop = threading.Event()

            def sample() -> None:
                proc.cpu_percent(None)
                while not stop.wait(1.0):
                    with contextlib.suppress(psutil.Error):
                        mock_cpu.append((time.time(), proc.cpu_percent(None)))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.time()
            run_dir = run_harness(mock.url, steps, step_s, work, "webrtc")
            stop.set()
            rows = step_rows(run_dir, steps, mock_cpu)
            error = ttfa_error(run_dir, truth, skip_s=SETTLE_S)
            counts = outcomes(run_dir)
            took = time.time() - started
        finally:
            mock.stop()
    sustained = best(rows)  # every smaller step sustained too (as the WebSocket ladder's headline)
    result = {
        "bench": "webrtc",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_before": load_before},
        "method": "harness pinned to core 0 (--rt-transport webrtc), mock pinned to core 1; step load",
        "steps": rows,
        "sessions_sustained_per_core": sustained,
        "highest_sustained_step": highest(rows),
        "goal_per_core": 200,
        "ttfa_error_ms": error,
        "outcomes": counts,
        "took_s": round(took, 1),
        "load_after": os.getloadavg(),
    }
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
