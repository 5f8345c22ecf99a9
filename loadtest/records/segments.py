"""Rolling a run's JSONL files into compressed Parquet segments as the run goes.

A long run's ``responses.jsonl`` would grow to ~1.2 KB a row (12 GB for a day at a thousand
sessions). The writer keeps appending JSONL (its per-row cost and crash safety unchanged) and,
when a file passes :data:`ROLL_BYTES`, rolls it: under its lock it closes the file and renames
it into the file's segment directory (``responses.segments/_000007.jsonl``), then opens a fresh
``responses.jsonl``. In the background that rolled file is parsed (with the reader's tolerant
JSONL path) and written as ``responses.segments/000007.parquet`` (zstd, ~40-150 bytes a row):
under a temporary name (``.000007.parquet.tmp``) first, renamed when complete, and only then
is the rolled JSONL removed.

So at every instant each row is in exactly one place a reader looks at: a segment, a rolled
JSONL whose segment does not exist yet, or the live JSONL. A SIGKILL at any point leaves
either the rolled JSONL alone, both it and its complete segment (the reader then takes the
segment and ignores the JSONL), or the segment alone; a temporary file is never read.

Names starting with ``_`` or ``.`` are skipped by pyarrow and pandas, so a plain reader opens
the segments with ``pandas.read_parquet("responses.segments")`` and the live rows with
``pandas.read_json("responses.jsonl", lines=True)``.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ROLL_BYTES = 64 * 1024 * 1024  # a JSONL file this big is rolled into a segment (~50,000 response rows)
SEGMENTS_SUFFIX = ".segments"
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 3  # level 9 saves 4% more for twice the time
WARNINGS_KEY = b"rtload_warnings"  # the warnings the conversion gave (bad lines), said again by readers
ROWS_KEY = b"rtload_rows"
_PART = re.compile(r"^(_?)(\d{6})\.(jsonl|parquet)$")


def segments_dir(path: Path) -> Path:
    """The segment directory of a JSONL file: ``responses.jsonl`` -> ``responses.segments``."""
    return path.with_suffix(SEGMENTS_SUFFIX)


@dataclass(frozen=True)
class Part:
    """One piece of a rolled file: a Parquet segment, or a rolled JSONL not converted yet."""

    index: int
    path: Path

    @property
    def is_segment(self) -> bool:
        return self.path.suffix == ".parquet"


def parts(path: Path) -> list[Part]:
    """The pieces rolled out of ``path``, oldest first; each row in exactly one of them
    (a rolled JSONL whose segment was completed is left out)."""
    folder = segments_dir(path)
    if not folder.is_dir():
        return []
    found: dict[int, dict[str, Path]] = {}
    for entry in os.scandir(folder):
        m = _PART.match(entry.name)
        if m:
            found.setdefault(int(m.group(2)), {})[m.group(3)] = Path(entry.path)
    out = []
    for index in sorted(found):
        kinds = found[index]
        out.append(Part(index, kinds.get("parquet") or kinds["jsonl"]))
    return out


def next_index(path: Path) -> int:
    existing = [p.index for p in parts(path)]
    return (max(existing) + 1) if existing else 1


def rolled_path(path: Path, index: int) -> Path:
    return segments_dir(path) / f"_{index:06d}.jsonl"


def segment_path(path: Path, index: int) -> Path:
    return segments_dir(path) / f"{index:06d}.parquet"


def roll(path: Path, index: int) -> Path:
    """Move the (closed, flushed) live file into its segment directory; the caller reopens ``path``."""
    target = rolled_path(path, index)
    target.parent.mkdir(exist_ok=True)
    os.replace(path, target)
    return target


def rolled_parts(rolled: Path) -> tuple[Path, Path] | None:
    """The segment a rolled JSONL file becomes and its temporary name (None: not a rolled file, or
    gone: converted already)."""
    m = _PART.match(rolled.name)
    if not m or not rolled.exists():
        return None
    return rolled.with_name(f"{m.group(2)}.parquet"), rolled.with_name(f".{m.group(2)}.parquet.tmp")


def warnings_path(segment: Path) -> Path:
    """The warnings the conversion of ``segment`` gave (bad lines), written only when there were some."""
    return segment.with_name(f"_{segment.stem}.warnings.json")


def write_segment(table: Any, segment: Path, tmp: Path | None = None, warnings: list[str] | None = None) -> None:
    """Write one segment: under ``tmp`` (default ``.<name>.tmp``) first, renamed when complete.
    Its warnings go beside it first (readers say them again without opening every footer)."""
    import pyarrow.parquet as pq

    tmp = tmp if tmp is not None else segment.with_name(f".{segment.name}.tmp")
    if warnings:
        side = warnings_path(segment)
        side_tmp = side.with_name(f".{side.name}.tmp")
        side_tmp.write_bytes(orjson.dumps(warnings))
        os.replace(side_tmp, side)
    meta = {WARNINGS_KEY: orjson.dumps(warnings or []), ROWS_KEY: str(table.num_rows).encode()}
    try:
        pq.write_table(
            table.replace_schema_metadata(meta),
            tmp,
            compression=COMPRESSION,
            compression_level=COMPRESSION_LEVEL,
            row_group_size=1 << 20,
        )
        os.replace(tmp, segment)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def stale_temporaries(path: Path) -> list[Path]:
    """Temporary segment files a killed conversion left behind (never read; safe to remove)."""
    folder = segments_dir(path)
    return sorted(folder.glob(".*.parquet.tmp")) if folder.is_dir() else []
