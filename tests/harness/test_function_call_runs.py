"""Function calling end to end: `rtload run` against the mock on loopback, a tool-using scenario's
round trips (both dialects), parallel calls, the chain limit, a barge-in while a tool runs, and the
tool faults at high rates agreeing with the mock's truth log."""

from __future__ import annotations

import collections
import csv
import io
import json
from pathlib import Path

import pytest

from loadtest.records.writer import read_rows
from loadtest.workload.scenario_file import builtin_text

from .conftest import assert_agrees_with_truth, mock_args, rtload_run, run_dir

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FAST_TOOLS = "tools.arguments_delta_ms=2"
LATENCY = {"lookup_order": 400.0, "store_hours": 250.0}  # the shipped tool_calls scenario's tool table
OUTPUTS = {"lookup_order": '{"status": "shipped", "eta": "tomorrow before noon"}',
           "store_hours": '{"saturday": "10:00-18:00", "appointment_needed": false}'}  # fmt: skip
SESSION = {  # the GA shape (the runs below use the default dialect)
    "type": "realtime",
    "instructions": "Look orders up with the tool.",
    "tools": [
        {
            "type": "function",
            "name": "lookup_order",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
        }
    ],
    "tool_choice": "required",
}


TOOL = "[scenarios.s.tools.lookup_order]\noutput = '{{\"ok\": 1}}'\nlatency_ms = {latency}\n"


