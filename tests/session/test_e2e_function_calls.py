"""Function calls through the session client (threads, no Locust) against the mock: a server-VAD
turn's call answered after the tool's latency with one function_call_output and one response.create,
and a chain limit of 0 that records the call and answers nothing."""

from __future__ import annotations

import pytest

from loadtest.protocol.dialects import GA
from loadtest.session.scenario import Scenario, ToolReply, Turn
from tests.session.helpers import run_session

pytestmark = pytest.mark.e2e

SESSION = {
    "type": "realtime",
    "tools": [
        {
            "type": "function",
            "name": "lookup_order",
            "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]},
        }
    ],
    "tool_choice": "required",
}
TABLE = {"lookup_order": ToolReply('{"status": "shipped"}', 150.0)}


def _sent(timeline: list[dict]) -> list[dict]:
    return [e for e in timeline if e["dir"] == "out" and e["type"] != GA.client_audio_append]


def test_a_server_vad_turns_call_is_answered_after_the_tools_latency(fast_mock) -> None:
    timeline: list[dict] = []
    scenario = Scenario("tools", [Turn("server_vad", "short_hello")], session=SESSION, tools=TABLE)
    sink, _ = run_session(fast_mock.url, scenario, observer=timeline.append)
    calling, follow = sorted(sink.responses, key=lambda r: r.chain_depth)
    assert (calling.trigger, calling.outcome, calling.function_calls, calling.function_names) == (
        "server_vad", "completed", 1, ["lookup_order"],
    )  # fmt: skip
    assert calling.function_args_valid == [True] and calling.final_answer_ms is None
    assert (follow.chain_depth, follow.parent_response_id, follow.outcome) == (1, calling.response_id, "completed")
    assert follow.audio_ms > 0 and follow.tool_latency_ms == 150.0 and follow.tool_round_trip_ms >= 150.0
    sent = _sent(timeline)
    assert [e["type"] for e in sent][-2:] == [GA.client_item_create, GA.client_response_create]
    output_at = sent[-2]["t"]
    assert output_at - calling.t_done >= 0.15  # the tool's latency, counted from the calling response's done
    assert follow.t_trigger >= output_at


def test_a_chain_limit_of_zero_records_the_call_and_answers_nothing(fast_mock) -> None:
    timeline: list[dict] = []
    scenario = Scenario("tools", [Turn("text")], session=SESSION, tools=TABLE, tool_chain_limit=0)
    sink, _ = run_session(fast_mock.url, scenario, observer=timeline.append)
    (calling,) = sink.responses
    assert calling.function_calls == 1 and calling.outcome == "completed" and calling.chain_depth == 0
    # the user's text item and its response.create only: no function_call_output, no follow-up
    assert [e["type"] for e in _sent(timeline)].count(GA.client_item_create) == 1
    assert [e["type"] for e in _sent(timeline)].count(GA.client_response_create) == 1
