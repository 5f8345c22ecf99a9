"""Live progress of a run, read from its run directory while Locust writes it (no Locust import).

:class:`RunTail` reads the rows appended since the last call (a torn last line waits for the next
call), so ``rtload run`` can print "step, users, outcomes so far" without talking to Locust.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import orjson

from loadtest.locust.board import OutcomeBoard
from loadtest.records import segments
from loadtest.records.schema import HEALTH_FILE, MASTER_WORKER_ID, OUTCOMES, RESPONSES_FILE, RUN_FILE
from loadtest.records.worker_loss import WORKERS_LOST


class JsonlTail:
    """Rows appended to one JSONL file since the last :meth:`read`, across the writer's rolls.

    The file stays open, so when the writer rolls it into a segment (renames it away and starts
    a new one) the rest of the old file is still read; the pieces rolled after it (when the writer
    rolled more than once between two reads) are read whole, then the new file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self._handle: Any = None
        self._index = 0  # the segment index the open file gets when it is rolled

    def read(self) -> list[dict[str, Any]]:
        rows = self._read_open()
        try:
            rolled = self._handle is not None and os.fstat(self._handle.fileno()).st_ino != os.stat(self.path).st_ino
        except FileNotFoundError:
            rolled = False
        if rolled:  # nothing is written to the old file once renamed: its rest, then the next pieces
            rows.extend(self._read_open())
            self._handle.close()
            self._handle, self.offset = None, 0
            for part in segments.parts(self.path):
                if part.index > self._index:
                    rows.extend(_whole_piece(part))
            rows.extend(self._read_open())
        return rows

    def _read_open(self) -> list[dict[str, Any]]:
        if self._handle is None:
            while True:  # the index the file will get, stable across the open (no roll in between)
                before = segments.next_index(self.path)
                try:
                    self._handle = open(self.path, "rb")  # noqa: SIM115 - kept open across reads
                except FileNotFoundError:
                    return []
                if segments.next_index(self.path) == before:
                    break
                self._handle.close()
            self._index = before
        self._handle.seek(self.offset)
        data = self._handle.read()
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        return _rows(data[:end])


def _rows(data: bytes) -> list[dict[str, Any]]:
    rows = []
    for line in data.split(b"\n"):
        if line.strip():
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(row, dict):
                rows.append(row)
    return rows


def _whole_piece(part: segments.Part) -> list[dict[str, Any]]:
    try:
        if part.is_segment:
            import pyarrow.parquet as pq

            return pq.read_table(part.path).to_pylist()
        return _rows(part.path.read_bytes())
    except (OSError, ValueError):
        # converted (and removed) while we looked: its segment has the rows
        if not part.is_segment:
            seg = segments.segment_path(part.path.parent.with_suffix(".jsonl"), part.index)
            if seg.exists():
                return _whole_piece(segments.Part(part.index, seg))
        return []


class RunTail:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.responses = JsonlTail(self.run_dir / RESPONSES_FILE)
        self.health = JsonlTail(self.run_dir / HEALTH_FILE)
        self.board = OutcomeBoard()
        self.users_by_worker: dict[str, int] = {}
        self.last_step: int | None = None
        self.last_target: int | None = None
        self.lost_workers: set[str] = set()  # run.json's workers_lost: their last user count is stale
        self.started = time.monotonic()

    def poll(self) -> None:
        for row in self.responses.read():
            self.board.add(row)
            if row.get("step") is not None:
                self.last_step = int(row["step"])
            if row.get("users") is not None:
                self.last_target = int(row["users"])
        for row in self.health.read():
            if row.get("users") is not None and row.get("worker_id") != MASTER_WORKER_ID:
                self.users_by_worker[str(row.get("worker_id"))] = int(row["users"])
        self.lost_workers = {str(r.get("worker_id")) for r in self._run_info().get(WORKERS_LOST) or []}

    def _run_info(self) -> dict[str, Any]:
        try:
            info = orjson.loads((self.run_dir / RUN_FILE).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return {}
        return info if isinstance(info, dict) else {}

    def line(self) -> str:
        elapsed = int(time.monotonic() - self.started)
        users = sum(n for worker, n in self.users_by_worker.items() if worker not in self.lost_workers)
        step = "-" if self.last_step is None else str(self.last_step)
        target = "" if self.last_target is None else f"/{self.last_target}"
        lost = len(self.lost_workers)
        loss = f" | {lost} worker{'s' if lost > 1 else ''} lost" if lost else ""
        return (
            f"[{elapsed // 60:02d}:{elapsed % 60:02d}] step {step} users {users}{target}{loss} | "
            f"{self.board.progress_line()}"
        )


def outcome_table(rows: list[dict[str, Any]]) -> str:
    """The built-in short outcome table (used when the report tool is not available)."""
    board = OutcomeBoard()
    for row in rows:
        board.add(row)
    total = board.responses
    lines = [f"{total} responses"]
    if not total:
        return lines[0]
    lines.append(f"{'outcome':<12}{'count':>8}{'share':>9}")
    for outcome in OUTCOMES:
        n = board.total.get(outcome, 0)
        if n:
            lines.append(f"{outcome:<12}{n:>8}{100.0 * n / total:>8.1f}%")
    reasons: dict[str, int] = {}
    for r in rows:
        if r.get("reason"):
            reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
    if reasons:
        lines.append("reasons: " + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])))
    ttfa = sorted(float(r["ttfa_ms"]) for r in rows if r.get("ttfa_ms") is not None)
    if ttfa:
        from loadtest.locust.failon import percentile

        lines.append(
            f"ttfa ms: p50 {percentile(ttfa, 50):.0f}, p95 {percentile(ttfa, 95):.0f}, p99 {percentile(ttfa, 99):.0f}"
        )
    return "\n".join(lines)
