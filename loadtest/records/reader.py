"""Read a run directory into pandas, tolerating what a live or damaged run leaves behind.

The fast path parses a whole JSONL file with ``pyarrow.json`` against an explicit schema
built from the record dataclasses (only the wanted columns are materialised). When that
fails (a corrupt line, a value of the wrong type) the file is read again line by line with
orjson, and every line that cannot be used is skipped with a warning naming the file and
line. A last line without its newline is a row still being written: it is skipped with a
note that the run looks live. Rows written by another ``schema_version`` are kept: fields
they lack are empty, fields this version does not know are ignored, and a warning says so.

Large complete files are cached as Parquet beside the JSONL (``responses.parquet``, valid
while the JSONL's size and modification time are unchanged), so the second report on a
million-response run reads only the columns it needs.
"""

from __future__ import annotations

import contextlib
import json
import os
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from loadtest.records.schema import (
    HEALTH_FILE,
    RATE_LIMITS_FILE,
    RESPONSES_FILE,
    RUN_FILE,
    SCHEMA_VERSION,
    SESSIONS_FILE,
    HealthRecord,
    RateLimitRecord,
    ResponseRecord,
    SessionRecord,
)

CACHE_MIN_BYTES = 32 * 1024 * 1024  # JSONL files at least this big get a Parquet cache
# Columns left out of the cache: per-row ids, lists, and the detail columns no aggregate report
# reads (absolute timestamps other than t_trigger/t_done, which the *_ms latencies carry;
# counters only the failures listing shows). `report failures` and any read that wants them
# parse the JSONL instead. Leaving them out makes the first report on a big run ~30% cheaper.
CACHE_EXCLUDE: dict[str, frozenset[str]] = {
    "ResponseRecord": frozenset(
        {
            "session_id",
            "response_id",
            "item_id",
            "error_event_id",
            "done_event_id",
            "request_id",
            "trace_file",
            "modalities",
            "content_types",
            "user_id",
            "turn_index",
            "t_created",
            "t_first_audio",
            "t_first_text",
            "t_audio_done",
            "audio_bytes",
            "longest_silence_ms",
            "silence_ms",
            "transcript_chars",
            "text_chars",
            "rl_tokens_remaining",
            "rl_requests_remaining",
        }
    ),
}
CACHE_FORMAT = "2"
MAX_LINE_WARNINGS = 5  # per file; the rest are counted
SAMPLE_LINES = 200  # lines inspected for fields this version does not know
RUN_END_KEYS = ("t_end", "end", "ended_at", "finished_at")  # run.json keys that say the run ended
RUN_END_STATUSES = ("stopped", "finished", "completed", "failed")  # run.json "status" values likewise

_ARROW_TYPES: dict[str, pa.DataType] = {
    "str": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "list[str]": pa.list_(pa.string()),
}


class RunDirError(Exception):
    """The path is not a readable run directory (a user mistake, reported in one line)."""


@dataclass
class RunData:
    """Everything a report needs from one run directory."""

    path: Path
    run: dict[str, Any]
    responses: pd.DataFrame
    sessions: pd.DataFrame
    rate_limits: pd.DataFrame
    health: pd.DataFrame | None = None
    warnings: list[str] = field(default_factory=list)
    in_progress: bool = False

    @property
    def run_id(self) -> str:
        rid = self.run.get("run_id")
        if rid:
            return str(rid)
        if len(self.responses) and "run_id" in self.responses and self.responses["run_id"].notna().any():
            return str(self.responses["run_id"].dropna().iloc[0])
        return self.path.name


def _base_type(annotation: str) -> str:
    parts = [p.strip() for p in annotation.split("|")]
    parts = [p for p in parts if p != "None"]
    return parts[0] if parts else "str"


def arrow_schema(record_type: type, columns: list[str] | None = None) -> pa.Schema:
    """The Arrow schema of a record dataclass (optionally only ``columns``, in that order)."""
    hints = {
        f.name: f.type if isinstance(f.type, str) else typing.get_type_hints(record_type)[f.name]
        for f in fields(record_type)
    }
    wanted = columns if columns is not None else list(hints)
    out = []
    for name in wanted:
        if name not in hints:
            raise KeyError(f"{record_type.__name__} has no field {name!r}")
        out.append(pa.field(name, _ARROW_TYPES[_base_type(str(hints[name]))]))
    return pa.schema(out)


def _with_version(columns: list[str] | None) -> list[str] | None:
    if columns is None:
        return None
    return [*columns, "schema_version"] if "schema_version" not in columns else list(columns)


