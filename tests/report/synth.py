"""Synthetic run directories with known content, written through the record contract.

Rows are built with the ``loadtest.records.schema`` dataclasses and ``to_row`` and written as
JSONL exactly as the harness does, so the report reads what it will read in production.
The tests compute every expected figure from the record objects returned here with numpy,
never through the report's own functions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from loadtest.records.schema import (
    HEALTH_FILE,
    RATE_LIMITS_FILE,
    RESPONSES_FILE,
    RUN_FILE,
    SESSIONS_FILE,
    HealthRecord,
    RateLimitRecord,
    ResponseRecord,
    SessionRecord,
    to_row,
)

T0 = 1_790_000_000.0


def write_jsonl(path: Path, records: list[Any]) -> None:
    with open(path, "wb") as out:
        for record in records:
            row = record if isinstance(record, dict) else to_row(record)
            out.write(orjson.dumps(row) + b"\n")


@dataclass
class SynthRun:
    path: Path
    responses: list[ResponseRecord]
    sessions: list[SessionRecord] = field(default_factory=list)
    rate_limits: list[RateLimitRecord] = field(default_factory=list)
    health: list[HealthRecord] = field(default_factory=list)
    run: dict[str, Any] = field(default_factory=dict)

    def values(self, name: str, where: Any = None) -> np.ndarray:
        """A response column as float array (None -> dropped), optionally filtered."""
        rows = [r for r in self.responses if where is None or where(r)]
        return np.array([getattr(r, name) for r in rows if getattr(r, name) is not None], dtype=float)


def write_run(
    path: Path,
    responses: list[ResponseRecord],
    sessions: list[SessionRecord] = (),
    rate_limits: list[RateLimitRecord] = (),
    health: list[HealthRecord] | None = None,
    run: dict[str, Any] | None = None,
    traces: dict[str, str] | None = None,
) -> SynthRun:
    path.mkdir(parents=True, exist_ok=True)
    run = run if run is not None else {"run_id": path.name, "t_start": T0, "t_end": T0 + 3600}
    (path / RUN_FILE).write_text(json.dumps(run), encoding="utf-8")
    write_jsonl(path / RESPONSES_FILE, list(responses))
    write_jsonl(path / SESSIONS_FILE, list(sessions))
    write_jsonl(path / RATE_LIMITS_FILE, list(rate_limits))
    if health is not None:
        write_jsonl(path / HEALTH_FILE, list(health))
    for name, text in (traces or {}).items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text, encoding="utf-8")
    return SynthRun(path, list(responses), list(sessions), list(rate_limits), list(health or []), run)


# Known non-completed counts per step of the ramp (step -> [(outcome, reason, count)]).
RAMP_BAD: dict[int, list[tuple[str, str, int]]] = {
    0: [("cancelled", "turn_detected", 1)],
    1: [("failed", "server_error", 1)],
    2: [("failed", "server_error", 1), ("truncated", "audio_stall", 2)],
    3: [("failed", "server_error", 4), ("throttled", "rate_limit_exceeded", 3), ("truncated", "audio_stall", 2)],
    4: [("failed", "connection_dropped", 6), ("failed", "server_error", 6), ("throttled", "rate_limit_exceeded", 5)],
}
RAMP_PER_STEP = 200
RAMP_STEP_S = 120.0
# ttfa median per step (ms): the knee at 1200 ms p95 falls at step 3 in ramp_run.
RAMP_TTFA_MEDIAN = [400.0, 500.0, 650.0, 1000.0, 1600.0]


def ramp_run(path: Path, seed: int = 1, *, with_step: bool = True, target: str = "mock", **kw: Any) -> SynthRun:
    """Five load steps of 200 responses, latency and failures rising with load.

    Step k has users 10*(k+1). Sessions: 4 responses each; the last session of each step
    ended by session_expired; four refused upgrades (two 429 with retry-after, one 503, one
    401). Rate limits: a tokens series reaching zero once and a requests series.
    """
    rng = np.random.default_rng(seed)
    responses: list[ResponseRecord] = []
    sessions: list[SessionRecord] = []
    rate_limits: list[RateLimitRecord] = []
    n = 0
    for step in range(5):
        users = 10 * (step + 1)
        kinds: list[tuple[str, str]] = []
        for outcome, reason, k in RAMP_BAD[step]:
            kinds.extend([(outcome, reason)] * k)
        kinds.extend([("completed", "")] * (RAMP_PER_STEP - len(kinds)))
        order = rng.permutation(RAMP_PER_STEP)
        t_base = T0 + step * RAMP_STEP_S
        triggers = np.sort(t_base + rng.uniform(0, RAMP_STEP_S, RAMP_PER_STEP))
        for i in range(RAMP_PER_STEP):
            outcome, reason = kinds[order[i]]
            t = float(triggers[i])
            created = float(rng.gamma(4, 30))
            ttfa = float(RAMP_TTFA_MEDIAN[step] * rng.lognormal(0, 0.25))
            has_audio = outcome not in ("failed", "throttled")
            done = ttfa + float(rng.uniform(1500, 4000))
            audio_ms = float(rng.uniform(1000, 5000)) if has_audio else 0.0
            sess_no = n // 4
            rec = ResponseRecord(
                run_id=path.name,
                worker_id="w1",
                user_id=sess_no % users,
                session_id=f"sess_{sess_no:05d}",
                response_id=f"resp_{n:06d}" if outcome != "throttled" else None,
                turn_index=n % 4,
                target=target if step % 2 == 0 else f"{target}-b",
                provider="openai",
                dialect="ga",
                deployment="gpt-realtime",
                scenario="short_question" if n % 3 else "two_turns",
                fixture="en_short_01",
                trigger="server_vad",
                modalities=["audio"],
                audio_format="pcm16",
                step=step if with_step else None,
                users=users if with_step else None,
                concurrency=users,
                t_trigger=t,
                t_created=t + created / 1000,
                t_first_audio=t + ttfa / 1000 if has_audio else None,
                t_first_text=t + (ttfa + 30) / 1000 if has_audio else None,
                t_done=t + done / 1000,
                created_ms=round(created, 3),
                ttfa_ms=round(ttfa, 3) if has_audio else None,
                ttft_ms=round(ttfa + 30, 3) if has_audio else None,
                done_ms=round(done, 3),
                outcome=outcome,
                reason=reason,
                status="failed" if outcome == "failed" else "completed",
                error_type="server_error" if reason == "server_error" else None,
                error_code="rate_limit_exceeded" if reason == "rate_limit_exceeded" else None,
                error_message=(
                    "Rate limit reached for tokens. Please try again in 1.5s."
                    if reason == "rate_limit_exceeded"
                    else "The server had an error"
                    if reason == "server_error"
                    else None
                ),
                error_event_id=f"event_{n}" if outcome == "failed" else None,
                request_id=f"req_{sess_no}",
                audio_bytes=int(audio_ms * 48),
                audio_ms=audio_ms,
                audio_deltas=int(audio_ms // 50),
                max_delta_gap_ms=float(rng.gamma(2, 25)) if has_audio else 0.0,
                underrun_ms=float(rng.uniform(0, 300)) if has_audio and n % 5 == 0 else 0.0,
                longest_underrun_ms=2000.0 if reason == "audio_stall" else 0.0,
                transcript_chars=int(audio_ms / 60),
                input_tokens=int(rng.integers(100, 300)),
                output_tokens=int(rng.integers(200, 900)) if has_audio else 0,
                trace_file=f"traces/{n:06d}.json" if outcome != "completed" else None,
            )
            rec.total_tokens = rec.input_tokens + rec.output_tokens
            responses.append(rec)
            n += 1
    # sessions: one per 4 responses
    for s in range(n // 4):
        first = responses[s * 4]
        last = responses[s * 4 + 3]
        t_open = first.t_trigger - 0.2
        t_end = last.t_done + 0.5
        expired = (s + 1) % 50 == 0
        sessions.append(
            SessionRecord(
                run_id=path.name,
                worker_id="w1",
                user_id=first.user_id,
                session_id=first.session_id,
                target=first.target,
                scenario=first.scenario,
                t_start=t_open - 0.15,
                t_open=t_open,
                t_end=t_end,
                handshake_ms=float(100 + 10 * first.step if with_step else 100) + float(rng.uniform(0, 50)),
                handshake_status=101,
                request_id=first.request_id,
                ended_by="session_expired" if expired else "client_closed",
                close_code=1001 if expired else 1000,
                duration_s=t_end - t_open,
                responses=4,
                concurrency=first.concurrency,
                step=first.step,
            )
        )
    for i, (status, retry) in enumerate([(429, 2.0), (429, 4.0), (503, None), (401, None)]):
        t = T0 + 300 + i * 60
        sessions.append(
            SessionRecord(
                run_id=path.name,
                worker_id="w1",
                target=target,
                t_start=t,
                t_end=t + 0.3,
                handshake_ms=300.0,
                handshake_status=status,
                handshake_error=f"server rejected WebSocket connection: HTTP {status}",
                retry_after=retry,
                request_id=f"req_refused_{i}",
                ended_by="handshake_failed",
                step=3 if with_step else None,
                concurrency=40,
            )
        )
    # rate limits: tokens limit 100000, remaining falls to 0 at T0+400 then resets; requests limit 1000
    for i, remaining in enumerate([90000, 60000, 20000, 0, 0, 80000, 50000]):
        rate_limits.append(
            RateLimitRecord(
                run_id=path.name,
                session_id="sess_00001",
                t=T0 + 100 + i * 100,
                name="tokens",
                limit=100000,
                remaining=remaining,
                reset_seconds=6.0 + i,
            )
        )
    for i, remaining in enumerate([999, 990, 985, 995]):
        rate_limits.append(
            RateLimitRecord(
                run_id=path.name,
                session_id="sess_00001",
                t=T0 + 150 + i * 100,
                name="requests",
                limit=1000,
                remaining=remaining,
                reset_seconds=0.06,
            )
        )
    run = {"run_id": path.name, "t_start": T0, "t_end": T0 + 5 * RAMP_STEP_S + 10, "shape": "steps"}
    traces = {
        r.trace_file: json.dumps([{"type": "error", "authorization": "Bearer sk-abc123SECRET456xyz"}])
        for r in responses
        if r.trace_file and int(r.trace_file[7:13]) % 2 == 0
    }
    return write_run(path, responses, sessions, rate_limits, run=run, traces=traces, **kw)


# A run with function calls and input transcription (tool_run): the names its calls use.
TOOL_NAMES = ("get_weather", "book_table", "lookup_menu")
TOOL_LATENCY_MS = 150.0
TRANSCRIPTION_ERRORS = ("transcription_timeout", "server_error")


def tool_run(
    path: Path,
    seed: int = 3,
    *,
    turns: int = 300,
    round_trip_ms: float = 400.0,
    transcription: bool = True,
    transport: str = "",
    scenarios: tuple[str, ...] = ("booking",),
    wer: float = 0.1,
) -> SynthRun:
    """Turns of a tool-using agent over two load steps (``users`` 5 and 10), as the client records them.

    Turn k: k % 3 == 0 answers without a call; the others call ``get_weather`` (k % 5 == 0: and
    ``book_table`` in parallel), the first call's arguments invalid when k % 7 == 0; a follow-up
    (chain depth 1, tool round trip ``round_trip_ms`` x lognormal) answers, refused
    (``followup_rejected``) when k % 11 == 0; when k % 4 == 0 the follow-up calls ``lookup_menu`` and
    a second follow-up (depth 2) answers. The turn's last response has ``final_answer_ms`` (the
    arguments and round trips of its chain added up; a turn without a call: its ttfa). With
    ``transcription``, the turn's first row has the input transcription: failed when k % 25 == 0
    (errors alternating), missing when k % 40 == 1, else completed with a WER of ``wer`` when k % 6 == 0
    (0 otherwise). Scenarios take turns.
    """
    rng = np.random.default_rng(seed)
    responses: list[ResponseRecord] = []
    n = 0

    def row(turn: int, depth: int, **kw: Any) -> ResponseRecord:
        nonlocal n
        kw.setdefault("outcome", "completed")
        kw.setdefault("status", "completed")
        step = turn * 2 // turns
        t = T0 + turn * 2.0 + depth * 0.5
        ttfa = float(rng.gamma(6, 60))
        rec = ResponseRecord(
            run_id=path.name,
            worker_id="w1",
            session_id=f"sess_{turn // 5:04d}",
            response_id=f"resp_{n:06d}",
            scenario=scenarios[turn % len(scenarios)],
            target="mock",
            transport=transport,
            step=step,
            users=5 * (step + 1),
            concurrency=5 * (step + 1),
            t_trigger=t,
            t_done=t + (ttfa + 1500) / 1000,
            created_ms=ttfa / 3,
            ttfa_ms=ttfa,
            ttft_ms=ttfa + 20,
            done_ms=ttfa + 1500,
            audio_ms=1200.0,
            chain_depth=depth,
            **kw,
        )
        n += 1
        responses.append(rec)
        return rec

    for turn in range(turns):
        heard: dict[str, Any] = {}
        if transcription:
            first = float(rng.uniform(80, 200))
            if turn % 25 == 0:
                err = TRANSCRIPTION_ERRORS[(turn // 25) % 2]
                heard = {"input_transcription": "failed", "input_transcription_error": err}
            elif turn % 40 == 1:
                heard = {"input_transcription": "missing"}
            else:
                heard = {
                    "input_transcription": "completed",
                    "input_transcript_first_ms": first,
                    "input_transcript_done_ms": first + float(rng.uniform(100, 400)),
                    "input_transcript_wer": wer if turn % 6 == 0 else 0.0,
                }
        if turn % 3 == 0:
            last = row(turn, 0, **heard)
            last.final_answer_ms = last.ttfa_ms
            continue
        calls = 2 if turn % 5 == 0 else 1
        first_row = row(
            turn,
            0,
            function_calls=calls,
            function_names=list(TOOL_NAMES[:calls]),
            function_args_ms=[float(rng.uniform(100, 300)) for _ in range(calls)],
            function_args_valid=[turn % 7 != 0] + [True] * (calls - 1),
            **heard,
        )
        trip = round_trip_ms * float(rng.lognormal(0, 0.2))
        if turn % 11 == 0:
            row(turn, 1, parent_response_id=first_row.response_id, tool_latency_ms=TOOL_LATENCY_MS,
                outcome="failed", reason="followup_rejected", status="failed")  # fmt: skip
            continue
        again = turn % 4 == 0
        follow = row(
            turn,
            1,
            parent_response_id=first_row.response_id,
            tool_latency_ms=TOOL_LATENCY_MS,
            tool_round_trip_ms=trip,
            function_calls=1 if again else 0,
            function_names=[TOOL_NAMES[2]] if again else [],
            function_args_ms=[float(rng.uniform(100, 300))] if again else [],
            function_args_valid=[True] if again else [],
        )
        last = follow
        final = max(first_row.function_args_ms) + trip  # the first output of the follow-up
        if again:
            last = row(
                turn,
                2,
                parent_response_id=follow.response_id,
                tool_latency_ms=TOOL_LATENCY_MS,
                tool_round_trip_ms=round_trip_ms * float(rng.lognormal(0, 0.2)),
            )
            final += follow.function_args_ms[0] + last.tool_round_trip_ms
        last.final_answer_ms = final
    run = {"run_id": path.name, "t_start": T0, "t_end": T0 + turns * 2.0 + 10, "shape": "steps"}
    return write_run(path, responses, run=run)


# The columns the function-call and input-transcription work added (issue 15) and the transport (19).
NEW_COLUMNS = (
    "transport", "function_calls", "function_names", "function_args_ms", "function_args_valid",
    "parent_response_id", "chain_depth", "tool_latency_ms", "tool_round_trip_ms", "final_answer_ms",
    "input_transcription", "input_transcript_first_ms", "input_transcript_done_ms",
    "input_transcription_error", "input_transcript_wer",
)  # fmt: skip


def older_run(path: Path, seed: int = 1) -> SynthRun:
    """The ramp run as a version before those columns wrote it: its rows lack them altogether."""
    run = ramp_run(path, seed)
    rows = []
    for record in run.responses:
        row = to_row(record)
        for name in NEW_COLUMNS:
            row.pop(name, None)
        rows.append(row)
    write_jsonl(path / RESPONSES_FILE, rows)
    sessions = [{k: v for k, v in to_row(s).items() if k != "transport"} for s in run.sessions]
    write_jsonl(path / SESSIONS_FILE, sessions)
    return run
