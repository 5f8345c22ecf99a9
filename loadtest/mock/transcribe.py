"""Input transcription in the mock: recognise a shipped fixture in committed audio.

Each fixture of ``audio_fixtures/manifest.json`` is reduced once to a fingerprint: its coarse
energy envelope at 8 kHz (dB per 20 ms frame, clipped 35 dB under its peak, speech edges
trimmed). A committed item gets the same reduction (24 kHz pcm16 is first resampled to the 8 kHz
band G.711 keeps, so both formats compare alike), and the fixture whose envelope correlates best (Pearson,
after stretching to the fixture's length; the durations within 25 %) above ``MIN_SCORE`` is the
one heard. The commit's speech starts anywhere inside a 20 ms frame (the VAD cuts where it cuts, a
previous turn's tail stays in the buffer), and a misaligned envelope scores as low as 0.77, so the
committed audio is reduced at ``PHASES`` sub-frame offsets and the best one counts. G.711
quantisation, the 8 kHz band limit, gain and the VAD's padding change the envelope little, so a
round trip still matches (``tests/mock/test_transcription.py``).

The transcript returned is that fixture's ``transcript``, with ``substitution_rate`` of its words
replaced (so WER is measurable); audio matching no fixture gets ``UNRECOGNISED``.
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass

import numpy as np

from loadtest.audio.convert import resample

RATE = 8000
FRAME_MS = 20
FLOOR_DB = 35.0
MIN_SCORE = 0.85  # shipped fixtures score >= 0.97 through G.711; the best wrong fixture ~0.7
PHASES = 4  # sub-frame offsets (5 ms apart) at which committed audio is reduced
UNRECOGNISED = "Hello, I have a question about my account."
SUBSTITUTES = ("blue", "river", "paper", "seven", "window", "garden", "silver", "motor", "candle", "pocket")


def envelope(pcm: np.ndarray, rate: int) -> np.ndarray:
    """dB energy per 20 ms frame of the audio at 8 kHz (the band G.711 keeps), clipped FLOOR_DB
    under the peak, silent edges trimmed."""
    if rate != RATE:
        pcm = resample(pcm, rate, RATE)
        rate = RATE
    frame = max(1, rate * FRAME_MS // 1000)
    count = pcm.size // frame
    if count == 0:
        return np.zeros(0)
    frames = pcm[: count * frame].astype(np.float64).reshape(count, frame)
    db = 10.0 * np.log10(np.mean(frames * frames, axis=1) + 1.0)
    floor = db.max() - FLOOR_DB
    db = np.maximum(db, floor)
    loud = np.flatnonzero(db > floor + 6.0)
    if loud.size == 0:
        return np.zeros(0)
    return db[loud[0] : loud[-1] + 1]


def _score(env: np.ndarray, ref: np.ndarray) -> float:
    if env.size < 5 or ref.size < 5 or not 0.8 <= env.size / ref.size <= 1.25:
        return 0.0
    stretched = np.interp(np.linspace(0, env.size - 1, ref.size), np.arange(env.size), env)
    a = stretched - stretched.mean()
    b = ref - ref.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom else 0.0


@dataclass(slots=True)
class Recognition:
    fixture: str | None
    transcript: str  # the fixture's own transcript (or UNRECOGNISED)
    score: float


class FixtureIndex:
    """Fingerprints of the shipped fixtures (built once per mock process, on first use)."""

    def __init__(self, entries: list[tuple[str, str, np.ndarray]]) -> None:
        self.entries = entries  # (name, transcript, envelope)

    @classmethod
    def load(cls) -> FixtureIndex:
        from loadtest.audio.fixtures import FixtureError, Manifest, load_pcm

        try:
            manifest = Manifest.load()
        except FixtureError:
            return cls([])
        entries = []
        for fixture in manifest.fixtures:
            try:
                pcm = load_pcm(fixture.name, manifest.root)
            except (FixtureError, OSError, ValueError):
                continue
            entries.append((fixture.name, fixture.transcript, envelope(pcm, 24000)))
        return cls(entries)

    def recognise(self, pcm: np.ndarray, rate: int) -> Recognition:
        step = max(1, rate * FRAME_MS // 1000 // PHASES)
        envs = [envelope(pcm[phase * step :], rate) for phase in range(PHASES)]
        best = Recognition(None, UNRECOGNISED, 0.0)
        for name, transcript, ref in self.entries:
            score = max(_score(env, ref) for env in envs)
            if score > best.score and score >= MIN_SCORE:
                best = Recognition(name, transcript, score)
        if best.fixture is None and envs[0].size:
            best.score = max((_score(env, ref) for env in envs for _, _, ref in self.entries), default=0.0)
        return best


@functools.cache
def fixture_index() -> FixtureIndex:
    """The shipped fixtures' fingerprints, built on first use in this process."""
    return FixtureIndex.load()


def substitute(transcript: str, rate: float, rng: random.Random) -> tuple[str, int]:
    """``transcript`` with each word replaced with probability ``rate``; (text, words replaced)."""
    if rate <= 0:
        return transcript, 0
    replaced = 0

    def swap(match: re.Match[str]) -> str:
        nonlocal replaced
        if rng.random() >= rate:
            return match.group(0)
        replaced += 1
        word = rng.choice([w for w in SUBSTITUTES if w != match.group(0).lower()])
        return word.capitalize() if match.group(0)[0].isupper() else word

    return re.sub(r"[A-Za-z']+", swap, transcript), replaced


def deltas(transcript: str, model: str | None) -> list[str]:
    """The transcript in delta pieces: whole for whisper-1, word by word for the gpt-4o models."""
    if (model or "").startswith("whisper") or not transcript:
        return [transcript]
    return re.findall(r"\S+\s*", transcript) or [transcript]
