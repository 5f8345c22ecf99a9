"""Function calls from hand-written event sequences in both dialects: what the router records of each
call, the follow-up the client plans (single, parallel, chained, and every case it must not answer),
and the record columns of a calling response and of its follow-up."""

from __future__ import annotations

import pytest

from loadtest.protocol.dialects import GA, PREVIEW
from loadtest.protocol.targets import Target
from loadtest.records.schema import SessionRecord
from loadtest.session.classifier import classify
from loadtest.session.function_calls import (
    DEFAULT_OUTPUT,
    ChainLink,
    FollowUp,
    ToolSchemas,
    check_arguments,
    follow_up_of,
    plan_follow_up,
)
from loadtest.session.recording import RecordBuilder
from loadtest.session.scenario import Scenario, ToolReply, Turn
from loadtest.session.tracker import ResponseTracker
from tests.session.seq import Seq, tone

DIALECTS = pytest.mark.parametrize("dialect", [GA, PREVIEW], ids=["ga", "preview"])
LOOKUP = {
    "type": "function",
    "name": "lookup_order",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
}
HOURS = {
    "type": "function",
    "name": "store_hours",
    "parameters": {"type": "object", "properties": {"day": {"enum": ["saturday", "sunday"]}}, "required": ["day"]},
}
SCHEMAS = ToolSchemas([LOOKUP, HOURS])
TABLE = {
    "lookup_order": ToolReply('{"status": "shipped"}', 300.0),
    "store_hours": ToolReply('{"open": "10-18"}', 120.0),
}
ORDER = '{"order_id": "A12345"}'
SATURDAY = '{"day": "saturday"}'


def _calls(dialect, calls: list[tuple[str, str]], *, done: bool = True, trigger: float = 0.0) -> tuple[Seq, float]:
    """A response making ``calls`` (name, arguments) one after the other, and ``response.done`` completed."""
    seq = Seq(dialect, tool_schemas=SCHEMAS)
    seq.turn(t_trigger=trigger)
    seq.created(trigger + 0.1)
    t = trigger + 0.2
    for index, (name, arguments) in enumerate(calls):
        t = seq.call(t, index, name, arguments)
    if done:
        t += 0.01
        seq.done(t, output=[seq.call_item(i, n, a, "completed") for i, (n, a) in enumerate(calls)])
    return seq, t


def _plan(tracker: ResponseTracker, *, depth: int = 0, limit: int = 4) -> FollowUp | None:
    reason = classify(tracker.facts())[1]
    return plan_follow_up(tracker.calls, reason, status=tracker.status, out_of_band=tracker.out_of_band,
                          depth=depth, limit=limit, tools=TABLE)  # fmt: skip


@DIALECTS
def test_a_single_call_is_recorded_and_answered_from_the_tool_table(dialect) -> None:
    seq, _ = _calls(dialect, [("lookup_order", ORDER)])
    (tracker,) = seq.finished
    (call,) = tracker.calls.calls
    assert (call.item_id, call.call_id, call.name, call.arguments) == ("fc_0", "call_0", "lookup_order", ORDER)
    assert call.valid and call.done and tracker.function_calls == 1
    assert tracker.calls.t_first_delta == pytest.approx(0.21) and tracker.t_first_output == pytest.approx(0.21)
    plan = _plan(tracker)
    assert plan == FollowUp((("call_0", '{"status": "shipped"}'),), 300.0, call.t_done)


