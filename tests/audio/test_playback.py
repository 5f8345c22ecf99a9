"""The audio a caller heard: WAV and playback timeline from deltas and their arrival times."""

from __future__ import annotations

import io
import wave

import numpy as np

from loadtest.audio.convert import to_wire
from loadtest.audio.playback import render
from tests.support import peak_hz


def _tone(ms: int, hz: float = 440.0, amp: float = 8000.0) -> np.ndarray:
    t = np.arange(24 * ms) / 24000
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def _read(wav: bytes) -> tuple[int, np.ndarray]:
    with wave.open(io.BytesIO(wav), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def _zero_runs_ms(pcm: np.ndarray, rate: int, min_ms: float = 100.0) -> list[tuple[float, float]]:
    """(start, length) in ms of runs of exact digital zero (computed here, not by the module)."""
    zero = np.concatenate(([0], (pcm == 0).view(np.int8), [0]))
    edges = np.diff(zero)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(s * 1000 / rate, (e - s) * 1000 / rate) for s, e in zip(starts, ends, strict=True)
            if (e - s) * 1000 / rate >= min_ms]  # fmt: skip


def test_an_underrun_becomes_silence_in_the_wav_where_the_player_ran_dry() -> None:
    chunk = to_wire(_tone(200), "pcm16")  # 200 ms each
    # 10 deltas; the 6th arrives 1.3 s after the player ran out of the first five (1.0 s of audio)
    arrivals = [0.0, 0.05, 0.1, 0.15, 0.2, 2.3, 2.35, 2.4, 2.45, 2.5]
    played = render([chunk] * 10, arrivals, "pcm16")
    rate, pcm = _read(played.wav)
    assert rate == 24000
    assert abs(pcm.size / rate - 3.3) < 0.002  # 2.0 s of audio + 1.3 s of nothing
    (run,) = _zero_runs_ms(pcm, rate)
    assert abs(run[0] - 1000) < 2 and abs(run[1] - 1300) < 2
    assert [(round(a), round(b)) for a, b in played.underruns] == [(1000, 1300)]
    tl = played.timeline()
    assert tl["deltas"]["arrival_ms"][5] == 2300.0 and tl["deltas"]["need_ms"][5] == 1000.0
    assert tl["deltas"]["start_ms"][5] == 2300.0  # it played on arrival
    assert tl["deltas"]["need_ms"][6] == 2500.0 and tl["deltas"]["start_ms"][6] == 2500.0  # on time again
    assert tl["silences"] == []  # an underrun is not the server's silence


def test_silence_inside_the_received_audio_is_marked_apart_from_underruns() -> None:
    pieces = [_tone(500), np.zeros(24 * 1200, dtype=np.int16), _tone(500)]
    chunks = [to_wire(p, "pcm16") for p in pieces]
    played = render(chunks, [0.0, 0.1, 0.2], "pcm16")
    assert played.underruns == []
    ((at, ms),) = played.silences
    assert abs(at - 500) <= 20 and abs(ms - 1200) <= 20


def test_a_late_player_start_with_a_jitter_buffer_hides_small_gaps() -> None:
    chunk = to_wire(_tone(100), "pcm16")
    arrivals = [0.0, 0.25]  # 150 ms late for a player without a buffer
    assert [round(b) for _, b in render([chunk] * 2, arrivals).underruns] == []  # under the mark threshold
    bare = render([chunk] * 2, arrivals)
    assert abs(bare.wav_ms - 350) < 1  # but heard as a 150 ms hole
    buffered = render([chunk] * 2, arrivals, jitter_buffer_ms=200)
    assert abs(buffered.wav_ms - 200) < 1  # no hole at all


def test_g711_is_decoded_and_written_at_24_khz() -> None:
    tone = _tone(600, hz=700)
    for fmt in ("g711_ulaw", "g711_alaw"):
        wire = to_wire(tone, fmt)
        chunks = [wire[i : i + 800] for i in range(0, len(wire), 800)]  # 100 ms each at 8 kHz
        played = render(chunks, [i * 0.01 for i in range(len(chunks))], fmt)
        rate, pcm = _read(played.wav)
        assert rate == 24000 and abs(pcm.size - tone.size) <= 3
        assert abs(peak_hz(pcm, rate) - 700) < 5
        assert abs(played.audio_ms - 600) < 1


def test_no_deltas_is_an_empty_wav() -> None:
    played = render([], [], "pcm16")
    assert _read(played.wav)[1].size == 0 and played.timeline()["deltas"]["arrival_ms"] == []
