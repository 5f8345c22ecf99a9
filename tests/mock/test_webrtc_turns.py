"""Turns over the mock's WebRTC calls with a real aiortc peer on loopback: a spoken turn (a fixture
sent as the caller's Opus track, the answer heard as RTP), a text turn, and faults (a stall is a
gap in the answer's packets, a drop closes the peer connection, a server error on the channel)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from loadtest.audio.fixtures import load_pcm
from tests.rtc_peer import wait_truth
from tests.support import RtcPeer, fast_mock

pytest.importorskip("aiortc")

MODEL = "gpt-realtime"
SESSION = {"type": "realtime", "model": MODEL}
NO_VAD = {"type": "realtime", "model": MODEL, "audio": {"input": {"turn_detection": None}}}


def http(mock: Any) -> str:
    return str(mock.url).replace("ws://", "http://")


def ask(peer: RtcPeer, text: str = "What are your hours?", **response: Any) -> None:
    content = [{"type": "input_text", "text": text}]
    peer.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": content}})
    peer.send({"type": "response.create", **({"response": response} if response else {})})


def response_row(mock: Any, response_id: str) -> dict[str, Any]:
    return next(r for r in mock.truth() if r["kind"] == "response" and r["response_id"] == response_id)


def test_spoken_turn_answers_on_the_track(mock_server) -> None:
    mock = mock_server(overrides=fast_mock(3.0))
    said = load_pcm("short_hello")
    transcribed = {**SESSION, "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}}}

    async def scenario() -> tuple[RtcPeer, str]:
        peer = RtcPeer()
        assert (await peer.call(http(mock), session=transcribed, form="multipart")).status == 201
        await peer.opened()
        peer.microphone.play(said)
        done = await peer.until("response.done", timeout=40)
        rid = done["response"]["id"]
        await peer.wait_for(lambda: peer.event_time("output_audio_buffer.stopped", response_id=rid), 20)
        await peer.settle()  # the last packets through the caller's jitter buffer
        await peer.close()
        return peer, rid

    peer, rid = asyncio.run(scenario())
    types = peer.types()
    assert types.index("input_audio_buffer.speech_started") < types.index("input_audio_buffer.speech_stopped")
    assert types.index("input_audio_buffer.committed") < types.index("response.created") < types.index("response.done")
    assert not any(t.endswith("audio.delta") and "transcript" not in t for t in types)  # audio goes on the track
    assert "response.output_audio_transcript.delta" in types
    done = next(e for _, e in peer.events if e["type"] == "response.done")["response"]
    assert done["status"] == "completed"
    started = peer.event_time("output_audio_buffer.started", response_id=rid)
    stopped = peer.event_time("output_audio_buffer.stopped", response_id=rid)
    assert started is not None and stopped is not None and started < stopped
    assert stopped >= peer.event_time("response.done")  # (stopped follows response.done)
    row = response_row(mock, rid)
    assert row["transport"] == "webrtc" and row["fault"] == "none" and row["t_first_audio"] is not None
    # the answer's audio, decoded, is as long as the response's audio (20 ms frames)
    heard_ms = sum(f.ms for f in peer.speech())
    assert abs(heard_ms - row["audio_ms"]) <= 60, (heard_ms, row["audio_ms"])
    # ... and it was played in real time
    speech = peer.speech()
    assert speech[-1].t - speech[0].t >= row["audio_ms"] / 1000 * 0.85
    # the caller's Opus audio, decoded, is what the mock heard: its transcription names the fixture
    completed = next(e for _, e in peer.events if e["type"] == "conversation.item.input_audio_transcription.completed")
    heard = next(r for r in mock.truth() if r["kind"] == "transcription")
    assert heard["fixture"] == "short_hello" and completed["transcript"] == heard["transcript"]
    # the caller's audio reached the input buffer at its own length
    committed = next(r for r in mock.truth() if r["kind"] == "input_committed")
    assert 500 <= committed["audio_ms"] <= len(said) / 24 + 1500


def test_a_g711_session_hears_the_callers_opus_at_8_khz(mock_server) -> None:
    """The caller's Opus is decoded at the session's input rate (8 kHz for G.711): VAD hears the
    speech and the input buffer holds it at its own length."""
    mock = mock_server(overrides=fast_mock(3.0))
    said = load_pcm("short_hello")
    g711 = {**SESSION, "audio": {"input": {"format": {"type": "audio/pcmu"}}}}

    async def scenario() -> RtcPeer:
        peer = RtcPeer()
        assert (await peer.call(http(mock), session=g711, form="multipart")).status == 201
        await peer.opened()
        peer.microphone.play(said)
        await peer.until("response.done", timeout=40)
        await peer.close()
        return peer

    peer = asyncio.run(scenario())
    types = peer.types()
    assert types.index("input_audio_buffer.speech_started") < types.index("input_audio_buffer.committed")
    committed = next(r for r in mock.truth() if r["kind"] == "input_committed")
    assert 500 <= committed["audio_ms"] <= len(said) / 24 + 1500


def test_text_turn_streams_text_on_the_channel_and_no_speech(mock_server) -> None:
    mock = mock_server(overrides=fast_mock())

    async def scenario() -> RtcPeer:
        peer = RtcPeer()
        assert (await peer.call(http(mock), session=NO_VAD, form="json")).status == 201
        await peer.opened()
        ask(peer, output_modalities=["text"])
        await peer.until("response.done", timeout=20)
        await asyncio.sleep(0.3)
        await peer.close()
        return peer

    peer = asyncio.run(scenario())
    types = peer.types()
    assert "response.output_text.delta" in types and "response.output_text.done" in types
    assert "output_audio_buffer.started" not in types
    done = next(e for _, e in peer.events if e["type"] == "response.done")["response"]
    assert done["status"] == "completed" and done["output"][0]["content"][0]["type"] == "output_text"
    assert peer.heard and not peer.speech()  # the line carried silence only
    assert response_row(mock, done["id"])["transport"] == "webrtc"


def test_stall_is_a_gap_in_the_answer_packets(mock_server) -> None:
    stall = {"faults.stall.rate": 1.0, "faults.stall.gap_s": [1.5, 1.5], "faults.stall.at": [0.2, 0.2]}
    mock = mock_server(overrides=fast_mock(3.0, **stall))

    async def scenario() -> tuple[RtcPeer, str]:
        peer = RtcPeer()
        assert (await peer.call(http(mock), session=NO_VAD, form="multipart")).status == 201
        await peer.opened()
        ask(peer)
        done = await peer.until("response.done", timeout=30)
        rid = done["response"]["id"]
        await peer.wait_for(lambda: peer.event_time("output_audio_buffer.stopped", response_id=rid), 20)
        await asyncio.sleep(0.3)
        await peer.close()
        return peer, rid

    peer, rid = asyncio.run(scenario())
    row = response_row(mock, rid)
    assert row["fault"] == "stall" and row["transport"] == "webrtc"
    frames = peer.heard  # every packet, silence included: nothing at all arrives in the gap
    pairs = list(itertools.pairwise(frames))
    waits = [(i, b.t - a.t) for i, (a, b) in enumerate(pairs) if b.t - a.t > 0.3]
    jumps = [(i, (b.rtp - a.rtp) / 48000) for i, (a, b) in enumerate(pairs) if b.rtp - a.rtp > 0.3 * 48000]
    assert len(waits) == 1 and len(jumps) == 1, (waits, jumps)
    (where, wall), (_, rtp) = waits[0], jumps[0]
    assert abs(wall - 1.5) < 0.35, (wall, row["params"])
    assert abs(rtp - wall) < 0.15, (rtp, wall)  # the RTP timestamps say how long the gap was
    speech = peer.speech()
    assert speech[0].t < frames[where + 1].t < speech[-1].t  # inside the answer
    assert abs(sum(f.ms for f in speech) - row["audio_ms"]) <= 60


def test_drop_closes_the_peer_connection(mock_server) -> None:
    mock = mock_server(overrides=fast_mock(3.0, **{"faults.drop.rate": 1.0, "faults.drop.at": [0.2, 0.2]}))

    async def scenario() -> RtcPeer:
        peer = RtcPeer()
        assert (await peer.call(http(mock), session=NO_VAD, form="multipart")).status == 201
        await peer.opened()
        ask(peer)
        await peer.until("output_audio_buffer.started", timeout=20)
        await peer.wait_for(lambda: peer.closed_at, 15)
        await peer.close()
        return peer

    peer = asyncio.run(scenario())
    assert "response.done" not in peer.types()
    (session,) = wait_truth(mock, lambda r: r["kind"] == "session" and r.get("session_id"))
    assert session["transport"] == "webrtc"
    response = next(r for r in mock.truth() if r["kind"] == "response")
    assert response["fault"] == "drop" and response["transport"] == "webrtc"
    assert mock.stats()["drops"] == 1


def test_server_error_arrives_on_the_channel(mock_server) -> None:
    faults = {"faults.server_error.rate": 1.0, "faults.server_error.after_output": 0.0}
    mock = mock_server(overrides=fast_mock(**faults))

    async def scenario() -> dict[str, Any]:
        peer = RtcPeer()
        assert (await peer.call(http(mock), session=NO_VAD, form="multipart")).status == 201
        await peer.opened()
        ask(peer)
        done = await peer.until("response.done", timeout=20)
        await peer.close()
        return done["response"]  # type: ignore[no-any-return]

    response = asyncio.run(scenario())
    assert response["status"] == "failed" and response["status_details"]["error"]["type"] == "server_error"
    assert response_row(mock, response["id"])["fault"] == "server_error"


def test_capacity_and_expiry_apply_to_calls(mock_server) -> None:
    limits = {"capacity.max_sessions": 1, "capacity.retry_after_s": 3, "session.max_duration_s": 2}
    mock = mock_server(overrides=fast_mock(**limits))

    async def scenario() -> tuple[RtcPeer, Any]:
        first = RtcPeer()
        assert (await first.call(http(mock), session=NO_VAD, form="multipart")).status == 201
        await first.opened()
        second = await RtcPeer().call(http(mock), session=NO_VAD, form="multipart")
        error = await first.until("error", timeout=10)  # the cap, said on the channel before the call ends
        assert error["error"]["code"] == "session_expired" and "2 seconds" in error["error"]["message"]
        await first.wait_for(lambda: first.closed_at, 10)
        await first.close()
        return first, second

    _, second = asyncio.run(scenario())
    assert second.status == 429 and second.headers["retry-after"] == "3"
    assert second.json()["error"]["code"] == "too_many_sessions"
    rows = wait_truth(mock, lambda r: r["kind"] == "session" and r["fault"] == "session_expired")
    assert rows and rows[0]["transport"] == "webrtc" and rows[0]["close_code"] == 1001
    refused = next(r for r in mock.truth() if r["kind"] == "session" and r["fault"] == "capacity_429")
    assert refused["transport"] == "webrtc"


def test_barge_in_clears_the_answer_on_the_track(mock_server) -> None:
    mock = mock_server(overrides=fast_mock(3.0))

    async def scenario() -> tuple[RtcPeer, str, float]:
        peer = RtcPeer()
        assert (await peer.call(http(mock), session=SESSION, form="multipart")).status == 201
        await peer.opened()
        peer.microphone.play(load_pcm("short_hello"))
        started = await peer.until("output_audio_buffer.started", timeout=30)
        rid = started["response_id"]
        await asyncio.sleep(1.0)  # a second of the answer heard, then the caller talks over it
        peer.microphone.play(load_pcm("short_yes"))
        cleared = await peer.until("output_audio_buffer.cleared", timeout=10)
        assert cleared["response_id"] == rid
        at = peer.event_time("output_audio_buffer.cleared")
        await asyncio.sleep(1.0)
        await peer.close()
        return peer, rid, at

    peer, rid, cleared_at = asyncio.run(scenario())
    done = next(e for _, e in peer.events if e["type"] == "response.done" and e["response"]["id"] == rid)["response"]
    assert done["status"] == "cancelled" and done["status_details"]["reason"] == "turn_detected"
    assert peer.event_time("output_audio_buffer.stopped", response_id=rid) is None
    # the answer's packets stop at the barge-in: what was heard is far shorter than the answer
    row = response_row(mock, rid)
    assert row["fault"] == "turn_detected" and row["transport"] == "webrtc"
    answer = [f for f in peer.speech() if f.t <= cleared_at + 0.3]
    assert not [f for f in peer.speech() if cleared_at + 0.3 < f.t < cleared_at + 1.0]
    assert 800 <= sum(f.ms for f in answer) <= 2500  # (the whole answer is over 6 s)
