"""The classifier from hand-written event sequences in both dialects: every outcome and reason."""

from __future__ import annotations

import pytest

from loadtest.protocol.dialects import GA, PREVIEW
from loadtest.records.schema import REASONS
from loadtest.session.classifier import (
    ENDED_CLOSED,
    ENDED_HANDSHAKE,
    ResponseFacts,
    classify,
    handshake_reason,
    verdict,
)
from loadtest.session.config import Thresholds
from loadtest.session.function_calls import ChainLink, ToolSchemas
from loadtest.session.tracker import ResponseTracker
from tests.session.seq import Seq, silence, tone

DIALECTS = pytest.mark.parametrize("dialect", [GA, PREVIEW], ids=["ga", "preview"])
SEEN: set[str] = set()  # every reason some test produced (checked by the last test)
SENTENCE = "Sure, here is a short answer about the ocean for you today."  # 61 chars: needs >= 2.3 s


def expect(seq_or_facts, outcome: str, reason: str, thresholds: Thresholds | None = None) -> None:
    got = seq_or_facts.outcome(thresholds) if isinstance(seq_or_facts, Seq) else classify(seq_or_facts, thresholds)
    assert got == (outcome, reason)
    SEEN.add(reason)


def healthy(seq: Seq, ms_per_chunk: float = 200, chunks: int = 16) -> None:
    t = seq.speak(0.5, [tone(ms_per_chunk)] * chunks, transcript=SENTENCE)
    seq.finish_ok(t, SENTENCE)


# -- completed ------------------------------------------------------------------------------------
@DIALECTS
def test_healthy_audio_answer_is_completed_with_its_timings(dialect) -> None:
    seq = Seq(dialect)
    seq.turn(t_trigger=0.0)
    healthy(seq)
    expect(seq, "completed", "")
    tr = seq.finished[0]
    assert tr.response_id == "resp_1" and tr.item_id == "item_A"
    assert tr.t_created == 0.5 and tr.t_first_audio == pytest.approx(0.51)
    assert tr.audio_deltas == 16 and tr.analyzer.audio_ms == pytest.approx(3200)
    assert tr.transcript_text == SENTENCE and tr.usage["total_tokens"] == 30
    assert "audio" in tr.content_types


@DIALECTS
def test_text_answer_when_text_was_asked_is_completed(dialect) -> None:
    seq = Seq(dialect, wants_audio=False)
    seq.turn()
    seq.created(0.2)
    seq.part(0.21, kind="text")
    seq.text(0.3, "Hello")
    seq.done(0.4)
    expect(seq, "completed", "")
    assert seq.finished[0].t_first_text == 0.3 and seq.finished[0].text_chars == 5


@DIALECTS
def test_a_burst_ahead_of_real_time_is_not_a_stall(dialect) -> None:
    """Raw gaps between deltas are large, but the player always has audio: judged on the playback clock."""
    seq = Seq(dialect)
    seq.turn()
    seq.created(0.1)
    seq.part(0.11)
    seq.transcript(0.12, SENTENCE)
    for i in range(4):  # 4 bursts of 2 s of audio, 1.8 s apart: raw gap 1.8 s, no underrun
        for _ in range(10):
            seq.audio(0.2 + i * 1.8, tone(200))
    seq.finish_ok(6.0, SENTENCE)
    expect(seq, "completed", "")
    tr = seq.finished[0]
    assert tr.analyzer.max_gap_ms == pytest.approx(1800) and tr.analyzer.longest_underrun_ms == 0


# -- failed ---------------------------------------------------------------------------------------
@DIALECTS
@pytest.mark.parametrize(
    ("error", "outcome", "reason"),
    [
        ({"type": "server_error", "code": None, "message": "The server had an error"}, "failed", "server_error"),
        ({"type": "invalid_request_error", "code": "server_error"}, "failed", "server_error"),
        ({"type": "invalid_request_error", "code": "model_not_found"}, "failed", "response_failed"),
        ({"type": "requests", "code": "rate_limit_exceeded"}, "throttled", "rate_limit_exceeded"),
        ({"type": "insufficient_quota", "code": "insufficient_quota"}, "throttled", "insufficient_quota"),
        ({"type": "invalid_request_error", "code": "session_expired"}, "failed", "session_expired"),
    ],
)
def test_failed_response_done_by_error(dialect, error, outcome, reason) -> None:
    seq = Seq(dialect)
    seq.turn()
    seq.created(0.3)
    seq.done(0.5, status="failed", error=error)
    expect(seq, outcome, reason)
    tr = seq.finished[0]
    assert tr.error_code == error.get("code") and tr.error_event_id == tr.done_event_id is not None


