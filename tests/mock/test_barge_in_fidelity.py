"""Barge-in fidelity: a truncated assistant item keeps only the transcript of the audio played (as
``conversation.item.retrieve`` shows), and semantic VAD's ``eagerness`` sets how long the mock waits
before it ends the caller's turn."""

from __future__ import annotations

import numpy as np
import pytest

from loadtest.protocol.dialects import get_dialect
from tests.mock.schema_check import validate
from tests.mock.wsclient import append_events, dialect_client, response_events, speechlike


@pytest.mark.parametrize("dialect", ["ga", "preview"])
def test_truncate_drops_the_unheard_transcript(shared_mock, dialect: str) -> None:
    d = get_dialect(dialect)
    with dialect_client(shared_mock.url, dialect) as c:
        c.recv()
        c.send(d.session_update(turn_detection=None))
        c.until(d.session_updated)
        c.send(d.user_text_item("Tell me about my bill."))
        c.send(d.response_create())
        done = response_events(c)[-1]["response"]
        item_id = done["output"][0]["id"]
        full = done["output"][0]["content"][0]["transcript"]
        c.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 1000})
        c.until("conversation.item.truncated")
        c.send({"type": "conversation.item.retrieve", "item_id": item_id})
        retrieved = c.until("conversation.item.retrieved")
        validate(retrieved, dialect)
        heard = retrieved["item"]["content"][0]["transcript"]
        # 1 s of speech at the mock's 14 characters per second: about 14 characters, cut at a word
        assert full.startswith(heard) and 0 < len(heard) <= 15 < len(full)
        assert full[len(heard)] == " "
        # the item is 1000 ms long now: truncating past that is refused as for any shorter item
        c.send({"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 1500})
        assert c.until("error")["error"]["param"] == "audio_end_ms"


def _turn_end_ms(url: str, eagerness: str) -> int:
    with dialect_client(url, "ga") as c:
        c.recv()
        turn = {"type": "semantic_vad", "eagerness": eagerness, "create_response": False}
        c.send(get_dialect("ga").session_update(output_modalities=["text"], turn_detection=turn))
        c.until("session.updated")
        pcm = np.concatenate([np.zeros(12000, np.int16), speechlike(1.0), np.zeros(24000 * 2, np.int16)])
        for event in append_events(pcm):
            c.send(event)
        return c.until("input_audio_buffer.speech_stopped")["audio_end_ms"]


def test_semantic_vad_eagerness_sets_the_wait_before_the_turn_ends(shared_mock) -> None:
    # speech ends at 1500 ms; high eagerness ends the turn soonest, low waits longest
    ends = {e: _turn_end_ms(shared_mock.url, e) - 1500 for e in ("high", "auto", "low")}
    assert ends["high"] < ends["auto"] < ends["low"]
    assert ends["high"] <= 400 and ends["low"] >= 1200
