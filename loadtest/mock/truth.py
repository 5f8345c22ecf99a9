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


def session_row(route: Any, fault: str, status: int | None, params: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The truth row of one session (``route`` has ``dialect``, ``provider``, ``deployment``, or is
    None for a request no route took); ``extra`` adds ``session_id``, ``t_open``, ``close_code``..."""
    return {
        "kind": "session",
        "t": time.time(),
        "session_id": extra.pop("session_id", None),
        "response_id": None,
        "fault": fault,
        "params": params,
        "t_created": None,
        "t_first_audio": None,
        "dialect": route.dialect if route is not None else None,
        "provider": route.provider if route is not None else None,
        "deployment": route.deployment if route is not None else None,
        "status": status,
        **extra,
    }


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
