"""Benchmark: every `rtload report` on two synthetic rolled runs of 10,000,000 responses.

A day at a thousand sessions (issue 18). Each run is generated deterministically with numpy in
today's layout: Parquet segments of 50,000 rows (what the writer rolls at 64 MiB of JSONL) and a
live JSONL tail, every contract column filled as the harness fills it (random ids, so the bytes on
disk are honest). Every report command (and `compare` of the two runs) is timed twice, each in a
fresh process: wall time, CPU time (user+sys, the fairer figure on a shared machine) and peak
resident memory (ru_maxrss of the child, DuckDB's memory included). Also measured in the same
sitting: the reports DuckDB aggregates timed again the way they read before it (every row's columns
into pandas, ``RTLOAD_REPORT_ENGINE=pandas``, first read), the writer's cost per row with and without
rolling, the bytes per row at rest, the two candidates on the summary's core alone (pyarrow + pandas
against DuckDB SQL on the same segments), and today's layout before rolling (one JSONL of 1,000,000
rows, read then from its Parquet cache).
`python -m bench.bench_report --rows 1000000` for a smaller size. Goals: every report under 30 s,
under 5 s again, under 2 GB; under 250 bytes a row at rest; the writer no slower.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from loadtest.records import segments
from loadtest.records.reader import arrow_schema
from loadtest.records.schema import (
    RESPONSES_FILE,
    RUN_FILE,
    SCHEMA_VERSION,
    SESSIONS_FILE,
    ResponseRecord,
    SessionRecord,
    to_row,
)
from loadtest.records.writer import RunWriter

N_RESPONSES = 1_000_000  # the one-JSONL run (today's layout before rolling)
N_ROLLED = 10_000_000  # the rolled runs: a day at a thousand sessions
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


SEGMENT_ROWS = 50_000  # rows per segment, about what the writer rolls at 64 MiB of JSONL
TAIL_ROWS = 20_000  # rows left in the live JSONL (the writer has not rolled them yet)


def _hex_ids(rng: np.random.Generator, prefix: str, n: int, nbytes: int = 12) -> pa.Array:
    """``n`` random ids like the service's (``resp_`` + 24 hex digits): full entropy, as on disk."""
    raw = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    hexed = np.empty((n, 2 * nbytes), dtype=np.uint8)
    hexed[:, 0::2] = digits[raw >> 4]
    hexed[:, 1::2] = digits[raw & 15]
    body = np.concatenate([np.tile(np.frombuffer(prefix.encode(), dtype=np.uint8), (n, 1)), hexed], axis=1)
    width = body.shape[1]
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(body.tobytes()))


