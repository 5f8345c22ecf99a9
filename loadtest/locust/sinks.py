"""Where a session's records go in a Locust process.

- :class:`WriterSink` (standalone process or master): straight into the :class:`RunWriter` and the
  live outcome board.
- :class:`BatchSink` (worker): into the :class:`RecordBatcher` that ships batches to the master.
- :class:`UserSink` (one per session): stamps the load context (run, worker, step, users) when the
  session left it empty, fires one Locust request event per response (and one more, named
  :data:`TOOL_ROUND_TRIP`, per follow-up answering function calls: its tool round trip), remembers
  the session's handshake result for the reconnect backoff, then hands the row to the process sink.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from loadtest.locust.board import OutcomeBoard
from loadtest.locust.channel import RecordBatcher
from loadtest.records.schema import CANCELLED, COMPLETED, to_row
from loadtest.records.writer import RunWriter


class ProcessSink(Protocol):
    def add(self, kind: str, row: dict[str, Any]) -> None: ...
    def trace(self, name: str, events: list[dict[str, Any]]) -> str | None: ...
    def audio(self, name: str, wav: bytes, sampled: bool) -> str | None: ...


class WriterSink:
    def __init__(self, writer: RunWriter, board: OutcomeBoard) -> None:
        self.writer = writer
        self.board = board

    def add(self, kind: str, row: dict[str, Any]) -> None:
        self.writer.write(kind, row)
        if kind == "response":
            self.board.add(row)

    def trace(self, name: str, events: list[dict[str, Any]]) -> str | None:
        return self.writer.trace(name, events)

    def audio(self, name: str, wav: bytes, sampled: bool) -> str | None:
        return self.writer.audio(name, wav, sampled)


class BatchSink:
    def __init__(self, batcher: RecordBatcher) -> None:
        self.batcher = batcher

    def add(self, kind: str, row: dict[str, Any]) -> None:
        self.batcher.add(kind, row)

    def trace(self, name: str, events: list[dict[str, Any]]) -> str | None:
        return self.batcher.trace(name, events)

    def audio(self, name: str, wav: bytes, sampled: bool) -> str | None:
        return self.batcher.audio(name, wav, sampled)


TOOL_ROUND_TRIP = "tool_round_trip"  # the Locust request name of a follow-up's tool round trip


class RealtimeOutcome(Exception):
    """The Locust failure of a response: ``<outcome>: <reason>`` (groups Locust's failure table)."""


def request_name(row: dict[str, Any]) -> str:
    return str(row.get("scenario") or f"turn {row.get('turn_index', 0)}")


def response_time_ms(row: dict[str, Any]) -> float:
    """Time to first audio; time to done for text-only or audio-less responses; 0 when neither."""
    for key in ("ttfa_ms", "done_ms", "created_ms"):
        value = row.get(key)
        if value is not None:
            return float(value)
    return 0.0


class UserSink:
    """The :class:`RecordSink` one session writes to (see loadtest.session.client.RecordSink)."""

    def __init__(
        self,
        process: ProcessSink,
        fire_request: Callable[..., None] | None,
        stamp: dict[str, Any],
        context: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.process = process
        self.fire_request = fire_request
        self.stamp = stamp  # run_id, worker_id, user_id
        self.context = context
        self.responses = 0
        self.last_session: dict[str, Any] | None = None

    def _row(self, record: Any) -> dict[str, Any]:
        row = record if isinstance(record, dict) else to_row(record)
        for key, value in self.stamp.items():
            if key in row and not row.get(key):
                row[key] = value
        if self.context is not None and "step" in row and row.get("step") is None:
            ctx = self.context()
            for key in ("step", "users", "concurrency"):
                if key in row and row.get(key) is None:
                    row[key] = ctx.get(key)
        return row

    def response(self, record: Any) -> None:
        row = self._row(record)
        self.responses += 1
        self.process.add("response", row)
        if self.fire_request is not None:
            outcome = row.get("outcome") or ""
            exception = None
            if outcome not in (COMPLETED, CANCELLED):
                exception = RealtimeOutcome(f"{outcome or 'unclassified'}: {row.get('reason') or '-'}")
            self.fire_request(
                request_type="realtime",
                name=request_name(row),
                response_time=response_time_ms(row),
                response_length=int(row.get("audio_bytes") or 0),
                exception=exception,
                context={"outcome": outcome, "reason": row.get("reason"), "step": row.get("step")},
            )
            if row.get("chain_depth"):
                # the follow-up's tool round trip (last call's arguments .done to its first output) as a
                # request of its own, so Locust's statistics show it; failed when the follow-up failed
                self.fire_request(
                    request_type="realtime",
                    name=TOOL_ROUND_TRIP,
                    response_time=float(row.get("tool_round_trip_ms") or 0.0),
                    response_length=0,
                    exception=exception,
                    context={"outcome": outcome, "reason": row.get("reason"), "step": row.get("step")},
                )

    def session(self, record: Any) -> None:
        row = self._row(record)
        self.last_session = row
        self.process.add("session", row)

    def rate_limit(self, record: Any) -> None:
        self.process.add("rate_limit", self._row(record))

    def trace(self, name: str, events: list[dict[str, Any]]) -> str | None:
        return self.process.trace(name, events)

    def audio(self, name: str, wav: bytes, sampled: bool) -> str | None:
        return self.process.audio(name, wav, sampled)
