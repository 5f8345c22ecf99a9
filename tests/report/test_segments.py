"""Rolled runs: JSONL rolled into Parquet segments as the run goes (loadtest.records.segments).

Every row once across a SIGKILL at any point of rolling, and reports on a rolled run equal to
reports on the same rows as one JSONL.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from loadtest.records import rolling, segments
from loadtest.records.reader import read_run
from loadtest.records.schema import HEALTH_FILE, RATE_LIMITS_FILE, RESPONSES_FILE, SESSIONS_FILE, ResponseRecord, to_row
from loadtest.records.writer import RunWriter, read_rows
from tests.report.synth import T0, ramp_run

ROOT = Path(__file__).resolve().parents[2]

# A writer process that rolls every ~20 KB (a segment per ~15 rows), as fast as it can, and says
# after each flush how many rows the operating system holds: those must survive a SIGKILL.
_WRITER = """
import sys, time
from pathlib import Path
from loadtest.records.writer import RunWriter
from loadtest.records.schema import ResponseRecord
w = RunWriter(Path(sys.argv[1]), roll_bytes=20_000, flush_interval=0.05)
i = 0
deadline = time.monotonic() + 20  # bounded: the test kills it within seconds
while time.monotonic() < deadline:
    w.write_many("response", [ResponseRecord(run_id="k", response_id=f"resp_{j}", turn_index=j, t_trigger=1.8e9 + j,
                                             outcome="completed") for j in range(i, i + 7)])
    i += 7
    w.flush()
    sys.stdout.write(f"{i}\\n"); sys.stdout.flush()
"""


def _turns(run: Path) -> list[int]:
    data = read_run(run, response_columns=["turn_index"])
    return [int(x) for x in data.responses["turn_index"]]


def test_every_row_once_across_sigkill_at_random_points_of_rolling(tmp_path) -> None:
    rng = random.Random(18)
    for attempt in range(6):
        run = tmp_path / f"killed-{attempt}"
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(run)], cwd=ROOT, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        flushed = int(proc.stdout.readline())  # the writer is going: kill it at a random point from now
        started = time.monotonic()
        wait = rng.uniform(0.2, 1.5)
        while time.monotonic() - started < wait:
            line = proc.stdout.readline()
            if line:
                flushed = int(line)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        turns = _turns(run)
        assert len(turns) == len(set(turns)), "a row read twice"
        assert turns == list(range(len(turns))), "a row lost in the middle"
        assert len(turns) >= flushed > 0, (len(turns), flushed)
        assert segments.parts(run / RESPONSES_FILE), "the kill came before any roll"
        assert len(read_rows(run / RESPONSES_FILE)) == len(turns)


def _rows(n: int) -> list[ResponseRecord]:
    return [ResponseRecord(run_id="r", response_id=f"resp_{i}", turn_index=i, t_trigger=T0 + i) for i in range(n)]


def test_every_crash_point_of_one_roll_reads_every_row_once(tmp_path) -> None:
    """The steps of a roll, stopped after each: rename, temporary segment, segment, JSONL removed."""
    base = tmp_path / "base"
    with RunWriter(base, roll_bytes=0) as writer:
        writer.write_many("response", _rows(30))
    live = base / RESPONSES_FILE
    stages = {}
    for stage in ("renamed", "temporary_written", "segment_renamed", "jsonl_removed"):
        run = tmp_path / stage
        shutil.copytree(base, run)
        path = run / RESPONSES_FILE
        rolled = segments.roll(path, 1)
        with open(path, "wb") as out:  # the writer went on: rows after the roll
            for rec in _rows(40)[30:]:
                out.write(orjson.dumps(to_row(rec)) + b"\n")
        if stage != "renamed":
            seg = segments.segment_path(path, 1)
            tmp = seg.with_name(f".{seg.name}.tmp")
            tmp.write_bytes(b"PAR1 half a segment")  # a killed conversion
            if stage in ("segment_renamed", "jsonl_removed"):
                tmp.unlink()
                rolling.convert(rolled, ResponseRecord)
                if stage == "segment_renamed":
                    shutil.copy(live, rolled)  # killed before the rolled JSONL was removed
        stages[stage] = _turns(run)
    for stage, turns in stages.items():
        assert turns == list(range(40)), stage


def test_a_torn_last_line_after_segments_leaves_every_earlier_row(tmp_path) -> None:
    run = tmp_path / "torn"
    with RunWriter(run, roll_bytes=3_000) as writer:
        for record in _rows(50):
            writer.response(record)
    assert segments.parts(run / RESPONSES_FILE)
    with open(run / RESPONSES_FILE, "ab") as out:
        out.write(b'{"run_id": "r", "turn_index": 50, "outc')
    data = read_run(run, response_columns=["turn_index"])
    assert [int(x) for x in data.responses["turn_index"]] == list(range(50))
    assert data.in_progress
    assert any("the last line is incomplete" in w for w in data.warnings)


def test_read_run_selects_columns_and_a_time_range_across_segments(tmp_path) -> None:
    run = tmp_path / "window"
    with RunWriter(run, roll_bytes=4_000) as writer:
        for record in _rows(120):
            writer.response(record)
    assert len(segments.parts(run / RESPONSES_FILE)) > 3
    data = read_run(run, response_columns=["turn_index"], time_range=(T0 + 30, T0 + 75), compact=True)
    assert list(data.responses.columns) == ["turn_index", "schema_version"]
    assert [int(x) for x in data.responses["turn_index"]] == list(range(30, 75))
    failed_only = read_run(run, response_where=pa.compute.field("turn_index") >= 100)
    assert len(failed_only.responses) == 20 and failed_only.response_total == 120


def _roll_copy(src: Path, dst: Path, roll_bytes: int) -> Path:
    """``src`` with its record files rewritten through a rolling writer (line by line, as batches come)."""
    shutil.copytree(src, dst)
    kinds = {RESPONSES_FILE: "response", SESSIONS_FILE: "session", RATE_LIMITS_FILE: "rate_limit"}
    lines = {name: (src / name).read_bytes().splitlines(keepends=True) for name in kinds}
    for name in kinds:
        (dst / name).unlink()
    with RunWriter(dst, roll_bytes=roll_bytes) as writer:
        for name, kind in kinds.items():
            for line in lines[name]:
                writer.write_raw(kind, line)
    for name in (HEALTH_FILE,):  # the writer creates every file; the synthetic run has none
        if not (src / name).exists():
            (dst / name).unlink()
    assert len(segments.parts(dst / RESPONSES_FILE)) >= 5
    assert not list(dst.glob("*.segments/_*.jsonl")), "every rolled file became a segment"
    return dst


def test_reports_on_a_rolled_run_equal_reports_on_one_jsonl(tmp_path, cli) -> None:
    plain = ramp_run(tmp_path / "plain").path
    rolled = _roll_copy(plain, tmp_path / "rolled", roll_bytes=60_000)
    other = ramp_run(tmp_path / "other", seed=2).path
    for command in (["summary"], ["capacity"], ["limits"], ["soak", "--window", "2m"], ["failures"]):
        a = json.dumps(cli.json(command[0], plain, *command[1:])).replace(str(plain), "RUN")
        b = json.dumps(cli.json(command[0], rolled, *command[1:])).replace(str(rolled), "RUN")
        assert a.replace('"rolled"', '"plain"') == b.replace('"rolled"', '"plain"'), command
    a = json.dumps(cli.json("compare", plain, other)).replace(str(plain), "RUN")
    b = json.dumps(cli.json("compare", rolled, other)).replace(str(rolled), "RUN")
    assert a.replace('"rolled"', '"plain"') == b.replace('"rolled"', '"plain"')


def test_bad_lines_of_a_rolled_file_are_still_named_after_it_became_a_segment(tmp_path) -> None:
    run = tmp_path / "bad"
    with RunWriter(run, roll_bytes=0) as writer:
        writer.write_many("response", _rows(10))
        writer.write_raw("response", b"null\n")
        writer.write_many("response", _rows(12)[10:])
    rolled = segments.roll(run / RESPONSES_FILE, 1)
    (run / RESPONSES_FILE).write_bytes(b"")
    before = read_run(run, response_columns=["turn_index"])
    rolling.convert(rolled, ResponseRecord)
    after = read_run(run, response_columns=["turn_index"])
    for data in (before, after):
        assert [int(x) for x in data.responses["turn_index"]] == list(range(12))
        assert "_000001.jsonl line 11: not a JSON object; skipped it" in data.warnings


# A fresh process converts the same ~60 MB rolled JSONL three times, in itself or through a child,
# and says how much its resident memory grew (issue 22: the master stepped up at each roll).
_GROWTH = """
import shutil, sys
from pathlib import Path
from loadtest.records import rolling, segments
from loadtest.records.schema import ResponseRecord
def rss(): return int(open("/proc/self/statm").read().split()[1]) * 4096
src, work, how = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
convert = rolling.convert if how == "here" else rolling.convert_in_child
before = rss()
for i in range(3):
    run = work / str(i)
    run.mkdir()
    if how == "writer":  # the writer's own roll of a full-size file, as the master's
        from loadtest.records.writer import RunWriter
        with RunWriter(run, roll_bytes=src.stat().st_size) as writer:
            writer.write_raw("response", src.read_bytes())
        assert not list(run.glob("responses.segments/*.jsonl"))
        continue
    shutil.copy(src, run / "responses.jsonl")
    rolled = segments.roll(run / "responses.jsonl", segments.next_index(run / "responses.jsonl"))
    assert convert(rolled, ResponseRecord) is not None and not rolled.exists()
