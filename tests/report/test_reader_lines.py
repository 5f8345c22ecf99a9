"""Any line a reader can meet: one warning naming file and line, and every other row read.

A property-based test (hypothesis) mixes good rows with every kind of bad line, and checks the
reader on the first read and through the Parquet cache; a CLI test drives `rtload report` as a
process, since the original defect (a `null` line) killed it with a segmentation fault.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loadtest.records import reader
from loadtest.records.schema import RESPONSES_FILE, ResponseRecord, to_row
from tests.report.synth import T0

RTLOAD = str(Path(sys.executable).with_name("rtload"))


def _good(i: int) -> bytes:
    record = ResponseRecord(run_id="r", response_id=f"resp_{i}", outcome="completed", t_trigger=T0 + i, ttfa_ms=i)
    return orjson.dumps(to_row(record))


def _wrong_type(i: int) -> bytes:
    row = to_row(ResponseRecord(run_id="r", response_id=f"resp_{i}", outcome="completed", t_trigger=T0 + i))
    row["ttfa_ms"] = "slow"
    return orjson.dumps(row)


BAD_LINES = st.one_of(
    st.sampled_from(
        [b"null", b"[1, 2]", b"[]", b"42", b"-1.5e3", b'"a string"', b"true", b"{}", b'{"other": 1}', b"{ }"]
    ),
    st.builds(lambda n: b'{"run_id": "r", "ttfa_ms": 1' + b"\x00" * n + b"}", st.integers(1, 3)),  # NUL bytes
    st.builds(lambda i: _good(i)[: len(_good(i)) // 2], st.integers(0, 9)),  # a row torn mid-way
    st.builds(lambda i: _good(i).replace(b'"r"', b'"\xff\xfe"'), st.integers(0, 9)),  # invalid UTF-8
    st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b and b.strip()),
    st.just(b'"' + b"x" * (9 << 20) + b'"'),  # a huge line (over pyarrow's 8 MiB block)
)

# one entry per line: ("good", None) a row, ("wrong", None) a row with a value of the wrong type,
# ("bad", bytes) a line that cannot be used
LINES = st.lists(
    st.one_of(
        st.tuples(st.just("good"), st.none()),
        st.tuples(st.just("wrong"), st.none()),
        st.tuples(st.just("bad"), BAD_LINES),
    ),
    min_size=1,
    max_size=30,
)


def _write(path: Path, entries: list[tuple[str, bytes | None]]) -> tuple[list[int], list[int], list[int]]:
    """The file, and the ids of good rows, the ids of wrong-typed rows, the line numbers of bad lines."""
    out, good, wrong, bad = [], [], [], []
    for lineno, (kind, payload) in enumerate(entries, start=1):
        if kind == "good":
            out.append(_good(lineno))
            good.append(lineno)
        elif kind == "wrong":
            out.append(_wrong_type(lineno))
            wrong.append(lineno)
        else:
            out.append(payload)
            bad.append(lineno)
    path.write_bytes(b"\n".join(out) + b"\n")
    return good, wrong, bad


def _check(table, warnings: list[str], good: list[int], wrong: list[int], bad: list[int]) -> None:
    ids = [round(t - T0) for t in table.column("t_trigger").to_pylist()]
    assert ids == sorted(good + wrong)  # every usable row once, in file order
    ttfa = dict(zip(ids, table.column("ttfa_ms").to_pylist(), strict=True))
    assert all(ttfa[i] == i for i in good)
    assert all(ttfa[i] is None for i in wrong)
    named = [w for w in warnings if w.startswith("responses.jsonl line ")]
    skipped = [w for w in named if w.endswith("skipped it")]
    assert [int(w.split()[2].rstrip(":")) for w in skipped] == bad[: reader.MAX_LINE_WARNINGS]
    typed = [w for w in named if "wrong type for ttfa_ms" in w]
    assert [int(w.split()[2].rstrip(":")) for w in typed] == wrong[: reader.MAX_LINE_WARNINGS]
    more = [w for w in warnings if "more unreadable lines skipped" in w]
    assert more == ([f"responses.jsonl: {len(bad) - 5} more unreadable lines skipped"] if len(bad) > 5 else [])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(entries=LINES, scan_block=st.sampled_from([7, 300, reader.SCAN_BLOCK_BYTES]))
def test_any_mix_of_lines_reads_every_good_row_and_names_every_bad_line(entries, scan_block) -> None:
    columns = ["t_trigger", "ttfa_ms", "schema_version"]  # columns the cache holds (the reader adds schema_version)
    tmp = Path(tempfile.mkdtemp(prefix="rtload-lines-"))
    saved = reader.CACHE_MIN_BYTES, reader.SCAN_BLOCK_BYTES
    reader.SCAN_BLOCK_BYTES = scan_block  # small blocks: lines cut across the scan's reads
    try:
        path = tmp / RESPONSES_FILE
        good, wrong, bad = _write(path, entries)
        warnings: list[str] = []
        table, torn = reader.read_table(path, ResponseRecord, columns, warnings, cache=False)
        assert not torn
        _check(table, warnings, good, wrong, bad)
        # through the Parquet cache: the first read writes it, the next reads it; the same each time
        reader.CACHE_MIN_BYTES = 1
        for attempt in ("writes the cache", "reads the cache"):
            warnings = []
            table, _ = reader.read_table(path, ResponseRecord, columns, warnings)
            assert (tmp / "responses.parquet").exists(), attempt
            _check(table, warnings, good, wrong, bad)
    finally:
        reader.CACHE_MIN_BYTES, reader.SCAN_BLOCK_BYTES = saved
        shutil.rmtree(tmp, ignore_errors=True)


def _cli_run(path: Path, first_line: bytes) -> None:
    from tests.report.synth import write_run

    responses = [
        ResponseRecord(run_id="r", response_id=f"resp_{i}", outcome="completed", t_trigger=T0 + i, ttfa_ms=100.0 + i)
        for i in range(20)
    ]
    write_run(path, responses, run={"run_id": "r", "t_start": T0, "t_end": T0 + 30})
    body = (path / RESPONSES_FILE).read_bytes()
    (path / RESPONSES_FILE).write_bytes(first_line + b"\n" + body)


def test_a_null_line_is_one_warning_through_the_real_cli(tmp_path) -> None:
    run = tmp_path / "null-line"
    _cli_run(run, b"null")
    outputs = {}
    for command in ("summary", "capacity", "limits", "soak", "failures"):
        proc = subprocess.run(
            [RTLOAD, "report", command, str(run), "--format", "json"], capture_output=True, timeout=120, check=False
        )
        assert proc.returncode == 0, (command, proc.returncode, proc.stderr[-500:])
        assert b"warning: responses.jsonl line 1: not a JSON object; skipped it" in proc.stderr, command
        outputs[command] = orjson.loads(proc.stdout)
    summary = outputs["summary"]
    assert summary["outcomes"]["completed"]["count"] == 20
    assert summary["latency_ms"]["ttfa"]["p50"] == np.percentile([100.0 + i for i in range(20)], 50)
