"""Unit tests of the harness parts that need no Locust process: writer, shapes, fail-on, options, channel."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest

from loadtest.locust.backoff import Backoff
from loadtest.locust.board import OutcomeBoard
from loadtest.locust.channel import RecordBatcher, receive_batch
from loadtest.locust.failon import check, parse_fail_on
from loadtest.locust.launcher import RunRequest, _finish
from loadtest.locust.options import HarnessOptions, OptionError
from loadtest.locust.progress import JsonlTail, RunTail, outcome_table
from loadtest.locust.shapes import ShapePlan, parse_duration
from loadtest.locust.sinks import TOOL_ROUND_TRIP, UserSink, WriterSink
from loadtest.locust.webui import render_page
from loadtest.locust.workerloss import LEAVE_GRACE_S, WorkerWatch
from loadtest.records.schema import ResponseRecord, SessionRecord
from loadtest.records.worker_loss import loss_line
from loadtest.records.writer import RunWriter, read_rows, read_run_json, update_run_json, write_run_json


def test_writer_appends_rows_and_run_json(tmp_path: Path) -> None:
    with RunWriter(tmp_path / "run") as writer:
        writer.response(ResponseRecord(run_id="r1", outcome="completed", ttfa_ms=12.5))
        writer.session(SessionRecord(run_id="r1", session_id="sess_1"))
        writer.health({"t": 1.0, "worker_id": "local", "users": 3})
        rel = writer.trace("resp_1 failed/../x", [{"type": "error"}])
    run = tmp_path / "run"
    assert [r["ttfa_ms"] for r in read_rows(run / "responses.jsonl")] == [12.5]
    assert read_rows(run / "sessions.jsonl")[0]["session_id"] == "sess_1"
    assert read_rows(run / "health.jsonl")[0]["users"] == 3
    assert (run / "rate_limits.jsonl").exists()
    assert rel is not None and rel.startswith("traces/") and ".." not in rel
    assert orjson.loads((run / rel).read_bytes())["events"] == [{"type": "error"}]
    write_run_json(run, {"run_id": "r1", "status": "running"})
    update_run_json(run, status="stopped")
    assert read_run_json(run) == {"schema_version": 1, "run_id": "r1", "status": "stopped"}


def test_torn_last_line_is_skipped_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "responses.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": ')
    warnings: list[str] = []
    assert read_rows(path, warnings) == [{"a": 1}, {"a": 2}]
    assert warnings == [f"{path}: the last line is incomplete (the run is still being written?); skipped it"]
    # without a list the one warning line goes to stderr, and nothing to stdout
    assert read_rows(path) == [{"a": 1}, {"a": 2}]
    out, err = capsys.readouterr()
    assert out == "" and err == f"warning: {warnings[0]}\n"
    # a complete last row that only lacks its newline is kept, without a warning
    path.write_bytes(b'{"a": 1}\n{"a": 2}')
    warnings.clear()
    assert read_rows(path, warnings) == [{"a": 1}, {"a": 2}]
    assert warnings == []


def test_a_corrupt_inner_line_is_skipped_with_a_warning_and_the_rest_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "responses.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": \n\n[1, 2]\n{"a": 3}\n\xff\xfe\n{"a": 4}\n')
    warnings: list[str] = []
    assert read_rows(path, warnings) == [{"a": 1}, {"a": 3}, {"a": 4}]
    assert warnings == [  # line numbers count every line, blank ones too, from 1
        f"{path} line 2: not valid JSON; skipped it",
        f"{path} line 4: not a JSON object; skipped it",
        f"{path} line 6: not valid JSON; skipped it",
    ]
    assert read_rows(path) == [{"a": 1}, {"a": 3}, {"a": 4}]
    assert capsys.readouterr().err.splitlines() == [f"warning: {w}" for w in warnings]


def test_many_corrupt_lines_give_a_bounded_number_of_warnings(tmp_path: Path) -> None:
    path = tmp_path / "responses.jsonl"
    path.write_bytes(b"".join(b'{"i": %d}\n' % i if i % 2 else b"garbage\n" for i in range(20)) + b'{"i": ')
    warnings: list[str] = []
    assert [r["i"] for r in read_rows(path, warnings)] == list(range(1, 20, 2))
    assert warnings[:5] == [f"{path} line {n}: not valid JSON; skipped it" for n in (1, 3, 5, 7, 9)]
    assert warnings[5:] == [
        f"{path}: 5 more unreadable lines skipped",
        f"{path}: the last line is incomplete (the run is still being written?); skipped it",
    ]


def test_run_end_summary_and_fail_on_survive_a_corrupt_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`rtload run`'s end (read_rows' caller): the rows around a corrupt line still count for the
    summary and --fail-on, and the damage is one warning line, not a traceback."""
    from loadtest.locust.launcher import RunRequest, _finish

    run = tmp_path / "run"
    run.mkdir()
    lines = [orjson.dumps(r) for r in ROWS]
    lines.insert(2, b'{"outcome": "compl')  # a corrupt line in the middle
    (run / "responses.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    write_run_json(run, {"run_id": "r1"})
    request = RunRequest(summary=False, fail_on="failed>=2")
    assert _finish(run, 0, parse_fail_on(request.fail_on), request) == 0
    out, err = capsys.readouterr()
    assert err == f"warning: {run / 'responses.jsonl'} line 3: not valid JSON; skipped it\n"
    assert f"done, {len(ROWS)} responses" in out
    request = RunRequest(summary=False, fail_on="failed>=1")
    assert _finish(run, 0, parse_fail_on(request.fail_on), request) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("warning: ") and "line 3: not valid JSON" in err[0]
    assert err[1:] == ["rtload: --fail-on crossed: failed = 1 (threshold failed>=1)"]
    assert read_run_json(run)["fail_on_crossed"] == ["failed = 1 (threshold failed>=1)"]


def test_a_run_that_recorded_no_response_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # it said "done, 0 responses" and exited 0: a CI job without --fail-on passed a run that measured nothing
    run = tmp_path / "run"
    run.mkdir()
    (run / "responses.jsonl").write_bytes(b"")
    write_run_json(run, {"run_id": "r0"})
    assert _finish(run, 0, [], RunRequest(summary=False)) == 1
    out, err = capsys.readouterr()
    assert "done" not in out
    assert err == f"rtload: no response was recorded, so the run measured nothing; see {run / 'locust.log'}\n"
    (run / "responses.jsonl").write_bytes(orjson.dumps(ROWS[0]) + b"\n")  # one is enough to judge
    assert _finish(run, 0, [], RunRequest(summary=False)) == 0
    assert "done, 1 responses" in capsys.readouterr().out


@pytest.mark.timing
def test_sigkill_keeps_rows_older_than_a_second(tmp_path: Path) -> None:
    """A writer process killed with SIGKILL loses at most the rows of its last flush interval."""
    run = tmp_path / "run"
    script = textwrap.dedent(
        f"""
        import sys, time
        from loadtest.records.writer import RunWriter
        w = RunWriter({str(run)!r}, flush_interval=0.5)
        w.start_flusher()
        i = 0
        while True:
            w.write("response", {{"i": i, "t": time.time()}})
            i += 1
            if i == 200:
                print("ready", flush=True)
            time.sleep(0.002)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(1.5)
        killed_at = time.time()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
    rows = read_rows(run / "responses.jsonl")
    assert len(rows) >= 200
    assert [r["i"] for r in rows] == list(range(len(rows)))  # nothing lost in the middle
    assert killed_at - rows[-1]["t"] < 1.0  # every row older than a second made it to disk


def test_step_shape_adds_users_in_steps() -> None:
    plan = ShapePlan(shape="step", users=10, step_users=4, step_duration=5)
    assert plan.step_targets() == [4, 8, 10]
    assert plan.total_duration == 15
    assert plan.at(0) == (0, 4, 1.0)
    assert plan.at(5.1)[:2] == (1, 8)
    assert plan.at(14.9)[:2] == (2, 10)
    assert plan.at(15) is None
    held = ShapePlan(shape="step", users=4, step_users=2, step_duration=5, duration=30)
    assert held.at(25)[:2] == (1, 4)  # the last step is held to the end of the duration


def test_spike_constant_and_soak_shapes() -> None:
    spike = ShapePlan(shape="spike", users=2, spike_users=9, spike_at=10, spike_duration=5, duration=30)
    assert spike.at(9)[:2] == (0, 2)
    assert spike.at(12)[:2] == (1, 9)
    assert spike.at(16)[:2] == (2, 2)
    assert ShapePlan(shape="constant", users=3, duration=10).at(9.9)[:2] == (0, 3)
    assert ShapePlan(shape="soak", users=3, duration=None).at(1e6)[:2] == (0, 3)
    with pytest.raises(ValueError, match="unknown shape"):
        ShapePlan(shape="ramp")


def test_parse_duration() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("90s") == 90
    assert parse_duration("5m") == 300
    assert parse_duration("1h30m") == 5400
    assert parse_duration("") is None
    for bad in ("5x", "m", "-3", "1500ms"):
        with pytest.raises(ValueError, match="bad duration"):
            parse_duration(bad)


ROWS = [
    {"outcome": "completed", "reason": "", "ttfa_ms": 100.0},
    {"outcome": "completed", "reason": "", "ttfa_ms": 200.0},
    {"outcome": "failed", "reason": "server_error", "ttfa_ms": None},
    {"outcome": "truncated", "reason": "audio_stall", "ttfa_ms": 2000.0},
]


def test_fail_on_thresholds() -> None:
    assert check(parse_fail_on("failed>1%,ttfa_p95>1500ms"), ROWS) == [
        "failed = 25% (threshold failed>1%)",
        "ttfa_p95 = 1820ms (threshold ttfa_p95>1500ms)",
    ]
    assert check(parse_fail_on("failed>30%,ttfa_p50>1s,server_error>1"), ROWS) == []
    assert check(parse_fail_on("not_completed>=2"), ROWS) == ["not_completed = 2 (threshold not_completed>=2)"]
    assert check(parse_fail_on("responses<10"), ROWS) == ["responses = 4 (threshold responses<10)"]
    # a gate the run cannot measure fails (it passed before: a run that recorded nothing, or whose
    # every response failed before its first audio, told CI it was fine)
    assert check(parse_fail_on("failed>1%,server_error>0,responses<1"), []) == [
        "failed cannot be measured: no response was recorded (threshold failed>1%; a gate that cannot be checked "
        "fails)",
        "responses = 0 (threshold responses<1)",
    ]
    no_audio = [{"outcome": "failed", "reason": "server_error", "ttfa_ms": None}] * 3
    assert check(parse_fail_on("ttfa_p95>1500ms@95%"), no_audio) == [
        "ttfa_p95 cannot be measured: no response has a ttfa_ms (threshold ttfa_p95>1500ms@95%; a gate that cannot be "
        "checked fails)"
    ]
    assert check(parse_fail_on("failed>50%@95%"), []) == [
        "failed cannot be measured: no response was recorded (threshold failed>50%@95%; a gate that cannot be checked "
        "fails)"
    ]
    for bad in ("failed", "nope>1", "ttfa_p95>5%", "failed>1ms"):
        with pytest.raises(ValueError, match="--fail-on"):
            parse_fail_on(bad)


def test_fail_on_confident_form_needs_the_whole_interval_over_the_line() -> None:
    # 1 failed of 4: plain failed>10% is crossed (25%); the Wilson 95% interval of 1/4,
    # [4.56%, 69.9%] (hand-worked: centre (0.25 + z^2/8) / (1 + z^2/4), half-width
    # z sqrt(0.25*0.75/4 + z^2/64) / (1 + z^2/4)), reaches below 10%, so @95% is not
    assert check(parse_fail_on("failed>10%"), ROWS) == ["failed = 25% (threshold failed>10%)"]
    assert check(parse_fail_on("failed>10%@95%"), ROWS) == []
    assert check(parse_fail_on("failed>4%@95%"), ROWS) == [
        "failed = 25% (95% CI [4.559%, 69.94%]) (threshold failed>4%@95%)"
    ]
    assert parse_fail_on("failed>1%@0.9")[0].confidence == pytest.approx(0.9)
    # the median of 3 ttfa values: at 70% the ranks are 1 and 3 (P(B < 1) = 1/8 < 0.15, P(B >= 3) = 1/8
    # <= 0.15, B ~ Bin(3, 1/2)), the interval [100, 2000]
    assert check(parse_fail_on("ttfa_p50>50ms@70%"), ROWS) == [
        "ttfa_p50 = 200ms (70% CI [100ms, 2000ms]) (threshold ttfa_p50>50ms@70%)"
    ]
    assert check(parse_fail_on("ttfa_p50>150ms@70%"), ROWS) == []
    for bad, words in (("failed>1@95%", "a count is exact"), ("failed>1%@40%", "50%..99.9%")):
        with pytest.raises(ValueError, match=words):
            parse_fail_on(bad)


def _ns(**kw: object) -> SimpleNamespace:
    return SimpleNamespace(**kw)


def test_options_validation_and_key_handling() -> None:
    opts = HarnessOptions.from_namespace(_ns(rt_target="mock", num_users=5, spawn_rate=2, run_time="1m"))
    assert opts.is_mock and opts.api_key() == "mock-key" and opts.plan.duration == 60
    with pytest.raises(OptionError, match="--target"):
        HarnessOptions.from_namespace(_ns(rt_target="not a url"))
    with pytest.raises(OptionError, match="NAME of an environment variable"):
        HarnessOptions.from_namespace(_ns(rt_target="mock", rt_api_key_env="sk-live-123=456"))
    real = HarnessOptions.from_namespace(_ns(rt_target="wss://x.example", rt_provider="azure"))
    with pytest.raises(OptionError, match="AZURE_OPENAI_API_KEY is not set"):
        real.check_key(environ={})
    target = real.build_target(environ={"AZURE_OPENAI_API_KEY": "sekret-XYZ"})
    assert target.api_key == "sekret-XYZ"
    assert "sekret" not in repr(target.describe()) and "sekret" not in repr(real.describe())


def test_batches_reach_the_writer_and_the_board(tmp_path: Path) -> None:
    sent: list[tuple[str, dict]] = []
    batcher = RecordBatcher(lambda kind, data: sent.append((kind, data)), "w1")
    sink = UserSink(
        type("P", (), {"add": lambda self, k, r: batcher.add(k, r), "trace": lambda self, n, e: batcher.trace(n, e)})(),
        None,
        {"run_id": "r", "worker_id": "w1", "user_id": 7},
        lambda: {"step": 2, "users": 8, "concurrency": 3},
    )
    sink.response(ResponseRecord(outcome="failed", reason="server_error"))
    sink.session(SessionRecord(session_id="sess_1"))
    assert sink.trace("resp_x", [{"type": "response.done"}]) == "traces/resp_x.json"
    assert batcher.flush() == 2 and batcher.flush() == 0
    with RunWriter(tmp_path) as writer:
        board = OutcomeBoard()
        assert receive_batch(sent[0][1], writer, board.add) == 2
    row = read_rows(tmp_path / "responses.jsonl")[0]
    assert (row["worker_id"], row["user_id"], row["step"], row["users"], row["concurrency"]) == ("w1", 7, 2, 8, 3)
    assert (tmp_path / "traces" / "resp_x.json").exists()
    assert board.snapshot()["steps"][0]["outcomes"]["failed"] == 1
    assert "server_error" in render_page(board)


def test_user_sink_fires_one_locust_request_per_response(tmp_path: Path) -> None:
    fired: list[dict] = []
    with RunWriter(tmp_path) as writer:
        sink = UserSink(WriterSink(writer, OutcomeBoard()), lambda **kw: fired.append(kw), {"run_id": "r"})
        sink.response(ResponseRecord(scenario="single_turn", outcome="completed", ttfa_ms=321.0, audio_bytes=4800))
        sink.response(ResponseRecord(scenario="quick_text", outcome="cancelled", done_ms=50.0))
        sink.response(ResponseRecord(scenario="single_turn", outcome="truncated", reason="audio_stall", ttfa_ms=9.0))
    assert [f["name"] for f in fired] == ["single_turn", "quick_text", "single_turn"]
    assert [f["response_time"] for f in fired] == [321.0, 50.0, 9.0]
    assert fired[0]["exception"] is None and fired[1]["exception"] is None
    assert str(fired[2]["exception"]) == "truncated: audio_stall"
    assert all(f["request_type"] == "realtime" for f in fired)


def test_a_follow_up_also_fires_its_tool_round_trip(tmp_path: Path) -> None:
    fired: list[dict] = []
    with RunWriter(tmp_path) as writer:
        sink = UserSink(WriterSink(writer, OutcomeBoard()), lambda **kw: fired.append(kw), {"run_id": "r"})
        sink.response(ResponseRecord(scenario="tool_calls", outcome="completed", function_calls=1, done_ms=80.0))
        sink.response(ResponseRecord(scenario="tool_calls", outcome="completed", chain_depth=1, ttfa_ms=200.0,
                                     tool_round_trip_ms=612.5))  # fmt: skip
        sink.response(ResponseRecord(scenario="tool_calls", outcome="failed", reason="followup_rejected",
                                     chain_depth=1))  # fmt: skip
    assert [f["name"] for f in fired] == ["tool_calls", "tool_calls", TOOL_ROUND_TRIP, "tool_calls", TOOL_ROUND_TRIP]
    assert fired[2]["response_time"] == 612.5 and fired[2]["exception"] is None
    assert fired[2]["request_type"] == "realtime" and TOOL_ROUND_TRIP == "tool_round_trip"
    assert str(fired[4]["exception"]) == "failed: followup_rejected"


def test_backoff_honours_retry_after_and_resets() -> None:
    b = Backoff(base=0.5, cap=4)
    assert b.after({"handshake_status": 101, "ended_by": "lifetime"}) == 0
    first = b.after({"handshake_status": 429, "retry_after": 3, "ended_by": "handshake_failed"})
    assert first >= 3
    waits = [b.after({"handshake_status": 503, "ended_by": "handshake_failed"}) for _ in range(5)]
    assert waits[0] < waits[-1] <= 4 * 1.2
    refused = {"handshake_status": 503, "retry_after": 10, "ended_by": "handshake_failed"}
    assert b.after(refused) >= 10  # retry-after beats the cap
    assert b.after({"handshake_status": 101, "ended_by": "server_closed", "close_code": 3000}) > 0  # bad key
    assert b.after({"handshake_status": 101, "ended_by": "session_expired"}) == 0 and b.failures == 0


def test_tail_and_outcome_table(tmp_path: Path) -> None:
    path = tmp_path / "responses.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in ROWS[:2]) + b'{"outcome": "fai')
    tail = JsonlTail(path)
    assert len(tail.read()) == 2 and tail.read() == []
    with open(path, "ab") as f:
        f.write(b'led"}\n')
    assert tail.read() == [{"outcome": "failed"}]
    table = outcome_table(ROWS)
    assert "4 responses" in table and "failed" in table and "server_error 1" in table


def test_health_sample_carries_the_clock_the_frames_and_the_receive_lag() -> None:
    from loadtest.locust.health import HealthSampler

    frames = {"frames": 500, "late_pct": 1.5, "p99_lag_ms": 4.25}
    received = [{"frames": 900, "p99_lag_ms": 12.5}, {"frames": 0, "p99_lag_ms": 0.0}]
    sampler = HealthSampler("w7", lambda row: None, users=lambda: 33, frame_source=lambda: frames,
                            receive_source=lambda: received.pop(0))  # fmt: skip
    row = sampler.sample()
    assert (row["worker_id"], row["users"]) == ("w7", 33)
    assert (row["frames_late_pct"], row["clock_lag_p99_ms"], row["recv_lag_p99_ms"]) == (1.5, 4.25, 12.5)
    assert row["cpu_percent"] is not None and row["rss_mb"] > 0
    assert sampler.sample()["recv_lag_p99_ms"] is None  # no stamped read in the window: unknown, not 0


GATED_PROBE = """
import gevent.monkey; gevent.monkey.patch_all()
import json, time, gevent
from loadtest.locust.health import ClockProbe
def hold(s):  # the loop held, as test_start's work holds it
    end = time.perf_counter() + s
    while time.perf_counter() < end:
        pass
def window(probe, *steps):
    for step in steps:
        step()
    gevent.sleep(0.1)
    return probe.take()
gated, plain = ClockProbe(period_s=0.01, gated=True), ClockProbe(period_s=0.01)
gated.start(); plain.start(); gevent.sleep(0.05)
hold(0.08)  # before any session: the gated probe counts nothing
out = {"before": window(gated), "plain_before": window(plain)}
gated.sessions_started(); gevent.sleep(0.05)
out["during"] = window(gated, lambda: hold(0.08))
gated.idle()
out["idle_again"] = window(gated, lambda: hold(0.08))
print(json.dumps(out))
"""


def test_the_gated_clock_probe_counts_wake_ups_from_the_first_session_only() -> None:
    # a worker's test_start loaded a CA bundle (~17 ms, 0.3 s for a big one) before its first user:
    # the probe's stand-in wake-ups counted it as late frames and the verdict said "bottleneck: yes"
    done = subprocess.run([sys.executable, "-c", GATED_PROBE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    out = orjson.loads(done.stdout.strip().splitlines()[-1])
    assert out["before"] == [None, None] and out["idle_again"] == [None, None], out
    assert out["plain_before"][0] >= 50 and out["plain_before"][1] > 0, out  # an ungated probe (the master) counts it
    assert out["during"][0] >= 50 and out["during"][1] > 0, out  # sessions running: the pause counts


def test_worker_watch_records_each_lost_worker_once() -> None:
    node = SimpleNamespace
    clients = {"hostA_1": node(state="running"), "hostB_2": node(state="running"), "hostC_3": node(state="running")}
    watch = WorkerWatch()
    assert watch.check(clients, 100.0, 90.0, {"hostA_1": 0, "hostB_2": 1, "hostC_3": 2}) == []
    watch.batch("hostA_1", "w0", 12, 101.0)
    watch.batch("hostA_1", "w0", 3, 101.5)
    clients["hostA_1"].state = "missing"  # Locust's heartbeat check gave up on it
    del clients["hostB_2"]  # quit mid-run
    lost = watch.check(clients, 104.0, 90.0)
    assert [(r["worker_id"], r["how"]) for r in lost] == [("w0", "missed heartbeats")]
    assert lost[0] == {"worker_id": "w0", "client_id": "hostA_1", "how": "missed heartbeats", "t_lost": 104.0,
                       "at_s": 14.0, "last_batch_t": 101.5, "last_batch_rows": 3, "rows_received": 15}  # fmt: skip
    # one that left is judged LEAVE_GRACE_S later (the run did not stop meanwhile), stamped when it left
    assert watch.check(clients, 104.0 + LEAVE_GRACE_S / 2, 90.0) == []
    lost = watch.check(clients, 104.0 + LEAVE_GRACE_S, 90.0)
    assert [(r["worker_id"], r["how"], r["t_lost"], r["at_s"]) for r in lost] == [("w1", "left the run", 104.0, 14.0)]
    assert lost[0]["last_batch_t"] is None and lost[0]["rows_received"] == 0
    assert watch.check(clients, 110.0, 90.0) == []  # said once
    assert watch.alive(clients) == {"hostC_3"}
    assert len(watch.lost) == 2
    # once the run is stopping, a worker that quits has sent its last records; one that dies has not
    clients["hostD_4"] = node(state="running")
    watch.check(clients, 106.0, 90.0)
    del clients["hostC_3"]
    assert watch.check(clients, 107.0, 90.0, stopping=True) == []
    clients["hostD_4"].state = "missing"
    assert [r["client_id"] for r in watch.check(clients, 108.0, 90.0, stopping=True)] == ["hostD_4"]


def _two_workers() -> tuple[WorkerWatch, dict[str, SimpleNamespace]]:
    clients = {"hostA_1": SimpleNamespace(state="running"), "hostB_2": SimpleNamespace(state="running")}
    watch = WorkerWatch()
    watch.check(clients, 100.0, 90.0, {"hostA_1": 0, "hostB_2": 1})
    return watch, clients


def test_workers_quitting_with_an_interrupt_are_not_lost_whichever_is_handled_first() -> None:
    """Ctrl-C reaches every process at once: a worker's quit may be handled before the master's own
    SIGINT (or a SIGTERM its event loop runs a moment later). Neither order is a loss."""
    watch, clients = _two_workers()
    del clients["hostA_1"]  # its quit came first
    assert watch.check(clients, 100.2, 90.0) == []  # not judged yet
    assert watch.check(clients, 100.6, 90.0, interrupted=True) == []  # the master's signal arrived
    clients["hostB_2"].state = "missing"  # slow to quit on a loaded machine: missed its heartbeats
    assert watch.check(clients, 100.7, 90.0, interrupted=True) == []
    del clients["hostB_2"]
    assert watch.check(clients, 100.8, 90.0, stopping=True, interrupted=True) == []
    assert watch.check(clients, 100.0 + 2 * LEAVE_GRACE_S, 90.0, stopping=True, interrupted=True) == []
    assert watch.lost == []


def test_a_worker_leaving_just_before_the_stop_is_lost_unless_interrupted() -> None:
    """The last worker quitting on its own stops the run at once: that stop does not forgive it."""
    watch, clients = _two_workers()
    del clients["hostB_2"]
    assert watch.check(clients, 100.5, 90.0) == []  # within the grace
    lost = watch.check(clients, 100.6, 90.0, stopping=True)  # the run stops: judged now
    assert [(r["worker_id"], r["t_lost"]) for r in lost] == [("w1", 100.5)]
    del clients["hostA_1"]  # quits after the stop began: with the run
    assert watch.check(clients, 101.0, 90.0, stopping=True) == []
    assert [r["worker_id"] for r in watch.lost] == ["w1"]


def test_loss_line_names_the_workers_and_when() -> None:
    assert loss_line({}) is None and loss_line({"workers_lost": []}) is None
    one = loss_line({"workers": 2, "workers_lost": [{"worker_id": "w1", "at_s": 12.4}]})
    assert one == (
        "INCOMPLETE: worker w1 was lost 12 s into the run (1 of 2 workers); the responses it would have "
        "recorded after that are missing, so the run had less load than planned"
    )
    two = loss_line({"workers_lost": [{"worker_id": "w0", "at_s": 3}, {"worker_id": "w2", "at_s": 40}]})
    assert two is not None and two.startswith("INCOMPLETE: workers w0 (3 s into the run), w2 (40 s into the run) were")


@pytest.mark.parametrize("allow", [False, True])
def test_a_lost_worker_fails_rtload_run_unless_allowed(
    allow: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_run_json(tmp_path, {"status": "finished", "workers": 2, "workers_lost": [{"worker_id": "w1", "at_s": 7}]})
    (tmp_path / "responses.jsonl").write_bytes(orjson.dumps(ROWS[0]) + b"\n")  # the other worker's
    code = _finish(tmp_path, 0, [], RunRequest(summary=False, allow_worker_loss=allow))
    err = capsys.readouterr().err
    if allow:
        assert code == 0 and err == ""
    else:
        assert code == 1
        assert err == (
            "rtload: worker w1 lost 7 s into the run; the data is incomplete (--allow-worker-loss accepts such a run)\n"
        )


def test_progress_line_leaves_out_the_users_of_lost_workers(tmp_path: Path) -> None:
    rows = [{"t": 1.0, "worker_id": w, "users": n} for w, n in (("w0", 2), ("w1", 2), ("master", 0))]
    (tmp_path / "health.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    tail = RunTail(tmp_path)
    tail.poll()
    assert " users 4 | responses 0" in tail.line()
    write_run_json(tmp_path, {"workers_lost": [{"worker_id": "w1"}]})
    tail.poll()
    assert " users 2 | 1 worker lost | responses 0" in tail.line()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.timing
@pytest.mark.parametrize("death_signal", [None, signal.SIGKILL], ids=["watchdog", "pdeathsig"])
def test_lifeline_ends_the_child_soon_after_its_parent(death_signal: int | None, tmp_path: Path) -> None:
    """A parent starts a child with the lifeline armed, then dies: the child ends within 4 s (the
    watchdog, which non-Linux systems and the master use, runs its callback first)."""
    marker = tmp_path / "orphaned"
    child = textwrap.dedent(f"""
        import signal, time
        from pathlib import Path
        from loadtest.locust import lifeline
        assert lifeline.arm(lambda: Path({str(marker)!r}).write_text("x"), death_signal={death_signal})
        print("armed", flush=True)
        time.sleep(30)
    """)
    parent = textwrap.dedent(f"""
        import subprocess, sys
        from loadtest.locust.lifeline import child_env
        proc = subprocess.Popen([sys.executable, "-c", {child!r}], env=child_env(), stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "armed"
        print(proc.pid, flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", parent], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.strip())
    # The watchdog notices within its 0.2 s poll and exits 1 s later; 4 s leaves room for a loaded
    # machine (three pytest processes on 2 cores) without letting a child that never ends pass.
    started = time.monotonic()
    while _alive(pid) and time.monotonic() - started < 4.0:
        time.sleep(0.05)
    took = time.monotonic() - started
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):  # it may end between the check and the kill
            os.kill(pid, signal.SIGKILL)
        raise AssertionError(f"the child outlived its parent by {took:.1f} s")
    assert marker.exists() == (death_signal is None)


def test_keep_audio_reaches_the_session_settings_and_a_bad_mode_is_one_line() -> None:
    from loadtest.locust.inputs import build_config

    opts = HarnessOptions.from_namespace(_ns(rt_target="mock", rt_keep_audio="sample"))
    assert opts.keep_audio == "sample" and build_config(opts).keep_audio == "sample"
    assert HarnessOptions.from_namespace(_ns(rt_target="mock")).keep_audio == "failed"  # the default
    with pytest.raises(OptionError, match=r"--keep-audio 'all': use one of none, failed, sample"):
        HarnessOptions.from_namespace(_ns(rt_target="mock", rt_keep_audio="all"))
