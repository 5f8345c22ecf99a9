"""Run one session from Python and get everything it recorded: for preflight, demos and debugging.

    from loadtest.session.runner import run_once
    result = run_once(target, "quick_text", SessionConfig(pacing="fast"), observer=print)
    result.responses[0].outcome, result.timeline[:5]

``observer`` receives the session's event timeline as it happens: dicts with ``t`` (Unix s),
``dir`` (``out`` = sent, ``in`` = received, ``note`` = the client's own notes such as ``outcome``)
``type`` (the event type, or ``connect``/``handshake``/``close``/``garbage``/``outcome``) and the
key fields present (``event_id``, ``response_id``, ``item_id``, ``status``, ``status_reason``,
``error_type``/``error_code``/``error_message``, ``session_id``, ``delta_chars``,
``audio_start_ms``/``audio_end_ms``, handshake ``status``/``ms``/``headers``, close
``code``/``reason``). Audio payloads never appear in it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loadtest.protocol.targets import Target
from loadtest.records.schema import RateLimitRecord, ResponseRecord, SessionRecord
from loadtest.session.client import RealtimeSession
from loadtest.session.config import SessionConfig
from loadtest.session.scenario import Scenario, get_scenario
from loadtest.session.sink import MemorySink


@dataclass
class SessionResult:
    responses: list[ResponseRecord]
    sessions: list[SessionRecord]
    rate_limits: list[RateLimitRecord]
    traces: dict[str, list[dict[str, Any]]]
    timeline: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Every response completed (and at least one was attempted)."""
        return bool(self.responses) and all(r.outcome == "completed" for r in self.responses)


def run_once(
    target: Target,
    scenario: Scenario | str = "quick_text",
    config: SessionConfig | None = None,
    *,
    observer: Callable[[dict[str, Any]], None] | None = None,
    deadline_s: float | None = None,
    run_id: str = "preflight",
) -> SessionResult:
    """Run ``scenario`` once against ``target`` (reconnecting only for ``config.lifetime_s``)."""
    if isinstance(scenario, str):
        scenario = get_scenario(scenario)
    sink = MemorySink()
    timeline: list[dict[str, Any]] = []

    def observe(row: dict[str, Any]) -> None:
        timeline.append(row)
        if observer is not None:
            observer(row)

    session = RealtimeSession(target, scenario, config or SessionConfig(), sink, run_id=run_id, observer=observe)
    t0 = time.time()
    session.run(deadline=None if deadline_s is None else t0 + deadline_s)
    return SessionResult(
        responses=sink.responses,
        sessions=sink.sessions,
        rate_limits=sink.rate_limits,
        traces=sink.traces,
        timeline=timeline,
        elapsed_s=time.time() - t0,
    )
