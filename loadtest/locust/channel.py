"""Records from workers to the master over Locust's own message channel.

A worker never writes the run directory. Its :class:`RecordBatcher` encodes each row once
(``orjson``) and sends the batch every ``interval`` seconds as one ``rtload_records`` message
(``runner.send_message``); the master's :func:`receive_batch` appends the bytes to the run
directory as they are and feeds the live outcome board.

At the end of a run the master asks every worker to drain (``rtload_drain``): the worker stops its
users (letting in-flight responses finish within the stop timeout), sends what is left and answers
``rtload_drained``; the master waits for every answer before it closes the run directory, so no
row is lost between the last batch and the shutdown.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import orjson

from loadtest.records.writer import KINDS, AudioBudget, RunWriter, trace_relpath

MSG_RECORDS = "rtload_records"
MSG_DRAIN = "rtload_drain"
MSG_DRAINED = "rtload_drained"


def encode_row(row: dict[str, Any]) -> bytes:
    return orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS, default=str)


class RecordBatcher:
    """Worker side: buffers encoded rows and sends them to the master in batches."""

    def __init__(self, send: Callable[[str, Any], None], worker_id: str, interval: float = 0.5) -> None:
        self.send = send
        self.worker_id = worker_id
        self.interval = interval
        self._rows: dict[str, list[bytes]] = {kind: [] for kind in KINDS}
        self._traces: list[tuple[str, bytes]] = []
        self._audio: list[tuple[str, bytes, bool]] = []
        self.audio_budget = AudioBudget()  # a worker sends no more than the master would keep
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent_rows = 0
        self.batches = 0

    def add(self, kind: str, row: dict[str, Any]) -> None:
        line = encode_row(row)
        with self._lock:
            self._rows[kind].append(line)

    def trace(self, name: str, events: list[dict[str, Any]]) -> str:
        data = orjson.dumps(events, default=str)
        with self._lock:
            self._traces.append((name, data))
        return trace_relpath(name)

    def audio(self, name: str, wav: bytes, sampled: bool = False) -> str | None:
        if not self.audio_budget.take(len(wav), sampled):
            return None
        with self._lock:
            self._audio.append((name, wav, sampled))
        return trace_relpath(name, ".wav")

    def flush(self) -> int:
        """Send what is buffered as one message; returns the number of rows sent."""
        with self._lock:
            rows = {kind: b"\n".join(lines) + b"\n" for kind, lines in self._rows.items() if lines}
            count = sum(len(lines) for lines in self._rows.values())
            traces, audio = self._traces, self._audio
            self._rows = {kind: [] for kind in KINDS}
            self._traces, self._audio = [], []
        if not rows and not traces and not audio:
            return 0
        message = {"worker_id": self.worker_id, "rows": rows, "traces": traces}
        if audio:
            message["audio"] = audio
        self.send(MSG_RECORDS, message)
        self.sent_rows += count
        self.batches += 1
        return count

    def start(self) -> None:
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(self.interval):
                with contextlib.suppress(Exception):  # the master may be gone at shutdown
                    self.flush()

        self._thread = threading.Thread(target=loop, name="rtload-batcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


def receive_batch(data: dict[str, Any], writer: RunWriter, on_response: Callable[[dict[str, Any]], None]) -> int:
    """Master side: append one worker batch to the run directory; returns the rows written."""
    written = 0
    for kind, blob in (data.get("rows") or {}).items():
        if kind not in KINDS or not blob:
            continue
        writer.write_raw(kind, blob)
        lines = [line for line in blob.split(b"\n") if line]
        written += len(lines)
        if kind == "response":
            for line in lines:
                on_response(orjson.loads(line))
    for name, events in data.get("traces") or []:
        writer.trace(name, orjson.loads(events))
    for name, wav, sampled in data.get("audio") or []:
        writer.audio(name, bytes(wav), bool(sampled))
    return written
