"""Benchmark: `rtload report summary` and `capacity` on a synthetic run of 1,000,000 responses.

The run is generated with numpy (a 10-step ramp whose latency and failure rate grow with
load) and written as full contract rows (every field, as the harness writes them) with
orjson. Each report is timed in a fresh process, once from the JSONL (first report on a
run; this also writes the Parquet cache) and once more from the cache, recording wall
time, CPU time (user+sys, the fairer figure on a shared machine) and peak resident memory
(ru_maxrss of the child). Aim: under 10 s and 2 GB.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

from loadtest.records.schema import RESPONSES_FILE, RUN_FILE, SESSIONS_FILE, ResponseRecord, to_row

N_RESPONSES = 1_000_000
RESULTS = Path(__file__).parent / "results" / "report.json"
OUTCOME_REASONS = [
    ("completed", ""),
    ("failed", "server_error"),
    ("failed", "connection_dropped"),
    ("truncated", "audio_stall"),
    ("throttled", "rate_limit_exceeded"),
    ("cancelled", "turn_detected"),
]


def write_synthetic_run(run_dir: Path, n: int = N_RESPONSES, seed: int = 0, steps: int = 10) -> None:
    """A complete run directory with ``n`` response rows of a ``steps``-step ramp."""
    run_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t0 = 1_780_000_000.0
    step = np.sort(rng.integers(0, steps, n))
    users = (step + 1) * 10
    t_trigger = t0 + step * 60.0 + rng.uniform(0, 60, n)
    load = (step + 1) / steps
    created = rng.gamma(4.0, 40.0 * (1 + load), n)
    ttfa = created + rng.gamma(4.0, 80.0 * (1 + 2 * load * load), n)
    ttft = ttfa + rng.gamma(2.0, 20.0, n)
    done = ttfa + rng.gamma(6.0, 400.0, n)
    p_bad = 0.002 + 0.05 * load**3
    probs = np.stack([1 - p_bad, p_bad * 0.4, p_bad * 0.1, p_bad * 0.3, p_bad * 0.15, p_bad * 0.05], axis=1)
    u = rng.uniform(0, 1, n)[:, None]
    kind = (u > np.cumsum(probs, axis=1)).sum(axis=1)
    audio_ms = rng.uniform(1000, 6000, n)
    tokens_in = rng.integers(100, 800, n)
    tokens_out = rng.integers(200, 1500, n)
    template = to_row(
        ResponseRecord(
            run_id="bench",
            target="mock",
            provider="openai",
            dialect="ga",
            deployment="gpt-realtime",
            scenario="short_question",
            fixture="en_short_01",
            trigger="server_vad",
            modalities=["audio"],
            audio_format="pcm16",
            status="completed",
            content_types=["audio"],
        )
    )
    # One %-format template per row shape: the constant fields serialised once by orjson, the
    # varying ones as placeholders (fixed-decimal floats format fastest).
    formats = {
        "user_id": "%d",
        "session_id": '"sess_%07d"',
        "response_id": '"resp_%08d"',
        "turn_index": "%d",
        "step": "%d",
        "users": "%d",
        "concurrency": "%d",
        "t_trigger": "%.4f",
        "t_created": "%.4f",
        "t_first_audio": "%.4f",
        "t_done": "%.4f",
        "created_ms": "%.2f",
        "ttfa_ms": "%.2f",
        "ttft_ms": "%.2f",
        "done_ms": "%.2f",
        "outcome": "%s",
        "reason": "%s",
        "status": "%s",
        "audio_ms": "%.2f",
        "max_delta_gap_ms": "%.2f",
        "input_tokens": "%d",
        "output_tokens": "%d",
        "total_tokens": "%d",
    }
    marked = {**template, **{k: f"@@{k}@@" for k in formats}}
    line = orjson.dumps(marked).decode().replace("%", "%%")
    for k, fmt in formats.items():
        line = line.replace(f'"@@{k}@@"', fmt)
    line += "\n"
    idx = np.arange(n)
    created, ttfa, ttft, done = (np.round(x, 2) for x in (created, ttfa, ttft, done))
    outcome_json = [orjson.dumps(o).decode() for o, _ in OUTCOME_REASONS]
    reason_json = [orjson.dumps(r).decode() for _, r in OUTCOME_REASONS]
    status_json = ['"completed"', '"failed"', '"failed"', '"completed"', '"completed"', '"completed"']
    columns = [
        (idx % 100).tolist(),
        (idx // 4).tolist(),
        idx.tolist(),
        (idx % 4).tolist(),
        step.tolist(),
        users.tolist(),
        users.tolist(),
        t_trigger.tolist(),
        (t_trigger + created / 1000).tolist(),
        (t_trigger + ttfa / 1000).tolist(),
        (t_trigger + done / 1000).tolist(),
        created.tolist(),
        ttfa.tolist(),
        ttft.tolist(),
        done.tolist(),
        [outcome_json[k] for k in kind],
        [reason_json[k] for k in kind],
        [status_json[k] for k in kind],
        np.round(audio_ms, 1).tolist(),
        np.round(rng.gamma(2.0, 30.0, n), 1).tolist(),
        tokens_in.tolist(),
        tokens_out.tolist(),
        (tokens_in + tokens_out).tolist(),
    ]
    with open(run_dir / RESPONSES_FILE, "w", encoding="utf-8", buffering=16 * 1024 * 1024) as out:
        rows = zip(*columns, strict=True)
        while batch := list(itertools.islice(rows, 50_000)):
            out.write("".join([line % values for values in batch]))
    cols = {"t_trigger": t_trigger.tolist(), "step": step.tolist(), "users": users.tolist()}
    opt = orjson.OPT_APPEND_NEWLINE
    with open(run_dir / SESSIONS_FILE, "wb") as out:
        for s in range(0, n, 4):
            out.write(
                orjson.dumps(
                    {
                        "run_id": "bench",
                        "session_id": f"sess_{s // 4:07d}",
                        "target": "mock",
                        "t_start": cols["t_trigger"][s] - 0.5,
                        "t_open": cols["t_trigger"][s] - 0.4,
                        "t_end": cols["t_trigger"][s] + 20,
                        "handshake_ms": 100.0,
                        "handshake_status": 101,
                        "ended_by": "client_closed",
                        "step": cols["step"][s],
                        "concurrency": cols["users"][s],
                        "schema_version": 1,
                    },
                    option=opt,
                )
            )
    (run_dir / RUN_FILE).write_text(
        json.dumps({"run_id": "bench", "t_start": t0, "t_end": t0 + steps * 60 + 30, "shape": "ramp"}),
        encoding="utf-8",
    )


def corrupt_line_in_middle(path: Path) -> None:
    """Overwrite the opening brace of the line at the middle of the file (in place)."""
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2)
        f.readline()  # to the start of the next line
        f.write(b"#")


# Runs one `rtload report ...` in a fresh interpreter and prints its own peak RSS on stderr.
_CHILD = """
import resource, sys
from loadtest.cli import app
code = 0
try:
    app(sys.argv[1:], standalone_mode=False)
