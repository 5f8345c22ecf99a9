"""Read a run directory into pandas, tolerating what a live or damaged run leaves behind.

The fast path parses a whole JSONL file with ``pyarrow.json`` against an explicit schema
built from the record dataclasses (only the wanted columns are materialised). A vectorised
scan first sets aside every line not shaped like a writer's row (``{"...}``): pyarrow crashes
the process on a ``null`` at the start of a block and reads ``null`` or ``{}`` elsewhere as a
row of nulls, so such lines never reach it; each is read by hand with orjson. When pyarrow
refuses a block (a corrupt line, a value of the wrong type) the block is halved until the bad
lines are isolated. Every line that cannot be used (not JSON, not an object, none of the
record's fields) is skipped, and every value of the wrong type is read as empty, with a
warning naming the file and line. A last line without its newline is a row still being written: it is skipped with a
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
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq

from loadtest.records import scan, segments
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
CACHE_FORMAT = "3"  # 3: the warnings of a careful read are kept in the cache
CACHE_WARNINGS_KEY = b"rtload_warnings"
MAX_LINE_WARNINGS = 5  # per file; the rest are counted
SAMPLE_LINES = 200  # lines inspected for fields this version does not know
# the column a time range selects on, per record type
TIME_COLUMNS = {"ResponseRecord": "t_trigger", "SessionRecord": "t_start", "RateLimitRecord": "t", "HealthRecord": "t"}
RUN_END_KEYS = ("t_end", "end", "ended_at", "finished_at")  # run.json keys that say the run ended
RUN_END_STATUSES = ("stopped", "finished", "completed", "failed")  # run.json "status" values likewise

_ARROW_TYPES: dict[str, pa.DataType] = {
    "str": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "list[str]": pa.list_(pa.string()),
    "list[float]": pa.list_(pa.float64()),
    "list[bool]": pa.list_(pa.bool_()),
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
    response_total: int | None = None  # responses in the run, before any row selection
    scan: Any = None  # read_run(scan=...): the responses as a DuckDB view (loadtest.records.scan.Scan)

    @property
    def run_id(self) -> str:
        rid = self.run.get("run_id")
        if rid:
            return str(rid)
        if self.scan is not None and self.scan.has("run_id"):
            first = self.scan.fetchall("SELECT run_id FROM {v} WHERE run_id IS NOT NULL ORDER BY _ord LIMIT 1")
            if first:
                return str(first[0][0])
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


class _NotClean(Exception):
    """The streamed file holds rows the careful path must see (read it again that way)."""


def _fast_read_caching(path: Path, full: pa.Schema, wanted: pa.Schema) -> pa.Table:
    """Stream the file once: every column goes to the Parquet cache, only ``wanted`` stays in memory.

    Only for files whose every line is shaped like a writer's row; a batch pyarrow refuses, or
    one that may hold an object with none of the record's fields, raises (ArrowInvalid,
    _NotClean) and the caller reads the file the careful way. A cache that cannot be written
    (read-only run directory, full disk) is given up quietly; the rows are read all the same.
    """
    read, parse = _options(full)
    cache = _cache_path(path)
    tmp = cache.with_name(cache.name + ".tmp")
    kept: list[pa.RecordBatch] = []
    writer = None
    writing = True
    sentinel = list(full.names)
    try:
        for batch in pajson.open_json(str(path), read_options=read, parse_options=parse):
            if _maybe_empty(pa.Table.from_batches([batch]), sentinel):
                raise _NotClean
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


def _write_cache(path: Path, table: pa.Table, warnings: list[str]) -> None:
    """The cache of a file read the careful way: its warnings are kept, said again on every read."""
    cache = _cache_path(path)
    tmp = cache.with_name(cache.name + ".tmp")
    meta = {**_stamp(path), CACHE_WARNINGS_KEY: orjson.dumps(warnings)}
    try:
        pq.write_table(table.replace_schema_metadata(meta), tmp, compression="snappy")
        os.replace(tmp, cache)
    except OSError:
        _abandon(None, tmp)


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
            return [_coerce(v, kind.value_type) for v in value] if isinstance(value, list) else None
    except (TypeError, ValueError):
        return None
    return value


TOLERANT_BLOCK_BYTES = 64 * 1024 * 1024  # bytes per block on the tolerant path (parsed with threads)
SCAN_BLOCK_BYTES = 16 * 1024 * 1024  # bytes per block of the scan for odd lines


def _python_row(
    line: bytes, lineno: int, name: str, kinds: dict[str, pa.DataType], notes: dict[str, Any]
) -> dict | None:
    """One line the fast parser must not or could not read, read by hand (None when it cannot be used)."""
    if not line.strip():
        return None
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        notes["bad"].append(f"{name} line {lineno}: not valid JSON; skipped it")
        return None
    if not isinstance(obj, dict):
        notes["bad"].append(f"{name} line {lineno}: not a JSON object; skipped it")
        return None
    if not any(key in notes["fields"] for key in obj):
        notes["bad"].append(f"{name} line {lineno}: an object with none of the record's fields; skipped it")
        return None
    row = {}
    wrong = []
    for col, kind in kinds.items():
        raw = obj.get(col)
        val = _coerce(raw, kind)
        if raw is not None and val is None:
            wrong.append(f"{col} ({_json_kind(raw)})")
        row[col] = val
    if wrong:
        notes["wrong"].append(f"{name} line {lineno}: wrong type for {', '.join(wrong)}; read as empty")
    return row


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


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


def _odd_lines(path: Path, size: int) -> list[tuple[int, int, int]]:
    """(line number, start, end) of every non-blank line in the first ``size`` bytes of ``path``
    not shaped like a writer's row.

    A writer's row starts with ``{"``, ends with ``}`` and is UTF-8; anything else (``null``, an
    array, a number, a string, ``{}``, binary, a line with leading blanks) must not reach pyarrow,
    which crashes on some of them, reads others as a row of nulls and keeps invalid UTF-8 in its
    strings. Vectorised, in blocks read from the file (a memory map would count the whole file
    in the process's resident memory).
    """
    odd: list[tuple[int, int, int]] = []
    lineno, offset, have, remaining = 1, 0, 0, size
    buf = bytearray(SCAN_BLOCK_BYTES)
    with open(path, "rb", buffering=0) as f:
        while remaining or have:
            if have == len(buf):  # one line longer than the buffer
                buf.extend(bytes(len(buf)))
            n = f.readinto(memoryview(buf)[have : have + min(len(buf) - have, remaining)]) if remaining else 0
            if remaining and not n:
                break  # the file shrank under us: scan what there is
            remaining -= n
            total = have + n
            arr = np.frombuffer(buf, dtype=np.uint8, count=total)
            ends = np.flatnonzero(arr == 0x0A)
            if remaining and not len(ends):
                have = total
                del arr
                continue
            cut = int(ends[-1]) + 1 if remaining or (len(ends) and ends[-1] == total - 1) else total
            if cut == total and (not len(ends) or ends[-1] != total - 1):
                ends = np.append(ends, total)  # a last line without its newline
            lineno = _scan_block(arr[:cut], ends, offset, lineno, odd)
            del arr
            have = total - cut
            buf[:have] = buf[cut:total]
            offset += cut
            if not remaining:
                break
    return odd


def _scan_block(block: np.ndarray, ends: np.ndarray, offset: int, lineno: int, odd: list) -> int:
    """Adds the odd lines of ``block`` (whole lines ending at ``ends``, from file offset ``offset``)
    to ``odd``; returns the next line number."""
    starts = np.concatenate(([0], ends[:-1] + 1))
    last = len(block) - 1
    shaped = (ends - starts >= 3) & (block[np.minimum(starts, last)] == 0x7B)
    shaped &= (block[np.minimum(starts + 1, last)] == 0x22) & (block[np.maximum(ends - 1, 0)] == 0x7D)
    if len(block) and block.max() >= 0x80 and not _is_utf8(block.tobytes()):
        # non-ASCII that is not UTF-8 somewhere: pyarrow would keep it as is; find the lines
        for i in np.unique(np.searchsorted(ends, np.flatnonzero(block >= 0x80))):
            if shaped[i] and not _is_utf8(block[starts[i] : ends[i]].tobytes()):
                shaped[i] = False
    for i in np.flatnonzero(~shaped & (ends > starts)):
        odd.append((lineno + int(i), offset + int(starts[i]), offset + int(ends[i])))
    return lineno + len(ends)


def _is_utf8(data: bytes) -> bool:
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _notes(name: str, record_fields: set[str]) -> dict[str, Any]:
    return {"name": name, "bad": [], "wrong": [], "fields": record_fields}


def _flush_notes(notes: dict[str, Any], warnings: list[str]) -> None:
    bad = notes["bad"]
    warnings.extend(bad[:MAX_LINE_WARNINGS])
    if len(bad) > MAX_LINE_WARNINGS:
        warnings.append(f"{notes['name']}: {len(bad) - MAX_LINE_WARNINGS} more unreadable lines skipped")
    wrong = notes["wrong"]
    warnings.extend(wrong[:MAX_LINE_WARNINGS])
    if len(wrong) > MAX_LINE_WARNINGS:
        more = len(wrong) - MAX_LINE_WARNINGS
        warnings.append(f"{notes['name']}: {more} more lines had values of the wrong type, read as empty")


def _drop_empty_rows(table: pa.Table, piece: bytes, first_lineno: int, sentinel: list[str], notes: dict) -> pa.Table:
    """Rows with none of the record's fields (``{"other": 1}``): pyarrow makes a row of nulls of them."""
    cols = [c for c in sentinel if c in table.column_names]
    if not cols or table.num_rows == 0:
        return table
    empty = None
    for col in cols:
        nulls = table.column(col).is_null()
        empty = nulls if empty is None else pc.and_(empty, nulls)
    if not pc.any(empty).as_py():
        return table
    rows = [i for i, line in enumerate(piece.split(b"\n")) if line.strip()]
    for idx in np.flatnonzero(empty.to_numpy(zero_copy_only=False)):
        lineno = first_lineno + rows[idx]
        notes["bad"].append(f"{notes['name']} line {lineno}: an object with none of the record's fields; skipped it")
    return table.filter(pc.invert(empty))


def _piece_read(
    piece: pa.Buffer, schema: pa.Schema, first_lineno: int, sentinel: list[str], notes: dict
) -> list[pa.Table]:
    """Rows of writer-shaped lines: one pyarrow parse, or blocks halved until the bad lines are isolated.
    One corrupt line in a million costs a few extra small parses, not a million Python-level rows."""
    kinds = {f.name: f.type for f in schema}
    tables: list[pa.Table] = []
    view = memoryview(piece)

    def parse(lines: list[bytes], lo: int, hi: int, first: int) -> None:
        chunk = [line for line in lines[lo:hi] if line.strip()]
        if not chunk:
            return
        try:
            joined = b"\n".join(lines[lo:hi])
            table = _fast_read(pa.py_buffer(b"\n".join(chunk) + b"\n"), schema)
            tables.append(_drop_empty_rows(table, joined, first + lo, sentinel, notes))
            return
        except pa.ArrowInvalid:
            pass
        if hi - lo == 1:
            row = _python_row(lines[lo], first + lo, notes["name"], kinds, notes)
            if row is not None:
                tables.append(pa.Table.from_pylist([row], schema=schema))
            return
        mid = (lo + hi) // 2
        parse(lines, lo, mid, first)
        parse(lines, mid, hi, first)

    try:
        table = _fast_read(piece, schema)
        if _maybe_empty(table, sentinel):
            table = _drop_empty_rows(table, bytes(view), first_lineno, sentinel, notes)
        return [table]
    except pa.ArrowInvalid:
        pass
    lineno = first_lineno
    for start, end in _block_bounds(piece, TOLERANT_BLOCK_BYTES):
        block = piece.slice(start, end - start)
        newlines = int(np.count_nonzero(np.frombuffer(block, dtype=np.uint8) == 0x0A))
        try:
            table = _fast_read(block, schema)
            if _maybe_empty(table, sentinel):
                table = _drop_empty_rows(table, bytes(view[start:end]), lineno, sentinel, notes)
            tables.append(table)
        except pa.ArrowInvalid:
            lines = bytes(view[start:end]).split(b"\n")
            parse(lines, 0, len(lines), lineno)
        lineno += newlines
    return tables


def _maybe_empty(table: pa.Table, sentinel: list[str]) -> bool:
    cols = [c for c in sentinel if c in table.column_names]
    return bool(cols) and all(table.column(c).null_count for c in cols)


def _parse_jsonl(
    buf: pa.Buffer,
    schema: pa.Schema,
    name: str,
    record_fields: set[str],
    warnings: list[str],
    odd: list[tuple[int, int, int]],
) -> pa.Table:
    """Every usable row of complete JSONL bytes, whatever the other lines hold (see the module doc)."""
    notes = _notes(name, record_fields)
    sentinel = list(schema.names)
    kinds = {f.name: f.type for f in schema}
    view = memoryview(buf)
    tables: list[pa.Table] = []
    pos, lineno = 0, 1
    for odd_lineno, start, end in odd:
        if start > pos:
            tables.extend(_piece_read(buf.slice(pos, start - pos), schema, lineno, sentinel, notes))
        row = _python_row(bytes(view[start:end]), odd_lineno, name, kinds, notes)
        if row is not None:
            tables.append(pa.Table.from_pylist([row], schema=schema))
        pos, lineno = end + 1, odd_lineno + 1
    if pos < buf.size:
        tables.extend(_piece_read(buf.slice(pos, buf.size - pos), schema, lineno, sentinel, notes))
    _flush_notes(notes, warnings)
    tables = [t for t in tables if t.num_rows]
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
    version_warnings({int(k): int(v) for k, v in counts.items()}, missing, name, extra, warnings)


def version_warnings(counts: dict[int, int], missing: int, name: str, extra: set[str], warnings: list[str]) -> None:
    """The warnings about rows of another schema_version: ``counts`` rows per version, ``missing``
    rows without one."""
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


def _read_cache(path: Path, columns: list[str]) -> tuple[pa.Table, list[str]] | None:
    """The cached columns and the warnings the careful read gave, when the cache is current
    and holds all the columns, else None."""
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
        notes = orjson.loads(meta[CACHE_WARNINGS_KEY]) if CACHE_WARNINGS_KEY in meta else []
        return pq.read_table(cache, columns=columns), [str(n) for n in notes]
    except (OSError, pa.ArrowException, KeyError, orjson.JSONDecodeError):
        return None


def _sentinel(record_type: type) -> list[str]:
    """Columns always parsed: a row null in all of them and in the wanted ones holds none of the
    record's fields (the first field is written in every row, as is ``schema_version``)."""
    return [fields(record_type)[0].name, "schema_version"]


def _read_jsonl(
    path: Path, record_type: type, schema: pa.Schema, warnings: list[str], cache: bool
) -> tuple[pa.Table, bool, set[str]]:
    """One JSONL file's rows with ``schema``'s columns, whether its last line is torn, and the
    fields of its first rows this version does not know."""
    if not path.exists():
        return schema.empty_table(), False, set()
    if cache:
        cached = _read_cache(path, schema.names)
        if cached is not None:
            warnings.extend(cached[1])
            return cached[0], False, set()
    buf, torn = _complete_bytes(path)
    if torn:
        warnings.append(f"{path.name}: the last line is incomplete (the run is still being written?); skipped it")
    full = arrow_schema(record_type)
    known = set(full.names)
    exclude = CACHE_EXCLUDE.get(record_type.__name__, frozenset())
    cacheable = arrow_schema(record_type, [n for n in full.names if n not in exclude])
    parse = arrow_schema(record_type, list(dict.fromkeys([*schema.names, *_sentinel(record_type)])))
    odd = _odd_lines(path, buf.size) if buf.size else []
    caching = cache and not torn and buf.size >= CACHE_MIN_BYTES and set(schema.names) <= set(cacheable.names)
    if buf.size == 0:
        table = schema.empty_table()
    elif caching:
        table = None
        if not odd:
            with contextlib.suppress(pa.ArrowInvalid, _NotClean):
                table = _fast_read_caching(path, cacheable, schema)
        if table is None:
            notes: list[str] = []
            whole = _parse_jsonl(buf, cacheable, path.name, known, notes, odd)
            _write_cache(path, whole, notes)
            warnings.extend(notes)
            table = whole.select(schema.names)
    else:
        table = None
        if not odd and not torn:  # the common case: straight from the file (no memory map in RSS)
            with contextlib.suppress(pa.ArrowInvalid):
                table = _fast_read(path, parse)
            if table is not None and _maybe_empty(table, parse.names):
                table = None
        if table is None:
            table = _parse_jsonl(buf, parse, path.name, known, warnings, odd)
        table = table.select(schema.names)
    extra = _unknown_fields(buf, known) if table.num_rows else set()
    return table, torn, extra


def read_table(
    path: Path,
    record_type: type,
    columns: list[str] | None = None,
    warnings: list[str] | None = None,
    *,
    cache: bool = True,
    time_range: tuple[float | None, float | None] | None = None,
    where: Any = None,
    totals: dict[str, int] | None = None,
    compact: bool = False,
) -> tuple[pa.Table, bool]:
    """All rows of one record file as an Arrow table with the record's columns (no file: no rows):
    its Parquet segments and rolled pieces (:mod:`loadtest.records.segments`), oldest first, then
    the live JSONL. ``time_range`` keeps the rows whose time column (``TIME_COLUMNS``) is in
    [start, end); ``where`` (a ``pyarrow.compute`` expression) keeps the rows it is true for; in
    segments both are applied as they are read, so a window or a selection of a huge run fits.
    ``totals["rows"]`` gets the number of rows before ``where``. ``compact`` reads the
    ``CATEGORY_COLUMNS`` as dictionaries.

    Returns the table and whether a torn last line showed the file is still being written.
    """
    got = _gather(path, record_type, columns, warnings, cache, time_range, where, totals, compact)
    tables = [src.table(got.schema.names) if isinstance(src, _Segments) else src for src in got.sources]
    tables = [t if t.schema == got.final else t.cast(got.final) for t in tables]
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    table = table.select(got.schema.names)
    _version_warnings(table, path.name, got.extra, got.warnings)
    return table, got.torn


@dataclass
class _Segments:
    """Consecutive Parquet segments, each opened once (its footer parsed once), read when asked:
    column by column for frames. ``rows`` holds, per segment, the indices of the selected rows
    (None: all)."""

    files: list[Any]  # pq.ParquetFile
    rows: list[Any]
    kinds: dict[str, pa.DataType]

    def column(self, name: str) -> list[pa.Array]:
        chunks: list[pa.Array] = []
        for pf, take in zip(self.files, self.rows, strict=True):
            if name in pf.schema_arrow.names:
                col = pf.read(columns=[name], use_threads=False).column(0)
            else:  # a segment written before the column existed
                col = pa.chunked_array([pa.nulls(pf.metadata.num_rows, self.kinds[name])])
            if take is not None:
                col = col.take(take)
            chunks.extend(col.chunks)
        return chunks

    def table(self, columns: list[str]) -> pa.Table:
        return pa.table({name: pa.chunked_array(self.column(name), type=self.kinds[name]) for name in columns})


@dataclass
class _Gathered:
    sources: list[Any]  # pa.Table or _Segments, in row order
    schema: pa.Schema  # the wanted columns
    final: pa.Schema  # every source cast to this (the wanted and the selection's columns)
    torn: bool
    extra: set[str]
    warnings: list[str]


def _gather(
    path: Path,
    record_type: type,
    columns: list[str] | None,
    warnings: list[str] | None,
    cache: bool,
    time_range: tuple[float | None, float | None] | None,
    where: Any,
    totals: dict[str, int] | None,
    compact: bool,
) -> _Gathered:
    warnings = warnings if warnings is not None else []
    schema = arrow_schema(record_type, _with_version(columns))
    time_col = TIME_COLUMNS.get(record_type.__name__)
    extra_cols = [time_col] if time_range is not None and time_col else []
    if where is not None:
        extra_cols += sorted(_expr_fields(where, set(arrow_schema(record_type).names)))
    read_schema = arrow_schema(record_type, list(dict.fromkeys([*schema.names, *extra_cols])))
    counted = {"rows": 0}
    selection = (time_range, time_col, where, counted, compact)
    sources: list[Any] = []
    extra: set[str] = set()
    batch: list[Path] = []
    for part in segments.parts(path):
        if part.is_segment:
            batch.append(part.path)
            continue
        if batch:
            sources.append(_read_segments(batch, record_type, read_schema, warnings, *selection))
            batch = []
        rolled, _, more = _read_jsonl(part.path, record_type, read_schema, warnings, False)
        sources.append(_select(rolled, time_range, time_col, where, counted))
        extra |= more
    if batch:
        sources.append(_read_segments(batch, record_type, read_schema, warnings, *selection))
    live, torn, more = _read_jsonl(path, record_type, read_schema, warnings, cache)
    sources.append(_select(live, time_range, time_col, where, counted))
    extra |= more
    if totals is not None:
        totals["rows"] = counted["rows"]
    final = compact_schema(read_schema) if compact else read_schema
    return _Gathered(sources, schema, final, torn, extra, warnings)


def _select(
    table: pa.Table,
    time_range: tuple[float | None, float | None] | None,
    col: str | None,
    where: Any,
    counted: dict[str, int],
) -> pa.Table:
    expr = _range_expr(time_range, col) if time_range is not None and col else None
    if expr is not None and table.num_rows:
        table = table.filter(expr)
    counted["rows"] += table.num_rows
    if where is not None and table.num_rows:
        table = table.filter(where)
    return table


def _expr_fields(expr: Any, names: set[str]) -> set[str]:
    """The record columns an expression names (pyarrow gives no public way to list them)."""
    text = str(expr)
    return {n for n in names if n in text}


def _range_expr(time_range: tuple[float | None, float | None], col: str) -> Any:
    start, end = time_range
    expr = None
    if start is not None:
        expr = pc.field(col) >= start
    if end is not None:
        upper = pc.field(col) < end
        expr = upper if expr is None else expr & upper
    return expr


def _read_segments(
    files: list[Path],
    record_type: type,
    schema: pa.Schema,
    warnings: list[str],
    time_range: tuple[float | None, float | None] | None,
    time_col: str | None,
    where: Any,
    counted: dict[str, int],
    compact: bool,
) -> _Segments | pa.Table:
    """Parquet segments, only ``schema``'s columns (a column a segment lacks is null) and rows
    in ``time_range`` for which ``where`` holds; the warnings their conversion gave are said again."""
    kinds = {f.name: f.type for f in (compact_schema(schema) if compact else schema)}
    dictionary = [name for name, kind in kinds.items() if pa.types.is_dictionary(kind)]
    time_expr = _range_expr(time_range, time_col) if time_range is not None and time_col else None
    opened, rows, selected = [], [], []
    for file in files:
        sidecar = segments.warnings_path(file)
        if sidecar.exists():
            with contextlib.suppress(OSError, orjson.JSONDecodeError):
                warnings.extend(str(w) for w in orjson.loads(sidecar.read_bytes()))
        try:
            pf = pq.ParquetFile(file, read_dictionary=dictionary)
        except (OSError, pa.ArrowException):
            warnings.append(f"{file.parent.name}/{file.name}: not a readable Parquet segment; skipped it")
            continue
        take = None
        if where is not None:  # a selection (few rows, every column): read it whole, keep the rows
            whole = pf.read(columns=[n for n in kinds if n in pf.schema_arrow.names], use_threads=False)
            if time_expr is not None:
                whole = whole.filter(time_expr)
            counted["rows"] += whole.num_rows
            selected.append(_fill(whole.filter(where), kinds))
            continue
        if time_expr is not None:
            needed = sorted(_expr_fields(time_expr, set(pf.schema_arrow.names)))
            probe = pf.read(columns=needed, use_threads=False)
            probe = probe.append_column("__row", pa.array(np.arange(probe.num_rows)))
            probe = probe.filter(time_expr)
            counted["rows"] += probe.num_rows
            take = probe.column("__row")
        else:
            counted["rows"] += pf.metadata.num_rows
        opened.append(pf)
        rows.append(take)
    if where is not None:
        schema_ = pa.schema(list(kinds.items()))
        return pa.concat_tables(selected) if selected else schema_.empty_table()
    return _Segments(opened, rows, kinds)


def _fill(table: pa.Table, kinds: dict[str, pa.DataType]) -> pa.Table:
    """``table`` with every column of ``kinds`` (a missing one null), in that order and type."""
    cols = [
        table.column(n).cast(k) if n in table.column_names else pa.nulls(table.num_rows, k) for n, k in kinds.items()
    ]
    return pa.table(cols, names=list(kinds))


# Compact pandas dtypes for reports (``read_run(compact=True)``): the string columns of few
# distinct values become categoricals (one byte a row instead of ~20; read straight from the
# segments' Parquet dictionaries; "" is always a category, so ``fillna("")`` works). Numbers stay
# float64/int64: float32 would halve them, but latencies' percentiles would then print as
# 201.7969009 instead of 201.7969, and float32 sums of counts lose exactness past 2**24.
CATEGORY_COLUMNS = frozenset(
    {
        "run_id", "worker_id", "target", "provider", "dialect", "deployment", "scenario", "fixture", "trigger",
        "audio_format", "outcome", "reason", "status", "status_reason", "error_type", "error_code", "ended_by",
        "name", "region", "url",
    }
)  # fmt: skip
_CATEGORY = pa.dictionary(pa.int32(), pa.string())


def compact_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the ``CATEGORY_COLUMNS`` strings as dictionaries."""
    return pa.schema(
        [pa.field(f.name, _CATEGORY) if f.name in CATEGORY_COLUMNS and f.type == pa.string() else f for f in schema]
    )


def _arrow_lists(kind: pa.DataType) -> pd.ArrowDtype | None:
    return pd.ArrowDtype(kind) if pa.types.is_list(kind) else None


def to_frame(table: pa.Table, *, compact: bool = False) -> pd.DataFrame:
    """An Arrow table as pandas (numbers with nulls become float with NaN); ``compact`` gives the
    ``CATEGORY_COLUMNS`` as categoricals. List columns stay in Arrow memory (``pd.ArrowDtype``; a
    value reads as a Python list): as numpy they would be one array object per row, ~100 bytes each."""
    if compact:
        table = table.cast(compact_schema(table.schema))
    categories = [f.name for f in table.schema if pa.types.is_dictionary(f.type)]
    frame = table.to_pandas(split_blocks=True, self_destruct=True, types_mapper=_arrow_lists)
    for name in categories:
        if "" not in frame[name].cat.categories:
            frame[name] = frame[name].cat.add_categories([""])
    return frame


def read_frame(
    path: Path,
    record_type: type,
    columns: list[str] | None = None,
    warnings: list[str] | None = None,
    *,
    cache: bool = True,
    compact: bool = False,
    time_range: tuple[float | None, float | None] | None = None,
    where: Any = None,
    totals: dict[str, int] | None = None,
) -> tuple[pd.DataFrame, bool]:
    """As :func:`read_table`, as pandas. The frame is built column by column (each read from the
    segments and converted on its own), so the peak is the frame and one column, not twice the frame."""
    got = _gather(path, record_type, columns, warnings, cache, time_range, where, totals, compact)
    series: dict[str, pd.Series] = {}
    for name in got.schema.names:
        kind = got.final.field(name).type
        chunks: list[pa.Array] = []
        for src in got.sources:
            pieces = src.column(name) if isinstance(src, _Segments) else src.column(name).chunks
            chunks.extend(c if c.type == kind else c.cast(kind) for c in pieces)
        one = pa.table({name: pa.chunked_array(chunks, type=kind)})
        del chunks
        series[name] = to_frame(one)[name]
    frame = pd.DataFrame(series, copy=False)
    if "schema_version" in frame:
        version = pa.table({"schema_version": pa.array(frame["schema_version"].to_numpy(), from_pandas=True)})
        _version_warnings(version, path.name, got.extra, got.warnings)
    return frame, got.torn


def open_scan(
    path: Path,
    record_type: type,
    columns: list[str] | None,
    warnings: list[str],
    *,
    cache: bool = True,
    con: Any = None,
) -> tuple[Any, bool]:
    """All rows of one record file as a DuckDB view (:mod:`loadtest.records.scan`) with ``columns``
    (default: all) and ``schema_version``: the segments scanned by DuckDB where they lie, the JSONL
    pieces read here (tolerantly, with their warnings, as :func:`read_table` reads them). Returns
    the Scan and whether a torn last line showed the file is still being written."""
    schema = arrow_schema(record_type, _with_version(columns))
    con = con if con is not None else scan.connect()
    files: list[tuple[int, Path, pa.Schema]] = []
    tables: list[tuple[int, pa.Table]] = []
    extra: set[str] = set()
    rows = 0
    pieces = segments.parts(path)
    for pos, part in enumerate(pieces):
        if part.is_segment:
            got = scan.segment_schema(part.path, warnings)
            if got is not None:
                files.append((pos, part.path, got))
                rows += pq.ParquetFile(part.path).metadata.num_rows
            continue
        rolled, _, more = _read_jsonl(part.path, record_type, schema, warnings, False)
        tables.append((pos, rolled))
        rows += rolled.num_rows
        extra |= more
    live, torn, more = _read_jsonl(path, record_type, schema, warnings, cache)
    tables.append((len(pieces), live))
    rows += live.num_rows
    extra |= more
    found = scan.Scan(con, schema, rows)
    found._tables = scan.build_view(con, schema, files, tables)
    if rows:
        counts = dict(found.fetchall("SELECT schema_version, count(*) FROM {v} GROUP BY 1"))
        missing = int(counts.pop(None, 0))
        version_warnings({int(k): int(v) for k, v in sorted(counts.items())}, missing, path.name, extra, warnings)
    return found, torn


def scan_frame(found: Any, columns: list[str], *, where: str = "true", compact: bool = False) -> pd.DataFrame:
    """``columns`` of the rows of a Scan where ``where`` (SQL) holds, in the reader's order, as
    pandas (as :func:`read_frame` gives them)."""
    if not columns:
        return pd.DataFrame(index=pd.RangeIndex(0))
    names = ", ".join(scan.quote(c) for c in columns)
    table = found.arrow(f"SELECT {names} FROM {{v}} WHERE {where} ORDER BY _ord")
    return to_frame(table.cast(pa.schema([found.schema.field(c) for c in columns])), compact=compact)


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
    rate_limit_columns: list[str] | None = None,
    with_rate_limits: bool = True,
    with_health: bool = True,
    cache: bool = True,
    compact: bool = False,
    time_range: tuple[float | None, float | None] | None = None,
    response_where: Any = None,
    session_where: Any = None,
    scan_responses: list[str] | None = None,
) -> RunData:
    """Read a run directory. Problems become ``warnings``; only a non-run path raises RunDirError.

    For a notebook on a big run: name the columns you need (``response_columns=["outcome",
    "ttfa_ms"]``), ``compact=True`` for small dtypes, ``time_range=(t0, t1)`` (Unix seconds, on
    ``t_trigger`` / ``t_start`` / ``t``) for a window, ``response_where=pyarrow.compute.field(
    "outcome") != "completed"`` for a selection. ``RunData.response_total`` counts the responses
    before ``response_where``.

    ``scan_responses`` (column names) also opens the responses as a DuckDB view with those columns
    (``RunData.scan``, scanned out of core: reports on huge runs aggregate there); ``responses``
    then holds only ``response_columns`` (none when not given), read from that view.
    """
    run_dir = check_run_dir(Path(run_dir))
    warnings: list[str] = []
    run = read_run_json(run_dir, warnings)
    opts: dict[str, Any] = {"cache": cache, "compact": compact, "time_range": time_range}
    totals: dict[str, int] = {}
    found = None
    if scan_responses is not None:
        if time_range is not None or response_where is not None:
            raise ValueError("scan_responses takes no time_range or response_where (filter in the query)")
        wanted = list(dict.fromkeys([*scan_responses, *(response_columns or [])]))
        found, torn_r = open_scan(run_dir / RESPONSES_FILE, ResponseRecord, wanted, warnings, cache=cache)
        responses = pd.DataFrame(index=pd.RangeIndex(0))
        if response_columns:  # column by column, as without a scan (its warnings were said by the scan)
            responses, _ = read_frame(run_dir / RESPONSES_FILE, ResponseRecord, response_columns, [], **opts)
        totals["rows"] = found.rows
    else:
        responses, torn_r = read_frame(
            run_dir / RESPONSES_FILE,
            ResponseRecord,
            response_columns,
            warnings,
            where=response_where,
            totals=totals,
            **opts,
        )
    sessions, torn_s = read_frame(
        run_dir / SESSIONS_FILE, SessionRecord, session_columns, warnings, where=session_where, **opts
    )
    torn_l = False
    if with_rate_limits:
        rl_path = run_dir / RATE_LIMITS_FILE
        rate_limits, torn_l = read_frame(rl_path, RateLimitRecord, rate_limit_columns, warnings, **opts)
    else:
        rate_limits = to_frame(arrow_schema(RateLimitRecord, _with_version(rate_limit_columns)).empty_table())
    health = None
    if with_health and (_has_rows(run_dir / HEALTH_FILE)):
        # health rows are the harness's own diagnostics: their version is not worth a warning
        health, _ = read_frame(run_dir / HEALTH_FILE, HealthRecord, None, [], cache=False, time_range=time_range)
    ended = any(run.get(k) for k in RUN_END_KEYS) or run.get("status") in RUN_END_STATUSES
    in_progress = torn_r or torn_s or torn_l or (bool(run) and not ended)
    if bool(run) and not ended:
        warnings.append(f"{RUN_FILE}: no end time yet (the run is still going or was killed); reporting what is there")
    if not totals.get("rows"):
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
        response_total=totals.get("rows", len(responses)),
        scan=found,
    )


def _has_rows(path: Path) -> bool:
    """The file or any of its rolled pieces exists."""
    return path.exists() or bool(segments.parts(path))
