"""The crash-safe run-directory writer: rows appended as they happen, flushed at least every second.

One :class:`RunWriter` per run directory, owned by the only process that writes it (the Locust
master, or the standalone process). Every JSONL file is opened in append mode; a row is one
``orjson`` line. Rows go to the operating system at least every ``flush_interval`` seconds (by
the next write or the background flusher), so a SIGKILL loses at most the rows younger than that
and can tear only the last line (readers skip a torn last line, and any corrupt line, with a warning).

A file that grows past ``roll_bytes`` (64 MiB) is rolled into a compressed Parquet segment
(:mod:`loadtest.records.segments`): renamed under the lock (the hot path pays nothing more
than a size check per batch), converted in the background (a full-size file by a short-lived
child process), so a day-long run keeps ~40-150 bytes a row at rest instead of ~1.2 KB and the
writer's own memory stays flat across rolls.

``run.json`` is replaced atomically (write to a temporary file, then ``os.replace``), so it is
always either the previous or the new complete document.

The writer never sees a secret: rows come from the record contract (URLs already redacted) and
``run.json`` gets the target's :meth:`~loadtest.protocol.targets.Target.describe`.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from loadtest.records import rolling, segments
from loadtest.records.schema import (
    HEALTH_FILE,
    RATE_LIMITS_FILE,
    RESPONSES_FILE,
    RUN_FILE,
    SCHEMA_VERSION,
    SESSIONS_FILE,
    TRACES_DIR,
    HealthRecord,
    RateLimitRecord,
    ResponseRecord,
    SessionRecord,
    to_row,
)

KINDS: dict[str, str] = {
    "response": RESPONSES_FILE,
    "session": SESSIONS_FILE,
    "rate_limit": RATE_LIMITS_FILE,
    "health": HEALTH_FILE,
}
RECORD_TYPES: dict[str, type] = {
    "response": ResponseRecord,
    "session": SessionRecord,
    "rate_limit": RateLimitRecord,
    "health": HealthRecord,
}
MAX_TRACES = 500  # traces kept per run; later ones are counted, not written
MAX_AUDIO = 200  # WAVs kept per run (--keep-audio); later ones are counted, not written
MAX_SAMPLED_AUDIO = 50  # of which completed responses kept as samples, at most
MAX_AUDIO_BYTES = 256 * 1024 * 1024  # and all the WAVs together at most
MAX_LINE_WARNINGS = 5  # per file, as loadtest.records.reader; the rest are counted
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_-]+")


def _dumps(row: Any) -> bytes:
    return orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS, default=str)


def trace_relpath(name: str, suffix: str = ".json") -> str:
    """The run-directory-relative path a trace called ``name`` is stored at (its WAV: ``.wav``)."""
    safe = _SAFE_NAME.sub("_", name).strip("._") or "trace"
    return f"{TRACES_DIR}/{safe[:160]}{suffix}"


class AudioBudget:
    """How many WAVs, and bytes of them, a run keeps (failures first: samples have a cap of their own)."""

    def __init__(
        self, max_files: int = MAX_AUDIO, max_sampled: int = MAX_SAMPLED_AUDIO, max_bytes: int = MAX_AUDIO_BYTES
    ) -> None:
        self.max_files, self.max_sampled, self.max_bytes = max_files, max_sampled, max_bytes
        self.files = self.sampled = self.bytes = self.dropped = 0
        self._lock = threading.Lock()

    def take(self, size: int, sampled: bool) -> bool:
        with self._lock:
            if (
                self.files >= self.max_files
                or (sampled and self.sampled >= self.max_sampled)
                or self.bytes + size > self.max_bytes
            ):
                self.dropped += 1
                return False
            self.files += 1
            self.sampled += sampled
            self.bytes += size
            return True


class RunWriter:
    """Appends record rows to a run directory; thread- and greenlet-safe."""

    def __init__(
        self,
        run_dir: Path | str,
        *,
        flush_interval: float = 0.5,
        max_traces: int = MAX_TRACES,
        roll_bytes: int = segments.ROLL_BYTES,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.roll_bytes = roll_bytes  # 0: never roll
        self._sizes: dict[str, int] = {}
        self._converter = _Converter()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / TRACES_DIR).mkdir(exist_ok=True)
        self.flush_interval = flush_interval
        self.max_traces = max_traces
        self.counts: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.traces_written = 0
        self.traces_dropped = 0
        self.audio_budget = AudioBudget()
        self._files: dict[str, BinaryIO] = {}
        self._dirty = False
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()
        self._closed = False
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        for kind in KINDS:  # every file exists from the start, even when it stays empty
            self._file(kind)

    # ---- rows ----------------------------------------------------------------------------
    def _file(self, kind: str) -> BinaryIO:
        handle = self._files.get(kind)
        if handle is None:
            handle = open(self.run_dir / KINDS[kind], "ab")  # noqa: SIM115 - kept open for the run
            self._files[kind] = handle
            self._sizes[kind] = handle.tell()
        return handle

    def write(self, kind: str, row: dict[str, Any] | Any) -> None:
        """Append one row (a dict or a record dataclass) to the file of ``kind``."""
        self.write_many(kind, (row,))

    def write_many(self, kind: str, rows: Iterable[dict[str, Any] | Any]) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown record kind {kind!r} (expected one of {', '.join(KINDS)})")
        self.write_raw(kind, b"".join(_dumps(r if isinstance(r, dict) else to_row(r)) + b"\n" for r in rows))

    def write_raw(self, kind: str, data: bytes) -> None:
        """Append already encoded JSONL rows (each ending in a newline), e.g. a worker's batch."""
        if kind not in KINDS:
            raise ValueError(f"unknown record kind {kind!r} (expected one of {', '.join(KINDS)})")
        if not data:
            return
        if not data.endswith(b"\n"):
            data += b"\n"
        with self._lock:
            if self._closed:
                return
            self._file(kind).write(data)
            self.counts[kind] += data.count(b"\n")
            self._dirty = True
            self._sizes[kind] += len(data)
            if self.roll_bytes and self._sizes[kind] >= self.roll_bytes:
                self._roll_locked(kind)
            elif time.monotonic() - self._last_flush >= self.flush_interval:
                self._flush_locked()

    def _roll_locked(self, kind: str) -> None:
        """Move the file's rows into the segment directory and start a fresh file; the segment is
        written in the background. The rows are flushed first, so nothing waits in a buffer."""
        self._flush_locked()
        path = self.run_dir / KINDS[kind]
        self._files.pop(kind).close()
        rolled = segments.roll(path, segments.next_index(path))
        self._file(kind)
        self._converter.submit(rolled, RECORD_TYPES[kind])

    def roll(self, kind: str) -> None:
        """Roll ``kind``'s file now (whatever its size), if it holds any row."""
        with self._lock:
            if not self._closed and self._sizes.get(kind):
                self._roll_locked(kind)

    def wait_segments(self) -> None:
        """Wait until every rolled file is a segment (conversions run in the background)."""
        self._converter.wait()

    def response(self, record: Any) -> None:
        self.write("response", record)

    def session(self, record: Any) -> None:
        self.write("session", record)

    def rate_limit(self, record: Any) -> None:
        self.write("rate_limit", record)

    def health(self, row: dict[str, Any]) -> None:
        self.write("health", row)

    def trace(self, name: str, events: list[dict[str, Any]]) -> str | None:
        """Write one trace file (bounded in count); returns its run-relative path or None."""
        rel = trace_relpath(name)
        with self._lock:
            if self._closed:
                return None
            if self.traces_written >= self.max_traces:
                self.traces_dropped += 1
                return None
            self.traces_written += 1
        path = self.run_dir / rel
        tmp = path.with_suffix(".json.tmp")
        tmp.write_bytes(orjson.dumps({"name": name, "events": events}, default=str))
        os.replace(tmp, path)
        return rel

    def audio(self, name: str, wav: bytes, sampled: bool = False) -> str | None:
        """Write one WAV beside its trace (bounded in count and bytes); its run-relative path or None."""
        rel = trace_relpath(name, ".wav")
        if self._closed or not self.audio_budget.take(len(wav), sampled):
            return None
        path = self.run_dir / rel
        tmp = path.with_suffix(".wav.tmp")
        tmp.write_bytes(wav)
        os.replace(tmp, path)
        return rel

    # ---- flushing ------------------------------------------------------------------------
    def _flush_locked(self) -> None:
        for handle in self._files.values():
            handle.flush()
        self._dirty = False
        self._last_flush = time.monotonic()

    def flush(self) -> None:
        with self._lock:
            if not self._closed:
                self._flush_locked()

    def start_flusher(self) -> None:
        """Flush in the background every ``flush_interval`` (a greenlet under gevent)."""
        if self._flusher is not None:
            return

        def loop() -> None:
            while not self._stop.wait(self.flush_interval):
                if self._dirty:
                    self.flush()

        self._flusher = threading.Thread(target=loop, name="rtload-flusher", daemon=True)
        self._flusher.start()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            if self._closed:
                return
            self._flush_locked()
            for handle in self._files.values():
                with contextlib.suppress(OSError):
                    handle.close()
            self._closed = True
        self._converter.wait()  # rolled files become segments before the run is called finished

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Converter:
    """Runs segment conversions one at a time in the background, so the event loop never blocks:
    a big file's in a child process (:func:`rolling.convert_in_child`: the parse's memory leaves
    with it), a small one's in an OS thread. Under gevent's monkey-patching (as under Locust) a
    greenlet waits for either (gevent's subprocess waits cooperatively; the small parse goes to the
    hub's thread pool); otherwise one OS thread does. A conversion that fails leaves its rolled
    JSONL in place: readers read it as it is."""

    def __init__(self) -> None:
        self._pending: list[Any] = []
        self._pool: Any = None

    def _submit_fn(self) -> Any:
        if self._pool is None:
            gevent_pool = None
            if "gevent" in sys.modules:
                from gevent import monkey

                if monkey.is_module_patched("subprocess"):
                    gevent_pool = _OneAtATime()
            if gevent_pool is not None:
                self._pool = gevent_pool
            else:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rtload-segments")
        return self._pool.spawn if hasattr(self._pool, "spawn") else self._pool.submit

    def submit(self, rolled: Path, record_type: type) -> None:
        self._pending = [p for p in self._pending if not _done(p)]
        submit = self._submit_fn()
        in_thread = self._pool.in_thread if isinstance(self._pool, _OneAtATime) else None
        self._pending.append(submit(_convert_quietly, rolled, record_type, in_thread))

    def wait(self) -> None:
        for job in self._pending:
            with contextlib.suppress(Exception):
                job.get() if hasattr(job, "get") else job.result()
        self._pending = []


