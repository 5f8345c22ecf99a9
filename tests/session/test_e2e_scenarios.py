"""Scenarios end to end against the mock: triggers, barge-in with truncation at the played ms,
out-of-band responses, formats, modalities, lifetime reconnects, realtime pacing, stop()."""

from __future__ import annotations

import threading
import time

import pytest

from loadtest.session.client import RealtimeSession
from loadtest.session.config import SessionConfig
from loadtest.session.runtime import SessionRuntime
from loadtest.session.scenario import SCENARIOS, Scenario, Turn, get_scenario
from loadtest.session.sink import MemorySink
from tests.session.helpers import FAST, FAST_MOCK, run_session, target

pytestmark = pytest.mark.e2e


def outcomes(sink: MemorySink) -> list[tuple[int, str, str]]:
    return sorted((r.turn_index, r.outcome, r.reason) for r in sink.responses)


def sent(timeline: list[dict], event_type: str) -> list[dict]:
    return [e for e in timeline if e["dir"] == "out" and e["type"] == event_type]


def test_every_trigger_in_one_session(fast_mock) -> None:
    mock = fast_mock
    timeline: list[dict] = []
    scenario = Scenario("mixed", [Turn("server_vad", "short_yes"), Turn("manual", "short_hello"), Turn("text")])
    sink, _ = run_session(mock.url, scenario, observer=timeline.append)
    assert outcomes(sink) == [(0, "completed", ""), (1, "completed", ""), (2, "completed", "")]
    vad, manual, text = sorted(sink.responses, key=lambda r: r.turn_index)
    assert (vad.trigger, manual.trigger, text.trigger) == ("server_vad", "manual", "text")
    assert vad.fixture == "short_yes" and manual.fixture == "short_hello" and text.fixture == ""
    for r in (vad, manual, text):
        assert r.session_id and r.session_id.startswith("sess_") and r.response_id.startswith("resp_")
        assert r.t_trigger <= r.t_created <= r.t_first_audio <= r.t_done
        assert 0 < r.ttfa_ms < 5000 and r.audio_ms > 500 and r.audio_deltas > 0 and r.transcript_chars > 0
        assert r.status == "completed" and r.total_tokens and r.modalities == ["audio"]
    # the server's VAD ended turn 0; the client switched to manual turns with a session.update
    assert len(sent(timeline, "session.update")) == 2
    assert len(sent(timeline, "input_audio_buffer.commit")) == 1 and len(sent(timeline, "response.create")) == 2
    assert sink.sessions[0].responses == 3 and sink.sessions[0].ended_by == "client_closed"
    srec = sink.sessions[0]  # no RTCP over a WebSocket: unknown, not zero
    assert (srec.rtp_lost, srec.rtt_ms, srec.peer_rtp_lost) == (None, None, None)
    # the timeline an observer sees: time, direction, type and key fields
    first = timeline[0]
    assert first["dir"] == "out" and first["type"] == "connect"
    assert any(e["type"] == "handshake" and e["status"] == 101 for e in timeline)
    assert [e["outcome"] for e in timeline if e["type"] == "outcome"] == ["completed"] * 3


@pytest.mark.parametrize("trigger", ["server_vad", "manual"])
def test_barge_in_cancels_and_truncates_at_the_played_ms(mock_server, trigger) -> None:
    mock = mock_server(overrides={**FAST_MOCK, "audio.speed": 3.0})
    timeline: list[dict] = []
    scenario = Scenario("bi", [Turn(trigger, "barge_in_question"), Turn(trigger, "barge_in_interrupt", barge_in=True)])
    sink, _ = run_session(mock.url, scenario, observer=timeline.append, barge_in_after_ms=500.0)
    expected = "turn_detected" if trigger == "server_vad" else "client_cancelled"
    assert outcomes(sink) == [(0, "cancelled", expected), (1, "completed", "")]
    truncate = sent(timeline, "conversation.item.truncate")
    assert len(truncate) == 1
    truncated = [e for e in timeline if e["type"] == "conversation.item.truncated"]
    assert truncated, "the mock confirmed the truncation"
    played = truncated[0]["audio_end_ms"]
    cancelled = sorted(sink.responses, key=lambda r: r.turn_index)[0]
    # the played ms come from the playback clock: at least the barge-in point, never more than was received
    assert 500 <= played <= cancelled.audio_ms
    assert played < 2000  # interrupted early, not at the end of the answer
    truth = {row["response_id"]: row["fault"] for row in mock.truth() if row["kind"] == "response"}
    assert truth[cancelled.response_id] == expected


