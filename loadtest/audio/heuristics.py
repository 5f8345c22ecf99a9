""" "Audio too short for its transcript": a documented speech-rate heuristic.

Conversational English runs at about 150-170 words per minute, which is 13-16 characters per second
counting spaces and punctuation (the Realtime voices and this repository's fixtures are in that
range; see ``tests/audio/test_heuristics.py``). Fast speech reaches about 20 characters per second.

A response whose transcript has ``n`` characters (whitespace collapsed) therefore needs at least
``n / MAX_CHARS_PER_SECOND`` seconds of audio even when spoken fast. The audio is called *too short*
when it is below that minimum by more than ``MARGIN`` (default 25%: i.e. slower than
``20 / 0.75 ≈ 26.7`` characters per second would be needed to say the transcript in the audio
received). Transcripts under ``MIN_CHARS`` characters are never judged: a one-word answer's
length says little. The heuristic is deliberately lenient: it flags audio that stopped well before
the words did (a truncated stream), not a brisk speaker.
"""

from __future__ import annotations

MAX_CHARS_PER_SECOND = 20.0
MARGIN = 0.25
MIN_CHARS = 20


def transcript_chars(transcript: str | int) -> int:
    """Character count with runs of whitespace collapsed to one (or ``transcript`` if it is a count)."""
    if isinstance(transcript, int):
        return max(0, transcript)
    return len(" ".join(transcript.split()))


def min_audio_ms(
    transcript: str | int, *, max_chars_per_second: float = MAX_CHARS_PER_SECOND, margin: float = MARGIN
) -> float:
    """The shortest audio (ms) that can plausibly carry ``transcript``."""
    return transcript_chars(transcript) / max_chars_per_second * 1000 * (1 - margin)


def audio_too_short(
    audio_ms: float,
    transcript: str | int,
    *,
    max_chars_per_second: float = MAX_CHARS_PER_SECOND,
    margin: float = MARGIN,
    min_chars: int = MIN_CHARS,
) -> bool:
    """True when ``audio_ms`` of audio is too short to speak ``transcript`` (see the module doc)."""
    if transcript_chars(transcript) < min_chars:
        return False
    return audio_ms < min_audio_ms(transcript, max_chars_per_second=max_chars_per_second, margin=margin)