def _run(
    tmp_path: Path, run_id: str, *args: str, sets: tuple[str, ...] = (), profile: str = "healthy",
    scenario: str = "tool_calls", users: str = "2", duration: str = "4s", deadline: str = "8s",
) -> Path:  # fmt: skip
    done = rtload_run(
        tmp_path, *mock_args(FAST_TOOLS, *sets, profile=profile), "--scenario", scenario, "--users", users,
        "--spawn-rate", "20", "--duration", duration, "--deadline", deadline, "--run-id", run_id,
        "--pacing", "fast", *args,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr[-3000:]
    assert "Traceback" not in (run_dir(tmp_path, run_id) / "locust.log").read_text()
    return run_dir(tmp_path, run_id)


def _scenario(tmp_path: Path, body: str) -> str:
    """A scenario file (tool ``lookup_order``, the session above) with ``body`` after its header."""
    (tmp_path / "session.json").write_text(json.dumps(SESSION))
    path = tmp_path / "scenario.toml"
    path.write_text('[scenarios.s]\nsession_file = "session.json"\n' + body)
    return str(path)


def _truth(path: Path, kind: str) -> list[dict]:
    return [t for t in read_rows(path / "mock_truth.jsonl") if t.get("kind") == kind]


def _stats(path: Path) -> dict[str, dict[str, str]]:
    return {row["Name"]: row for row in csv.DictReader(io.StringIO((path / "locust_stats.csv").read_text()))}


def builtin_file(name: str) -> str:
    return (Path(__file__).resolve().parents[2] / "loadtest" / "workload" / "scenarios" / name).read_text()


def _preview_copy(tmp_path: Path) -> str:
    """The shipped tool_calls scenario with its session file in the preview shape (no session.type)."""
    session = json.loads(builtin_file("tool_calls_session.json"))
    del session["type"]
    (tmp_path / "preview_session.json").write_text(json.dumps(session))
    path = tmp_path / "tool_calls.toml"
    path.write_text(builtin_text("tool_calls").replace("tool_calls_session.json", "preview_session.json"))
    return str(path)


@pytest.mark.parametrize("dialect", ["ga", "preview"])
def test_the_tool_calls_scenario_answers_every_call_and_speaks_the_follow_up(tmp_path: Path, dialect: str) -> None:
    scenario = "tool_calls" if dialect == "ga" else _preview_copy(tmp_path)
    target = ("--provider", "azure", "--dialect", "preview") if dialect == "preview" else ()  # Azure's preview path
    path = _run(tmp_path, "tc", *target, scenario=scenario)
    rows = assert_agrees_with_truth(path)
    by_id = {r["response_id"]: r for r in rows}
    calling = [r for r in rows if r["function_calls"]]
    follow = [r for r in rows if r["chain_depth"]]
    assert calling and {r["turn_index"] for r in calling} == {0, 1}  # both turns called (tool_choice required)
    assert len(follow) >= len(calling) - 2  # a session the run's end stopped mid-tool may leave one unanswered
    for f in follow:
        parent = by_id[f["parent_response_id"]]
        (name,) = parent["function_names"]
        assert parent["function_args_valid"] == [True] and parent["chain_depth"] == 0
        assert parent["outcome"] == "completed"
        assert (f["outcome"], f["chain_depth"], f["turn_index"]) == ("completed", 1, parent["turn_index"])
        assert f["audio_ms"] > 0 and f["transcript_chars"] > 0 and f["function_calls"] == 0  # answered with speech
        assert f["tool_latency_ms"] == LATENCY[name]
        assert f["tool_latency_ms"] <= f["tool_round_trip_ms"] < f["tool_latency_ms"] + 1500
        # the turn's final answer: its trigger to the calls' arguments, then the round trip
        assert f["final_answer_ms"] == pytest.approx(f["tool_round_trip_ms"] + parent["function_args_ms"][0], abs=0.05)
        assert parent["final_answer_ms"] is None
    # the mock saw every call answered with the tool table's output, and each follow-up answering its parent
    calls = {t["call_id"]: t for t in _truth(path, "function_call")}
    outputs = _truth(path, "function_call_output")
    assert len(outputs) == len(follow) and all(o["known_call"] for o in outputs)
    assert all(o["output_chars"] == len(OUTPUTS[calls[o["call_id"]]["name"]]) for o in outputs)
    answered = {t["response_id"]: t["follow_up_of"] for t in _truth(path, "response") if t.get("follow_up_of")}
    assert answered == {f["response_id"]: f["parent_response_id"] for f in follow}
    # Locust's own statistics name the tool round trip
    stats = _stats(path)
    assert stats["tool_round_trip"]["Type"] == "realtime"
    assert int(stats["tool_round_trip"]["Request Count"]) == len(follow)
    assert int(stats["tool_calls"]["Request Count"]) == len(rows)


def test_parallel_calls_are_all_answered_before_the_one_follow_up(tmp_path: Path) -> None:
    path = _run(tmp_path, "par", sets=("tools.calls_per_response=[2,3]",))
    rows = assert_agrees_with_truth(path)
    calling = {r["response_id"]: r for r in rows if r["function_calls"]}
    assert calling and {r["function_calls"] for r in calling.values()} <= {2, 3}
    for r in calling.values():
        per_call = (r["function_names"], r["function_args_ms"], r["function_args_valid"])
        assert [len(column) for column in per_call] == [r["function_calls"]] * 3
        assert all(r["function_args_valid"])
    follow = [r for r in rows if r["chain_depth"]]
    assert follow and collections.Counter(r["parent_response_id"] for r in follow).most_common(1)[0][1] == 1
    # the follow-up's response.create came after every call's output: the mock had all of them then
    truth = {t["response_id"]: t for t in _truth(path, "response")}
    for f in follow:
        parent = truth[f["parent_response_id"]]
        assert sorted(truth[f["response_id"]]["answered_call_ids"]) == sorted(parent["call_ids"])
        assert len(parent["call_ids"]) == calling[f["parent_response_id"]]["function_calls"]


def test_a_chain_is_followed_to_the_scenario_limit_and_no_further(tmp_path: Path) -> None:
    scenario = _scenario(
        tmp_path, 'tool_chain_limit = 2\n[[scenarios.s.turns]]\ntext = "Where is my order?"\n' + TOOL.format(latency=50)
    )
    path = _run(tmp_path, "chain", scenario=scenario, sets=("tools.chain_probability=1",))
    rows = assert_agrees_with_truth(path)
    by_id = {r["response_id"]: r for r in rows}
    deepest = [r for r in rows if r["chain_depth"] == 2]
    assert deepest and max(r["chain_depth"] for r in rows) == 2
    for r in deepest:  # it calls again (chain_probability 1), and the limit leaves that call unanswered
        assert r["function_calls"] == 1 and r["outcome"] == "completed" and r["tool_latency_ms"] == 50.0
        middle = by_id[r["parent_response_id"]]
        assert middle["chain_depth"] == 1 and by_id[middle["parent_response_id"]]["chain_depth"] == 0
    answered = {o["call_id"] for o in _truth(path, "function_call_output")}
    for r in deepest:
        (own,) = [t for t in _truth(path, "response") if t["response_id"] == r["response_id"]]
        assert not set(own["call_ids"]) & answered


def test_a_barge_in_while_the_tool_runs_leaves_no_follow_up(tmp_path: Path) -> None:
    # the tool takes 1.5 s; the caller speaks again 100 ms after the call: that call is abandoned
    scenario = _scenario(tmp_path, '[[scenarios.s.turns]]\ntext = "Where is my order?"\n'
                                   '[[scenarios.s.turns]]\ntext = "Never mind."\nbarge_in = true\n'
                                   "barge_in_after_ms = 100\n" + TOOL.format(latency=1500))  # fmt: skip
    path = _run(tmp_path, "barge", scenario=scenario, duration="5s")
    rows = assert_agrees_with_truth(path)
    first = {r["response_id"] for r in rows if r["turn_index"] == 0}
    assert first and all(r["function_calls"] == 1 for r in rows if r["response_id"] in first)
    assert not [r for r in rows if r["turn_index"] == 0 and r["chain_depth"]]  # no follow-up for the abandoned call
    assert [r for r in rows if r["turn_index"] == 1 and r["chain_depth"] == 1]  # the new turn's call is answered
    answered = {o["response_id"] for o in _truth(path, "function_call_output")}
    assert not answered & first
    assert not [r for r in rows if r["reason"] == "followup_rejected"]


def test_tool_faults_at_high_rates_agree_with_the_truth_log(tmp_path: Path) -> None:
    # the flaky profile's faults, the tool faults at high rates (session-level refusals off: this is
    # about responses); a hung call costs the 3 s idle deadline, so it is the rarest
    faults = ("faults.tool_arguments_cut.rate=0.2", "faults.tool_server_error.rate=0.2",
              "faults.tool_call_hang.rate=0.15", "faults.tool_slow_arguments.rate=0.25",
              "faults.tool_slow_arguments.delta_ms=[60,150]",
              "faults.stall.gap_s=[1.6,2.0]", "faults.silence.gap_s=[1.6,2.0]",
              "faults.handshake_5xx.rate=0", "faults.handshake_429.rate=0")  # fmt: skip
    path = _run(tmp_path, "flaky", profile="flaky", sets=faults, users="6", duration="8s", deadline="3s")
    rows = assert_agrees_with_truth(path)  # every row as the mock's fault implies: 100%
    truth = {t["response_id"]: t["fault"] for t in _truth(path, "response")}
    reasons = collections.Counter(r["reason"] for r in rows if r["function_calls"])
    assert reasons["function_arguments_cut"] and reasons["server_error"] and reasons["function_call_timeout"]
    slow = [r for r in rows if truth.get(r["response_id"]) == "tool_slow_arguments"]
    assert slow and all(r["outcome"] == "completed" for r in slow)
    # a broken call is never followed up; a completed one is (unless the run's end stopped it)
    parents = collections.Counter(r["parent_response_id"] for r in rows if r["chain_depth"])
    for r in rows:
        if r["function_calls"] and r["outcome"] != "completed":
            assert r["response_id"] not in parents, r
    assert set(parents.values()) == {1}
