"""Building a session's records: the session row, each response's row, rate-limit rows, trace
names, and the redaction of this session's secrets from whatever the server said.

:class:`RecordBuilder` holds what every row of one session shares (run, worker, user, target,
scenario) and the secrets to blank; the session client fills in what happened.
"""

from __future__ import annotations

from typing import Any

import orjson

from loadtest.protocol.targets import Target, redact_text
from loadtest.records.schema import RateLimitRecord, ResponseRecord, SessionRecord
from loadtest.session.classifier import ENDED_HANDSHAKE, classify
from loadtest.session.link import Handshake
from loadtest.session.tracker import ResponseTracker
from loadtest.session.usage import usage_fields


class RecordBuilder:
    """The rows of one session (see the module docstring)."""

    def __init__(
        self,
        target: Target,
        scenario: str,
        *,
        run_id: str,
        worker_id: str,
        user_id: int,
        secrets: tuple[str, ...],
        transport: str = "websocket",
    ) -> None:
        self.target = target
        self.transport = transport  # websocket | webrtc: on every row
        self.scenario = scenario
        self.run_id = run_id
        self.worker_id = worker_id
        self.user_id = user_id
        self.secrets = secrets

    def add_secret(self, secret: str) -> None:
        self.secrets = (*self.secrets, secret)

    def session(self, context: dict[str, Any]) -> SessionRecord:
        t = self.target
        return SessionRecord(
            run_id=self.run_id,
            worker_id=self.worker_id,
            user_id=self.user_id,
            target=t.label or t.provider,
            provider=t.provider,
            model_class=t.model_class,
            dialect=str(t.dialect),
            deployment=t.deployment,
            url=t.redacted_url(),
            scenario=self.scenario,
            transport=self.transport,
            concurrency=context.get("concurrency"),
            step=context.get("step"),
        )

    def response(self, tr: ResponseTracker, outcome: str, reason: str, srec: SessionRecord) -> ResponseRecord:
        t = self.target
        ctx = tr.context
        a = tr.analyzer
        t0 = tr.t_trigger

        def since(x: float | None) -> float | None:
            return round((x - t0) * 1000.0, 2) if x is not None and t0 is not None else None

        usage = tr.usage or {}
        rec = ResponseRecord(
            run_id=self.run_id,
            worker_id=self.worker_id,
            user_id=self.user_id,
            session_id=srec.session_id,
            response_id=tr.response_id,
            item_id=tr.item_id,
            turn_index=tr.turn_index,
            target=t.label or t.provider,
            provider=t.provider,
            model_class=t.model_class,
            dialect=str(t.dialect),
            deployment=t.deployment,
            scenario=self.scenario,
            fixture=tr.fixture,
            trigger=tr.trigger,
            modalities=list(tr.modalities),
            audio_format=tr.audio_format,
            out_of_band=tr.out_of_band,
            transport=self.transport,
            step=ctx.get("step"),
            users=ctx.get("users"),
            concurrency=ctx.get("concurrency"),
            t_trigger=t0,
            t_created=tr.t_created,
            t_first_audio=tr.t_first_audio,
            t_first_text=tr.t_first_text,
            t_audio_done=tr.t_audio_done,
            t_done=tr.t_done,
            created_ms=since(tr.t_created),
            ttfa_ms=since(tr.t_first_audio),
            ttft_ms=since(tr.t_first_text),
            done_ms=since(tr.t_done),
            outcome=outcome,
            reason=reason,
            status=tr.status,
            status_reason=tr.status_reason,
            error_type=tr.error_type or tr.error_event_type,
            error_code=tr.error_code or tr.error_event_code,
            error_message=self.redact(tr.error_message or tr.error_event_message),
            error_event_id=tr.error_event_id,
            done_event_id=tr.done_event_id,
            close_code=tr.close_code,
            request_id=srec.request_id,
            audio_bytes=int(a.audio_bytes) if a is not None else 0,
            audio_ms=round(float(a.audio_ms), 2) if a is not None else 0.0,
            audio_deltas=tr.audio_deltas,
            max_delta_gap_ms=round(float(a.max_gap_ms), 2) if a is not None else 0.0,
            underrun_ms=round(float(a.underrun_ms), 2) if a is not None else 0.0,
            longest_underrun_ms=round(float(a.longest_underrun_ms), 2) if a is not None else 0.0,
            longest_silence_ms=round(float(a.longest_silence_ms), 2) if a is not None and a.deltas else 0.0,
            silence_ms=round(float(a.silence_ms), 2) if a is not None and a.deltas else 0.0,
            content_types=list(tr.content_types),
            transcript_chars=len(tr.transcript_text),
            text_chars=tr.text_chars,
            **usage_fields(usage),
        )
        calls, chain = tr.calls, tr.chain
        if calls is not None or chain is not None:
            _chain_fields(rec, tr)
        elif t0 is not None:  # a turn's only response: it is the final answer
            first = tr.t_first_output
            rec.final_answer_ms = round((first - t0) * 1000.0, 2) if first is not None else None
        return rec

    def refused(self, tracker: ResponseTracker, hs: Handshake, srec: SessionRecord, thresholds: Any) -> ResponseRecord:
        """The row of the turn a refused upgrade kept from starting (``tracker`` is that turn's)."""
        tracker.finished = True
        tracker.ended = ENDED_HANDSHAKE
        tracker.t_trigger = srec.t_start
        tracker.t_end = srec.t_end
        facts = tracker.facts()
        facts.handshake_status = hs.status
        facts.handshake_failure = hs.failure
        outcome, reason = classify(facts, thresholds)
        rec = self.response(tracker, outcome, reason, srec)
        rec.handshake_status = hs.status
        rec.error_message = hs.error
        rec.request_id = hs.request_id
        return rec

    def attempt(self, srec: SessionRecord) -> str:
        """What tells this connection attempt from every other of the run: the worker, the user and
        the millisecond the attempt began (one user's attempts follow one another)."""
        started = int((srec.t_start or 0.0) * 1000)
        return f"{self.worker_id or 'local'}-u{self.user_id}-{started}"

    def rate_limits(
        self, entries: list[dict[str, Any]], t: float, session_id: str | None, response_id: str | None
    ) -> list[RateLimitRecord]:
        return [
            RateLimitRecord(
                run_id=self.run_id,
                worker_id=self.worker_id,
                session_id=session_id,
                response_id=response_id,
                t=t,
                name=str(entry.get("name", "")),
                limit=_int(entry.get("limit")),
                remaining=_int(entry.get("remaining")),
                reset_seconds=_float(entry.get("reset_seconds")),
            )
            for entry in entries
        ]

    def redact(self, text: str | None) -> str | None:
        """A server's text with this session's secrets blanked (a gateway or proxy may echo them)."""
        return redact_text(text, self.secrets) if text and self.secrets else text

    def redact_events(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        secrets = self.secrets
        if not secrets:
            return events
        raw = orjson.dumps(events)
        if not any(s.encode() in raw for s in secrets):
            return events
        return orjson.loads(redact_text(raw.decode(), secrets))


def _chain_fields(rec: ResponseRecord, tr: ResponseTracker) -> None:
    """The function-call columns of a calling response and of a follow-up."""

    def between(a: float | None, b: float | None) -> float | None:
        return round((b - a) * 1000.0, 2) if a is not None and b is not None else None

    calls, chain = tr.calls, tr.chain
    first = tr.t_first_output
    if calls is not None and calls.calls:
        rec.function_calls = len(calls.calls)
        rec.function_names = calls.names
        rec.function_args_ms = [between(tr.t_trigger, c.t_done) for c in calls.calls]  # type: ignore[misc]
        rec.function_args_valid = [c.valid for c in calls.calls]
    turn_trigger = tr.t_trigger
    if chain is not None:
        rec.parent_response_id = chain.parent_response_id
        rec.chain_depth = chain.depth
        rec.tool_latency_ms = chain.tool_latency_ms
        rec.tool_round_trip_ms = between(chain.t_arguments_done, first)
        turn_trigger = chain.t_turn_trigger
    if not rec.function_calls:  # it makes no call: the turn's final answer
        rec.final_answer_ms = between(turn_trigger, first)


def trace_name(session_id: str | None, tracker: ResponseTracker, attempt: str) -> str:
    """A file-safe name for a response's trace, unique per connection attempt (``attempt``, from
    :meth:`RecordBuilder.attempt`) even when the server gave no session id or reuses one."""
    response = tracker.response_id or f"turn{tracker.turn_index}"
    name = f"{session_id or 'nosession'}_{attempt}_{response}"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:160]


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
