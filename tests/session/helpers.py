"""Running sessions against the mock and comparing what they recorded with the mock's truth log."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loadtest.protocol.targets import Target
from loadtest.records.schema import FAULT_EXPECTATIONS
from loadtest.session.client import RealtimeSession
from loadtest.session.config import SessionConfig
from loadtest.session.scenario import Scenario, Turn
from loadtest.session.sink import MemorySink
from tests.support import fast_mock

SESSION_FAULTS = ("handshake_5xx", "handshake_429", "capacity_429", "connection_rate_429")

# Short waits for loopback: a stall gap is at most 2.2 s in these tests (see STALL_GAP).
FAST = {"pacing": "fast", "response_deadline_s": 12.0, "response_idle_s": 3.0, "setup_timeout_s": 5.0}
STALL_GAP = [1.8, 2.2]
TWO_TEXT = Scenario("two_text", [Turn("text"), Turn("text")])
ONE_TEXT = Scenario("one_text", [Turn("text")])
# every response fault the mock plans -> (mock overrides, scenario): the WebSocket and the WebRTC
# fault tests drive the same table (Voice Live spends one budget per resource: its own knob)
RESPONSE_FAULTS: dict[str, tuple[dict[str, Any], Scenario]] = {
    "none": ({}, TWO_TEXT),
    "server_error": ({"faults.server_error.rate": 1.0}, TWO_TEXT),
    "stall": ({"faults.stall.rate": 1.0, "faults.stall.gap_s": STALL_GAP}, ONE_TEXT),
    "silence": ({"faults.silence.rate": 1.0, "faults.silence.gap_s": STALL_GAP}, ONE_TEXT),
    "hang": ({"faults.hang.rate": 1.0}, ONE_TEXT),
    "missing_audio": ({"faults.missing_audio.rate": 1.0}, TWO_TEXT),
    "text_only": ({"faults.text_only.rate": 1.0}, TWO_TEXT),
    "drop": ({"faults.drop.rate": 1.0}, TWO_TEXT),
    "incomplete": ({"faults.incomplete.rate": 1.0}, TWO_TEXT),
    "rate_limited": ({"rate_limits.tokens_per_minute": 40, "voicelive.tokens_per_minute": 40}, TWO_TEXT),
}
# mock overrides that keep loopback tests short: audio 20x real time, small service latencies
FAST_MOCK: dict[str, Any] = fast_mock(20.0, (5, 10))


def target(url: str, **kw: Any) -> Target:
    kw.setdefault("api_key", "mock-key")
    kw.setdefault("label", "mock")
    return Target(base_url=url, **kw)


def run_session(
    url: str,
    scenario: Scenario,
    *,
    target_kw: dict[str, Any] | None = None,
    observer: Any = None,
    deadline: float | None = None,
    **cfg: Any,
) -> tuple[MemorySink, RealtimeSession]:
    sink = MemorySink()
    config = SessionConfig(**{**FAST, **cfg})
    session = RealtimeSession(target(url, **(target_kw or {})), scenario, config, sink, run_id="t", observer=observer)
    session.run(deadline=deadline)
    return sink, session


@dataclass
class Agreement:
    agree: int = 0
    total: int = 0
    mismatches: list[str] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.agree / self.total if self.total else 0.0


def agreement(sink: MemorySink, truth: list[dict[str, Any]]) -> Agreement:
    """Compare every truth row with the recorded outcome (and every recorded response with the truth).

    A response's first truth row is its injected fault (a later row, e.g. the client's own cancel
    of a hung response, does not change what was injected). Session faults (refused upgrades) are
    matched by count against the response rows of turns that could not start.
    """
    result = Agreement()
    first: dict[str, dict[str, Any]] = {}
    for row in truth:
        if row.get("kind") == "response" and row.get("response_id") and row["response_id"] not in first:
            first[row["response_id"]] = row
    mine = {r.response_id: r for r in sink.responses if r.response_id}
    for rid, row in first.items():
        fault = row["fault"]
        result.faults[fault] = result.faults.get(fault, 0) + 1
        expected = FAULT_EXPECTATIONS[fault]
        result.total += 1
        rec = mine.get(rid)
        got = (rec.outcome, rec.reason) if rec else None
        if got == expected:
            result.agree += 1
        else:
            result.mismatches.append(f"{rid}: truth {fault} expects {expected}, recorded {got}")
    for rid, rec in mine.items():
        if rid not in first:
            result.total += 1
            result.mismatches.append(f"{rid}: recorded {rec.outcome}/{rec.reason}, not in the truth log")
    session_faults = [row for row in truth if row.get("kind") == "session" and row.get("fault") in SESSION_FAULTS]
    refused = [r for r in sink.responses if r.response_id is None]
    for row in session_faults:
        result.faults[row["fault"]] = result.faults.get(row["fault"], 0) + 1
        expected = FAULT_EXPECTATIONS[row["fault"]]
        result.total += 1
        match = next(
            (r for r in refused if (r.outcome, r.reason) == expected and r.handshake_status == row.get("status")), None
        )
        if match is not None:
            refused.remove(match)
            result.agree += 1
        else:
            result.mismatches.append(f"session truth {row['fault']} ({row.get('status')}) has no matching record")
    # a turn cut by the session cap before its response.created has no response row in the truth;
    # the session row says the cap was hit
    expired = {
        row.get("session_id") for row in truth if row.get("kind") == "session" and row.get("fault") == "session_expired"
    }
    for rec in list(refused):
        if rec.session_id in expired and (rec.outcome, rec.reason) == FAULT_EXPECTATIONS["session_expired"]:
            refused.remove(rec)
            expired.discard(rec.session_id)
            result.total += 1
            result.agree += 1
            result.faults["session_expired"] = result.faults.get("session_expired", 0) + 1
    for rec in refused:
        result.total += 1
        result.mismatches.append(f"turn {rec.turn_index}: recorded {rec.outcome}/{rec.reason} without a truth row")
    return result