@DIALECTS
def test_failed_response_done_without_response_created_or_id(dialect) -> None:
    seq = Seq(dialect)
    seq.turn()
    seq.done(0.5, status="failed", error={"type": "server_error", "code": None}, rid=None)
    expect(seq, "failed", "server_error")


@DIALECTS
def test_request_level_error_echoing_the_trigger_is_error_event(dialect) -> None:
    seq = Seq(dialect)
    tr = seq.turn()
    seq.router.sent("evt_c1", tr)
    seq.error(0.2, "invalid_request_error", "conversation_already_has_active_response", echo="evt_c1")
    expect(seq, "failed", "error_event")
    assert tr.ended == "error" and tr.error_event_code == "conversation_already_has_active_response"


@DIALECTS
def test_fatal_error_event_without_echo_ends_the_waiting_turn(dialect) -> None:
    seq = Seq(dialect)
    seq.turn()
    seq.error(0.2, "rate_limit_error", "rate_limit_exceeded")
    expect(seq, "throttled", "rate_limit_exceeded")


@DIALECTS
def test_benign_error_does_not_touch_the_response(dialect) -> None:
    seq = Seq(dialect)
    seq.turn()
    seq.created(0.1)
    seq.error(0.2, "invalid_request_error", "response_cancel_not_active")
    assert not seq.finished
    seq.part(0.3)
    seq.audio(0.3, tone(3000))
    seq.finish_ok(0.4, SENTENCE)
    expect(seq, "completed", "")
    assert seq.router.session_errors[0]["code"] == "response_cancel_not_active"


@DIALECTS
@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        (1006, "", "connection_dropped"),
        (1011, "internal error", "connection_dropped"),
        (1001, "Your session hit the maximum duration of 60 minutes.", "session_expired"),
    ],
)
def test_socket_closed_mid_response(dialect, code, reason, expected) -> None:
    seq = Seq(dialect)
    seq.turn()
    seq.speak(0.1, [tone(200)] * 3)
    seq.router.close(code, reason, 1.0)
    expect(seq, "failed", expected)
    assert seq.finished[0].close_code == code


@DIALECTS
def test_session_expired_error_then_close(dialect) -> None:
    seq = Seq(dialect)
    seq.turn()
    seq.speak(0.1, [tone(200)] * 3)
    seq.error(1.0, "invalid_request_error", "session_expired", message="Your session hit the maximum duration")
    seq.router.close(1000, "", 1.1)
    expect(seq, "failed", "session_expired")


@DIALECTS
@pytest.mark.parametrize(
    ("error", "close", "expected"),
    [
        (
            ("invalid_request_error", "invalid_api_key"),
            (3000, "invalid_request_error.invalid_api_key"),
            "auth_rejected",
        ),
        (None, (3000, ""), "auth_rejected"),
        (("invalid_request_error", "invalid_model"), (4000, "invalid_request_error.invalid_model"), "invalid_model"),
        (("invalid_request_error", "missing_model"), (4000, "invalid_request_error.missing_model"), "invalid_model"),
        (None, (4000, "invalid_request_error.beta_api_shape_disabled"), "protocol_rejected"),
        (("invalid_request_error", "beta_api_shape_disabled"), (4000, "x"), "protocol_rejected"),
        (None, (1000, ""), "connection_dropped"),
    ],
)
def test_rejected_after_the_upgrade(dialect, error, close, expected) -> None:
    """OpenAI answers 101, then an error event and close 3000/4000: the turn that could not start."""
    seq = Seq(dialect)
    seq.turn()
    if error:
        seq.error(0.05, error[0], error[1])
    seq.router.close(close[0], close[1], 0.1)
    expect(seq, "failed", expected)


@DIALECTS
def test_deadlines_with_the_socket_open(dialect) -> None:
    seq = Seq(dialect)
    quiet = seq.turn(t_trigger=0.0)
    assert seq.router.expire(29.0) == pytest.approx(30.0)
    seq.router.expire(30.5)
    assert quiet.ended == "timeout"
    expect(seq, "failed", "response_timeout")

    seq = Seq(dialect)
    seq.turn(t_trigger=0.0)
    seq.created(0.3)  # created, then nothing: idle deadline (5 s in these tests)
    assert seq.router.expire(1.0) == pytest.approx(5.3)
    seq.router.expire(5.4)
    expect(seq, "failed", "done_timeout")


