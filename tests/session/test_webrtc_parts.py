"""The WebRTC transport's parts without a call: the providers' set-up forms, the answer's reassembly
into the events the session core reads, the reasons of a failed set-up, --transport's checks."""

from __future__ import annotations

import base64
import sys

import orjson
import pytest

from loadtest.records.schema import FAILED, REASONS
from loadtest.session import rtc_calls
from loadtest.session.classifier import ENDED_HANDSHAKE, ResponseFacts, Thresholds, classify
from loadtest.session.rtc_answer import AnswerStream


def test_openai_calls_one_multipart_request_with_the_session() -> None:
    form = rtc_calls.call_form("wss://api.openai.com/v1/realtime?model=gpt-realtime")
    assert form.provider == "openai"
    assert form.calls_url == "https://api.openai.com/v1/realtime/calls"
    assert form.client_secrets_url is None
    body, content_type = rtc_calls.multipart_offer("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n", form.model)
    boundary = content_type.split("boundary=")[1]
    assert content_type.startswith("multipart/form-data; ")
    text = body.decode()
    assert f"--{boundary}\r\n" in text and text.endswith(f"--{boundary}--\r\n")
    assert 'name="sdp"' in text and "o=- 1 1 IN IP4 127.0.0.1" in text
    assert 'name="session"' in text and '{"type":"realtime","model":"gpt-realtime"}' in text


def test_azure_takes_an_ephemeral_key_first_and_keeps_its_host() -> None:
    form = rtc_calls.call_form("wss://res.openai.azure.com/openai/v1/realtime?model=my-deploy")
    assert form.provider == "azure"
    assert form.client_secrets_url == "https://res.openai.azure.com/openai/v1/realtime/client_secrets"
    assert form.calls_url == "https://res.openai.azure.com/openai/v1/realtime/calls"
    assert orjson.loads(rtc_calls.client_secret_body(form.model)) == {
        "session": {"type": "realtime", "model": "my-deploy"}
    }
    assert rtc_calls.client_secret_value(b'{"value":"ek_abc","expires_at":1}') == "ek_abc"
    assert rtc_calls.client_secret_value(b'{"client_secret":{"value":"ek_old"}}') == "ek_old"
    assert rtc_calls.client_secret_value(b'{"error":{"message":"no"}}') is None
    # the preview path of a deployment maps onto the GA calls endpoint; a loopback mock stays http
    preview = rtc_calls.call_form("ws://127.0.0.1:9/openai/realtime?api-version=2025-04-01-preview&deployment=d")
    assert preview.calls_url == "http://127.0.0.1:9/openai/v1/realtime/calls" and preview.model == "d"


def test_a_url_with_no_realtime_path_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="no WebRTC calls endpoint"):
        rtc_calls.call_form("wss://gateway.example/custom/socket")


def test_refusals_keep_the_upgrade_reasons_where_the_status_means_the_same() -> None:
    assert rtc_calls.refusal_reason(401) is None and rtc_calls.refusal_reason(503) is None
    assert rtc_calls.refusal_reason(429) is None
    assert rtc_calls.refusal_reason(400) == rtc_calls.SDP_REJECTED
    assert rtc_calls.refusal_reason(415) == rtc_calls.SDP_REJECTED
    for reason in rtc_calls.REASONS:
        assert REASONS[reason] == FAILED
        facts = ResponseFacts(ended=ENDED_HANDSHAKE, handshake_status=201, handshake_failure=reason)
        assert classify(facts, Thresholds()) == (FAILED, reason)
    line = rtc_calls.error_line(400, b'{"error":{"message":"bad offer","code":"x"}}', "realtime/calls")
    assert line == "realtime/calls answered HTTP 400: bad offer"


class Collect:
    def __init__(self) -> None:
        self.got: list[tuple[dict, float]] = []

    def __call__(self, data: bytes, t: float) -> None:
        self.got.append((orjson.loads(data), t))

    def types(self) -> list[str]:
        return [e["type"] for e, _ in self.got]


def _ev(kind: str, **fields: object) -> bytes:
    return orjson.dumps({"type": kind, **fields})


