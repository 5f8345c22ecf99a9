"""Damaged and unusual run directories: clear messages, and the rest still reported."""

from __future__ import annotations

import json
import os

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest

from loadtest.records import reader
from loadtest.records.reader import read_run
from loadtest.records.schema import RESPONSES_FILE, SESSIONS_FILE, ResponseRecord, to_row
from tests.report.synth import T0, write_run


def _responses(n: int, bad_every: int = 0) -> list[ResponseRecord]:
    return [
        ResponseRecord(
            run_id="r",
            response_id=f"resp_{i}",
            outcome="failed" if bad_every and i % bad_every == 0 else "completed",
            reason="server_error" if bad_every and i % bad_every == 0 else "",
            t_trigger=T0 + i,
            ttfa_ms=100.0 + i,
        )
        for i in range(n)
    ]


def test_corrupt_lines_are_skipped_with_file_and_line_named(tmp_path, cli) -> None:
    run = write_run(tmp_path / "corrupt", _responses(40, bad_every=10))
    lines = (run.path / RESPONSES_FILE).read_bytes().splitlines(keepends=True)
    lines[4] = b'{"run_id": "r", "outcome": "compl\n'  # torn by a crash, then the writer went on
    lines[20] = b"\x00\x00garbage\n"
    (run.path / RESPONSES_FILE).write_bytes(b"".join(lines))
    result = cli("summary", run.path, "--format", "json")
    assert "warning: responses.jsonl line 5: not valid JSON; skipped it" in result.stderr
    assert "warning: responses.jsonl line 21: not valid JSON; skipped it" in result.stderr
    d = json.loads(result.stdout)
    kept = [r for i, r in enumerate(run.responses) if i not in (4, 20)]
    assert d["outcomes"]["completed"]["count"] == sum(r.outcome == "completed" for r in kept)
    assert d["outcomes"]["failed"]["count"] == sum(r.outcome == "failed" for r in kept)
    assert d["latency_ms"]["ttfa"]["p50"] == pytest.approx(np.percentile([r.ttfa_ms for r in kept], 50))
    assert any("line 5" in w for w in d["warnings"])
    md = cli("summary", run.path, "--format", "md").stdout
    assert "> **Warnings**" in md and "> - responses.jsonl line 21: not valid JSON; skipped it" in md


def test_wrong_type_value_falls_back_and_is_reported(tmp_path) -> None:
    run = write_run(tmp_path / "types", _responses(5))
    rows = [orjson.loads(line) for line in (run.path / RESPONSES_FILE).read_bytes().splitlines()]
    rows[2]["ttfa_ms"] = "fast"
    (run.path / RESPONSES_FILE).write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    data = read_run(run.path)
    assert len(data.responses) == 5
    assert np.isnan(data.responses["ttfa_ms"].iloc[2])
    assert "responses.jsonl line 3: wrong type for ttfa_ms (a string); read as empty" in data.warnings


def test_empty_run_reports_no_responses_clearly(tmp_path, cli) -> None:
    path = tmp_path / "empty"
    path.mkdir()
    (path / "run.json").write_text(json.dumps({"run_id": "empty", "status": "starting"}))
    result = cli("summary", path)
    assert "warning: responses.jsonl: no responses recorded yet" in result.stderr
    assert "no end time yet" in result.stderr
    assert "responses" in result.stdout and "still being written" in result.stdout
    for command in ("limits", "capacity", "soak", "failures"):
        assert "Traceback" not in cli(command, path).stdout
    d = cli.json("capacity", path)
    assert d["rows"] == [] and d["grouping"] == "none"
    cli("html", path, "-o", tmp_path / "empty.html")
    assert "no data" in (tmp_path / "empty.html").read_text()


def test_run_still_being_written_skips_the_torn_last_line(tmp_path, cli) -> None:
    run = write_run(tmp_path / "live", _responses(30, bad_every=3), run={"run_id": "live", "t_start": T0})
    with open(run.path / RESPONSES_FILE, "ab") as out:
        out.write(orjson.dumps(to_row(ResponseRecord(run_id="live", outcome="failed")))[:57])
    with open(run.path / SESSIONS_FILE, "ab") as out:
        out.write(b'{"run_id": "live", "session_id": "sess_')
    result = cli("summary", run.path, "--format", "json")
    assert "responses.jsonl: the last line is incomplete (the run is still being written?); skipped it" in result.stderr
    assert "sessions.jsonl: the last line is incomplete" in result.stderr
    d = json.loads(result.stdout)
    assert d["run"]["in_progress"] is True
    assert d["outcomes"]["failed"]["count"] == 10 and d["run"]["responses"] == 30


def test_older_and_newer_schema_versions_are_named_and_still_counted(tmp_path, cli) -> None:
    run = write_run(tmp_path / "versions", _responses(12))
    rows = [orjson.loads(line) for line in (run.path / RESPONSES_FILE).read_bytes().splitlines()]
    for row in rows[:4]:  # an older writer: no ttfa_ms yet, schema_version 0
        row["schema_version"] = 0
        del row["ttfa_ms"]
    for row in rows[4:6]:  # a newer writer with a field this version does not know
        row["schema_version"] = 2
        row["ttfa_jitter_ms"] = 3.5
    del rows[6]["schema_version"]
    (run.path / RESPONSES_FILE).write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    result = cli("summary", run.path, "--format", "json")
    err = result.stderr
    assert "responses.jsonl: 4 rows have schema_version 0, older than this rtload's 1" in err
    assert "responses.jsonl: 2 rows have schema_version 2, newer than this rtload's 1" in err
    assert "ignored fields: ttfa_jitter_ms" in err
    assert "1 rows have no schema_version" in err
    d = json.loads(result.stdout)
    assert d["run"]["responses"] == 12
    assert d["latency_ms"]["ttfa"]["n"] == 8  # the 4 old rows have no ttfa
    assert d["latency_ms"]["ttfa"]["p50"] == pytest.approx(np.percentile([100.0 + i for i in range(4, 12)], 50))


