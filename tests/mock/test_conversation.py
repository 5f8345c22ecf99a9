"""Validation and conversation control, as the services answer them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from loadtest.protocol.dialects import GA, PREVIEW
from tests.mock.schema_check import validate
from tests.mock.wsclient import KEY, Client, append_events, azure_preview_url, openai_url, speechlike


def _ga(base: str) -> Client:
    c = Client(openai_url(base))
    c.recv()
    return c


def _preview(base: str) -> Client:
    c = Client(azure_preview_url(base), {"api-key": KEY})
    c.recv()
    return c


def _error(c: Client, dialect: str = "ga") -> dict:
    event = c.until("error")
    validate(event, dialect)
    return event["error"]


def _still_open(c: Client) -> None:
    c.send({"type": "input_audio_buffer.clear"})
    assert c.until("input_audio_buffer.cleared")["type"] == "input_audio_buffer.cleared"


@pytest.mark.parametrize(
    ("event", "code", "param"),
    [
        ({"type": "session.update", "session": {"instructions": "x"}}, "missing_required_parameter", "session.type"),
        (
            {"type": "session.update", "session": {"type": "realtime", "modalities": ["text"]}},
            "unknown_parameter",
            "session.modalities",
        ),
        (
            {"type": "session.update", "session": {"type": "realtime", "input_audio_format": "pcm16"}},
            "unknown_parameter",
            "session.input_audio_format",
        ),
        (
            {"type": "session.update", "session": {"type": "realtime", "bogus_field": 1}},
            "unknown_parameter",
            "session.bogus_field",
        ),
        (
            {
                "type": "session.update",
                "session": {"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}},
            },
            "integer_below_min_value",
            "session.audio.input.format.rate",
        ),
        ({"type": "transcription_session.update", "session": {}}, "invalid_value", "type"),
        ({"type": "response.create", "response": {"modalities": ["text"]}}, "unknown_parameter", "response.modalities"),
        ({"type": "response.create", "bogus": 1}, "unknown_parameter", "bogus"),
        ({"event_id": "x"}, "invalid_event", "type"),
    ],
)
def test_ga_rejects_like_the_service(shared_mock, event, code, param) -> None:
    with _ga(shared_mock.url) as c:
        c.send({**event, "event_id": "evt_client_1"} if "type" in event else event)
        error = _error(c)
        assert (error["code"], error["param"]) == (code, param)
        assert error["type"] == "invalid_request_error"
        if "type" in event:
            assert error["event_id"] == "evt_client_1"
        _still_open(c)


@pytest.mark.parametrize(
    ("event", "code", "param"),
    [
        ({"type": "session.update", "session": {"type": "realtime"}}, "unknown_parameter", "session.type"),
        (
            {"type": "session.update", "session": {"output_modalities": ["audio"]}},
            "unknown_parameter",
            "session.output_modalities",
        ),
        ({"type": "output_audio_buffer.clear"}, "invalid_value", "type"),
        (
            {"type": "response.create", "response": {"output_modalities": ["text"]}},
            "unknown_parameter",
            "response.output_modalities",
        ),
    ],
)
def test_preview_rejects_ga_names(shared_mock, event, code, param) -> None:
    with _preview(shared_mock.url) as c:
        c.send(event)
        error = _error(c, "preview")
        assert (error["code"], error["param"]) == (code, param)
        _still_open(c)


@pytest.mark.parametrize("dialect", ["ga", "preview"])
def test_binary_and_non_json_frames_do_not_close(shared_mock, dialect: str) -> None:
    with _ga(shared_mock.url) if dialect == "ga" else _preview(shared_mock.url) as c:
        c.ws.send(b"\x00\x01binary")
        error = _error(c, dialect)
        assert (error["code"], error["type"]) == ("invalid_event", "invalid_request_error")
        c.ws.send("{not json")
        error = _error(c, dialect)
        assert (error["code"], error["type"]) == ("invalid_json", "invalid_request_error")
        c.ws.send("[1, 2]")  # JSON, but not an object
        assert _error(c, dialect)["code"] == "invalid_event"
        _still_open(c)
        assert c.ws.close_code is None


def test_commit_under_100ms_is_empty(shared_mock) -> None:
    with _ga(shared_mock.url) as c:
        c.send({"type": "input_audio_buffer.commit"})
        error = _error(c)
        assert error["code"] == "input_audio_buffer_commit_empty" and "0.00ms" in error["message"]
        c.send(append_events(speechlike(0.05))[0])
        c.send({"type": "input_audio_buffer.commit"})
        assert _error(c)["code"] == "input_audio_buffer_commit_empty"
        c.send(append_events(speechlike(0.1))[0])
        c.send({"type": "input_audio_buffer.commit"})
        assert c.until("input_audio_buffer.committed")["previous_item_id"] is None


def _start(c: Client, dialect=GA, **kw) -> None:
    c.send(
        dialect.session_update(turn_detection=None) if dialect is GA else PREVIEW.session_update(turn_detection=None)
    )
    c.until("session.updated")
    c.send(dialect.user_text_item("hello"))
    c.send(dialect.response_create(**kw))
    c.until("response.created")


def test_second_response_while_active_is_refused_and_cancel_works(shared_mock) -> None:
    with _ga(shared_mock.url) as c:
        _start(c)
        c.send({"type": "response.create"})
        error = _error(c)
        assert error["code"] == "conversation_already_has_active_response"
        c.until("response.output_audio.delta")
        c.send({"type": "response.cancel"})
        done = c.until("response.done")
        validate(done, "ga")
        assert done["response"]["status"] == "cancelled"
        assert done["response"]["status_details"]["reason"] == "client_cancelled"
        assert done["response"]["output"][0]["status"] == "incomplete"
        c.send({"type": "response.cancel"})
        assert _error(c)["code"] == "response_cancel_not_active"
        # an out-of-band response may run beside the default one
        c.send(GA.response_create())
        c.until("response.created")
        c.send(GA.response_create(out_of_band=True))
        created = c.until("response.created")
        assert created["response"]["conversation_id"] is None
    rows = {r["response_id"]: r for r in shared_mock.truth() if r["kind"] == "response"}
    assert rows[done["response"]["id"]]["fault"] == "client_cancelled"


@pytest.mark.parametrize("dialect", ["ga", "preview"])
def test_barge_in_cancels_with_turn_detected(shared_mock, dialect: str) -> None:
    d = GA if dialect == "ga" else PREVIEW
    with _ga(shared_mock.url) if dialect == "ga" else _preview(shared_mock.url) as c:
        c.send(d.session_update(turn_detection="server_vad"))
        c.until("session.updated")
        c.send(d.user_text_item("hello"))
        c.send(d.response_create())
        first = c.until(d.output_audio_delta)
        start = len(c.events) - 1
        for event in append_events(speechlike(0.3)):
            c.send(event)
        c.until("input_audio_buffer.speech_started")
        done = c.until("response.done")
        for event in c.events:
            validate(event, dialect)
        response = done["response"]
        assert response["id"] == first["response_id"]
        assert response["status"] == "cancelled"
        assert response["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
        assert response["output"][0]["status"] == "incomplete"
        # the in-flight part and item are flushed before response.done, nothing of it after
        after = [t for t in c.types()[start:] if not t.endswith(".delta")]
        tail = [d.output_audio_done, d.output_audio_transcript_done, "response.content_part.done"]
        tail += (["conversation.item.done"] if d.is_ga else []) + ["response.output_item.done", "response.done"]
        assert after[after.index("input_audio_buffer.speech_started") + 1 :] == tail
        # the interrupting turn ends with its own response
        for event in append_events(np.zeros(24000, np.int16)):
            c.send(event)
        started = next(e for e in c.events if e["type"] == "input_audio_buffer.speech_started")
        stopped = c.until("input_audio_buffer.speech_stopped")
        assert stopped["item_id"] == started["item_id"]
        created = c.until("response.created")
        assert created["response"]["id"] != response["id"]
        second = c.until(lambda e: e["type"] == "response.done" and e["response"]["id"] == created["response"]["id"])
        assert second["response"]["status"] == "completed"
        for event in c.events:
            validate(event, dialect)
        own = [i for i, e in enumerate(c.events) if e.get("response_id") == response["id"]]
        assert own[-1] < c.events.index(done)  # nothing of the cancelled response after its response.done
    rows = {r["response_id"]: r for r in shared_mock.truth() if r["kind"] == "response"}
    assert rows[response["id"]]["fault"] == "turn_detected"
    assert rows[response["id"]]["dialect"] == dialect


def test_truncate(shared_mock) -> None:
    with _ga(shared_mock.url) as c:
        _start(c)
        done = c.until("response.done")
        item_id = done["response"]["output"][0]["id"]
        c.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 1500})
        truncated = c.until("conversation.item.truncated")
        validate(truncated, "ga")
        assert truncated["audio_end_ms"] == 1500 and truncated["item_id"] == item_id
        c.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 999999})
        assert _error(c)["param"] == "audio_end_ms"
        c.send({"type": "conversation.item.truncate", "item_id": "item_nope", "content_index": 0, "audio_end_ms": 1})
        assert _error(c)["code"] == "item_not_found"


def test_server_vad_without_create_response_waits_for_response_create(shared_mock) -> None:
    with _ga(shared_mock.url) as c:
        c.send(GA.session_update(turn_detection={"type": "server_vad", "create_response": False}))
        updated = c.until("session.updated")
        assert updated["session"]["audio"]["input"]["turn_detection"]["create_response"] is False
        pcm = np.concatenate([speechlike(0.6), np.zeros(14400, np.int16)])
        for event in append_events(pcm):
            c.send(event)
        c.until("conversation.item.done")
        c.send({"type": "input_audio_buffer.clear"})
        c.until("input_audio_buffer.cleared")
        assert "response.created" not in c.types()


def test_events_are_json_text_frames(shared_mock) -> None:
    with _ga(shared_mock.url) as c:
        c.ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
        raw = c.ws.recv(timeout=5)
        assert isinstance(raw, str) and json.loads(raw)["type"] == "input_audio_buffer.cleared"


@pytest.mark.parametrize("dialect", ["ga", "preview"])
def test_input_transcription_arrives_after_the_commit(shared_mock, dialect: str) -> None:
    d = GA if dialect == "ga" else PREVIEW
    with _ga(shared_mock.url) if dialect == "ga" else _preview(shared_mock.url) as c:
        c.send(d.session_update(turn_detection=None, transcription_model="whisper-1"))
        updated = c.until("session.updated")
        validate(updated, dialect)
        for event in append_events(speechlike(0.5)):
            c.send(event)
        c.send({"type": "input_audio_buffer.commit"})
        committed = c.until("input_audio_buffer.committed")
        done = c.until("conversation.item.input_audio_transcription.completed")
        validate(done, dialect)
        assert done["item_id"] == committed["item_id"] and done["transcript"]


def test_idle_timeout_triggers_a_commit_and_a_response(shared_mock) -> None:
    with _ga(shared_mock.url) as c:
        c.send(
            GA.session_update(output_modalities=["text"], turn_detection={"type": "server_vad", "idle_timeout_ms": 300})
        )
        c.until("session.updated")
        c.send(GA.user_text_item("hello"))
        c.send(GA.response_create())
        first = c.until("response.done")
        triggered = c.until("input_audio_buffer.timeout_triggered", timeout=5)
        validate(triggered, "ga")
        committed = c.until("input_audio_buffer.committed")
        assert committed["item_id"] == triggered["item_id"]
        second = c.until("response.done")
        assert second["response"]["id"] != first["response"]["id"]


def test_item_retrieve_and_delete(shared_mock) -> None:
    with _ga(shared_mock.url) as c:
        c.send(GA.user_text_item("hello"))
        item_id = c.until("conversation.item.done")["item"]["id"]
        c.send({"type": "conversation.item.retrieve", "item_id": item_id})
        retrieved = c.until("conversation.item.retrieved")
        validate(retrieved, "ga")
        assert retrieved["item"]["content"][0]["text"] == "hello"
        c.send({"type": "conversation.item.delete", "item_id": item_id})
        deleted = c.until("conversation.item.deleted")
        validate(deleted, "ga")
        c.send({"type": "conversation.item.retrieve", "item_id": item_id})
        assert _error(c)["code"] == "item_not_found"