def test_out_of_band_response_beside_the_conversation(fast_mock) -> None:
    mock = fast_mock
    timeline: list[dict] = []
    sink, _ = run_session(mock.url, get_scenario("out_of_band"), observer=timeline.append)
    assert outcomes(sink) == [(0, "completed", ""), (1, "completed", "")]
    oob = next(r for r in sink.responses if r.turn_index == 1)
    assert oob.out_of_band and oob.trigger == "text"
    truth = {row["response_id"]: row for row in mock.truth() if row["kind"] == "response"}
    assert truth[oob.response_id]["out_of_band"] is True
    assert not sent(timeline, "conversation.item.create")  # the text went in response.input, not the conversation


@pytest.mark.parametrize(
    ("fmt", "modalities", "dialect"),
    [("g711_ulaw", ["audio"], "ga"), ("g711_alaw", ["audio"], "preview"), ("pcm16", ["text"], "ga"),
     ("pcm16", ["text"], "preview")],
)  # fmt: skip
def test_formats_and_modalities(fast_mock, fmt, modalities, dialect) -> None:
    mock = fast_mock
    kw = {"provider": "azure", "dialect": "preview"} if dialect == "preview" else {}
    scenario = Scenario("fm", [Turn("manual", "short_yes")])
    sink, _ = run_session(mock.url, scenario, target_kw=kw, audio_format=fmt, output_modalities=modalities)
    (r,) = sink.responses
    assert (r.outcome, r.reason) == ("completed", "")
    assert r.audio_format == fmt and r.modalities == modalities
    truth = next(row for row in mock.truth() if row["kind"] == "response" and row["response_id"] == r.response_id)
    assert truth["audio_format"] == fmt
    if modalities == ["text"]:
        assert r.audio_deltas == 0 and r.text_chars > 0 and r.ttft_ms is not None
    else:
        # g711 is 8 kHz, 1 byte a sample: the analyzer's ms match the mock's
        assert r.audio_ms == pytest.approx(truth["audio_ms"], abs=1) and r.audio_bytes == pytest.approx(
            r.audio_ms * 8, abs=8
        )


def test_session_lifetime_reconnects_and_continues_the_turns(fast_mock) -> None:
    mock = fast_mock
    scenario = Scenario("three", [Turn("text"), Turn("text"), Turn("text")])
    sink, session = run_session(mock.url, scenario, lifetime_s=0.01)
    assert [s.ended_by for s in sink.sessions] == ["lifetime", "lifetime", "client_closed"]
    assert len({s.session_id for s in sink.sessions}) == 3 and session.sessions_opened == 3
    assert outcomes(sink) == [(0, "completed", ""), (1, "completed", ""), (2, "completed", "")]


def test_realtime_pacing_streams_on_the_audio_clock(fast_mock) -> None:
    mock = fast_mock
    runtime = SessionRuntime()
    clock = runtime.figures.frame_lag
    sink = MemorySink()
    config = SessionConfig(**{**FAST, "pacing": "realtime", "trailing_silence_ms": 600})
    scenario = Scenario("rt", [Turn("server_vad", "short_front_center")])  # 2.46 s of speech
    session = RealtimeSession(target(mock.url), scenario, config, sink, runtime=runtime)
    t0 = time.time()
    session.run()
    (r,) = sink.responses
    assert (r.outcome, r.reason) == ("completed", "")
    # the server's VAD could only commit after the speech had been streamed in real time
    assert 1.5 <= r.t_trigger - t0 <= 3.5
    # and the 3.06 s of audio (speech + trailing silence) took that long to send: the last frame is
    # due 2.96 s after the first
    assert sink.sessions[0].t_end - t0 >= 2.95
    stats = clock.take()
    assert stats["frames"] == 31  # 25 speech frames + 6 silence frames of 100 ms
    assert stats["p99_lag_ms"] < 50 and stats["max_lag_ms"] < 200
    assert clock.take()["frames"] == 0  # take() resets


def test_stop_from_another_thread_ends_the_session_promptly(mock_server) -> None:
    mock = mock_server(overrides={**FAST_MOCK, "audio.speed": 1.0})
    sink = MemorySink()
    session = RealtimeSession(target(mock.url), SCENARIOS["text_loop"], SessionConfig(**FAST), sink)
    runner = threading.Thread(target=session.run)
    runner.start()
    time.sleep(1.2)  # mid-answer: the first real-time answer lasts seconds
    t0 = time.monotonic()
    session.stop()
    runner.join(5)
    assert not runner.is_alive() and time.monotonic() - t0 < 3
    assert [s.ended_by for s in sink.sessions] == ["client_closed"]
    assert outcomes(sink) == [(0, "cancelled", "client_cancelled")]
    session.stop()  # idempotent
    assert not [t for t in threading.enumerate() if t.name.startswith("rtload-recv")]