class _OneAtATime:
    """Greenlets that run one after another (a child's parse holds a few hundred MB: one at a
    time), spawned without ever blocking the caller, which may hold the writer's lock."""

    def __init__(self) -> None:
        import gevent.lock

        self._turn = gevent.lock.Semaphore(1)

    def spawn(self, fn: Any, *args: Any) -> Any:
        import gevent

        def in_turn() -> None:
            with self._turn:
                fn(*args)

        return gevent.spawn(in_turn)

    @staticmethod
    def in_thread(fn: Any, *args: Any) -> Any:
        """``fn(*args)`` in the hub's thread pool, this greenlet waiting for it."""
        import gevent

        return gevent.get_hub().threadpool.apply(fn, args)


def _done(job: Any) -> bool:
    return job.ready() if hasattr(job, "ready") else job.done()


def _convert_quietly(rolled: Path, record_type: type, in_thread: Any = None) -> None:
    try:
        if rolling.needs_child(rolled):
            rolling.convert_in_child(rolled, record_type)
        elif in_thread is not None:
            in_thread(rolling.convert, rolled, record_type)
        else:
            rolling.convert(rolled, record_type)
    except Exception as exc:  # the rolled JSONL stays and is read as it is
        sys.stderr.write(f"warning: could not write the segment of {rolled}: {exc}\n")