@DIALECTS
def test_hang_after_audio_started_is_no_audio_done(dialect) -> None:
    seq = Seq(dialect)
    seq.turn(t_trigger=0.0)
    seq.speak(0.2, [tone(200)] * 5)  # 1 s of audio from 0.21: the listener hears it until ~1.21
    seq.router.expire(6.0)  # 5.8 s since the last event, but the idle clock starts when playback ends
    assert not seq.finished
    seq.router.expire(6.3)
    expect(seq, "truncated", "no_audio_done")


# -- truncated ------------------------------------------------------------------------------------
@DIALECTS
def test_stall_on_the_playback_clock(dialect) -> None:
    seq = Seq(dialect)
    seq.turn()
    t = seq.speak(0.2, [tone(200)] * 5, spacing=0.0)  # 1 s of audio at 0.21: the player runs dry at 1.21
    for _ in range(10):
        seq.audio(3.5, tone(200))  # 2.29 s later
    seq.finish_ok(3.6, SENTENCE)
    assert t == pytest.approx(0.21)
    expect(seq, "truncated", "audio_stall")
    assert seq.finished[0].analyzer.longest_underrun_ms == pytest.approx(2290, abs=1)
    # the same answer with a higher threshold is fine
    assert classify(seq.finished[0].facts(), Thresholds(stall_ms=2500)) == ("completed", "")


@DIALECTS
def test_inner_silence(dialect) -> None:
    seq = Seq(dialect)
    seq.turn()
    chunks = [tone(200)] * 6 + [silence(200)] * 10 + [tone(200)] * 6
    seq.finish_ok(seq.speak(0.2, chunks, spacing=0.0, transcript=SENTENCE), SENTENCE)
    expect(seq, "truncated", "inner_silence")
    assert seq.finished[0].analyzer.longest_silence_ms == pytest.approx(2000, abs=40)


@DIALECTS
def test_completed_without_output_audio_done(dialect) -> None:
    seq = Seq(dialect)
    seq.turn()
    t = seq.speak(0.2, [tone(200)] * 16, transcript=SENTENCE)
    seq.transcript_done(t, SENTENCE)
    seq.done(t + 0.1)
    expect(seq, "truncated", "no_audio_done")


@DIALECTS
def test_completed_with_a_transcript_and_no_audio_is_missing_audio(dialect) -> None:
    seq = Seq(dialect)
    seq.turn()
    seq.created(0.1)
    seq.part(0.2)
    seq.transcript(0.3, SENTENCE)
    seq.transcript_done(0.4, SENTENCE)
    seq.done(0.5)
    expect(seq, "truncated", "missing_audio")


@DIALECTS
def test_completed_with_nothing_when_audio_was_asked_is_missing_audio(dialect) -> None:
    seq = Seq(dialect)
    seq.turn()
    seq.created(0.1)
    seq.done(0.5)
    expect(seq, "truncated", "missing_audio")


@DIALECTS
def test_text_only_despite_audio_requested(dialect) -> None:
    seq = Seq(dialect)
    seq.turn()
    seq.created(0.1)
    seq.item_added(0.11)
    seq.part(0.12, kind="text")
    seq.text(0.2, "Here is the answer in text.")
    seq.part(0.3, kind="text", done=True, text="Here is the answer in text.")
    seq.done(0.4)
    expect(seq, "truncated", "text_only")


@DIALECTS
def test_text_only_seen_only_in_response_done_output(dialect) -> None:
    seq = Seq(dialect)
    seq.turn()
    seq.created(0.1)
    content = [{"type": dialect.content_text, "text": "only text"}]
    seq.done(0.4, output=[{"id": "item_A", "type": "message", "role": "assistant", "content": content}])
    expect(seq, "truncated", "text_only")


@DIALECTS
def test_audio_too_short_for_its_transcript(dialect) -> None:
    seq = Seq(dialect)
    seq.turn()
    long_text = SENTENCE * 3  # ~183 chars: needs ~6.9 s even spoken fast
    seq.finish_ok(seq.speak(0.2, [tone(200)] * 5, transcript=long_text), long_text)
    expect(seq, "truncated", "audio_too_short")
    assert classify(seq.finished[0].facts(), Thresholds(check_audio_length=False)) == ("completed", "")