def _response_chunk(rng: np.random.Generator, start: int, n: int, total: int, steps: int, t0: float) -> pa.Table:
    """Rows ``start``..``start+n`` of a ``total``-row, ``steps``-step ramp, every contract column."""
    idx = np.arange(start, start + n)
    step = (idx * steps) // total
    users = (step + 1) * 100
    t_trigger = t0 + idx * (steps * 600.0 / total) + rng.uniform(0, 0.5, n)
    load = (step + 1) / steps
    created = np.round(rng.gamma(4.0, 40.0 * (1 + load), n), 2)
    ttfa = np.round(created + rng.gamma(4.0, 80.0 * (1 + 2 * load * load), n), 2)
    ttft = np.round(ttfa + rng.gamma(2.0, 20.0, n), 2)
    done = np.round(ttfa + rng.gamma(6.0, 400.0, n), 2)
    p_bad = 0.002 + 0.05 * load**3
    probs = np.stack([1 - p_bad, p_bad * 0.4, p_bad * 0.1, p_bad * 0.3, p_bad * 0.15, p_bad * 0.05], axis=1)
    kind = (rng.uniform(0, 1, n)[:, None] > np.cumsum(probs, axis=1)).sum(axis=1)
    ok = kind == 0
    outcomes = np.array([o for o, _ in OUTCOME_REASONS], dtype=object)[kind]
    reasons = np.array([r for _, r in OUTCOME_REASONS], dtype=object)[kind]
    audio_ms = np.round(rng.uniform(1000, 6000, n), 2)
    tokens_in = rng.integers(100, 800, n)
    tokens_out = rng.integers(200, 1500, n)
    none = pa.nulls(n)
    cols: dict[str, Any] = {
        "run_id": pa.array(["bench"] * n),
        "worker_id": pa.array([f"w{w}" for w in idx % 4]),
        "user_id": idx % 1000,
        "session_id": _hex_ids(rng, "sess_", n),
        "response_id": _hex_ids(rng, "resp_", n),
        "item_id": _hex_ids(rng, "item_", n),
        "turn_index": idx % 8,
        "target": pa.array(["mock"] * n),
        "provider": pa.array(["openai"] * n),
        "dialect": pa.array(["ga"] * n),
        "deployment": pa.array(["gpt-realtime"] * n),
        "scenario": pa.array(["conversation"] * n),
        "fixture": pa.array(["en_short_01"] * n),
        "trigger": pa.array(["server_vad"] * n),
        "modalities": pa.array([["audio"]] * n, type=pa.list_(pa.string())),
        "audio_format": pa.array(["pcm16"] * n),
        "out_of_band": np.zeros(n, dtype=bool),
        "step": step,
        "users": users,
        "concurrency": users - rng.integers(0, 5, n),
        "t_trigger": t_trigger,
        "t_created": t_trigger + created / 1000,
        "t_first_audio": t_trigger + ttfa / 1000,
        "t_first_text": t_trigger + ttft / 1000,
        "t_audio_done": t_trigger + done / 1000,
        "t_done": t_trigger + done / 1000,
        "created_ms": created,
        "ttfa_ms": pa.array(np.where(ok | (kind == 3), ttfa, np.nan), from_pandas=True),
        "ttft_ms": pa.array(np.where(ok | (kind == 3), ttft, np.nan), from_pandas=True),
        "done_ms": done,
        "outcome": pa.array(outcomes.tolist()),
        "reason": pa.array(reasons.tolist()),
        "status": pa.array(np.where(ok, "completed", np.where(kind <= 2, "failed", "incomplete")).tolist()),
        "error_code": pa.array(np.where(kind == 1, "server_error", None).tolist()),
        "error_message": pa.array(np.where(kind == 1, "The server had an error.", None).tolist()),
        "done_event_id": _hex_ids(rng, "event_", n, 9),
        "audio_bytes": (audio_ms * 48).astype(np.int64),
        "audio_ms": audio_ms,
        "audio_deltas": (audio_ms // 250).astype(np.int64),
        "max_delta_gap_ms": np.round(rng.gamma(2.0, 30.0, n), 2),
        "underrun_ms": np.zeros(n),
        "longest_underrun_ms": np.zeros(n),
        "longest_silence_ms": np.zeros(n),
        "silence_ms": np.zeros(n),
        "content_types": pa.array([["audio"]] * n, type=pa.list_(pa.string())),
        "transcript_chars": rng.integers(20, 200, n),
        "text_chars": np.zeros(n, dtype=np.int64),
        "input_tokens": tokens_in,
        "output_tokens": tokens_out,
        "total_tokens": tokens_in + tokens_out,
        "schema_version": np.full(n, SCHEMA_VERSION),
    }
    schema = arrow_schema(ResponseRecord)
    arrays = [cols.get(f.name, none) for f in schema]
    return _table(arrays, schema)


def _table(arrays: list[Any], schema: pa.Schema) -> pa.Table:
    arrays = [a if isinstance(a, pa.Array | pa.ChunkedArray) else pa.array(a) for a in arrays]
    return pa.Table.from_arrays(arrays, names=schema.names).cast(schema)


def _session_chunk(responses: pa.Table) -> pa.Table:
    """One session per four responses (its first), as the writer would have rolled them."""
    first = responses.take(np.arange(0, responses.num_rows, 4))
    n = first.num_rows
    t = first.column("t_trigger").to_numpy()
    cols = {
        "run_id": first.column("run_id"),
        "worker_id": first.column("worker_id"),
        "user_id": first.column("user_id"),
        "session_id": first.column("session_id"),
        "target": first.column("target"),
        "provider": first.column("provider"),
        "dialect": first.column("dialect"),
        "deployment": first.column("deployment"),
        "url": pa.array(["ws://127.0.0.1:8765/v1/realtime?model=gpt-realtime"] * n),
        "scenario": first.column("scenario"),
        "t_start": t - 0.5,
        "t_open": t - 0.4,
        "t_end": t + 20,
        "handshake_ms": np.full(n, 100.0),
        "handshake_status": np.full(n, 101),
        "ended_by": pa.array(["client_closed"] * n),
        "duration_s": np.full(n, 20.4),
        "responses": np.full(n, 4),
        "concurrency": first.column("concurrency"),
        "step": first.column("step"),
        "schema_version": np.full(n, SCHEMA_VERSION),
    }
    schema = arrow_schema(SessionRecord)
    return _table([cols.get(f.name, pa.nulls(n)) for f in schema], schema)


def write_segmented_run(run_dir: Path, n: int, seed: int = 0, steps: int = 10) -> None:
    """A complete run directory of ``n`` responses in today's layout: Parquet segments of
    ``SEGMENT_ROWS`` rows, as the writer rolls them, and the last ``TAIL_ROWS`` in the live JSONL.
    Deterministic for a seed; every column filled as the harness fills it (random ids)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t0 = 1_780_000_000.0
    responses, sessions = run_dir / RESPONSES_FILE, run_dir / SESSIONS_FILE
    segments.segments_dir(responses).mkdir(exist_ok=True)
    segments.segments_dir(sessions).mkdir(exist_ok=True)
    rolled = max(0, n - TAIL_ROWS)
    for index, start in enumerate(range(0, rolled, SEGMENT_ROWS), start=1):
        chunk = _response_chunk(rng, start, min(SEGMENT_ROWS, rolled - start), n, steps, t0)
        segments.write_segment(chunk, segments.segment_path(responses, index))
        segments.write_segment(_session_chunk(chunk), segments.segment_path(sessions, index))
    with open(responses, "wb") as out, open(sessions, "wb") as sess:
        if n > rolled:
            tail = _response_chunk(rng, rolled, n - rolled, n, steps, t0)
            for row in tail.to_pylist():
                out.write(orjson.dumps(row) + b"\n")
            for row in _session_chunk(tail).to_pylist():
                sess.write(orjson.dumps(row) + b"\n")
    (run_dir / RUN_FILE).write_text(
        json.dumps({"run_id": "bench", "t_start": t0, "t_end": t0 + steps * 600 + 30, "shape": "step"}),
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


def _timed(args: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Wall time and peak resident memory of one report command in its own process."""
    started = time.perf_counter()
    # stdout thrown away: held here, a big output (failures) would grow this process, and a child's
    # ru_maxrss starts from its parent's resident size
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        check=False, env={**os.environ, **(env or {})},
    )  # fmt: skip
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


