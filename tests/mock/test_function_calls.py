"""Function calling in the mock: forced and automatic calls, the service's event order in both
dialects, arguments valid for the tool's schema and deterministic under --seed, the round trip to a
spoken follow-up, parallel calls, and the tool faults agreeing with the truth log."""

from __future__ import annotations

import itertools
import json
import time

import jsonschema
import pytest

from loadtest.protocol.dialects import get_dialect
from tests.mock.schema_check import validate
from tests.mock.wsclient import Client, dialect_client, response_events

LOOKUP = {
    "type": "function",
    "name": "lookup_order",
    "description": "Find an order",
    "parameters": {
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "minLength": 6, "maxLength": 12},
            "channel": {"type": "string", "enum": ["web", "phone", "store"]},
            "items": {"type": "integer", "minimum": 1, "maximum": 9},
            "express": {"type": "boolean"},
            "since": {"type": "string", "format": "date"},
        },
        "required": ["order_id", "channel", "items"],
        "additionalProperties": False,
    },
}
WEATHER = {
    "type": "function",
    "name": "store_hours",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
FAST = {"latency.created_ms": [5, 10], "latency.first_delta_ms": [5, 10], "audio.speed": 20.0,
        "tools.arguments_delta_ms": 2.0}  # fmt: skip


def _tools_session(dialect: str, tools: list[dict], tool_choice, **extra) -> dict:
    d = get_dialect(dialect)
    event = d.session_update(turn_detection=None, output_modalities=["audio"])
    event["session"]["tools"] = tools
    event["session"]["tool_choice"] = tool_choice
    event["session"].update(extra)
    return event


def _ask(c: Client, dialect: str, text: str = "Where is my order?") -> list[dict]:
    d = get_dialect(dialect)
    c.send(d.user_text_item(text))
    c.send(d.response_create())
    return response_events(c)


def _calling_order(dialect: str, calls: int) -> list[str]:
    d = get_dialect(dialect)
    per_call = ["response.output_item.added", d.item_added[0], "response.function_call_arguments.delta",
                "response.function_call_arguments.done"]  # fmt: skip
    if d.is_ga:
        per_call.append("conversation.item.done")
    per_call.append("response.output_item.done")
    return ["response.created", *per_call * calls, "response.done"]


def _squash(types: list[str]) -> list[str]:
    """Consecutive argument deltas as one entry (their count varies)."""
    out: list[str] = []
    for t in types:
        if not (out and t == out[-1] == "response.function_call_arguments.delta"):
            out.append(t)
    return out


@pytest.mark.parametrize("dialect", ["ga", "preview"])
@pytest.mark.parametrize("choice", ["required", "named"])
def test_forced_call_event_order_arguments_and_spoken_follow_up(mock_server, dialect: str, choice: str) -> None:
    mock = mock_server(overrides=FAST)
    d = get_dialect(dialect)
    tool_choice = "required" if choice == "required" else (
        {"type": "function", "name": "lookup_order"} if d.is_ga else "lookup_order")  # fmt: skip
    with dialect_client(mock.url, dialect) as c:
        c.recv()
        c.send(_tools_session(dialect, [WEATHER, LOOKUP] if choice == "named" else [LOOKUP], tool_choice))
        c.until(d.session_updated)
        events = _ask(c, dialect)
        for event in events:
            validate(event, dialect)
        types = [e["type"] for e in events if e["type"] not in ("conversation.item.added", "conversation.item.done",
                                                                 "conversation.item.created")
                 or e.get("item", {}).get("type") == "function_call"]  # fmt: skip
        assert _squash(types) == _calling_order(dialect, 1)
        deltas = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
        done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
        added = next(e for e in events if e["type"] == "response.output_item.added")["item"]
        response = events[-1]["response"]
        assert added["type"] == "function_call" and added["name"] == "lookup_order" and added["arguments"] == ""
        assert "".join(e["delta"] for e in deltas) == done["arguments"]
        assert {e["call_id"] for e in deltas} == {done["call_id"]} == {added["call_id"]}
        assert len(deltas) > 1  # streamed, not sent whole
        jsonschema.validate(json.loads(done["arguments"]), LOOKUP["parameters"])
        assert response["status"] == "completed"
        assert [(o["type"], o["call_id"], o["arguments"], o["status"]) for o in response["output"]] == [
            ("function_call", done["call_id"], done["arguments"], "completed")
        ]
        # the caller answers the call; the follow-up speaks
        c.send({"type": "conversation.item.create", "item": {"type": "function_call_output",
                "call_id": done["call_id"], "output": '{"status": "shipped"}'}})  # fmt: skip
        item_added = c.until(lambda e: e["type"] == d.item_added[0])
        assert item_added["item"]["type"] == "function_call_output"
        c.send(d.response_create())
        follow = response_events(c)
        for event in follow:
            validate(event, dialect)
        answer = follow[-1]["response"]
        assert answer["status"] == "completed" and answer["output"][0]["type"] == "message"
        assert any(e["type"] == d.output_audio_delta for e in follow)
    rows = mock.truth()
    responses = [r for r in rows if r["kind"] == "response"]
    assert responses[0]["function_calls"] == ["lookup_order"] and responses[0]["call_ids"] == [done["call_id"]]
    assert responses[1]["follow_up_of"] == responses[0]["response_id"] and responses[1]["function_calls"] == []
    assert responses[1]["answered_call_ids"] == [done["call_id"]]
    assert responses[0]["t_first_arguments"] <= call_row_time(rows) and responses[0]["t_first_audio"] is None
    call_row = next(r for r in rows if r["kind"] == "function_call")
    assert call_row["arguments"] == done["arguments"] and call_row["done"] and call_row["fault"] == "none"
    assert call_row["why"] == ("required" if choice == "required" else "named")
    output_row = next(r for r in rows if r["kind"] == "function_call_output")
    assert output_row["known_call"] and output_row["response_id"] == responses[0]["response_id"]


def call_row_time(rows: list[dict]) -> float:
    return next(r["t_arguments_done"] for r in rows if r["kind"] == "function_call")


def test_response_create_before_the_calls_response_done_is_refused(mock_server) -> None:
    mock = mock_server(overrides={**FAST, "tools.arguments_delta_ms": 30.0})
    with dialect_client(mock.url, "ga") as c:
        c.recv()
        c.send(_tools_session("ga", [LOOKUP], "required"))
        c.until("session.updated")
        c.send(get_dialect("ga").user_text_item("Where is my order?"))
        c.send({"type": "response.create"})
        delta = c.until("response.function_call_arguments.delta")
        c.send({"type": "conversation.item.create", "item": {"type": "function_call_output",
                "call_id": delta["call_id"], "output": "{}"}})  # fmt: skip
        c.send({"type": "response.create"})
        error = c.until("error")
        assert error["error"]["code"] == "conversation_already_has_active_response"
        done = c.until("response.done")
        assert done["response"]["status"] == "completed"


def test_arguments_are_deterministic_under_the_seed(mock_server) -> None:
    def first_arguments(seed: int) -> str:
        mock = mock_server(seed=seed, overrides=FAST)
        with dialect_client(mock.url, "ga") as c:
            c.recv()
            c.send(_tools_session("ga", [LOOKUP], "required"))
            c.until("session.updated")
            events = _ask(c, "ga")
        mock.stop()
        return next(e for e in events if e["type"] == "response.function_call_arguments.done")["arguments"]

    seven = first_arguments(7)
    assert first_arguments(7) == seven != first_arguments(8)


def test_auto_follows_the_profile_rules_and_none_never_calls(mock_server) -> None:
    mock = mock_server(overrides={**FAST, "tools.rules": ["order (status|number) -> lookup_order",
                                                          "open|close -> store_hours"]})  # fmt: skip
    with dialect_client(mock.url, "ga") as c:
        c.recv()
        c.send(_tools_session("ga", [LOOKUP, WEATHER], "auto"))
        c.until("session.updated")
        names = []
        for text in ("What is my order status?", "When do you close?", "Tell me a joke."):
            output = _ask(c, "ga", text)[-1]["response"]["output"]
            names.append([o.get("name") for o in output if o["type"] == "function_call"])
        assert names == [["lookup_order"], ["store_hours"], []]
        c.send({"type": "session.update", "session": {"type": "realtime", "tool_choice": "none"}})
        c.until("session.updated")
        output = _ask(c, "ga", "What is my order status?")[-1]["response"]["output"]
        assert [o["type"] for o in output] == ["message"]
    whys = [r["why"] for r in mock.truth() if r["kind"] == "function_call"]
    assert whys == ["rule", "rule"]


def test_auto_with_call_probability_one_calls_every_time(mock_server) -> None:
    mock = mock_server(overrides={**FAST, "tools.call_probability": 1.0})
    with dialect_client(mock.url, "preview") as c:
        c.recv()
        c.send(_tools_session("preview", [WEATHER], "auto"))
        c.until("session.updated")
        for _ in range(2):
            output = _ask(c, "preview", "Hello")[-1]["response"]["output"]
            assert [o["name"] for o in output] == ["store_hours"]


@pytest.mark.parametrize("dialect", ["ga", "preview"])
def test_parallel_calls_where_parallel_tool_calls_allows(mock_server, dialect: str) -> None:
    mock = mock_server(overrides={**FAST, "tools.calls_per_response": [3, 3]})
    d = get_dialect(dialect)
    with dialect_client(mock.url, dialect) as c:
        c.recv()
        c.send(_tools_session(dialect, [LOOKUP, WEATHER], "required"))
        c.until(d.session_updated)
        events = _ask(c, dialect)
        for event in events:
            validate(event, dialect)
        output = events[-1]["response"]["output"]
        assert len(output) == 3 and len({o["call_id"] for o in output}) == 3
        dones = [e for e in events if e["type"] == "response.function_call_arguments.done"]
        assert [e["output_index"] for e in dones] == [0, 1, 2]
        types = [e["type"] for e in events if "conversation.item" not in e["type"]]
        assert _squash(types) == [t for t in _calling_order(dialect, 3) if "conversation.item" not in t]
        for o in output:  # every call answered, then one response.create for the follow-up
            c.send({"type": "conversation.item.create", "item": {"type": "function_call_output",
                    "call_id": o["call_id"], "output": "{}"}})  # fmt: skip
        c.send(d.response_create())
        assert response_events(c)[-1]["response"]["output"][0]["type"] == "message"
        if d.is_ga:  # parallel_tool_calls false: one call
            c.send({"type": "session.update", "session": {"type": "realtime", "parallel_tool_calls": False}})
            c.until("session.updated")
            assert len(_ask(c, dialect)[-1]["response"]["output"]) == 1
    follow_up = [r for r in mock.truth() if r["kind"] == "response"][1]
    assert follow_up["answered_call_ids"] == [o["call_id"] for o in output]


@pytest.mark.parametrize("fault", ["tool_arguments_cut", "tool_server_error", "tool_call_hang", "tool_slow_arguments"])
def test_tool_faults_show_on_the_wire_as_the_truth_log_says(mock_server, fault: str) -> None:
    overrides = {**FAST, f"faults.{fault}.rate": 1.0}
    if fault == "tool_slow_arguments":  # a few slow deltas are enough
        overrides.update({"tools.delta_chars": [16, 24], "faults.tool_slow_arguments.delta_ms": [300, 320]})
    mock = mock_server(overrides=overrides)
    with dialect_client(mock.url, "ga") as c:
        c.recv()
        c.send(_tools_session("ga", [LOOKUP], "required"))
        c.until("session.updated")
        c.send(get_dialect("ga").user_text_item("Where is my order?"))
        c.send({"type": "response.create"})
        start = len(c.events)
        if fault == "tool_call_hang":
            c.until("response.function_call_arguments.delta")
            with pytest.raises(TimeoutError):
                c.until("response.done", timeout=1.5)
            c.send({"type": "response.cancel"})
        c.until("response.done")
        events = c.events[start:]
    for event in events:
        validate(event, "ga")
    response = events[-1]["response"]
    deltas = [e for e in events if e["type"] == "response.function_call_arguments.delta"]
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    sent = "".join(e["delta"] for e in deltas)
    assert done["arguments"] == sent == response["output"][0]["arguments"]
    rows = mock.truth()
    row = next(r for r in rows if r["kind"] == "response")
    call = next(r for r in rows if r["kind"] == "function_call")
    if fault == "tool_arguments_cut":
        assert response["status"] == "incomplete" and response["status_details"]["reason"] == "max_output_tokens"
        assert response["output"][0]["status"] == "incomplete"
        with pytest.raises(json.JSONDecodeError):
            json.loads(sent)
        assert row["fault"] == fault and call["arguments_sent"] == sent and not call["done"]
        assert call["arguments"].startswith(sent) and call["arguments"] != sent
    elif fault == "tool_server_error":
        assert response["status"] == "failed" and response["status_details"]["error"]["code"] == "server_error"
        json.loads(sent)
        assert row["fault"] == fault and call["done"]
    elif fault == "tool_call_hang":
        assert response["status"] == "cancelled" and response["output"][0]["status"] == "incomplete"
        # as for `hang`, the truth row is written when the call hangs; the cancel changes nothing
        assert row["fault"] == call["fault"] == fault and not call["done"]
    else:
        assert response["status"] == "completed"
        times = [t for e, t in zip(c.events, c.arrivals, strict=True) if e["type"] == deltas[0]["type"]]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= 0.25 and row["params"]["delta_ms"] >= 300
        assert row["fault"] == fault and call["done"]


def test_cancel_mid_call_ends_the_call_incomplete(mock_server) -> None:
    mock = mock_server(overrides={**FAST, "tools.arguments_delta_ms": 100.0})
    with dialect_client(mock.url, "preview") as c:
        c.recv()
        c.send(_tools_session("preview", [LOOKUP], "required"))
        c.until("session.updated")
        c.send(get_dialect("preview").user_text_item("Where is my order?"))
        c.send({"type": "response.create"})
        c.until("response.function_call_arguments.delta")
        time.sleep(0.05)
        c.send({"type": "response.cancel"})
        events = response_events(c)
    for event in events:
        validate(event, "preview")
    response = events[-1]["response"]
    assert response["status"] == "cancelled"
    assert [e["type"] for e in events[-3:]] == ["response.function_call_arguments.done", "response.output_item.done",
                                                "response.done"]  # fmt: skip
    assert response["output"][0]["status"] == "incomplete"
    assert next(r for r in mock.truth() if r["kind"] == "response")["fault"] == "client_cancelled"


def test_a_fixture_rule_calls_on_the_recognised_audio(mock_server) -> None:
    from loadtest.audio.fixtures import load_pcm
    from loadtest.audio.frames import encode_appends

    rules = ["fixture:medium_order_status -> lookup_order", "store close -> store_hours"]
    mock = mock_server(overrides={**FAST, "tools.rules": rules})
    with dialect_client(mock.url, "ga") as c:
        c.recv()
        c.send(_tools_session("ga", [LOOKUP, WEATHER], "auto", audio={"input": {"format": {"type": "audio/pcmu"},
                              "turn_detection": None}}))  # fmt: skip
        c.until("session.updated")
        names = []
        for fixture in ("medium_order_status", "medium_store_hours", "short_yes"):
            for message in encode_appends(load_pcm(fixture), 100, "g711_ulaw").messages:
                c.ws.send(message.decode())
            c.send({"type": "input_audio_buffer.commit"})
            c.send({"type": "response.create"})
            output = response_events(c)[-1]["response"]["output"]
            names.append([o.get("name") for o in output if o["type"] == "function_call"])
    # the first by its fixture; the second by its transcript ("... downtown store close ..."); the third speaks
    assert names == [["lookup_order"], ["store_hours"], []]