def test_audio_is_the_playing_response_and_its_done_waits_for_the_audio_end() -> None:
    out = Collect()
    answer = AnswerStream("response.output_audio.delta", out)
    answer.audio(b"\x00\x00" * 480, 0.5, silent=True)  # the idle line before the answer
    answer.event(_ev("response.created", response={"id": "resp_1"}), 1.0)
    answer.event(
        _ev("response.output_item.added", response_id="resp_1", item={"id": "item_1", "type": "message"}), 1.01
    )
    answer.audio(b"\x00\x00" * 480, 0.98, silent=True)
    answer.audio(b"\x07\x00" * 480, 1.015)  # the answer's first packet, ahead of its started event
    answer.event(_ev("output_audio_buffer.started", response_id="resp_1"), 1.02)
    answer.audio(b"\x02\x00" * 480, 1.05)
    answer.event(_ev("response.done", response={"id": "resp_1", "status": "completed"}), 1.06)  # generated
    answer.audio(b"\x03\x00" * 480, 1.07)  # still playing
    answer.event(_ev("output_audio_buffer.stopped", response_id="resp_1"), 1.30)
    answer.audio(b"\x00\x00" * 480, 1.32, silent=True)  # idle again
    assert answer.idle_packets == 3
    assert out.types() == [
        "response.created",
        "response.output_item.added",
        "output_audio_buffer.started",
        "response.output_audio.delta",
        "response.output_audio.delta",
        "rtload.response.generated",  # the done came (deadline met) and waits for the audio
        "response.output_audio.delta",
        "output_audio_buffer.stopped",
        "response.done",
    ]
    first, t = out.got[3]
    assert (first["response_id"], first["item_id"], t) == ("resp_1", "item_1", 1.015)  # ttfa: the first packet
    assert base64.b64decode(first["delta"]) == b"\x07\x00" * 480
    assert base64.b64decode(out.got[4][0]["delta"]) == b"\x02\x00" * 480
    assert out.got[5][1] == 1.06 and out.got[8][1] == 1.30  # the response ends when its audio did


def test_a_held_done_goes_after_the_hold_without_packets_and_at_the_end() -> None:
    out = Collect()
    answer = AnswerStream("response.audio.delta", out, hold_s=2.0)
    answer.event(_ev("output_audio_buffer.started", response_id="r"), 0.0)
    answer.audio(b"\x00\x01" * 10, 0.1)
    answer.event(_ev("response.done", response={"id": "r"}), 0.2)
    assert answer.wait_s(1.1) == pytest.approx(1.0)
    answer.release_stale(1.5)  # a stall is not the end
    assert out.types()[-1] == "rtload.response.generated"
    answer.release_stale(2.2)
    assert out.types()[-1] == "response.done" and out.got[-1][1] == 0.2
    answer.event(_ev("output_audio_buffer.started", response_id="s"), 3.0)
    answer.event(_ev("response.done", response={"id": "s"}), 3.1)
    answer.release_all()  # the call ended
    assert out.types()[-1] == "response.done"
    # a text-only response (no buffer started) is not held
    answer.event(_ev("response.done", response={"id": "t"}), 4.0)
    assert out.got[-1][0]["response"]["id"] == "t"


def test_transport_option_checks_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from loadtest.locust.options import OptionError, check_transport

    with pytest.raises(OptionError, match="not known"):
        check_transport("carrier-pigeon", "openai", "pcm16")
    with pytest.raises(OptionError, match="Voice Live"):
        check_transport("webrtc", "voicelive", "pcm16")
    with pytest.raises(OptionError, match="pcm16"):
        check_transport("both", "azure", "g711_ulaw")
    monkeypatch.setitem(sys.modules, "aiortc", None)  # as when it is not installed (an import would fail)
    with pytest.raises(OptionError, match=r"needs the 'webrtc' extra .*realtime-loadtest\[webrtc\]"):
        check_transport("webrtc", "openai", "pcm16")
    check_transport("websocket", "voicelive", "g711_ulaw")  # nothing to check


def test_a_held_done_meets_the_deadline_and_leaves_the_idle_rule() -> None:
    from loadtest.session.tracker import ResponseTracker

    tracker = ResponseTracker()
    tracker.t_trigger = 0.0
    tracker.touch(5.0)
    assert tracker.deadline(4.0, 3.0) == 4.0  # trigger -> response.done, at most
    tracker.t_generated = 4.5  # the done came at 4.5 and waits for its real-time audio
    assert tracker.deadline(4.0, 3.0) == 8.0  # now only the idle rule: 3 s after the last event