@DIALECTS
@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("max_output_tokens", "incomplete_max_output_tokens"),
        ("content_filter", "incomplete_content_filter"),
        (None, "incomplete_other"),
    ],
)
def test_incomplete(dialect, reason, expected) -> None:
    seq = Seq(dialect)
    seq.turn()
    t = seq.speak(0.2, [tone(200)] * 3)
    seq.done(t, status="incomplete", reason=reason)
    expect(seq, "truncated", expected)


# -- cancelled ------------------------------------------------------------------------------------
@DIALECTS
@pytest.mark.parametrize(
    ("reason", "client_cancelled", "expected"),
    [
        ("turn_detected", False, "turn_detected"),
        ("client_cancelled", True, "client_cancelled"),
        (None, True, "client_cancelled"),
        (None, False, "turn_detected"),
    ],
)
def test_cancelled(dialect, reason, client_cancelled, expected) -> None:
    seq = Seq(dialect)
    tr = seq.turn()
    t = seq.speak(0.2, [tone(200)] * 3)
    tr.client_cancelled = client_cancelled
    seq.done(t, status="cancelled", reason=reason)
    expect(seq, "cancelled", expected)


@DIALECTS
def test_stopped_by_the_client_is_client_cancelled(dialect) -> None:
    seq = Seq(dialect)
    seq.turn()
    seq.speak(0.2, [tone(200)] * 3)
    seq.router.stop(1.0)
    expect(seq, "cancelled", "client_cancelled")


# -- the upgrade ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "outcome", "reason"),
    [
        (401, "failed", "handshake_401"),
        (403, "failed", "handshake_403"),
        (404, "failed", "handshake_404"),
        (429, "throttled", "handshake_429"),
        (500, "failed", "handshake_5xx"),
        (503, "failed", "handshake_5xx"),
        (400, "failed", "handshake_other"),
        (200, "failed", "handshake_other"),
        (None, "failed", "connect_error"),
    ],
)
def test_handshake_failures(status, outcome, reason) -> None:
    expect(ResponseFacts(ended=ENDED_HANDSHAKE, handshake_status=status), outcome, reason)
    assert handshake_reason(status) == reason


@pytest.mark.parametrize(
    ("status", "failure"),
    [
        (400, "webrtc_sdp_rejected"),  # realtime/calls refused the offer
        (201, "webrtc_ice_failed"),  # answered, never connected
        (201, "webrtc_dtls_failed"),
        (201, "webrtc_channel_failed"),
    ],
)
def test_a_webrtc_calls_own_failure_is_its_reason(status, failure) -> None:
    """A transport's own reason for a failed open wins over the status's."""
    expect(ResponseFacts(ended=ENDED_HANDSHAKE, handshake_status=status, handshake_failure=failure), "failed", failure)


def test_close_reason_naming_the_session_cap() -> None:
    facts = ResponseFacts(ended=ENDED_CLOSED, started=True, close_code=1000, close_reason="session_expired")
    expect(facts, "failed", "session_expired")


# -- event-order robustness -----------------------------------------------------------------------
@DIALECTS
def test_out_of_order_deltas_before_response_created(dialect) -> None:
    seq = Seq(dialect)
    seq.turn(t_trigger=0.0)
    seq.part(0.1)
    seq.audio(0.2, tone(1500))
    seq.transcript(0.25, "Hi.")
    seq.created(0.3)  # late
    seq.item_added(0.31)
    seq.audio(0.35, tone(1500))
    seq.finish_ok(0.4, "Hi.")
    expect(seq, "completed", "")
    tr = seq.finished[0]
    assert tr.t_first_audio == 0.2 and tr.t_created == 0.3 and tr.audio_deltas == 2


@DIALECTS
def test_duplicates_are_ignored(dialect) -> None:
    seq = Seq(dialect)
    seq.turn()
    seq.created(0.1)
    seq.created(0.15)
    seq.part(0.16)
    seq.part(0.17)
    seq.audio(0.2, tone(1500), event_id="event_dup")
    seq.audio(0.2, tone(1500), event_id="event_dup")  # the same event twice
    seq.audio(0.3, tone(1500))
    seq.audio_done(0.4)
    seq.audio_done(0.41)
    seq.done(0.5)
    seq.done(0.6)
    expect(seq, "completed", "")
    tr = seq.finished[0]
    assert tr.t_created == 0.1 and tr.audio_deltas == 2 and tr.content_types == ["audio"]
    assert tr.duplicates >= 4 and seq.router.late_events >= 1