except SystemExit as exc:
    code = exc.code or 0
usage = resource.getrusage(resource.RUSAGE_SELF)
sys.stderr.write("PEAK_RSS_KB=%d CPU_S=%.3f\\n" % (usage.ru_maxrss, usage.ru_utime + usage.ru_stime))
sys.exit(code)
"""


def _timed(args: list[str]) -> dict[str, float]:
    """Wall time and peak resident memory of one report command in its own process."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
    last = [line for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KB=")][-1]
    fields = dict(part.split("=") for part in last.split())
    return {
        "seconds": round(elapsed, 2),
        "cpu_seconds": round(float(fields["CPU_S"]), 2),  # user+sys: less sensitive to a busy machine
        "peak_rss_mb": round(int(fields["PEAK_RSS_KB"]) / 1024, 1),
    }


def main() -> None:
    results: dict[str, object] = {
        "responses": N_RESPONSES,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
    }
    with tempfile.TemporaryDirectory(prefix="rtload-bench-report-") as tmp:
        run_dir = Path(tmp) / "bench-run"
        # generated in a child process, so this process stays small: a forked child's
        # ru_maxrss starts from its parent's resident size, which would inflate the figures below
        started = time.perf_counter()
        gen = subprocess.run(
            [
                sys.executable,
                "-c",
                f"from pathlib import Path; from bench.bench_report import write_synthetic_run; "
                f"write_synthetic_run(Path({str(run_dir)!r}))",
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=Path(__file__).resolve().parent.parent,
        )
        if gen.returncode != 0:
            raise RuntimeError(f"generating the run failed: {gen.stderr.strip()[-500:]}")
        results["generate_seconds"] = round(time.perf_counter() - started, 2)
        results["responses_jsonl_mb"] = round((run_dir / RESPONSES_FILE).stat().st_size / 1e6, 1)
        print(f"generated {N_RESPONSES} responses in {results['generate_seconds']} s", flush=True)
        cli = ["report"]
        timings: dict[str, dict[str, float]] = {}
        for label, args in (
            ("summary_first_read_jsonl", ["summary", str(run_dir), "--format", "json"]),
            ("summary_cached_parquet", ["summary", str(run_dir), "--format", "json"]),
            ("capacity_cached_parquet", ["capacity", str(run_dir), "--slo", "failed<1%,ttfa_p95<1200ms"]),
        ):
            timings[label] = _timed([*cli, *args])
            print(f"{label}: {timings[label]}", flush=True)
        (run_dir / RESPONSES_FILE).with_suffix(".parquet").unlink(missing_ok=True)
        timings["capacity_first_read_jsonl"] = _timed([*cli, "capacity", str(run_dir), "--no-cache"])
        print(f"capacity_first_read_jsonl: {timings['capacity_first_read_jsonl']}", flush=True)
        # one corrupt line in the middle: the tolerant path isolates it by halving blocks
        corrupt_line_in_middle(run_dir / RESPONSES_FILE)
        timings["summary_one_corrupt_line_no_cache"] = _timed([*cli, "summary", str(run_dir), "--no-cache"])
        print(f"summary_one_corrupt_line_no_cache: {timings['summary_one_corrupt_line_no_cache']}", flush=True)
    results["timings"] = timings
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["aim"] = {"seconds": 10, "peak_rss_mb": 2048}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