def _complete_bytes(path: Path) -> tuple[pa.Buffer, bool]:
    """The file's bytes up to its last newline, and whether a torn last line was cut off."""
    buf = pa.memory_map(str(path), "r").read_buffer()  # zero-copy; the buffer keeps the map alive
    size = buf.size
    if size == 0:
        return buf, False
    view = memoryview(buf)
    if view[size - 1] == 0x0A:
        return buf, False
    tail_start = max(0, size - (1 << 20))
    idx = bytes(view[tail_start:]).rfind(b"\n")
    # no newline in the last MiB: look through the whole file (a huge torn line)
    cut = tail_start + idx + 1 if idx >= 0 else bytes(view).rfind(b"\n") + 1
    return buf.slice(0, cut), True


def _options(schema: pa.Schema) -> tuple[pajson.ReadOptions, pajson.ParseOptions]:
    parse = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    read = pajson.ReadOptions(block_size=8 * 1024 * 1024, use_threads=True)
    return read, parse


def _fast_read(source: pa.Buffer | Path, schema: pa.Schema) -> pa.Table:
    read, parse = _options(schema)
    src = pa.BufferReader(source) if isinstance(source, pa.Buffer) else str(source)
    return pajson.read_json(src, read_options=read, parse_options=parse)


def _fast_read_caching(path: Path, full: pa.Schema, wanted: pa.Schema) -> pa.Table:
    """Stream the file once: every column goes to the Parquet cache, only ``wanted`` stays in memory.

    A cache that cannot be written (read-only run directory, full disk) is given up quietly;
    the rows are read all the same.
    """
    read, parse = _options(full)
    cache = _cache_path(path)
    tmp = cache.with_name(cache.name + ".tmp")
    kept: list[pa.RecordBatch] = []
    writer = None
    writing = True
    try:
        for batch in pajson.open_json(str(path), read_options=read, parse_options=parse):
            if writing:
                try:
                    if writer is None:
                        schema = batch.schema.with_metadata(_stamp(path))
                        writer = pq.ParquetWriter(tmp, schema, compression="snappy")  # fastest to write
                    writer.write_batch(batch)
                except OSError:
                    writing = False
                    _abandon(writer, tmp)
                    writer = None
            kept.append(batch.select(wanted.names))
        if writer is not None:
            writer.close()
            os.replace(tmp, cache)
    except OSError:
        _abandon(writer, tmp)
    except BaseException:
        _abandon(writer, tmp)
        raise
    return pa.Table.from_batches(kept, schema=wanted) if kept else wanted.empty_table()


def _abandon(writer: pq.ParquetWriter | None, tmp: Path) -> None:
    if writer is not None:
        with contextlib.suppress(Exception):
            writer.close()
    with contextlib.suppress(OSError):
        tmp.unlink(missing_ok=True)


def _coerce(value: Any, kind: pa.DataType) -> Any:
    if value is None:
        return None
    try:
        if kind == pa.string():
            return value if isinstance(value, str) else json.dumps(value)
        if kind == pa.int64():
            return int(value)
        if kind == pa.float64():
            return float(value)
        if kind == pa.bool_():
            return bool(value)
        if pa.types.is_list(kind):
            return [str(v) for v in value] if isinstance(value, list) else None
    except (TypeError, ValueError):
        return None
    return value


TOLERANT_BLOCK_BYTES = 64 * 1024 * 1024  # bytes per block on the tolerant path (parsed with threads)


