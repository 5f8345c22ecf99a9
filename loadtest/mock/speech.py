"""Speech-like response audio, synthesised once at startup and pre-encoded per wire format.

Each answer's audio is voiced speech-like sound: a harmonic source with a wandering pitch,
shaped by vowel formant filters that change every syllable, a syllable-rate amplitude envelope
and short noise bursts for consonants. It is deterministic, never digitally silent inside (the
envelope has a floor well above any silence detector), and its length follows the transcript
(``chars_per_second``), so a healthy answer is never "too short for its transcript".

The audio is cut once into deltas of ``delta_ms`` pieces and base64-encoded once per format;
sending a delta is then only a bytes concatenation.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
import pybase64

from loadtest.audio.convert import to_wire

CACHE_VERSION = 1

RATE = 24000
FORMATS = ("pcm16", "g711_ulaw", "g711_alaw", "pcm16_16000hz", "pcm16_8000hz")  # the last two: Voice Live
WIRE_BYTES_PER_MS = {"pcm16": 48, "g711_ulaw": 8, "g711_alaw": 8, "pcm16_16000hz": 32, "pcm16_8000hz": 16}

# A small set of realistic customer-service answers.
ANSWERS: tuple[str, ...] = (
    "Thanks for calling. I can see your order shipped yesterday and should arrive by Thursday afternoon.",
    "I'm sorry about the trouble with your bill. I've removed the late fee, so your new balance is forty two dollars.",
    "Sure, I can help with that. Your appointment is now moved to Monday at ten in the morning. "
    "You'll get a confirmation text in a few minutes.",
    "Your account is verified. The password reset link has been sent to the email address ending in four seven.",
    "I understand. I've opened a repair ticket for your internet connection, and a technician will call you "
    "before noon tomorrow to confirm a time.",
    "Of course. Our store is open from nine to six on weekdays and from ten to four on Saturdays.",
)

# (F1, F2, F3) Hz of a few vowels.
_VOWELS = ((730, 1090, 2440), (530, 1840, 2480), (270, 2290, 3010), (570, 840, 2410), (300, 870, 2240))


def _formant_filter(spectrum: np.ndarray, freqs: np.ndarray, formants: tuple[int, int, int], n: int) -> np.ndarray:
    """The source filtered by three formant peaks (applied in the frequency domain)."""
    gain = np.zeros_like(freqs)
    for weight, centre, bandwidth in zip((1.0, 0.6, 0.3), formants, (90.0, 110.0, 150.0), strict=True):
        gain += weight / (1 + ((freqs - centre) / (bandwidth / 2)) ** 2)
    gain += 0.02  # a little energy everywhere (breath)
    return np.fft.irfft(spectrum * gain)[:n]


def synthesise(text: str, chars_per_second: float = 14.0, seed: int = 0) -> np.ndarray:
    """int16 mono 24 kHz speech-like audio, ``len(text) / chars_per_second`` seconds long."""
    rng = np.random.default_rng(seed)
    duration = max(0.6, len(text) / chars_per_second)
    n = int(duration * RATE)
    t = np.arange(n) / RATE
    # pitch: a slow declining contour with a little wander
    f0 = (
        135
        - 20 * (t / duration)
        + 12 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
        + 4 * np.sin(2 * np.pi * 3.1 * t)
    )
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    source = 2 * ((phase / (2 * np.pi)) % 1.0) - 1  # a sawtooth: every harmonic at 1/k
    source += 0.02 * rng.standard_normal(n)
    nfft = 1 << (n - 1).bit_length()  # a power of two keeps the FFTs fast
    spectrum = np.fft.rfft(source, nfft)
    freqs = np.fft.rfftfreq(nfft, 1 / RATE)
    # syllables: 180-280 ms each, each with its own vowel; cross-faded vowel filters
    bounds = [0]
    while bounds[-1] < n:
        bounds.append(bounds[-1] + int(rng.uniform(0.18, 0.28) * RATE))
    bounds[-1] = n
    vowel_of = rng.integers(0, len(_VOWELS), size=len(bounds) - 1)
    filtered = [_formant_filter(spectrum, freqs, vowel, n) for vowel in _VOWELS]
    noise_level = float(np.std(filtered[0]))
    voiced = np.zeros(n)
    envelope = np.zeros(n)
    fade = int(0.03 * RATE)
    for i in range(len(bounds) - 1):
        a, b = bounds[i], bounds[i + 1]
        lo, hi = max(0, a - fade), min(n, b + fade)
        w = np.ones(hi - lo)
        if a - lo:
            w[: a - lo] = np.linspace(0, 1, a - lo)
        if hi - b:
            w[-(hi - b) :] = np.linspace(1, 0, hi - b)
        voiced[lo:hi] += w * filtered[vowel_of[i]][lo:hi]
        # syllable envelope: a raised hump over a floor (never silent)
        length = b - a
        hump = np.sin(np.pi * np.arange(length) / length) ** 1.5
        floor = 0.22 if rng.random() < 0.85 else 0.12  # word boundaries dip lower
        envelope[a:b] = floor + (1 - floor) * hump * rng.uniform(0.7, 1.0)
        # consonant: a short high-passed noise burst at the onset
        burst = min(length, int(rng.uniform(0.02, 0.05) * RATE))
        noise = np.diff(rng.standard_normal(burst + 1)) * 0.25
        voiced[a : a + burst] += noise * noise_level
    # onset / offset ramps of the whole answer
    ramp = int(0.02 * RATE)
    envelope[:ramp] *= np.linspace(0.3, 1, ramp)
    envelope[-ramp:] *= np.linspace(1, 0.3, ramp)
    out = voiced * envelope
    out /= np.max(np.abs(out)) + 1e-9
    return np.clip(np.rint(out * 0.7 * 32767), -32768, 32767).astype(np.int16)


@dataclass(slots=True)
class Delta:
    """One pre-encoded audio delta and the transcript text sent just before it."""

    start_ms: float  # position of this audio in the answer
    dur_ms: float
    b64: bytes  # base64 of the wire bytes
    nbytes: int  # wire bytes
    transcript_json: bytes  # JSON string literal (with quotes) of the transcript piece, or b""


@dataclass(slots=True)
class Answer:
    """One answer: its transcript and audio, with deltas per format."""

    transcript: str
    duration_ms: float
    deltas: dict[str, list[Delta]] = field(default_factory=dict)
    text_pieces: list[bytes] = field(default_factory=list)  # JSON string literals for text-only answers

    @property
    def transcript_json(self) -> bytes:
        return orjson.dumps(self.transcript)

    def transcript_upto(self, ms: float) -> str:
        """The transcript spoken in the first ``ms`` of the audio (word boundary)."""
        if ms >= self.duration_ms:
            return self.transcript
        cut = int(len(self.transcript) * ms / self.duration_ms)
        space = self.transcript.rfind(" ", 0, cut + 1)
        return self.transcript[: max(0, space)]


def _split_words(text: str, parts: int) -> list[str]:
    """``text`` cut into ``parts`` consecutive pieces at word boundaries (pieces may be empty)."""
    words = text.split(" ")
    pieces = []
    for i in range(parts):
        a = round(len(words) * i / parts)
        b = round(len(words) * (i + 1) / parts)
        chunk = " ".join(words[a:b])
        pieces.append(("" if a == 0 or not chunk else " ") + chunk)
    return pieces


def _cut(duration_ms: float, delta_ms: tuple[float, float], rng: random.Random) -> list[tuple[float, float]]:
    out = []
    pos = 0.0
    while pos < duration_ms - 1e-6:
        dur = float(rng.choice(range(int(delta_ms[0]), int(delta_ms[1]) + 1, 20)))
        dur = min(dur, duration_ms - pos)
        out.append((pos, dur))
        pos += dur
    return out


class AudioBank:
    """Every answer synthesised and pre-encoded, plus pre-encoded silence."""

    def __init__(
        self,
        chars_per_second: float = 14.0,
        delta_ms: tuple[float, float] = (100, 500),
        seed: int = 0,
        answers: tuple[str, ...] = ANSWERS,
    ) -> None:
        rng = random.Random(seed)
        self.answers: list[Answer] = []
        for index, text in enumerate(answers):
            pcm = synthesise(text, chars_per_second, seed=seed * 1000 + index)
            duration_ms = len(pcm) * 1000 / RATE
            answer = Answer(transcript=text, duration_ms=duration_ms)
            cuts = _cut(duration_ms, delta_ms, rng)
            pieces = _split_words(text, len(cuts))
            for fmt in FORMATS:
                wire = to_wire(pcm, fmt)
                per_ms = WIRE_BYTES_PER_MS[fmt]
                deltas = []
                for (start, dur), piece in zip(cuts, pieces, strict=True):
                    a = round(start * per_ms)
                    b = len(wire) if start + dur >= duration_ms - 1e-6 else round((start + dur) * per_ms)
                    chunk = wire[a:b]
                    deltas.append(
                        Delta(start, dur, pybase64.b64encode(chunk), len(chunk), orjson.dumps(piece) if piece else b"")
                    )
                answer.deltas[fmt] = deltas
            answer.text_pieces = [orjson.dumps(p) for p in _split_words(text, max(1, len(text.split(" ")) // 2)) if p]
            self.answers.append(answer)
        # 100 ms of digital silence per format (the `silence` fault sends these)
        self.silence: dict[str, Delta] = {}
        for fmt in FORMATS:
            pcm = fmt.startswith("pcm16")
            chunk = bytes(WIRE_BYTES_PER_MS[fmt] * 100) if pcm else to_wire(np.zeros(2400, np.int16), fmt)
            self.silence[fmt] = Delta(0.0, 100.0, pybase64.b64encode(chunk), len(chunk), b"")


def _cache_dir() -> Path | None:
    root = os.environ.get("RTLOAD_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "rtload"
    )
    return Path(root)


def load_bank(chars_per_second: float = 14.0, delta_ms: tuple[float, float] = (100, 500), seed: int = 0) -> AudioBank:
    """An :class:`AudioBank`, from the on-disk cache when one was built with the same inputs.

    Synthesis takes a few hundred ms; tests start many mocks. The cache key covers the inputs and
    this module's source and the audio codec's, so any change rebuilds it. Unwritable cache: no cache.
    """
    sources = b"".join(Path(m).read_bytes() for m in (__file__, to_wire.__code__.co_filename))
    key = hashlib.sha256(repr((CACHE_VERSION, chars_per_second, tuple(delta_ms), seed)).encode() + sources)
    root = _cache_dir()
    path = root / f"mock-bank-{key.hexdigest()[:24]}.pickle" if root else None
    if path is not None:
        try:
            with path.open("rb") as fh:
                bank = pickle.load(fh)
            if isinstance(bank, AudioBank):
                return bank
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError):
            pass
    bank = AudioBank(chars_per_second, delta_ms, seed)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as tmp:
                pickle.dump(bank, tmp, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp.name, path)
        except OSError:
            pass
    return bank