print(rss() - before)
"""


def test_a_roll_converted_in_a_child_leaves_the_writers_memory_where_it_was(tmp_path: Path) -> None:
    """The writer's conversions run in a short-lived child: the parse's few hundred MB leave with it.
    Converting in the writer's own process instead keeps tens of MB after the same three rolls."""
    row = ResponseRecord(run_id="m", session_id="sess_x", response_id="resp_x", t_trigger=T0, outcome="completed",
                         ttfa_ms=412.5, audio_ms=5230.0, transcript_chars=440, deployment="gpt-realtime",
                         scenario="conversation", modalities=["audio", "text"])  # fmt: skip
    line = orjson.dumps(to_row(row)) + b"\n"
    src = tmp_path / "src.jsonl"
    src.write_bytes(line * (60_000_000 // len(line)))
    growth = {}
    for how in ("child", "writer", "here"):
        (tmp_path / how).mkdir()
        done = subprocess.run([sys.executable, "-c", _GROWTH, str(src), str(tmp_path / how), how], cwd=ROOT,
                              capture_output=True, text=True, timeout=240)  # fmt: skip
        assert done.returncode == 0, done.stderr
        growth[how] = int(done.stdout) / 1e6
        segs = sorted((tmp_path / how).glob("*/responses.segments/*.parquet"))  # three segments, all rows
        assert len(segs) == 3 and pq.read_metadata(segs[0]).num_rows == src.stat().st_size // len(line)
    assert growth["child"] < 8 and growth["writer"] < 8, growth
    assert growth["here"] > growth["child"] + 15, growth  # the measure sees what a conversion keeps