def _python_row(
    line: bytes, lineno: int, name: str, kinds: dict[str, pa.DataType], notes: dict[str, Any]
) -> dict | None:
    """One line the fast parser refused, read by hand (None when it cannot be used)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        notes["bad"].append(f"{name} line {lineno}: not valid JSON; skipped it")
        return None
    if not isinstance(obj, dict):
        notes["bad"].append(f"{name} line {lineno}: not a JSON object; skipped it")
        return None
    row = {}
    for col, kind in kinds.items():
        raw = obj.get(col)
        val = _coerce(raw, kind)
        if raw is not None and val is None:
            notes["bad_values"] += 1
        row[col] = val
    return row


def _block_bounds(buf: pa.Buffer, size: int) -> list[tuple[int, int]]:
    """(start, end) byte ranges of about ``size`` bytes, each ending just after a newline."""
    view = memoryview(buf)
    total = buf.size
    bounds = []
    start = 0
    while start < total:
        end = min(start + size, total)
        while end < total:
            idx = bytes(view[end : end + 65536]).find(b"\n")
            if idx >= 0:
                end += idx + 1
                break
            end += 65536
        end = min(end, total)
        bounds.append((start, end))
        start = end
    return bounds


def _tolerant_read(buf: pa.Buffer, schema: pa.Schema, name: str, warnings: list[str]) -> pa.Table:
    """Parse block by block with pyarrow; a block it refuses is split into lines and halved
    until the bad lines are isolated, and only those are read by hand. One corrupt line in a
    million costs a few extra small parses, not a million Python-level rows."""
    kinds = {f.name: f.type for f in schema}
    notes: dict[str, Any] = {"bad": [], "bad_values": 0}
    tables: list[pa.Table] = []
    view = memoryview(buf)

    def parse(lines: list[bytes], lo: int, hi: int, first_lineno: int) -> None:
        chunk = [line for line in lines[lo:hi] if line.strip()]
        if not chunk:
            return
        try:
            tables.append(_fast_read(pa.py_buffer(b"\n".join(chunk) + b"\n"), schema))
            return
        except pa.ArrowInvalid:
            pass
        if hi - lo == 1:
            row = _python_row(lines[lo], first_lineno + lo, name, kinds, notes)
            if row is not None:
                tables.append(pa.Table.from_pylist([row], schema=schema))
            return
        mid = (lo + hi) // 2
        parse(lines, lo, mid, first_lineno)
        parse(lines, mid, hi, first_lineno)

    lineno = 1
    for start, end in _block_bounds(buf, TOLERANT_BLOCK_BYTES):
        block = buf.slice(start, end - start)
        newlines = int(np.count_nonzero(np.frombuffer(block, dtype=np.uint8) == 0x0A))
        try:
            tables.append(_fast_read(block, schema))
        except pa.ArrowInvalid:
            lines = bytes(view[start:end]).split(b"\n")
            parse(lines, 0, len(lines), lineno)
        lineno += newlines
    bad = notes["bad"]
    warnings.extend(bad[:MAX_LINE_WARNINGS])
    if len(bad) > MAX_LINE_WARNINGS:
        warnings.append(f"{name}: {len(bad) - MAX_LINE_WARNINGS} more unreadable lines skipped")
    if notes["bad_values"]:
        warnings.append(f"{name}: {notes['bad_values']} values of the wrong type were read as empty")
    return pa.concat_tables(tables) if tables else schema.empty_table()


def _unknown_fields(buf: pa.Buffer, known: set[str]) -> set[str]:
    head = memoryview(buf)[: 4 * 1024 * 1024].tobytes().split(b"\n")[:SAMPLE_LINES]
    extra: set[str] = set()
    for line in head:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            extra.update(k for k in obj if k not in known)
    return extra


def _version_warnings(table: pa.Table, name: str, extra: set[str], warnings: list[str]) -> None:
    if "schema_version" not in table.column_names or table.num_rows == 0:
        return
    versions = table.column("schema_version").to_pandas()
    missing = int(versions.isna().sum())
    counts = versions.dropna().astype(int).value_counts()
    if missing:
        warnings.append(
            f"{name}: {missing} rows have no schema_version (written by an older rtload); "
            "fields they lack are reported as empty"
        )
    for version, count in sorted(counts.items()):
        if version < SCHEMA_VERSION:
            warnings.append(
                f"{name}: {count} rows have schema_version {version}, older than this rtload's "
                f"{SCHEMA_VERSION}; fields added since are reported as empty for them"
            )
        elif version > SCHEMA_VERSION:
            unknown = f" (ignored fields: {', '.join(sorted(extra))})" if extra else ""
            warnings.append(
                f"{name}: {count} rows have schema_version {version}, newer than this rtload's "
                f"{SCHEMA_VERSION}; fields it does not know are ignored{unknown}; upgrade rtload to report them"
            )


def _cache_path(path: Path) -> Path:
    return path.with_suffix(".parquet")


def _stamp(path: Path) -> dict[bytes, bytes]:
    st = path.stat()
    return {
        b"rtload_source_size": str(st.st_size).encode(),
        b"rtload_source_mtime_ns": str(st.st_mtime_ns).encode(),
        b"rtload_cache_format": CACHE_FORMAT.encode(),
        b"rtload_schema_version": str(SCHEMA_VERSION).encode(),
    }


def _read_cache(path: Path, columns: list[str]) -> pa.Table | None:
    """The cached columns when the cache is current and holds all of them, else None."""
    cache = _cache_path(path)
    if not cache.exists():
        return None
    try:
        cached_schema = pq.read_schema(cache)
        meta = cached_schema.metadata or {}
        stamp = _stamp(path)
        if any(meta.get(k) != v for k, v in stamp.items()):
            return None
        if not set(columns) <= set(cached_schema.names):
            return None
        return pq.read_table(cache, columns=columns)
    except (OSError, pa.ArrowException, KeyError):
        return None


def read_table(
    path: Path,
    record_type: type,
    columns: list[str] | None = None,
    warnings: list[str] | None = None,
    *,
    cache: bool = True,
) -> tuple[pa.Table, bool]:
    """One JSONL file as an Arrow table with the record's columns (missing file: no rows).

    Returns the table and whether a torn last line showed the file is still being written.
    """
    warnings = warnings if warnings is not None else []
    wanted = _with_version(columns)
    schema = arrow_schema(record_type, wanted)
    if not path.exists():
        return schema.empty_table(), False
    if cache:
        cached = _read_cache(path, schema.names)
        if cached is not None:
            return cached, False
    buf, torn = _complete_bytes(path)
    if torn:
        warnings.append(f"{path.name}: the last line is incomplete (the run is still being written?); skipped it")
    full = arrow_schema(record_type)
    exclude = CACHE_EXCLUDE.get(record_type.__name__, frozenset())
    cacheable = arrow_schema(record_type, [n for n in full.names if n not in exclude])
    try:
        if buf.size == 0:
            table = schema.empty_table()
        elif torn:
            table = _fast_read(buf, schema)
        elif cache and buf.size >= CACHE_MIN_BYTES and set(schema.names) <= set(cacheable.names):
            table = _fast_read_caching(path, cacheable, schema)
        else:
            table = _fast_read(path, schema)
    except pa.ArrowInvalid:
        table = _tolerant_read(buf, schema, path.name, warnings)
    extra = _unknown_fields(buf, set(full.names)) if table.num_rows else set()
    _version_warnings(table, path.name, extra, warnings)
    return table, torn


def to_frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow table as pandas (numbers with nulls become float with NaN)."""
    return table.to_pandas(split_blocks=True, self_destruct=True)