@DIALECTS
def test_unknown_and_other_dialect_events_are_counted_not_fatal(dialect) -> None:
    seq = Seq(dialect)
    seq.turn()
    seq.created(0.1)
    seq.feed(0.11, {"type": "response.brand_new_event", "response_id": "resp_1"})
    seq.feed(0.12, {"no_type": True})
    other = "response.audio.delta" if dialect is GA else "response.output_audio.delta"
    seq.feed(0.13, {"type": other, "response_id": "resp_1", "delta": "AAAA"})
    seq.part(0.2)
    seq.audio(0.3, tone(2000))
    seq.finish_ok(0.4, "Hi.")
    expect(seq, "completed", "")
    assert seq.router.unknown_events == 3 and seq.router.foreign_events == 1
    assert seq.finished[0].audio_deltas == 1  # the other dialect's delta was not taken as audio


@DIALECTS
def test_preview_names_in_a_ga_session_mean_missing_audio(dialect) -> None:
    """A server speaking the other dialect: the deltas are not recognised, the answer has no audio."""
    seq = Seq(dialect)
    seq.turn()
    seq.created(0.1)
    seq.part(0.11)
    other = "response.audio.delta" if dialect is GA else "response.output_audio.delta"
    for _ in range(3):
        seq.feed(0.2, {"type": other, "response_id": "resp_1", "delta": "AAAA"})
    seq.transcript_done(0.3, SENTENCE)
    seq.done(0.4)
    expect(seq, "truncated", "missing_audio")


@DIALECTS
def test_out_of_band_response_routes_by_metadata_beside_an_in_band_one(dialect) -> None:
    seq = Seq(dialect, rid="resp_in")
    inband = seq.turn(turn_index=0, trigger="server_vad")
    oob = seq.turn(turn_index=1, trigger="text", out_of_band=True)
    seq.created(0.1)  # in-band first, no metadata
    seq.rid = "resp_oob"
    seq.created(0.2, metadata={"rtload_turn": oob.tag})
    seq.part(0.21)
    seq.audio(0.22, tone(1000))
    seq.finish_ok(0.3, "Hi.")
    seq.rid = "resp_in"
    seq.part(0.31)
    seq.audio(0.32, tone(1000))
    seq.finish_ok(0.4, "Hi.")
    assert [tr.response_id for tr in seq.finished] == ["resp_oob", "resp_in"]
    assert inband.response_id == "resp_in" and oob.response_id == "resp_oob"


@DIALECTS
def test_unsolicited_response_gets_its_own_tracker(dialect) -> None:
    seq = Seq(dialect)
    seq.speak(0.1, [tone(1000)])
    seq.finish_ok(0.2, "Hi.")
    assert len(seq.finished) == 1 and seq.finished[0].trigger == "server"


def test_the_idle_timeouts_answer_is_triggered_and_timed_by_it() -> None:
    """GA server VAD's idle_timeout_ms: input_audio_buffer.timeout_triggered, then the server's own
    response; its row says trigger idle_timeout and its latencies run from the timeout event."""
    seq = Seq(GA)
    seq.feed(2.0, {"type": "input_audio_buffer.timeout_triggered", "audio_start_ms": 0, "audio_end_ms": 5000,
                   "item_id": "item_in"})  # fmt: skip
    seq.speak(2.3, [tone(1000)])
    seq.finish_ok(2.6, "Are you still there?")
    (tracker,) = seq.finished
    assert tracker.trigger == "idle_timeout" and tracker.t_trigger == 2.0
    assert seq.router.idle_timeouts == 1
    # the next response no turn asked for is the server's own again, not the timeout's
    seq.rid = "resp_2"
    seq.speak(3.0, [tone(500)])
    seq.finish_ok(3.2, "Hi.")
    assert seq.finished[1].trigger == "server"


def test_a_timeout_that_crosses_a_turns_request_leaves_the_answer_to_the_turn() -> None:
    """The idle timeout fired while the turn's response.create was on the wire: the server answers
    the request (one response at a time), so the next response is the turn's, and the timeout,
    counted, marks no later response the server starts on its own."""
    seq = Seq(GA)
    turn = seq.turn(1.9)
    seq.feed(2.0, {"type": "input_audio_buffer.timeout_triggered", "audio_start_ms": 0, "audio_end_ms": 5000,
                   "item_id": "item_in"})  # fmt: skip
    seq.speak(2.3, [tone(1000)])
    seq.finish_ok(2.6, "Sure.")
    assert seq.finished == [turn] and turn.t_trigger == 1.9 and seq.router.idle_timeouts == 1
    seq.rid = "resp_2"
    seq.speak(3.0, [tone(500)])
    seq.finish_ok(3.2, "Hi.")
    assert seq.finished[1].trigger == "server" and seq.finished[1].t_trigger != 2.0


