"""End to end against the real mock process: every injected fault is recorded as the mock's truth says.

One mock per fault (rate 1.0), each serving a GA session on the OpenAI URL shape, a preview
session on the Azure preview shape and a Voice Live session (its own dialect and endpoint) at the
same time; all mocks run concurrently so the whole
matrix takes about as long as its slowest fault. The agreement between the truth log and the
recorded outcomes is computed over every response and must be 100%.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

import pytest

from loadtest.mock.process import MockProcess, start_mock
from loadtest.records.schema import FAULT_EXPECTATIONS
from loadtest.session.scenario import Scenario, Turn
from tests.session.helpers import (
    FAST_MOCK,
    RESPONSE_FAULTS,
    SESSION_FAULTS,
    STALL_GAP,
    Agreement,
    agreement,
    run_session,
)

PREVIEW_TARGET = {"provider": "azure", "dialect": "preview", "api_version": "2025-04-01-preview"}
VOICELIVE_TARGET = {"provider": "voicelive", "deployment": "gpt-realtime"}
TARGETS = {"ga": {}, "preview": PREVIEW_TARGET, "voicelive": VOICELIVE_TARGET}
CASES = RESPONSE_FAULTS


@pytest.mark.e2e
def test_every_response_fault_agrees_with_the_truth_log(tmp_path, capsys) -> None:
    mocks: dict[str, MockProcess] = {}

    def start(fault: str) -> None:  # the mocks start in parallel: each takes about a second
        overrides = {**FAST_MOCK, **CASES[fault][0]}
        truth, log = tmp_path / f"truth-{fault}.jsonl", tmp_path / f"{fault}.log"
        mocks[fault] = start_mock(overrides=overrides, seed=7, truth_path=truth, log_path=log)

    starters = [threading.Thread(target=start, args=(fault,)) for fault in CASES]
    for th in starters:
        th.start()
    for th in starters:
        th.join(30)
    try:
        _run_matrix(mocks, capsys)
    finally:
        stoppers = [threading.Thread(target=mock.stop) for mock in mocks.values()]  # stop all at once
        for th in stoppers:
            th.start()
        for th in stoppers:
            th.join(10)


def _run_matrix(mocks: dict[str, MockProcess], capsys: Any) -> None:
    assert set(mocks) == set(CASES)
    results: dict[tuple[str, str], Any] = {}
    errors: list[BaseException] = []

    def one(fault: str, dialect: str) -> None:
        try:
            sink, _ = run_session(mocks[fault].url, CASES[fault][1], target_kw=TARGETS[dialect])
            results[(fault, dialect)] = sink
        except BaseException as exc:  # surfaced below: nothing may raise out of run()
            errors.append(exc)

    t0 = time.monotonic()
    threads = [threading.Thread(target=one, args=(f, d)) for f in CASES for d in TARGETS]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    elapsed = time.monotonic() - t0
    assert not errors, errors
    assert len(results) == len(TARGETS) * len(CASES)

    total = Agreement()
    lines = []
    for fault, mock in mocks.items():
        truth = mock.truth()
        for dialect in TARGETS:
            sink = results[(fault, dialect)]
            sessions = {r.session_id for r in sink.sessions}
            mine = agreement(sink, [row for row in truth if row.get("session_id") in sessions])
            lines.append(f"{fault:14s} {dialect:8s} {mine.agree}/{mine.total} {sorted(mine.faults.items())}")
            total.agree += mine.agree
            total.total += mine.total
            total.mismatches += [f"{fault}/{dialect}: {m}" for m in mine.mismatches]
            for name, n in mine.faults.items():
                total.faults[name] = total.faults.get(name, 0) + n
    with capsys.disabled():
        print(f"\nagreement {total.agree}/{total.total} = {100 * total.rate:.1f}% in {elapsed:.1f}s")
        print("\n".join(lines))
    assert not total.mismatches, total.mismatches
    assert total.rate == 1.0
    # every response fault was really injected (in both dialects) and checked
    expected_faults = {"none", "server_error", "stall", "silence", "hang", "missing_audio", "text_only", "drop",
                       "incomplete", "rate_limited"}  # fmt: skip
    assert expected_faults <= set(total.faults), total.faults
    for fault in expected_faults:
        assert total.faults[fault] >= len(TARGETS)  # one per dialect at least
    # drops end the session as dropped; the others close normally
    for dialect in TARGETS:
        assert results[("drop", dialect)].sessions[0].ended_by == "dropped"
        assert results[("drop", dialect)].responses[0].close_code == 1006
        assert results[("none", dialect)].sessions[0].ended_by == "client_closed"
    # rate limits are recorded and stamped
    assert results[("none", "ga")].rate_limits and results[("none", "ga")].responses[-1].rl_tokens_remaining is not None
    # non-completed responses keep a trace with their events (payloads elided)
    stalled = results[("stall", "ga")]
    trace = stalled.traces[stalled.responses[0].trace_file]
    assert any(e["type"] == "response.output_audio.delta" and "payload_bytes" in e for e in trace)
    assert trace[-1]["type"] == "outcome" and trace[-1]["reason"] == "audio_stall"


@pytest.mark.e2e
def test_session_expiry_mid_response_in_both_dialects(mock_server) -> None:
    """GA: close 1001 with the cap's reason; preview (and Voice Live, whose cap is 60 minutes, here
    shortened): an error session_expired, then close 1001."""
    mock = mock_server(overrides={"session.max_duration_s": 2, "voicelive.max_duration_s": 2, "audio.speed": 2.0})
    loop = Scenario("text_loop", [Turn("text")], repeat=True)
    sinks: dict[str, Any] = {}

    def one(dialect: str) -> None:
        sinks[dialect] = run_session(mock.url, loop, target_kw=TARGETS[dialect])[0]

    threads = [threading.Thread(target=one, args=(d,)) for d in TARGETS]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    truth = mock.truth()
    for dialect, sink in sinks.items():
        session = sink.sessions[-1]
        assert session.ended_by == "session_expired" and session.close_code == 1001, dialect
        result = agreement(sink, [row for row in truth if row.get("session_id") == session.session_id])
        assert not result.mismatches and result.rate == 1.0, (dialect, result)
        assert result.faults.get("session_expired") == 1
        assert (sink.responses[-1].outcome, sink.responses[-1].reason) == FAULT_EXPECTATIONS["session_expired"]
    assert set(sinks) == set(TARGETS)


@pytest.mark.e2e
@pytest.mark.slow
def test_flaky_profile_mixed_faults_agree_with_the_truth_log(mock_server, capsys) -> None:
    """The flaky profile (every fault at a few percent, higher rates here, fixed seed): sessions loop like
    Locust users for a few seconds; faults follow one another inside sessions and across reconnects."""
    rates = {
        f"faults.{name}.rate": rate
        for name, rate in (
            ("server_error", 0.08), ("stall", 0.05), ("silence", 0.05), ("hang", 0.02), ("missing_audio", 0.05),
            ("text_only", 0.05), ("drop", 0.04), ("incomplete", 0.05), ("handshake_5xx", 0.2),
            ("handshake_429", 0.2),
        )
    }  # fmt: skip
    overrides = {**FAST_MOCK, **rates, "faults.stall.gap_s": STALL_GAP, "faults.silence.gap_s": STALL_GAP}
    mock = mock_server(profile="flaky", seed=3, overrides=overrides)
    loop = Scenario("text_loop", [Turn("text")], repeat=True)
    sinks: list[Any] = []
    end = time.time() + 7.0

    def user(dialect: str) -> None:
        while time.time() < end:  # like a Locust user: a new session whenever one ends
            kw = PREVIEW_TARGET if dialect == "preview" else {}
            sink, _ = run_session(mock.url, loop, target_kw=kw, response_idle_s=2.5, deadline=end, lifetime_s=0.8)
            sinks.append(sink)

    threads = [threading.Thread(target=user, args=(d,)) for d in ("ga", "preview", "ga")]
    for th in threads:
        th.start()
    for th in threads:
        th.join(40)
    truth = mock.truth()
    total, refused_truth, refused_mine = _agreement_across(sinks, truth)
    with capsys.disabled():
        sessions = sum(len(sink.sessions) for sink in sinks)
        print(f"\nflaky: {sessions} sessions, {total.agree}/{total.total} responses agree, "
              f"{len(refused_mine)} refused upgrades, faults {sorted(total.faults.items())}")  # fmt: skip
    assert refused_truth == refused_mine
    assert not total.mismatches, total.mismatches
    assert total.rate == 1.0
    injected = {name for name in total.faults if name != "none"}
    assert len(injected) >= 4, total.faults  # a real mix, not one fault
    assert total.faults.get("none", 0) >= 3 and refused_mine


class _Sink:
    def __init__(self, responses: list[Any]) -> None:
        self.responses = responses


# The shipped `overloaded` profile (max_sessions 20 and a knee at 8 on each deployment, load-driven
# latency and server errors past it). Its token budget is halved (20 000 to 10 000 a minute) so that
# the bucket runs dry about halfway through this test's 8 s instead of after a minute of load; audio and
# the base latencies are fast (FAST_MOCK), the load-driven latency is the profile's own.
OVERLOADED_USERS = 24  # on one deployment: 4 past max_sessions, up to 12 past the knee
OVERLOADED_SET: dict[str, Any] = {**FAST_MOCK, "rate_limits.tokens_per_minute": 10000, "capacity.retry_after_s": 1}


@pytest.mark.e2e
@pytest.mark.slow
def test_overloaded_profile_agrees_with_the_truth_log(mock_server, capsys) -> None:
    """More users than the profile's capacity loop like Locust users (both dialects, one deployment):
    capacity 429s at the upgrade, load-driven server errors past the knee and a token bucket running
    dry are each recorded as the mock's truth says, response by response and session by session."""
    mock = mock_server(profile="overloaded", seed=5, overrides=OVERLOADED_SET)
    loop = Scenario("text_loop", [Turn("text")], repeat=True)
    sinks: list[Any] = []
    errors: list[BaseException] = []
    end = time.time() + 8.0
    preview_same_deployment = {**PREVIEW_TARGET, "deployment": "gpt-realtime"}  # one capacity pool for all

    def user(dialect: str) -> None:
        try:
            while time.time() < end:  # like a Locust user: a new session whenever one ends
                kw = preview_same_deployment if dialect == "preview" else {}
                sink, _ = run_session(mock.url, loop, target_kw=kw, response_idle_s=2.5, deadline=end, lifetime_s=1.5)
                sinks.append(sink)
                if sink.sessions and sink.sessions[-1].handshake_status == 429:
                    time.sleep(0.3)  # a short backoff (the harness honours retry-after, capped)
        except BaseException as exc:  # surfaced below: nothing may raise out of run()
            errors.append(exc)

    threads = [threading.Thread(target=user, args=(("ga", "preview")[i % 2],)) for i in range(OVERLOADED_USERS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(40)
    assert not errors, errors
    sessions = [s for sink in sinks for s in sink.sessions]
    opened = {s.session_id for s in sessions if s.handshake_status == 101 and s.session_id}
    truth = mock.truth()
    wait_until = time.monotonic() + 10  # a session's truth row is written once the mock sees its close
    while not opened <= {r["session_id"] for r in truth if r.get("kind") == "session" and r.get("status") == 101}:
        assert time.monotonic() < wait_until, "the mock did not log every session"
        time.sleep(0.1)
        truth = mock.truth()

    # every response: the recorded outcome and reason are those FAULT_EXPECTATIONS gives the truth's fault
    total, refused_truth, refused_mine = _agreement_across(sinks, truth)
    per_dialect = collections.Counter(r.dialect for sink in sinks for r in _accepted(sink))
    # every session: refused upgrades (no session id) as a whole (above), opened ones one by one
    session_truth = {r["session_id"]: r for r in truth if r.get("kind") == "session" and r.get("status") == 101}
    recorded_per_session: dict[str, int] = {}
    for sink in sinks:
        for rec in sink.responses:
            if rec.session_id:
                recorded_per_session[rec.session_id] = recorded_per_session.get(rec.session_id, 0) + 1
    responses = {r["response_id"]: r for r in truth if r.get("kind") == "response"}
    records = {r.response_id: r for sink in sinks for r in sink.responses if r.response_id}
    overload = [r for r in responses.values() if r["fault"] == "server_error"]
    capacity = [r for r in truth if r.get("kind") == "session" and r.get("fault") == "capacity_429"]
    with capsys.disabled():
        print(f"\noverloaded: {len(sessions)} sessions ({len(opened)} opened, {len(capacity)} capacity 429s), "
              f"{total.agree}/{total.total} responses agree, "
              f"faults {sorted(total.faults.items())}, per dialect {sorted(per_dialect.items())}, "
              f"server errors after output {sum(bool(r['params'].get('after_output')) for r in overload)}"
              f"/{len(overload)}")  # fmt: skip

    assert not total.mismatches, total.mismatches[:20]
    assert total.rate == 1.0
    assert refused_truth == refused_mine
    assert {row["fault"] for row in truth if row.get("kind") == "session"} <= {"none", "capacity_429"}
    assert set(session_truth) == opened  # every opened session is in the truth log and vice versa
    for sid, row in session_truth.items():
        assert row["fault"] == "none" and row["responses"] == recorded_per_session.get(sid, 0), (row, sid)
    refusals = [s for s in sessions if s.handshake_status == 429]
    assert all(s.ended_by == "handshake_failed" and s.retry_after == 1 for s in refusals)
    # the overload really happened, in both dialects: capacity 429s, load-driven server errors, a dry bucket
    assert capacity and len(refusals) == len(capacity)
    assert all(r["params"] == {"max_sessions": 20, "retry_after_s": 1} for r in capacity)
    assert total.faults.get("server_error", 0) >= 1 and total.faults.get("rate_limited", 0) >= 1
    assert total.faults.get("none", 0) >= 5
    assert set(total.faults) <= {"none", "server_error", "rate_limited"}, total.faults
    assert per_dialect.get("ga", 0) >= 5 and per_dialect.get("preview", 0) >= 5
    for row in overload:  # server errors come from load alone (the profile injects none): past the knee
        assert row["params"]["cause"] == "overload" and row["params"]["probability"] > 0
        rec = records[row["response_id"]]
        # before partial output the client got no audio; after it, some (then the failed response.done)
        assert (rec.audio_deltas > 0) == bool(row["params"]["after_output"]), (row["params"], rec.audio_deltas)
    limited = [records[r["response_id"]] for r in responses.values() if r["fault"] == "rate_limited"]
    assert all(rec.error_code == "rate_limit_exceeded" and rec.audio_deltas == 0 for rec in limited)
    # load-driven latency: past the knee every extra session adds 60 ms before response.created
    created = sorted(r.created_ms for r in records.values() if r.created_ms is not None)
    assert created and created[len(created) // 2] > 200, created[:: max(1, len(created) // 10)]


def _accepted(sink: Any) -> list[Any]:
    """The response rows of upgrades the server accepted (a refused one has no response id)."""
    return [r for r in sink.responses if r.handshake_status is None or r.response_id]


def _agreement_across(sinks: list[Any], truth: list[dict]) -> tuple[Agreement, list[tuple], list[tuple]]:
    """Response agreement summed over many sessions' sinks, and the refused upgrades on both sides
    (they carry no session id, so they are compared as a whole: expected outcome, reason, status)."""
    total = Agreement()
    for sink in sinks:
        ids = {r.session_id for r in sink.sessions if r.session_id}
        mine = agreement(_Sink(_accepted(sink)), [row for row in truth if row.get("session_id") in ids])
        total.agree += mine.agree
        total.total += mine.total
        for name, n in mine.faults.items():
            total.faults[name] = total.faults.get(name, 0) + n
        total.mismatches += mine.mismatches
    refused_truth = sorted(
        (*FAULT_EXPECTATIONS[row["fault"]], row.get("status"))
        for row in truth
        if row.get("kind") == "session" and row.get("fault") in SESSION_FAULTS
    )
    refused_mine = sorted(
        (r.outcome, r.reason, r.handshake_status)
        for sink in sinks
        for r in sink.responses
        if r.response_id is None and r.handshake_status is not None
    )
    return total, refused_truth, refused_mine
