"""Wire conversion: pcm16 is bit-exact, G.711 goes through 8 kHz, resampling keeps pitch and length."""

from __future__ import annotations

import numpy as np
import pytest

from loadtest.audio import convert
from tests.support import peak_hz


def _sine(freq: float, rate: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return convert.float_to_int16(amp * np.sin(2 * np.pi * freq * t))


def test_pcm16_wire_round_trip_bit_exact() -> None:
    pcm = np.random.default_rng(1).integers(-32768, 32767, 2400, dtype=np.int16)
    wire = convert.to_wire(pcm, "pcm16")
    assert len(wire) == 4800
    assert np.array_equal(convert.from_wire(wire, "pcm16"), pcm)


@pytest.mark.parametrize("fmt", ["g711_ulaw", "g711_alaw"])
def test_g711_wire_is_8khz_and_keeps_the_tone(fmt: str) -> None:
    pcm = _sine(440, 24000, 1.0)
    wire = convert.to_wire(pcm, fmt)
    assert len(wire) == 8000  # one byte per 8 kHz sample
    back = convert.from_wire(wire, fmt)
    assert back.dtype == np.int16 and len(back) == 8000
    assert abs(peak_hz(back, 8000) - 440) <= 2


@pytest.mark.parametrize(("src", "dst"), [(8000, 24000), (16000, 24000), (44100, 24000), (24000, 8000)])
def test_resample_length_and_frequency(src: int, dst: int) -> None:
    out = convert.resample(_sine(1000, src, 2.0), src, dst)
    assert out.dtype == np.int16
    assert abs(len(out) - 2 * dst) <= 2
    assert abs(peak_hz(out, dst) - 1000) <= 1


def test_float_to_int16_clips_instead_of_wrapping() -> None:
    out = convert.float_to_int16(np.array([1.5, -1.5, 1.0, -1.0, 0.0]))
    assert out.tolist() == [32767, -32768, 32767, -32768, 0]


def test_unknown_format_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown audio format 'opus'"):
        convert.to_wire(np.zeros(4, dtype=np.int16), "opus")
    assert convert.bytes_per_second("pcm16") == 48000
    assert convert.bytes_per_second("g711_ulaw") == 8000
