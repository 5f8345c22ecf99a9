"""The mock's healthy answers pass the harness's own audio checks in every format (no false
inner silence, never too short for the transcript), and its silence fault is caught by them."""

from __future__ import annotations

import pytest

from loadtest.audio.analysis import AudioAnalyzer
from loadtest.audio.heuristics import audio_too_short
from loadtest.mock.speech import FORMATS, AudioBank


@pytest.fixture(scope="module")
def bank() -> AudioBank:
    return AudioBank(seed=3)


@pytest.mark.parametrize("fmt", FORMATS)
def test_healthy_answers_have_no_inner_silence_and_are_long_enough(bank: AudioBank, fmt: str) -> None:
    for answer in bank.answers:
        analyzer = AudioAnalyzer(audio_format=fmt)
        t = 0.0
        for delta in answer.deltas[fmt]:
            analyzer.feed_b64(delta.b64, t)
            t += delta.dur_ms / 1000 / 3
        analyzer.finish()
        assert abs(analyzer.audio_ms - answer.duration_ms) < 5
        assert analyzer.longest_silence_ms < 300, (fmt, answer.transcript[:30], analyzer.longest_silence_ms)
        assert not audio_too_short(analyzer.audio_ms, answer.transcript)
        assert analyzer.longest_underrun_ms == 0


@pytest.mark.parametrize("fmt", FORMATS)
def test_inserted_silence_is_detected(bank: AudioBank, fmt: str) -> None:
    answer = bank.answers[0]
    analyzer = AudioAnalyzer(audio_format=fmt)
    deltas = answer.deltas[fmt]
    half = len(deltas) // 2
    sequence = deltas[:half] + [bank.silence[fmt]] * 20 + deltas[half:]
    for delta in sequence:
        analyzer.feed_b64(delta.b64, 0.0)
    analyzer.finish()
    assert 1900 <= analyzer.longest_silence_ms <= 2200
