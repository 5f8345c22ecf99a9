"""A record file's rows as one DuckDB view, scanned out of core (issue 18).

The Parquet segments are read by DuckDB itself (``read_parquet``, only the columns and rows a
query names, spilling to a temporary directory past :data:`MEMORY_LIMIT`); the pieces still in
JSONL (a rolled file not converted yet, the live file: at most ~64 MB each) are read by the
reader's tolerant path (its warnings, its Parquet cache) and handed to DuckDB as Arrow tables.
So every row is seen once, in the reader's order (segments and rolled pieces oldest first, then
the live file): ``_ord`` numbers the rows in that order, for queries whose answer depends on it
(which reason was seen first). A column no segment has is NULL, as in the reader.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from loadtest.records import segments

MEMORY_LIMIT = "1GB"  # DuckDB's own limit; past it, sorts and aggregates spill to disk
VIEW = "rows"
ORDER = "_ord"
PART_STRIDE = 1 << 40  # _ord = part position * 2**40 + row in the part

_DUCK_TYPES = {
    "string": "VARCHAR",
    "int64": "BIGINT",
    "double": "DOUBLE",
    "bool": "BOOLEAN",
    "list<item: string>": "VARCHAR[]",
    "list<item: double>": "DOUBLE[]",
    "list<item: bool>": "BOOLEAN[]",
}


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def duck_type(kind: pa.DataType) -> str:
    return _DUCK_TYPES[str(kind)]


def connect() -> Any:
    import duckdb

    con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "preserve_insertion_order": True})
    with contextlib.suppress(Exception):
        con.execute(f"SET temp_directory = '{tempfile.gettempdir()}/rtload-duckdb-{os.getpid()}'")
    return con


@dataclass
class Scan:
    """One record file's rows in DuckDB: ``con.sql(q.format(v=scan.view))``."""

    con: Any
    schema: pa.Schema  # the columns the view has
    rows: int
    view: str = VIEW
    _tables: list[str] = field(default_factory=list)
    memo: dict[Any, Any] = field(default_factory=dict)  # figures several sections ask for (the rows never change)

    def sql(self, query: str, params: Sequence[Any] | None = None) -> Any:
        """Run ``query`` (``{v}`` is the view); returns the DuckDB relation/cursor."""
        return self.con.execute(query.format(v=self.view), params or [])

    def fetchall(self, query: str, params: Sequence[Any] | None = None) -> list[tuple]:
        return self.sql(query, params).fetchall()

    def arrow(self, query: str, params: Sequence[Any] | None = None) -> pa.Table:
        relation = self.con.sql(query.format(v=self.view), params=list(params) if params else None)
        fetch = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table  # duckdb 2 / 1
        return fetch()

    def has(self, column: str) -> bool:
        return column in self.schema.names


def segment_schema(segment: Path, warnings: list[str]) -> pa.Schema | None:
    """The schema of one segment (None: unreadable, named in a warning and skipped, as the reader
    does); the warnings its conversion gave are said again."""
    sidecar = segments.warnings_path(segment)
    if sidecar.exists():
        with contextlib.suppress(OSError, orjson.JSONDecodeError):
            warnings.extend(str(w) for w in orjson.loads(sidecar.read_bytes()))
    try:
        return pq.read_schema(segment)
    except (OSError, pa.ArrowException):
        warnings.append(f"{segment.parent.name}/{segment.name}: not a readable Parquet segment; skipped it")
        return None


def build_view(
    con: Any,
    schema: pa.Schema,
    files: list[tuple[int, Path, pa.Schema]],
    tables: list[tuple[int, pa.Table]],
    view: str = VIEW,
) -> list[str]:
    """Create ``view``: ``schema``'s columns (typed; NULL where a source lacks one) and ``_ord``
    over the segment ``files`` and the Arrow ``tables`` (each with its part position)."""
    selects = []
    registered = []
    if files:
        present = set().union(*(set(s.names) for _, _, s in files))
        cols = [
            f"CAST({quote(f.name)} AS {duck_type(f.type)}) AS {quote(f.name)}"
            if f.name in present
            else f"CAST(NULL AS {duck_type(f.type)}) AS {quote(f.name)}"
            for f in schema
        ]
        listing = ", ".join("'" + str(p).replace("'", "''") + "'" for _, p, _ in files)
        cases = " ".join(f"WHEN '{p!s}' THEN {pos}" for pos, p, _ in files)
        order = f"CAST(CASE filename {cases} END AS BIGINT) * {PART_STRIDE} + file_row_number AS {ORDER}"
        selects.append(
            f"SELECT {', '.join(cols)}, {order} FROM read_parquet([{listing}], union_by_name = true, "
            "filename = true, file_row_number = true)"
        )
    for i, (pos, table) in enumerate(tables):
        name = f"_tail_{view}_{i}"
        con.register(name, table.append_column("__row", pa.array(np.arange(table.num_rows, dtype=np.int64))))
        registered.append(name)
        cols = [f"CAST({quote(f.name)} AS {duck_type(f.type)}) AS {quote(f.name)}" for f in schema]
        order = f"CAST({pos} AS BIGINT) * {PART_STRIDE} + __row AS {ORDER}"
        selects.append(f"SELECT {', '.join(cols)}, {order} FROM {name}")
    if not selects:
        cols = [f"CAST(NULL AS {duck_type(f.type)}) AS {quote(f.name)}" for f in schema]
        selects.append(f"SELECT {', '.join(cols)}, CAST(0 AS BIGINT) AS {ORDER} WHERE false")
    con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(view)} AS " + " UNION ALL ".join(selects))
    return registered


def ords_at(found: Scan, where: str, positions: np.ndarray) -> np.ndarray:
    """The ``_ord`` of the rows at ``positions`` (0-based) among the rows where ``where`` holds,
    in the rows' order, without sorting the rows: ``_ord`` runs 0, 1, ... within each part, so
    the rows' count per part gives every row's place, and only the smaller of the two sets (the
    rows where ``where`` holds, or those where it does not) is fetched (at most half the rows)."""
    positions = np.asarray(positions, dtype=np.int64)
    parts = found.fetchall(
        f"SELECT {ORDER} // {PART_STRIDE} AS p, count(*), count(*) FILTER (WHERE {where}) FROM {{v}} "
        "GROUP BY p ORDER BY p"
    )
    keys = np.array([p for p, _, _ in parts], dtype=np.int64)
    sizes = np.array([n for _, n, _ in parts], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    held = sum(int(k) for _, _, k in parts)

    def places(cond: str) -> np.ndarray:  # each such row's place among all rows, sorted
        got = np.asarray(found.sql(f"SELECT {ORDER} AS o FROM {{v}} WHERE {cond}").fetchnumpy()["o"], dtype=np.int64)
        part = np.searchsorted(keys, got // PART_STRIDE)
        return np.sort(offsets[part] + got % PART_STRIDE)

    if held <= int(offsets[-1]) - held:
        at = places(where)[positions]
    else:  # the i-th row that holds comes after k that do not, k = #{j: skipped_j - j <= i}
        skipped = places(f"NOT coalesce({where}, false)")
        at = positions + np.searchsorted(skipped - np.arange(skipped.size), positions, side="right")
    part = np.searchsorted(offsets, at, side="right") - 1
    return keys[part] * PART_STRIDE + (at - offsets[part])