@DIALECTS
def test_rate_limits_are_reported_with_the_response_before(dialect) -> None:
    seq = Seq(dialect)
    seq.turn()
    healthy(seq)
    seq.rate_limits_updated(5.0, tokens=123, requests=7)
    entries, t, rid = seq.rate_limits[0]
    assert rid == "resp_1" and t == 5.0 and len(entries) == 2
    assert seq.router.rl_tokens_remaining == 123 and seq.router.rl_requests_remaining == 7


@DIALECTS
def test_trace_ring_is_bounded_and_elides_audio(dialect) -> None:
    seq = Seq(dialect)
    tr = seq.turn(trace_events=20)
    seq.speak(0.1, [tone(100)] * 50)
    seq.router.close(1006, "", 9.0)
    events = tr.trace.events()
    assert len(events) == 21 and events[0]["type"] == "trace.truncated"
    assert events[-1]["type"] == "close" and events[-1]["code"] == 1006
    deltas = [e for e in events if e["type"] == dialect.output_audio_delta]
    assert deltas and all("delta" not in e and e["payload_bytes"] == 4800 for e in deltas)


# -- responses the session never saw (issue 23, item 10) -------------------------------------------
@DIALECTS
def test_a_response_id_the_session_never_saw_makes_no_response(dialect) -> None:
    """A stray response.done (or delta) for an unknown id was an extra truncated/missing_audio row."""
    seq = Seq(dialect)
    seq.done(0.1, rid="resp_ghost")
    seq.feed(0.2, {"type": dialect.output_audio_delta, "response_id": "resp_ghost", "delta": "AAAA"})
    assert seq.finished == [] and seq.router.open == []
    assert seq.router.unknown_response_events == 2
    assert [e["type"] for e in seq.router.session_ring.events()] == ["response.done", dialect.output_audio_delta]

    seq = Seq(dialect)
    tr = seq.turn()
    seq.speak(0.1, [tone(1000)])
    seq.done(0.5, rid="resp_ghost")  # while resp_1 plays: traced on it, no row of its own
    seq.finish_ok(0.6, "Hello there.")
    expect(seq, "completed", "")
    assert seq.router.unknown_response_events == 1
    assert sum(1 for e in tr.trace.events() if e.get("response", {}).get("id") == "resp_ghost") == 1


# -- the wire failed the connection (issue 23, item 11) ---------------------------------------------
@DIALECTS
def test_a_text_frame_that_is_not_utf8_fails_the_response_as_invalid_utf8(dialect) -> None:
    seq = Seq(dialect)
    seq.turn()
    seq.speak(0.1, [tone(200)] * 3)
    seq.router.close(1007, "invalid UTF-8 in a text frame at byte 6 of 9", 1.0)
    expect(seq, "failed", "invalid_utf8")
    assert seq.finished[0].close_code == 1007


# -- upgraded, then silence (issue 23, item 12) -----------------------------------------------------
@DIALECTS
def test_a_session_that_never_became_ready(dialect) -> None:
    seq = Seq(dialect)
    tr = ResponseTracker()
    tr.t_armed = 0.0
    seq.router.expect(tr)
    seq.router.not_ready(5.0)
    expect(seq, "failed", "session_not_ready")
    assert tr.t_trigger == 0.0 and tr.t_end == 5.0 and not tr.session_ready


# -- through a gateway (issue 21) ------------------------------------------------------------------
def _gateway_error(seq: Seq, t: float, message: str) -> None:
    """LiteLLM's own error event: no event_id echo, no code."""
    seq.router.feed({"type": "error", "error": {"type": "server_error", "message": message}}, t)


def _session_created(seq: Seq, t: float) -> None:
    seq.feed(t, {"type": "session.created", "session": {"id": "sess_1"}})


@DIALECTS
@pytest.mark.parametrize(
    ("status", "close", "outcome", "reason"),
    [(429, 1013, "throttled", "handshake_429"), (503, 1011, "failed", "handshake_5xx"),
     (401, 1008, "failed", "handshake_401")],
)  # fmt: skip
def test_a_gateways_upstream_refusal_is_the_refusal_it_stands_for(dialect, status, close, outcome, reason) -> None:
    """101 from the gateway, then its backend's refusal as an error and a close: was server_error."""
    seq = Seq(dialect)
    seq.turn()
    message = f"Upstream realtime handshake rejected with HTTP {status}"
    _gateway_error(seq, 0.05, message)
    seq.router.close(close, message, 0.06)
    expect(seq, outcome, reason)
    assert verdict(seq.finished[0].facts()).via_gateway


