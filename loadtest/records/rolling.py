"""Rolling a record file's tail into a Parquet segment: read the rolled JSONL the way readers do
(bad lines become warnings kept beside the segment), write the segment under a temporary name,
rename it, then remove the JSONL. Its own module because it joins the reader (how rows are read)
and the segment layout (where they go), which must not import each other."""

from __future__ import annotations

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


def convert_pending(path: Path, record_type: type) -> list[Path]:
    """Convert every rolled JSONL of ``path`` that has no segment yet (e.g. after a crash)."""
    done = []
    for part in segments.parts(path):
        if not part.is_segment:
            seg = convert(part.path, record_type)
            if seg is not None:
                done.append(seg)
    return done
