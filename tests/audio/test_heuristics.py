"""The "audio too short for its transcript" heuristic, checked against the fixtures' own speech."""

from __future__ import annotations

import pytest

from loadtest.audio import heuristics
from loadtest.audio.fixtures import Manifest

FIXTURES = Manifest.load().fixtures


def _speech_ms(fx) -> float:
    return fx.duration_s * 1000 - fx.lead_silence_ms - fx.trail_silence_ms


@pytest.mark.parametrize("fx", FIXTURES, ids=lambda f: f.name)
def test_real_speech_is_never_too_short(fx) -> None:
    # the whole file, and the speech alone without the caller's silence
    assert not heuristics.audio_too_short(fx.duration_s * 1000, fx.transcript)
    assert not heuristics.audio_too_short(_speech_ms(fx), fx.transcript)


@pytest.mark.parametrize("fx", FIXTURES, ids=lambda f: f.name)
def test_speech_cut_to_40_percent_is_too_short(fx) -> None:
    cut = _speech_ms(fx) * 0.4
    judged = heuristics.transcript_chars(fx.transcript) >= heuristics.MIN_CHARS
    assert heuristics.audio_too_short(cut, fx.transcript) is judged


def test_fixture_speech_rates_match_the_documented_range() -> None:
    rates = [
        heuristics.transcript_chars(f.transcript) / (_speech_ms(f) / 1000)
        for f in FIXTURES
        if heuristics.transcript_chars(f.transcript) >= heuristics.MIN_CHARS
    ]
    assert rates and all(12 <= r <= heuristics.MAX_CHARS_PER_SECOND for r in rates)


def test_documented_numbers() -> None:
    text = "x" * 100  # 100 characters need >= 100 / 20 * 0.75 = 3.75 s
    assert heuristics.min_audio_ms(text) == pytest.approx(3750)
    assert heuristics.audio_too_short(3700, text)
    assert not heuristics.audio_too_short(3800, text)
    assert heuristics.audio_too_short(3700, 100)  # a character count works too
    assert not heuristics.audio_too_short(0, "Yes.")  # too few characters to judge
    assert heuristics.transcript_chars("  two   words \n") == 9
    assert not heuristics.audio_too_short(2100, text, max_chars_per_second=50, margin=0.0)
    assert heuristics.audio_too_short(1900, text, max_chars_per_second=50, margin=0.0)
