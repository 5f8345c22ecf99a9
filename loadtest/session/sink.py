"""Where a session's records go: the :class:`RecordSink` protocol and a tiny in-memory sink."""

from __future__ import annotations

import threading
from typing import Any, Protocol

from loadtest.records.schema import RateLimitRecord, ResponseRecord, SessionRecord


class RecordSink(Protocol):
    """Receives records as they happen (from the session's sender or receiver greenlet/thread)."""

    def response(self, record: ResponseRecord) -> None: ...
    def session(self, record: SessionRecord) -> None: ...
    def rate_limit(self, record: RateLimitRecord) -> None: ...
    def trace(self, name: str, events: list[dict[str, Any]]) -> str | None:
        """Keep a trace; return its path relative to the run directory, or None when not kept."""
        ...

    def audio(self, name: str, wav: bytes, sampled: bool) -> str | None:
        """Keep the WAV a caller heard (``sampled``: a completed response kept as a sample); its
        path relative to the run directory, or None when not kept. Optional: a sink without it
        keeps no audio."""
        ...


class MemorySink:
    """Keeps everything in lists (tests, preflight). Thread-safe for appends."""

    def __init__(self, keep_traces: bool = True) -> None:
        self.responses: list[ResponseRecord] = []
        self.sessions: list[SessionRecord] = []
        self.rate_limits: list[RateLimitRecord] = []
        self.traces: dict[str, list[dict[str, Any]]] = {}
        self.audio_files: dict[str, bytes] = {}
        self.keep_traces = keep_traces
        self._lock = threading.Lock()

    def response(self, record: ResponseRecord) -> None:
        self.responses.append(record)

    def session(self, record: SessionRecord) -> None:
        self.sessions.append(record)

    def rate_limit(self, record: RateLimitRecord) -> None:
        self.rate_limits.append(record)

    def trace(self, name: str, events: list[dict[str, Any]]) -> str | None:
        if not self.keep_traces:
            return None
        with self._lock:
            path = f"traces/{name}.json"
            self.traces[path] = events
            return path

    def audio(self, name: str, wav: bytes, sampled: bool) -> str | None:
        with self._lock:
            path = f"traces/{name}.wav"
            self.audio_files[path] = wav
            return path

    def outcomes(self) -> list[tuple[str, str]]:
        return [(r.outcome, r.reason) for r in self.responses]