@DIALECTS
def test_a_gateways_upstream_drop_mid_answer_is_connection_dropped(dialect) -> None:
    seq = Seq(dialect)
    _session_created(seq, 0.0)
    seq.turn()
    seq.speak(0.1, [tone(200)] * 3)
    _gateway_error(seq, 1.0, "Upstream realtime connection closed with code 1006")
    seq.router.close(1011, "Internal server error", 1.01)
    expect(seq, "failed", "connection_dropped")
    assert verdict(seq.finished[0].facts()).via_gateway


@DIALECTS
def test_close_1013_before_anything_started_is_a_429_and_a_passed_retry_after_is_kept(dialect) -> None:
    seq = Seq(dialect)
    seq.turn()
    seq.router.close(1013, "try again later, retry-after: 7", 0.1)
    expect(seq, "throttled", "handshake_429")
    assert verdict(seq.finished[0].facts()).retry_after == 7.0


@DIALECTS
@pytest.mark.parametrize(
    ("ready", "message", "close", "reason"),
    [
        (False, "boom", 1011, "server_error"),  # no upstream status or close code named: what it says
        (True, "Upstream realtime handshake rejected with HTTP 429", 1011, "server_error"),  # after session.created
        (False, "", 1011, "connection_dropped"),
    ],
)
def test_shapes_no_gateway_rule_knows_are_what_they_say(dialect, ready, message, close, reason) -> None:
    seq = Seq(dialect)
    if ready:
        _session_created(seq, 0.0)
    seq.turn()
    if message:
        _gateway_error(seq, 0.05, message)
    seq.router.close(close, "", 0.06)
    expect(seq, "failed", reason)
    assert not verdict(seq.finished[0].facts()).via_gateway


def test_transcription_only_reasons_come_from_the_utterance_row() -> None:
    """Not the classifier's: a transcription-only utterance (no response) takes its transcription's
    outcome (``tests/session/test_input_transcript.py`` drives them from events); here so the
    vocabulary's check below sees them."""
    from loadtest.protocol.targets import Target
    from loadtest.records.schema import SessionRecord
    from loadtest.session.input_transcript import InputTranscript, utterance_record
    from loadtest.session.recording import RecordBuilder

    rows = RecordBuilder(Target(base_url="ws://127.0.0.1:1", api_key="k"), "t", run_id="r", worker_id="",
                         user_id=0, secrets=())  # fmt: skip
    failed = InputTranscript(item_id="item_1", t_commit=1.0)
    failed.on_failed({"error": {"type": "transcription_error", "code": "audio_unintelligible"}}, 1.5)
    for item, timed_out, reason in ((failed, False, "transcription_failed"), (None, True, "transcription_timeout")):
        rec = utterance_record(rows, ResponseTracker(trigger="manual"), item, SessionRecord(), timed_out=timed_out,
                               by_server=False)  # fmt: skip
        assert rec is not None and (rec.outcome, rec.reason) == ("failed", reason)
        SEEN.add(reason)


# -- function calls -------------------------------------------------------------------------------
LOOKUP = {
    "type": "function",
    "name": "lookup_order",
    "parameters": {
        "type": "object",
        "properties": {"order_id": {"type": "string", "minLength": 6}},
        "required": ["order_id"],
        "additionalProperties": False,
    },
}
ORDER = '{"order_id": "A12345"}'


def _calling(dialect, arguments: str = ORDER, name: str = "lookup_order", **call_kw) -> tuple[Seq, float]:
    seq = Seq(dialect, tool_schemas=ToolSchemas([LOOKUP]))
    seq.turn()
    seq.created(0.1)
    return seq, seq.call(0.2, 0, name, arguments, **call_kw)


@DIALECTS
def test_a_call_with_arguments_matching_the_tool_completes(dialect) -> None:
    seq, t = _calling(dialect)
    seq.done(t + 0.01, output=[seq.call_item(0, "lookup_order", ORDER, "completed")])
    expect(seq, "completed", "")
    (call,) = seq.finished[0].calls.calls
    assert (call.name, call.call_id, call.arguments) == ("lookup_order", "call_0", ORDER)
    assert call.valid and call.done