def write_run_json(run_dir: Path | str, info: dict[str, Any]) -> Path:
    """Atomically write ``run.json`` (adds ``schema_version``)."""
    path = Path(run_dir) / RUN_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_bytes(orjson.dumps({"schema_version": SCHEMA_VERSION, **info}, option=orjson.OPT_INDENT_2, default=str))
    os.replace(tmp, path)
    return path


def read_run_json(run_dir: Path | str) -> dict[str, Any]:
    path = Path(run_dir) / RUN_FILE
    return orjson.loads(path.read_bytes()) if path.exists() else {}


def update_run_json(run_dir: Path | str, **changes: Any) -> Path:
    """Merge ``changes`` into ``run.json``."""
    info = read_run_json(run_dir)
    info.pop("schema_version", None)
    info.update(changes)
    return write_run_json(run_dir, info)


def read_rows(path: Path | str, warnings: list[str] | None = None) -> list[dict[str, Any]]:
    """The rows of a JSONL file, after those already rolled into its segments (nulls left out,
    as a writer leaves them out). A line that is not a JSON object (corrupt, or a torn last line
    left by a killed writer) is skipped with one warning naming the file and line, and the rest of
    the file is still read. Warnings go to ``warnings`` when a list is given, else to stderr
    (``warning: ...``, one line each), worded as :mod:`loadtest.records.reader` words them."""
    path = Path(path)
    rolled: list[dict[str, Any]] = []
    for part in segments.parts(path):  # the rows already rolled out of the file, oldest first
        if part.is_segment:
            import pyarrow.parquet as pq

            table = pq.read_table(part.path)
            rolled.extend({k: v for k, v in row.items() if v is not None} for row in table.to_pylist())
        else:
            rolled.extend(read_rows(part.path, warnings))
    if not path.exists():
        return rolled
    rows: list[dict[str, Any]] = rolled
    bad: list[str] = []
    torn = False
    lines = path.read_bytes().split(b"\n")
    last = len(lines) - 1  # the text after the last newline: empty unless the last line is torn
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            if i == last:
                torn = True
            else:
                bad.append(f"{path} line {i + 1}: not valid JSON; skipped it")
            continue
        if not isinstance(row, dict):
            bad.append(f"{path} line {i + 1}: not a JSON object; skipped it")
            continue
        rows.append(row)
    notes = bad[:MAX_LINE_WARNINGS]
    if len(bad) > MAX_LINE_WARNINGS:
        notes.append(f"{path}: {len(bad) - MAX_LINE_WARNINGS} more unreadable lines skipped")
    if torn:
        notes.append(f"{path}: the last line is incomplete (the run is still being written?); skipped it")
    if warnings is not None:
        warnings.extend(notes)
    else:
        for note in notes:
            sys.stderr.write(f"warning: {note}\n")
        if notes:
            sys.stderr.flush()
    return rows
