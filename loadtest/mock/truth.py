"""The ground-truth log: one JSON line per response and per session, flushed as it happens."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson


class TruthLog:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fh = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = path.open("ab", buffering=0)

    def write(self, row: dict[str, Any]) -> None:
        if self._fh is None:
            return
        row.setdefault("t", time.time())
        self._fh.write(orjson.dumps(row) + b"\n")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_truth(path: Path) -> list[dict[str, Any]]:
    """Rows of a truth log (a torn last line is skipped)."""
    rows: list[dict[str, Any]] = []
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return rows
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            rows.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    return rows