def read_frame(
    path: Path,
    record_type: type,
    columns: list[str] | None = None,
    warnings: list[str] | None = None,
    *,
    cache: bool = True,
) -> tuple[pd.DataFrame, bool]:
    table, torn = read_table(path, record_type, columns, warnings, cache=cache)
    return to_frame(table), torn


def read_run_json(run_dir: Path, warnings: list[str]) -> dict[str, Any]:
    path = run_dir / RUN_FILE
    if not path.exists():
        warnings.append(f"{RUN_FILE}: missing (the run may still be starting); reporting the rows only")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        warnings.append(f"{RUN_FILE}: not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc}); ignored it")
        return {}
    if not isinstance(data, dict):
        warnings.append(f"{RUN_FILE}: not a JSON object; ignored it")
        return {}
    return data


def check_run_dir(run_dir: Path) -> Path:
    """``run_dir`` if it looks like a run directory, else a RunDirError saying what is wrong."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise RunDirError(f"{run_dir}: no such run directory")
    if not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: not a directory (give the run directory, e.g. reports/<run_id>)")
    known = (RUN_FILE, RESPONSES_FILE, SESSIONS_FILE, RATE_LIMITS_FILE)
    if not any((run_dir / name).exists() for name in known):
        raise RunDirError(f"{run_dir}: not a run directory (it has no {RUN_FILE} or {RESPONSES_FILE})")
    return run_dir


def read_run(
    run_dir: Path | str,
    *,
    response_columns: list[str] | None = None,
    session_columns: list[str] | None = None,
    with_rate_limits: bool = True,
    with_health: bool = True,
    cache: bool = True,
) -> RunData:
    """Read a run directory. Problems become ``warnings``; only a non-run path raises RunDirError."""
    run_dir = check_run_dir(Path(run_dir))
    warnings: list[str] = []
    run = read_run_json(run_dir, warnings)
    responses, torn_r = read_frame(run_dir / RESPONSES_FILE, ResponseRecord, response_columns, warnings, cache=cache)
    sessions, torn_s = read_frame(run_dir / SESSIONS_FILE, SessionRecord, session_columns, warnings, cache=cache)
    torn_l = False
    if with_rate_limits:
        rate_limits, torn_l = read_frame(run_dir / RATE_LIMITS_FILE, RateLimitRecord, None, warnings)
    else:
        rate_limits = to_frame(arrow_schema(RateLimitRecord).empty_table())
    health = None
    if with_health and (run_dir / HEALTH_FILE).exists():
        # health rows are the harness's own diagnostics: their version is not worth a warning
        health, _ = read_frame(run_dir / HEALTH_FILE, HealthRecord, None, [], cache=False)
    ended = any(run.get(k) for k in RUN_END_KEYS) or run.get("status") in RUN_END_STATUSES
    in_progress = torn_r or torn_s or torn_l or (bool(run) and not ended)
    if bool(run) and not ended:
        warnings.append(f"{RUN_FILE}: no end time yet (the run is still going or was killed); reporting what is there")
    if responses.empty:
        warnings.append(f"{RESPONSES_FILE}: no responses recorded yet")
    return RunData(
        path=run_dir,
        run=run,
        responses=responses,
        sessions=sessions,
        rate_limits=rate_limits,
        health=health,
        warnings=warnings,
        in_progress=in_progress,
    )