def writer_cost(rows: int = 150_000) -> dict[str, float]:
    """The writer's cost per response row on the harness side, today's JSONL only (rolling off) and
    with rolling (the default), measured in one sitting: ``response(record)`` per row as a
    standalone harness calls it, and ``write_raw(batch)`` as the master writes a worker's batch.
    Wall time and the calling thread's CPU per row (what the hot path pays), and the whole
    process's CPU per row including the background conversion into segments."""
    record = ResponseRecord(
        run_id="bench", response_id="resp_0123456789abcdef01234567", outcome="completed", ttfa_ms=512.25
    )
    batch = b"".join(orjson.dumps(to_row(record)) + b"\n" for _ in range(500))
    out: dict[str, float] = {}
    for label, roll in (("jsonl_only", 0), ("rolling", segments.ROLL_BYTES)):
        best: dict[str, float] = {}
        for _ in range(3):
            with tempfile.TemporaryDirectory(prefix="rtload-bench-writer-") as tmp:
                writer = RunWriter(Path(tmp), roll_bytes=roll)
                for name, write in (
                    ("record", lambda w=writer: [w.response(record) for _ in range(rows)]),
                    ("batch", lambda w=writer: [w.write_raw("response", batch) for _ in range(rows // 500)]),
                ):
                    wall, thread, proc = time.perf_counter(), time.thread_time(), time.process_time()
                    write()
                    figures = {
                        f"us_per_row_{name}": time.perf_counter() - wall,
                        f"caller_cpu_us_per_row_{name}": time.thread_time() - thread,
                    }
                    writer.wait_segments()
                    figures[f"process_cpu_us_per_row_{name}"] = time.process_time() - proc
                    for key, value in figures.items():
                        best[key] = min(best.get(key, float("inf")), value / rows * 1e6)
                writer.close()
        out.update({f"{label}_{key}": round(value, 3) for key, value in best.items()})
    return out


def _generate(func: str, run_dir: Path, rows: int, seed: int) -> float:
    """Generate a run in a child process (so this process stays small: a forked child's ru_maxrss
    starts from its parent's resident size, which would inflate the figures)."""
    started = time.perf_counter()
    gen = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from pathlib import Path; from bench.bench_report import {func}; "
            f"{func}(Path({str(run_dir)!r}), {rows}, seed={seed})",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if gen.returncode != 0:
        raise RuntimeError(f"generating the run failed: {gen.stderr.strip()[-500:]}")
    return round(time.perf_counter() - started, 2)


def _disk(run_dir: Path) -> dict[str, float]:
    def size(*names: str) -> int:
        total = 0
        for name in names:
            path = run_dir / name
            if path.is_dir():
                total += sum(p.stat().st_size for p in path.iterdir())
            elif path.exists():
                total += path.stat().st_size
        return total

    return {
        "responses_bytes": size(RESPONSES_FILE, "responses.segments"),
        "sessions_bytes": size(SESSIONS_FILE, "sessions.segments"),
    }


def _duckdb_summary(run_dir: Path) -> dict[str, float] | None:
    """The candidate not taken: the summary's core (outcome counts, four latency percentiles) as
    DuckDB SQL over the segments, timed and measured like the reports (None without duckdb)."""
    try:
        import duckdb  # noqa: F401
    except ImportError:
        return None
    query = (
        "import duckdb; con = duckdb.connect(); seg = {!r}; "
        "con.sql(f\"select outcome, count(*) from read_parquet('{{seg}}/*.parquet') group by 1\").fetchall(); "
        'con.sql(f"select quantile_cont(c, [0.5, 0.9, 0.95, 0.99]) from (select unnest([created_ms, ttfa_ms, '
        "ttft_ms, done_ms]) c from read_parquet('{{seg}}/*.parquet'))\").fetchall()"
    ).format(str(run_dir / "responses.segments"))
    return _timed_code(query)


def _timed_code(code: str) -> dict[str, float]:
    child = code + "\nimport resource, sys\nu = resource.getrusage(resource.RUSAGE_SELF)\n"
    child += 'sys.stderr.write("PEAK_RSS_KB=%d CPU_S=%.3f\\n" % (u.ru_maxrss, u.ru_utime + u.ru_stime))\n'
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", child], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-500:])
    last = [line for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KB=")][-1]
    fields = dict(part.split("=") for part in last.split())
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "cpu_seconds": round(float(fields["CPU_S"]), 2),
        "peak_rss_mb": round(int(fields["PEAK_RSS_KB"]) / 1024, 1),
    }


REPORTS: dict[str, list[str]] = {
    "summary": ["summary", "{a}", "--format", "json"],
    "capacity": ["capacity", "{a}", "--slo", "failed<1%,ttfa_p95<1200ms", "--format", "json"],
    "limits": ["limits", "{a}", "--format", "json"],
    "soak": ["soak", "{a}", "--window", "10m", "--format", "json"],
    "failures": ["failures", "{a}", "--format", "json"],
    "html": ["html", "{a}", "-o", "{tmp}/report.html"],
    "compare": ["compare", "{a}", "{b}", "--format", "json"],
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_report", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=N_ROLLED, help="responses in the rolled runs (default 10M)")
    parser.add_argument("--legacy-rows", type=int, default=N_RESPONSES, help="responses in the one-JSONL run (0: skip)")
    parser.add_argument("--data", type=Path, help="keep the generated runs here (reused when there: deterministic)")
    parser.add_argument(
        "--only", help="time only these reports (comma-separated) and update their figures in the results file"
    )
    args = parser.parse_args(sys.argv[2:] if argv is None and sys.argv[1:2] == ["report"] else argv)
    if args.only:
        return rerun(args)
    results: dict[str, Any] = {
        "responses": args.rows,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
    }
    # in a child, as everything else: this process stays small (see _generate)
    writer = subprocess.run(
        [sys.executable, "-c", "import json, bench.bench_report as b; print(json.dumps(b.writer_cost()))"],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    results["writer"] = json.loads(writer.stdout.strip().splitlines()[-1])
    print(f"writer: {results['writer']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="rtload-bench-report-") as tmp:
        data = args.data if args.data is not None else Path(tmp)
        run_a, run_b = data / "rolled-a", data / "rolled-b"
        for run_dir, seed in ((run_a, 0), (run_b, 1)):
            if (run_dir / RUN_FILE).exists():
                continue  # generated before (same generator, same seed)
            results[f"generate_seconds_{run_dir.name}"] = _generate("write_segmented_run", run_dir, args.rows, seed)
        disk = _disk(run_a)
        results["disk"] = {
            **disk,
            "responses_bytes_per_row": round(disk["responses_bytes"] / args.rows, 1),
            "with_sessions_bytes_per_row": round((disk["responses_bytes"] + disk["sessions_bytes"]) / args.rows, 1),
        }
        print(f"generated 2 x {args.rows} responses; disk {results['disk']}", flush=True)
        timings: dict[str, dict[str, float]] = {}
        for name, template in REPORTS.items():
            argv_ = [x.format(a=run_a, b=run_b, tmp=tmp) for x in template]
            for attempt in ("first", "again"):
                timings[f"{name}_{attempt}"] = _timed(["report", *argv_])
                print(f"{name}_{attempt}: {timings[f'{name}_{attempt}']}", flush=True)
        timings.update(pandas_path(run_a, run_b, tmp))
        duck = _duckdb_summary(run_a)
        if duck is not None:
            timings["candidate_duckdb_summary_core"] = duck
        code = (
            "from loadtest.records.reader import read_frame; from loadtest.records.schema import ResponseRecord; "
            f"import numpy as np, pathlib; p = pathlib.Path({str(run_a / RESPONSES_FILE)!r}); "
            "cols = ['outcome', 'created_ms', 'ttfa_ms', 'ttft_ms', 'done_ms']; "
            "f, _ = read_frame(p, ResponseRecord, cols, compact=True); "
            "f['outcome'].value_counts(); [np.nanpercentile(f[c].to_numpy(), [50, 90, 95, 99]) for c in "
            "('created_ms', 'ttfa_ms', 'ttft_ms', 'done_ms')]"
        )
        timings["candidate_pyarrow_pandas_summary_core"] = _timed_code(code)
        print(f"candidates: duckdb {duck}, pyarrow+pandas {timings['candidate_pyarrow_pandas_summary_core']}")
        results["timings"] = timings
        if args.legacy_rows:
            results["legacy_one_jsonl"] = legacy(Path(tmp) / "legacy", args.legacy_rows)
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["goals"] = {"first_seconds": 30, "again_seconds": 5, "peak_rss_mb": 2048, "bytes_per_row": 250}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


# The reports DuckDB aggregates, timed again in the same sitting the way they read before it:
# every row's columns into pandas (RTLOAD_REPORT_ENGINE=pandas), first read (nothing kept).
PANDAS_PATH = ("summary", "soak", "failures", "html", "compare")


def pandas_path(run_a: Path, run_b: Path, tmp: str) -> dict[str, dict[str, float]]:
    out = {}
    for name in PANDAS_PATH:
        argv_ = [x.format(a=run_a, b=run_b, tmp=tmp) for x in REPORTS[name]]
        out[f"{name}_pandas_first"] = _timed(["report", *argv_, "--no-cache"], {"RTLOAD_REPORT_ENGINE": "pandas"})
        print(f"{name}_pandas_first: {out[f'{name}_pandas_first']}", flush=True)
    return out


def rerun(args: argparse.Namespace) -> None:
    """Time some reports again on kept runs (``--data``) and update their figures in the results."""
    if args.data is None:
        raise SystemExit("--only needs --data (the runs generated before)")
    results = json.loads(RESULTS.read_text(encoding="utf-8"))
    run_a, run_b = args.data / "rolled-a", args.data / "rolled-b"
    with tempfile.TemporaryDirectory(prefix="rtload-bench-report-") as tmp:
        for name in args.only.split(","):
            argv_ = [x.format(a=run_a, b=run_b, tmp=tmp) for x in REPORTS[name]]
            for attempt in ("first", "again"):
                if attempt == "first":  # a first read: nothing kept from before
                    for run_dir in (run_a, run_b):
                        shutil.rmtree(run_dir / ".rtload-cache", ignore_errors=True)
                results["timings"][f"{name}_{attempt}"] = _timed(["report", *argv_])
                print(f"{name}_{attempt}: {results['timings'][f'{name}_{attempt}']}", flush=True)
    results.setdefault("reruns", []).append(
        {"reports": args.only, "load_average": [round(x, 2) for x in os.getloadavg()], "at": time.strftime("%H:%M")}
    )
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


def legacy(run_dir: Path, rows: int) -> dict[str, Any]:
    """Today's layout before rolling: one JSONL of ``rows`` full rows (read, then from its cache)."""
    out: dict[str, Any] = {"responses": rows, "generate_seconds": _generate("write_synthetic_run", run_dir, rows, 0)}
    out["responses_jsonl_mb"] = round((run_dir / RESPONSES_FILE).stat().st_size / 1e6, 1)
    for label in ("summary_first_read_jsonl", "summary_cached_parquet"):
        out[label] = _timed(["report", "summary", str(run_dir), "--format", "json"])
        print(f"legacy {label}: {out[label]}", flush=True)
    corrupt_line_in_middle(run_dir / RESPONSES_FILE)
    out["summary_one_corrupt_line_no_cache"] = _timed(["report", "summary", str(run_dir), "--no-cache"])
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