def test_not_a_run_directory_is_one_line_exit_2(tmp_path, cli) -> None:
    result = cli("summary", tmp_path / "nope", code=2)
    assert result.stderr.strip() == f"error: {tmp_path / 'nope'}: no such run directory"
    (tmp_path / "plain").mkdir()
    result = cli("limits", tmp_path / "plain", code=2)
    assert "not a run directory (it has no run.json or responses.jsonl)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_parquet_cache_is_written_for_big_files_and_invalidated_by_appends(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(reader, "CACHE_MIN_BYTES", 1)
    run = write_run(tmp_path / "cache", _responses(50, bad_every=5))
    data = read_run(run.path, response_columns=["outcome", "ttfa_ms"])
    cache = run.path / "responses.parquet"
    assert cache.exists()
    assert list(data.responses.columns) == ["outcome", "ttfa_ms", "schema_version"]
    again = read_run(run.path, response_columns=["outcome", "t_trigger"])
    assert (again.responses["outcome"] == "failed").sum() == 10
    assert again.responses["t_trigger"].tolist() == [r.t_trigger for r in run.responses]
    # an appended row changes size and mtime: the cache is ignored and rebuilt
    with open(run.path / RESPONSES_FILE, "ab") as out:
        out.write(orjson.dumps(to_row(ResponseRecord(run_id="r", outcome="failed", t_trigger=T0 + 99))) + b"\n")
    os.utime(run.path / RESPONSES_FILE, ns=(cache.stat().st_mtime_ns + 10**9,) * 2)
    third = read_run(run.path, response_columns=["outcome"])
    assert len(third.responses) == 51 and (third.responses["outcome"] == "failed").sum() == 11


def test_tolerant_path_keeps_order_across_blocks(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(reader, "TOLERANT_BLOCK_BYTES", 700)
    run = write_run(tmp_path / "blocks", _responses(100, bad_every=9))
    lines = (run.path / RESPONSES_FILE).read_bytes().splitlines(keepends=True)
    broken = {3, 10, 11, 50, 60, 70, 99}
    for i in broken:
        lines[i] = b"{not json\n"
    lines[20] = lines[20].replace(b'"ttfa_ms":120.0', b'"ttfa_ms":"slow"')
    (run.path / RESPONSES_FILE).write_bytes(b"".join(lines))
    data = read_run(run.path)
    kept = [r for i, r in enumerate(run.responses) if i not in broken]
    assert data.responses["t_trigger"].tolist() == [r.t_trigger for r in kept]
    assert (data.responses["outcome"] == "failed").sum() == sum(r.outcome == "failed" for r in kept)
    assert np.isnan(data.responses.loc[data.responses["t_trigger"] == T0 + 20, "ttfa_ms"]).all()
    lines_named = [w for w in data.warnings if "not valid JSON" in w]
    assert lines_named == [f"responses.jsonl line {i + 1}: not valid JSON; skipped it" for i in sorted(broken)[:5]]
    assert "responses.jsonl: 2 more unreadable lines skipped" in data.warnings
    assert "responses.jsonl line 21: wrong type for ttfa_ms (a string); read as empty" in data.warnings


def test_a_cache_that_cannot_be_written_loses_no_rows(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(reader, "CACHE_MIN_BYTES", 1)

    def refuse(*_a, **_k):
        raise PermissionError(13, "Read-only file system")

    monkeypatch.setattr(reader.pq, "ParquetWriter", refuse)
    run = write_run(tmp_path / "readonly", _responses(30, bad_every=6))
    data = read_run(run.path, response_columns=["outcome"])
    assert len(data.responses) == 30 and (data.responses["outcome"] == "failed").sum() == 5
    assert not list(run.path.glob("*.parquet*"))


def test_cache_leaves_ids_out_and_failures_still_get_them(tmp_path, monkeypatch, cli) -> None:
    monkeypatch.setattr(reader, "CACHE_MIN_BYTES", 1)
    run = write_run(tmp_path / "ids", _responses(20, bad_every=4))
    read_run(run.path, response_columns=["outcome", "ttfa_ms"])
    cached = pq.read_schema(run.path / "responses.parquet").names
    assert "outcome" in cached and "ttfa_ms" in cached and "response_id" not in cached
    d = cli.json("failures", run.path)  # needs the ids: read from the JSONL
    assert [r["response_id"] for r in d["rows"]] == [f"resp_{i}" for i in range(0, 20, 4)]


def test_the_cache_serves_every_aggregate_report() -> None:
    from loadtest.report import capacity, html, limits, soak, summary

    cached = set(reader.arrow_schema(ResponseRecord).names) - reader.CACHE_EXCLUDE["ResponseRecord"]
    for module in (summary, capacity, limits, soak, html):
        assert set(module.RESPONSE_COLUMNS) <= cached, module.__name__
