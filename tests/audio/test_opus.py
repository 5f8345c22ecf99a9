"""Opus decoding through libopus (ctypes) and through PyAV: the same audio, at the rate asked,
corrupt packets as gaps."""

from __future__ import annotations

import numpy as np
import pytest

from loadtest.audio import opus
from tests.support import peak_hz

pytest.importorskip("av")

from loadtest.session.rtc_media import encode_opus, is_silent

RATE = 24000


def tone(hz: float = 440.0, seconds: float = 1.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * hz * t) * 8000).astype("<i2")


def decode_all(decoder: opus.Decoder, packets: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(decoder.decode(p) for p in packets), dtype="<i2")


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def test_libopus_is_found_where_pyav_is_installed() -> None:
    assert opus.libopus() is not None  # (av's wheel carries it; the system's is the fallback)
    assert isinstance(opus.decoder(RATE), opus.LibOpusDecoder)


@pytest.mark.parametrize("rate", [8000, 16000, 24000, 48000])
def test_packets_decode_at_the_rate_asked_to_the_same_tone(rate: int) -> None:
    source = tone(440.0)
    packets = encode_opus(source.tobytes())
    decoded = decode_all(opus.LibOpusDecoder(rate), packets)
    assert decoded.size == len(packets) * rate // 50  # 20 ms a packet
    steady = decoded[rate // 5 :]  # (past the codec's start-up)
    assert abs(peak_hz(steady, rate) - 440.0) < 10.0
    assert 0.7 < rms(steady) / rms(source) < 1.3


def test_libopus_and_pyav_decode_the_same_audio() -> None:
    source = tone(300.0, 2.0)
    packets = encode_opus(source.tobytes())
    ours = decode_all(opus.LibOpusDecoder(RATE), packets)
    theirs = decode_all(opus.PyAVDecoder(RATE), packets)
    assert abs(ours.size - theirs.size) <= RATE // 50  # (the resampler may hold a packet back)
    assert abs(peak_hz(ours[RATE // 5 :], RATE) - peak_hz(theirs[RATE // 5 :], RATE)) < 10.0
    assert abs(rms(ours[RATE // 5 :]) - rms(theirs[RATE // 5 : ours.size])) / rms(ours) < 0.1


def test_a_corrupt_packet_is_a_gap_and_the_stream_goes_on() -> None:
    packets = encode_opus(tone(440.0, 0.2).tobytes())
    for decoder in (opus.LibOpusDecoder(RATE), opus.PyAVDecoder(RATE)):
        assert decoder.decode(packets[0])
        # a TOC byte of code 3 with a frame count of 0 is invalid in every decoder
        assert decoder.decode(b"\x03\x00") == b""
        assert decoder.errors == 1
        assert decoder.decode(packets[1])


def test_digital_silence_decodes_silent_and_speech_does_not() -> None:
    decoder = opus.LibOpusDecoder(RATE)
    silence = encode_opus(np.zeros(RATE // 2, "<i2").tobytes())
    assert all(is_silent(decoder.decode(p)) for p in silence[3:])
    speech = encode_opus(tone(200.0, 0.5).tobytes())
    assert not any(is_silent(decoder.decode(p)) for p in speech[3:])


def test_without_libopus_the_pyav_decoder_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(opus, "_LIB", None)
    decoder = opus.decoder(RATE)
    assert isinstance(decoder, opus.PyAVDecoder)
    assert decode_all(decoder, encode_opus(tone().tobytes())).size > RATE // 2
    with pytest.raises(OSError):
        opus.LibOpusDecoder(RATE)
