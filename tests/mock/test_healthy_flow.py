"""The mock's healthy GA flow over a real socket: §5 event order, speech-like audio, pacing."""

from __future__ import annotations

import numpy as np

from tests.mock.wsclient import Client, audio_bytes, openai_url
from tests.support import fast_mock

GA_TEXT_TURN = [
    "response.created",
    "response.output_item.added",
    "conversation.item.added",
    "response.content_part.added",
]
GA_TAIL = [
    "response.output_audio.done",
    "response.output_audio_transcript.done",
    "response.content_part.done",
    "conversation.item.done",
    "response.output_item.done",
    "response.done",
    "rate_limits.updated",
]


def test_ready_line_and_text_turn_streams_paced_speech(mock_server) -> None:
    mock = mock_server()
    assert mock.url.startswith("ws://127.0.0.1:") and mock.port > 0
    with Client(openai_url(mock.url)) as c:
        created = c.recv()
        assert created["type"] == "session.created" and created["session"]["id"].startswith("sess_")
        c.send(
            {"type": "session.update", "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}}}
        )
        assert c.until("session.updated")["session"]["audio"]["input"]["turn_detection"] is None
        text = [{"type": "input_text", "text": "Hours?"}]
        c.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": text}})
        c.send({"type": "response.create"})
        done = c.until("rate_limits.updated")
        types = [t for t in c.types() if t not in ("session.created", "session.updated")]
        assert types[:2] == ["conversation.item.added", "conversation.item.done"]
        body = [t for t in types[2:] if not t.endswith(".delta")]
        assert body == GA_TEXT_TURN + GA_TAIL
        user_item = next(e for e in c.events if e["type"] == "conversation.item.added")["item"]
        added = [e for e in c.events if e["type"] == "conversation.item.added"][1]
        assert added["previous_item_id"] == user_item["id"] and added["item"]["role"] == "assistant"
        item_done = [e for e in c.events if e["type"] == "conversation.item.done"][1]
        assert item_done["previous_item_id"] == user_item["id"] and item_done["item"]["status"] == "completed"
        resp = next(e for e in c.events if e["type"] == "response.done")["response"]
        assert resp["status"] == "completed" and resp["usage"]["output_tokens"] > 0
        assert {r["name"] for r in done["rate_limits"]} == {"requests", "tokens"}
        transcript = resp["output"][0]["content"][0]["transcript"]
        deltas = [e for e in c.events if e["type"] == "response.output_audio.delta"]
        pcm = np.frombuffer(audio_bytes(c.events, "response.output_audio.delta"), "<i2")
        audio_s = len(pcm) / 24000
        # length follows the transcript (about 14 characters per second), never "too short"
        assert 12 <= len(transcript) / audio_s <= 16
        # every delta is 100-500 ms of audio
        sizes_ms = [len(np.frombuffer(__import__("base64").b64decode(e["delta"]), "<i2")) / 24 for e in deltas]
        assert all(99 <= s <= 501 for s in sizes_ms[:-1]) and sizes_ms[-1] <= 501
        # speech-like: no silent 20 ms window, level varies (not a steady tone)
        frames = pcm[: len(pcm) // 480 * 480].astype(float).reshape(-1, 480)
        db = 20 * np.log10(np.sqrt((frames**2).mean(1)) / 32768 + 1e-12)
        assert db.min() > -45 and db.max() - db.min() > 10
        # sent faster than real time
        first = next(i for i, e in enumerate(c.events) if e["type"] == "response.output_audio.delta")
        last = max(i for i, e in enumerate(c.events) if e["type"] == "response.output_audio.delta")
        assert c.arrivals[last] - c.arrivals[first] < audio_s * 0.6
        joined = "".join(e["delta"] for e in c.events if e["type"] == "response.output_audio_transcript.delta")
        assert joined == transcript
    truth = mock.truth()
    responses = [r for r in truth if r["kind"] == "response"]
    assert len(responses) == 1 and responses[0]["fault"] == "none" and responses[0]["response_id"] == resp["id"]
    assert responses[0]["t_created"] <= responses[0]["t_first_audio"]


def test_stats_endpoint_counts_what_the_mock_did(mock_server) -> None:
    mock = mock_server(overrides=fast_mock(20.0, (1, 2)))
    with Client(openai_url(mock.url)) as c:
        c.recv()
        c.send({"type": "response.create"})
        c.until("rate_limits.updated")
        deltas = sum(1 for e in c.events if e["type"] == "response.output_audio.delta")
        stats = mock.stats()
    assert stats["sessions_active"] == 1 and stats["responses"] == 1
    assert stats["audio_deltas"] == deltas and stats["schedule_lag_ms"]["count"] >= deltas
    assert stats["schedule_lag_ms"]["max"] < 1000