@DIALECTS
def test_parallel_calls_are_all_answered_before_one_response_create(dialect) -> None:
    seq, _ = _calls(dialect, [("lookup_order", ORDER), ("store_hours", SATURDAY), ("unlisted", "{}")])
    (tracker,) = seq.finished
    assert tracker.function_calls == 3 and tracker.calls.names == ["lookup_order", "store_hours", "unlisted"]
    plan = _plan(tracker)
    assert plan is None  # 'unlisted' is no tool of the session: invalid arguments, the chain is broken
    seq, _ = _calls(dialect, [("lookup_order", ORDER), ("store_hours", SATURDAY)])
    plan = _plan(seq.finished[0])
    assert plan is not None
    # one output per call in output order; the tools run in parallel: the slowest one's latency
    assert plan.outputs == (("call_0", '{"status": "shipped"}'), ("call_1", '{"open": "10-18"}'))
    assert plan.latency_ms == 300.0
    assert plan.t_arguments_done == max(c.t_done for c in seq.finished[0].calls.calls)


@DIALECTS
def test_a_function_the_tool_table_does_not_name_gets_the_default_output_at_once(dialect) -> None:
    seq = Seq(dialect)  # no session tools known: arguments judged as a JSON object only
    seq.turn()
    seq.created(0.1)
    t = seq.call(0.2, 0, "anything", '{"a": 1}')
    seq.done(t + 0.01, output=[seq.call_item(0, "anything", '{"a": 1}', "completed")])
    plan = _plan(seq.finished[0])
    assert plan is not None and plan.outputs == (("call_0", DEFAULT_OUTPUT),) and plan.latency_ms == 0.0


@DIALECTS
def test_a_chain_is_followed_up_to_its_limit(dialect) -> None:
    seq, _ = _calls(dialect, [("lookup_order", ORDER)])
    tracker = seq.finished[0]
    assert _plan(tracker, depth=0, limit=2) is not None
    assert _plan(tracker, depth=1, limit=2) is not None
    assert _plan(tracker, depth=2, limit=2) is None  # the limit: the last follow-up's calls are not answered
    assert _plan(tracker, depth=0, limit=0) is None  # 0: calls are never answered
    # the scenario's limit wins over the config's default
    tracker.chain = ChainLink("resp_0", 2, 0.0, 0.0, 0.0)
    scenario = Scenario("s", [Turn("text")], tools=TABLE, tool_chain_limit=3)
    assert follow_up_of(tracker, "", scenario, default_limit=1) is not None
    assert follow_up_of(tracker, "", Scenario("s", [Turn("text")], tools=TABLE), default_limit=2) is None


@DIALECTS
@pytest.mark.parametrize("case", ["cut", "invalid", "never_done", "server_error", "cancelled", "out_of_band"])
def test_a_broken_or_cancelled_call_leaves_no_follow_up(dialect, case) -> None:
    seq = Seq(dialect, tool_schemas=SCHEMAS)
    tracker = seq.turn()
    seq.created(0.1)
    if case == "cut":
        t = seq.call(0.2, 0, "lookup_order", ORDER[:7], status="incomplete")
        cut = seq.call_item(0, "lookup_order", ORDER[:7], "incomplete")
        seq.done(t, "incomplete", "max_output_tokens", output=[cut])
    elif case == "invalid":
        t = seq.call(0.2, 0, "lookup_order", '{"order_id": 7}')
        seq.done(t, output=[seq.call_item(0, "lookup_order", '{"order_id": 7}', "completed")])
    elif case == "never_done":
        t = seq.call(0.2, 0, "lookup_order", ORDER, done=False)
        seq.router.expire(t + 6.0)
    elif case == "server_error":
        t = seq.call(0.2, 0, "lookup_order", ORDER)
        seq.done(t, "failed", error={"type": "server_error", "code": "server_error"},
                 output=[seq.call_item(0, "lookup_order", ORDER, "completed")])  # fmt: skip
    elif case == "cancelled":  # barge-in or response.cancel mid-arguments
        t = seq.call(0.2, 0, "lookup_order", ORDER[:7], status="incomplete")
        seq.done(t, "cancelled", "turn_detected", output=[seq.call_item(0, "lookup_order", ORDER[:7], "incomplete")])
    else:
        tracker.out_of_band = True
        t = seq.call(0.2, 0, "lookup_order", ORDER)
        seq.done(t, output=[seq.call_item(0, "lookup_order", ORDER, "completed")])
    assert seq.finished == [tracker]
    assert _plan(tracker) is None