@DIALECTS
def test_arguments_cut_off_mid_json_are_function_arguments_cut(dialect) -> None:
    # as the service (and the mock's tool_arguments_cut) sends it: .done with the cut string, the item
    # incomplete, the response incomplete for max_output_tokens
    cut = ORDER[:9]
    seq, t = _calling(dialect, cut, status="incomplete")
    seq.done(t + 0.01, "incomplete", "max_output_tokens", output=[seq.call_item(0, "lookup_order", cut, "incomplete")])
    expect(seq, "truncated", "function_arguments_cut")
    assert seq.finished[0].calls.calls[0].valid is False


@DIALECTS
def test_a_completed_response_whose_call_never_finished_its_arguments_is_cut(dialect) -> None:
    seq, t = _calling(dialect, done=False)
    seq.done(t + 0.01, output=[seq.call_item(0, "lookup_order", ORDER[:5], "in_progress")])
    expect(seq, "truncated", "function_arguments_cut")


@DIALECTS
@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ('{"order_id": 42}', "lookup_order"),  # wrong type
        ('{"order_id": "A12345", "x": 1}', "lookup_order"),  # a property the schema forbids
        ('{"order_id": "A1"}', "lookup_order"),  # too short
        ('{"id": "A12345"}', "lookup_order"),  # the required property missing
        ("order A12345", "lookup_order"),  # not JSON
        (ORDER, "cancel_order"),  # a function the session does not have
    ],
)
def test_arguments_not_matching_the_tool_are_function_arguments_invalid(dialect, arguments, name) -> None:
    seq, t = _calling(dialect, arguments, name)
    seq.done(t + 0.01, output=[seq.call_item(0, name, arguments, "completed")])
    expect(seq, "failed", "function_arguments_invalid")


@DIALECTS
def test_a_call_never_done_is_function_call_timeout(dialect) -> None:
    seq, t = _calling(dialect, done=False)  # the mock's tool_call_hang: the deltas stop, the socket stays open
    seq.router.expire(t + 6.0)  # idle 5 s
    expect(seq, "failed", "function_call_timeout")


@DIALECTS
@pytest.mark.parametrize(
    ("who", "reason"), [("client", ("cancelled", "client_cancelled")), ("vad", ("cancelled", "turn_detected"))]
)
def test_cancelled_mid_call_is_cancelled(dialect, who, reason) -> None:
    # response.cancel (or the caller's speech) mid-arguments: the open call's .done cut, the item
    # incomplete, response.done cancelled
    seq, t = _calling(dialect, ORDER[:8], status="incomplete")
    status_reason = "client_cancelled" if who == "client" else "turn_detected"
    seq.done(t + 0.01, "cancelled", status_reason, output=[seq.call_item(0, "lookup_order", ORDER[:8], "incomplete")])
    expect(seq, *reason)


@DIALECTS
def test_a_refused_follow_up_is_followup_rejected(dialect) -> None:
    seq = Seq(dialect)
    follow = seq.turn()
    follow.chain = ChainLink("resp_0", 1, 0.0, 0.0, 0.0)
    seq.router.sent("evt_f1", follow)
    seq.error(0.2, "invalid_request_error", "conversation_already_has_active_response", echo="evt_f1")
    expect(seq, "failed", "followup_rejected")


@DIALECTS
def test_a_throttled_follow_up_stays_throttled(dialect) -> None:
    seq = Seq(dialect)
    follow = seq.turn()
    follow.chain = ChainLink("resp_0", 1, 0.0, 0.0, 0.0)
    seq.router.sent("evt_f1", follow)
    seq.error(0.2, "rate_limit_error", "rate_limit_exceeded", echo="evt_f1")
    expect(seq, "throttled", "rate_limit_exceeded")


@DIALECTS
def test_calls_then_server_error_is_server_error(dialect) -> None:
    seq, t = _calling(dialect)  # the mock's tool_server_error: every call complete, then failed
    seq.done(t + 0.01, "failed", error={"type": "server_error", "code": "server_error", "message": "boom"},
             output=[seq.call_item(0, "lookup_order", ORDER, "completed")])  # fmt: skip
    expect(seq, "failed", "server_error")


def test_every_reason_is_covered() -> None:
    """Runs last in this module: the tests above produced every reason of the vocabulary."""
    missing = set(REASONS) - SEEN
    assert not missing, f"reasons no test produced: {sorted(missing)}"
