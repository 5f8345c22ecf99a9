"""Rolling a record file's tail into a Parquet segment: read the rolled JSONL the way readers do
(bad lines become warnings kept beside the segment), write the segment under a temporary name,
rename it, then remove the JSONL. Its own module because it joins the reader (how rows are read)
and the segment layout (where they go), which must not import each other.

A long-lived writer (the Locust master of a soak) converts through :func:`convert_in_child`: the
parse of a 64 MiB file takes a few hundred MB for a moment, and an allocator that got them
never gives them all back (issue 22: the master stepped up ~70 MB at its first roll, even with
Arrow's pool handed back). A short-lived child process takes that memory with it when it exits.
``python -m loadtest.records.rolling ROLLED MODULE:RECORD`` is that child. A file under
:data:`CHILD_MIN_BYTES` (a test's, or one rolled early at a crash or a close) is converted in the
writer's own process: its parse is small, and a child costs ~1 s of imports.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa

from loadtest.records import segments
from loadtest.records.reader import arrow_schema, read_table


def convert(rolled: Path, record_type: type) -> Path | None:
    """Write the segment of one rolled JSONL file (temporary name, then rename), then remove the
    JSONL. Returns the segment (None when the rolled file is gone: converted already)."""
    names = segments.rolled_parts(rolled)
    if names is None:
        return None
    segment, tmp = names
    warnings: list[str] = []
    table, _ = read_table(rolled, record_type, None, warnings, cache=False)
    segments.write_segment(table.cast(arrow_schema(record_type)), segment, tmp, warnings)
    rolled.unlink(missing_ok=True)
    del table
    # Arrow's allocator (mimalloc) keeps what a conversion freed: ~90 MB a segment stayed in the
    # master's RSS after each roll of a soak (issue 22) until it is handed back here
    pa.default_memory_pool().release_unused()
    return segment


CHILD_MIN_BYTES = 8 << 20  # a rolled file this big is converted in a child process


def needs_child(rolled: Path) -> bool:
    """Whether ``rolled`` is big enough that its conversion belongs in a child process."""
    try:
        return rolled.stat().st_size >= CHILD_MIN_BYTES
    except OSError:
        return False


def convert_in_child(rolled: Path, record_type: type, timeout_s: float = 600.0) -> Path | None:
    """:func:`convert` in a short-lived child process (the caller's memory never holds the parse).
    Under gevent's monkey-patching the wait is cooperative. Raises ``RuntimeError`` with the
    child's last line when it fails (the rolled JSONL then stays, read as it is); converts here
    when no child process can be started at all."""
    names = segments.rolled_parts(rolled)
    if names is None:
        return None
    record = f"{record_type.__module__}:{record_type.__qualname__}"
    root = str(Path(__file__).resolve().parents[2])  # the child imports this same package
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    cmd = [sys.executable, "-m", "loadtest.records.rolling", str(rolled), record]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout_s, check=False)
    except OSError:  # no child process possible here (resource limits): convert in this process
        return convert(rolled, record_type)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"the conversion took over {timeout_s:.0f} s") from exc
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise RuntimeError(lines[-1] if lines else f"the conversion exited with {done.returncode}")
    segment = names[0]
    return segment if segment.exists() else None


def convert_pending(path: Path, record_type: type) -> list[Path]:
    """Convert every rolled JSONL of ``path`` that has no segment yet (e.g. after a crash)."""
    done = []
    for part in segments.parts(path):
        if not part.is_segment:
            seg = convert(part.path, record_type)
            if seg is not None:
                done.append(seg)
    return done


def main(argv: list[str] | None = None) -> int:
    """The child of :func:`convert_in_child`: ``ROLLED MODULE:RECORD``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or ":" not in args[1]:
        sys.stderr.write("usage: python -m loadtest.records.rolling ROLLED_JSONL MODULE:RECORD\n")
        return 2
    module, _, name = args[1].partition(":")
    convert(Path(args[0]), getattr(importlib.import_module(module), name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