@DIALECTS
def test_a_response_without_calls_builds_no_call_state(dialect) -> None:
    seq = Seq(dialect)
    tracker = seq.turn()
    t = seq.speak(0.3, [tone(200)] * 4)
    seq.finish_ok(t)
    assert tracker.calls is None and tracker.function_calls == 0 and tracker.chain is None
    assert _plan(tracker) is None


def test_arguments_are_checked_against_the_tools_parameters() -> None:
    assert check_arguments(SCHEMAS, "lookup_order", ORDER)
    assert not check_arguments(SCHEMAS, "lookup_order", '{"order_id": 1}')
    assert not check_arguments(SCHEMAS, "store_hours", '{"day": "monday"}')  # not in the enum
    assert not check_arguments(SCHEMAS, "nope", ORDER)  # a function the session does not have
    assert not check_arguments(SCHEMAS, "lookup_order", '{"order_id": "A1"')  # cut
    unknown = ToolSchemas(None)  # the session's tools are not known to the client: a JSON object
    assert check_arguments(unknown, "whatever", "{}") and not check_arguments(unknown, "whatever", "[1]")
    loose = ToolSchemas([{"type": "function", "name": "free"}])  # a tool without parameters
    assert check_arguments(loose, "free", '{"x": 1}') and not check_arguments(loose, "free", '"x"')


@DIALECTS
def test_the_record_columns_of_a_calling_response_and_its_follow_up(dialect) -> None:
    builder = RecordBuilder(Target(base_url="ws://127.0.0.1:1"), "s", run_id="r", worker_id="", user_id=1, secrets=())
    srec = SessionRecord()
    seq, t = _calls(dialect, [("lookup_order", ORDER), ("store_hours", SATURDAY)], trigger=10.0)
    calling = seq.finished[0]
    rec = builder.response(calling, *classify(calling.facts()), srec)
    assert (rec.outcome, rec.function_calls, rec.function_names) == ("completed", 2, ["lookup_order", "store_hours"])
    assert rec.function_args_valid == [True, True]
    assert rec.function_args_ms == [pytest.approx((c.t_done - 10.0) * 1000, abs=0.01) for c in calling.calls.calls]
    assert rec.chain_depth == 0 and rec.parent_response_id is None and rec.final_answer_ms is None
    plan = _plan(calling)
    # the follow-up: asked 300 ms (the tools' latency) after the calls, speaks 0.4 s after it is asked
    follow = Seq(dialect, rid="resp_2")
    tracker = follow.turn(t_trigger=t + 0.3)
    tracker.chain = ChainLink.after(calling.response_id, calling.chain, calling.t_trigger, plan)
    end = follow.speak(t + 0.7, [tone(200)] * 4)
    follow.finish_ok(end)
    rec = builder.response(tracker, *classify(tracker.facts()), srec)
    assert (rec.outcome, rec.chain_depth, rec.parent_response_id) == ("completed", 1, "resp_1")
    assert rec.function_calls == 0 and rec.tool_latency_ms == 300.0
    assert rec.tool_round_trip_ms == pytest.approx((tracker.t_first_output - plan.t_arguments_done) * 1000, abs=0.01)
    assert rec.final_answer_ms == pytest.approx((tracker.t_first_output - 10.0) * 1000, abs=0.01)  # from the turn
    # a turn's only response, no calls: its final answer is its own first output
    plain = Seq(dialect)
    only = plain.turn(t_trigger=5.0)
    plain.finish_ok(plain.speak(5.25, [tone(200)] * 4))
    rec = builder.response(only, *classify(only.facts()), srec)
    assert rec.final_answer_ms == pytest.approx(260.0) and rec.chain_depth == 0 and rec.tool_round_trip_ms is None