def test_deadline_ends_a_repeating_scenario(fast_mock) -> None:
    mock = fast_mock
    sink = MemorySink()
    session = RealtimeSession(target(mock.url), SCENARIOS["text_loop"], SessionConfig(**FAST), sink)
    t0 = time.time()
    session.run(deadline=t0 + 2.5)
    assert time.time() - t0 < 2.5 + 13  # at most one response deadline past the run deadline
    assert len(sink.responses) >= 2 and all(r.outcome == "completed" for r in sink.responses)
    assert [r.turn_index for r in sink.responses] == list(range(len(sink.responses)))


def test_barge_in_after_the_answer_arrived_truncates_what_was_not_heard(fast_mock) -> None:
    """Audio 20x faster than real time: response.done is in before the user interrupts, so the server
    has nothing to cancel (completed), but the listener had heard only ~600 ms: the item is truncated."""
    timeline: list[dict] = []
    sink, _ = run_session(fast_mock.url, get_scenario("barge_in"), observer=timeline.append)
    assert outcomes(sink) == [(0, "completed", ""), (1, "completed", "")]
    first = min(sink.responses, key=lambda r: r.turn_index)
    (truncate,) = [e for e in timeline if e["type"] == "conversation.item.truncated"]
    assert 600 <= truncate["audio_end_ms"] < first.audio_ms
    assert truncate["item_id"] == first.item_id


def test_think_time_between_turns(fast_mock) -> None:
    """think_time_s=(0.3, 0.3): each next turn's trigger goes out at least 0.3 s after the previous
    response.done arrived (and not much later)."""
    timeline: list[dict] = []
    scenario = Scenario("thinking", [Turn("text"), Turn("text"), Turn("text")])
    sink, _ = run_session(fast_mock.url, scenario, observer=timeline.append, think_time_s=(0.3, 0.3))
    assert outcomes(sink) == [(0, "completed", ""), (1, "completed", ""), (2, "completed", "")]
    records = sorted(sink.responses, key=lambda r: r.turn_index)
    dones = [e["t"] for e in timeline if e["dir"] == "in" and e["type"] == "response.done"]
    creates = [e["t"] for e in sent(timeline, "conversation.item.create")]  # a text turn's first event
    assert len(dones) == len(creates) == 3
    for i in (1, 2):
        gap_records = records[i].t_trigger - records[i - 1].t_done
        gap_wire = creates[i] - dones[i - 1]
        assert 0.3 <= gap_wire <= gap_records < 0.3 + 2.0, (i, gap_wire, gap_records)


def test_the_idle_timeouts_answer_is_recorded_with_its_trigger(fast_mock) -> None:
    """Server VAD's idle_timeout_ms (GA): the caller stays silent after the answer, the mock sends
    input_audio_buffer.timeout_triggered and answers on its own; the row says trigger idle_timeout,
    timed from that event, and the session counts the timeout."""
    session = {
        "type": "realtime",
        "output_modalities": ["text"],  # (no playback to wait for: the idle time starts at response.done)
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "turn_detection": {"type": "server_vad", "idle_timeout_ms": 300},
            },
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy"},
        },
    }
    scenario = Scenario(
        "idle", [Turn("server_vad", "short_yes"), Turn("text", think_time_s=(3.0, 3.0))], session=session
    )
    sink, _ = run_session(fast_mock.url, scenario, deadline=time.time() + 60, output_modalities=["text"])
    triggers = [r.trigger for r in sorted(sink.responses, key=lambda r: r.t_trigger)]
    # each idle answer ends another quiet stretch: one timeout or more during the 3 s pause
    assert triggers[0] == "server_vad" and triggers[-1] == "text", triggers
    assert len(triggers) >= 3 and set(triggers[1:-1]) == {"idle_timeout"}, triggers
    for idle in (r for r in sink.responses if r.trigger == "idle_timeout"):
        assert idle.outcome == "completed" and idle.response_id and 0 < idle.created_ms < 1000
    # the last timeout may cross the text turn's response.create on the wire (seen under load): the
    # mock then answers only the request, and the router gives that answer to the turn
    assert sink.sessions[0].idle_timeouts - (len(triggers) - 2) in (0, 1), (sink.sessions[0].idle_timeouts, triggers)
