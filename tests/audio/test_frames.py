"""Pre-encoded append events: valid events of both dialects that round-trip the audio bit-exactly."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pybase64
import pytest

from loadtest.audio import frames
from loadtest.audio.convert import to_wire
from loadtest.audio.fixtures import load_pcm
from loadtest.protocol.dialects import GA, PREVIEW


@pytest.mark.parametrize("fmt", ["pcm16", "g711_ulaw", "g711_alaw"])
@pytest.mark.parametrize("frame_ms", [20, 100, 500])
def test_chunking_and_pre_encoding_round_trip_bit_exactly(fmt: str, frame_ms: int) -> None:
    pcm = load_pcm("support_call_1")
    wire = to_wire(pcm, fmt)
    encoded = frames.encode_appends(pcm, frame_ms, fmt)
    assert frames.decode_appends(encoded) == wire
    bytes_per_frame = len(wire) / encoded.duration_ms * frame_ms
    assert len(encoded) == math.ceil(len(wire) / bytes_per_frame)
    assert encoded.audio_bytes == len(wire)
    assert abs(encoded.duration_ms - len(pcm) / 24) < 0.2
    for i, message in enumerate(encoded.messages):
        event = orjson.loads(message)
        assert set(event) == {"type", "audio"}
        assert event["type"] == "input_audio_buffer.append"
        assert event["type"] in GA.client_events and event["type"] in PREVIEW.client_events
        assert len(pybase64.b64decode(event["audio"])) == round(
            encoded.frame_duration_ms(i) * bytes_per_frame / frame_ms
        )


def test_messages_equal_the_json_library_encoding() -> None:
    pcm = load_pcm("short_hello")
    encoded = frames.encode_appends(pcm, 100)
    wire = to_wire(pcm, "pcm16")
    for i, message in enumerate(encoded.messages[:5]):
        chunk = wire[i * 4800 : (i + 1) * 4800]
        expected = {"type": "input_audio_buffer.append", "audio": pybase64.b64encode(chunk).decode()}
        assert message == orjson.dumps(expected)


def test_frames_for_is_encoded_once_per_process() -> None:
    first = frames.frames_for("short_hello", 100, "pcm16")
    assert frames.frames_for("short_hello", 100, "pcm16") is first
    assert frames.frames_for("short_hello", 40, "pcm16") is not first
    assert frames.decode_appends(frames.frames_for("short_hello", 40, "g711_ulaw")) == to_wire(
        load_pcm("short_hello"), "g711_ulaw"
    )


def test_silence_appends() -> None:
    silence = frames.silence_appends(1000, 100, "pcm16")
    assert len(silence) == 10 and silence.duration_ms == 1000
    assert frames.decode_appends(silence) == b"\x00" * 48000
    ulaw = frames.silence_appends(250, 100, "g711_ulaw")
    assert [ulaw.frame_duration_ms(i) for i in range(len(ulaw))] == [100, 100, 50]
    assert ulaw.durations_ms == (100, 100, 50) and sum(ulaw.durations_ms) == ulaw.duration_ms
    assert set(frames.decode_appends(ulaw)) == {0xFF}  # μ-law digital silence


@pytest.mark.parametrize("bad", [10, 19, 501, 1000])
def test_frame_size_out_of_range(bad: int) -> None:
    with pytest.raises(ValueError, match="between 20 and 500 ms"):
        frames.encode_appends(np.zeros(2400, dtype=np.int16), bad)
