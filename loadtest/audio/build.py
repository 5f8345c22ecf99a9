"""Rebuild the shipped fixtures from their sources (``rtload fixtures build`` / ``make fixtures``).

Sources that work offline on Debian: the human recordings in ``alsa-utils``
(``/usr/share/sounds/alsa/*.wav``, 48 kHz) and speech synthesised by ``espeak-ng`` from realistic
customer-service caller prompts (``apt-get install espeak-ng alsa-utils``). The built WAV files are
committed, so running the harness needs neither package.

Each fixture is: the source speech with the source's own edge silence trimmed, resampled to 24 kHz
with soxr, levelled to an RMS of ``TARGET_DBFS`` (peaks kept under -1 dBFS), then framed by the
silence a caller produces (``lead_ms`` before, ``trail_ms`` after: enough for server VAD to detect
the end of speech), over a quiet seeded room-tone floor (``ROOM_TONE_DBFS``). The noisy variant adds
the ALSA ``Noise.wav`` recording at ``snr_db`` below the speech. Everything is deterministic for a
given espeak-ng version (no clock, seeded noise), so rebuilding yields identical files.

Fixtures whose manifest ``kind`` is ``imported`` are kept as they are.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loadtest.audio.fixtures import (
    SAMPLE_RATE,
    Fixture,
    FixtureError,
    Manifest,
    fixtures_dir,
    read_audio,
    sha256_file,
    to_pcm24k,
    write_wav,
)

ALSA_DIR = Path("/usr/share/sounds/alsa")
TARGET_DBFS = -20.0
ROOM_TONE_DBFS = -68.0
ESPEAK_LICENCE = "CC0-1.0"
ESPEAK_NOTE = "synthesised by espeak-ng (GPL-3.0-or-later program); the generated audio is released under CC0-1.0"
ALSA_LICENCE = "GPL-2.0"
ALSA_NOTE = "contains audio shipped in Debian's alsa-utils (sounds/alsa: human recordings, Noise.wav), GPL-2.0"


@dataclass(frozen=True)
class Spec:
    """How to build one fixture."""

    name: str
    kind: str
    text: str  # what is said (the transcript)
    voice: str = "en-us+f3"  # espeak-ng voice[+variant]; "alsa:<File>.wav" for a recording
    speed: int = 155  # espeak-ng words per minute
    lead_ms: int = 400
    trail_ms: int = 900
    snr_db: float | None = None  # noisy variant: ALSA Noise.wav mixed at this SNR
    seed: int = 0

    @property
    def language(self) -> str:
        return "en-GB" if self.voice.startswith("en-gb") else "en-US"


SPECS: tuple[Spec, ...] = (
    # short caller utterances, 1-3 s
    Spec("short_hello", "short", "Hi, hello there.", lead_ms=400, trail_ms=900, seed=1),
    Spec("short_yes", "short", "Yes, that's right.", voice="en-us+m3", lead_ms=350, trail_ms=850, seed=2),
    Spec("short_no_thanks", "short", "No thanks, that's all.", voice="en-gb+f2", lead_ms=400, trail_ms=800, seed=3),
    Spec(
        "short_repeat",
        "short",
        "Sorry, can you repeat that?",
        voice="en-us+m3",
        speed=170,
        lead_ms=300,
        trail_ms=850,
        seed=4,
    ),
    Spec("short_front_center", "short", "Front center.", voice="alsa:Front_Center.wav", lead_ms=300, trail_ms=800),
    Spec("short_rear_left", "short", "Rear left.", voice="alsa:Rear_Left.wav", lead_ms=450, trail_ms=850),
    # medium questions, 4-8 s
    Spec(
        "medium_order_status",
        "medium",
        "Hi, I'm checking on my order. It was supposed to arrive yesterday, but the tracking hasn't moved.",
        lead_ms=450,
        trail_ms=900,
        seed=11,
    ),
    Spec(
        "medium_change_address",
        "medium",
        "I moved last month and I need to update the billing address on my account. Can you help me with that?",
        voice="en-us+m3",
        lead_ms=400,
        trail_ms=950,
        seed=12,
    ),
    Spec(
        "medium_store_hours",
        "medium",
        "What time does your downtown store close on Saturday, and do I need an appointment to return a laptop?",
        voice="en-gb+f2",
        lead_ms=550,
        trail_ms=850,
        seed=13,
    ),
    # long turns, 15-30 s
    Spec(
        "long_billing_complaint",
        "long",
        "Okay, so here is what happened. I signed up for the family plan in March, and the agent told me the "
        "price would stay at forty five dollars a month for the first year. But on my last two bills I was charged "
        "sixty two dollars, and there is a new fee that nobody mentioned. I'd like the extra charges refunded, "
        "please.",
        lead_ms=500,
        trail_ms=1000,
        seed=21,
    ),
    Spec(
        "long_router_problem",
        "long",
        "My internet keeps dropping every evening. It started about a week ago. The router lights go orange for "
        "a minute or two, then everything comes back. I already restarted the router, I replaced the cable, and I "
        "moved it away from the microwave, but nothing helped. It happens on every device, my laptop, my phone "
        "and the television. Can you check whether there is a problem on your side, or send a technician?",
        voice="en-us+m3",
        speed=160,
        lead_ms=400,
        trail_ms=900,
        seed=22,
    ),
    # the support_call conversation, one utterance per turn
    Spec("support_call_1", "turn", "Hi, I'm calling about my internet bill.", lead_ms=450, trail_ms=900, seed=31),
    Spec(
        "support_call_2",
        "turn",
        "Sure, my account number is four four seven, two nine one, eight.",
        lead_ms=600,
        trail_ms=900,
        seed=32,
    ),
    Spec(
        "support_call_3",
        "turn",
        "I was charged twice for the same month. Both payments came out on the third.",
        lead_ms=400,
        trail_ms=950,
        seed=33,
    ),
    Spec("support_call_4", "turn", "Okay, great. How long will the refund take?", lead_ms=500, trail_ms=900, seed=34),
    Spec("support_call_5", "turn", "Perfect, thank you. That's all I needed.", lead_ms=350, trail_ms=1000, seed=35),
    # barge-in pair: a question that invites a long answer, then an interruption said over that answer
    Spec(
        "barge_in_question",
        "barge_in",
        "Can you walk me through all of the plans you offer, with the prices and what each one includes?",
        voice="en-us+m3",
        lead_ms=400,
        trail_ms=900,
        seed=41,
    ),
    Spec(
        "barge_in_interrupt",
        "barge_in",
        "Sorry, stop, just tell me the cheapest one.",
        voice="en-us+m3",
        lead_ms=300,
        trail_ms=900,
        seed=42,
    ),
    # noisy variant of a medium question: ALSA Noise.wav at 12 dB below the speech, lead/trail included
    Spec(
        "noisy_order_status",
        "noisy",
        "Hi, I'm checking on my order. It was supposed to arrive yesterday, but the tracking hasn't moved.",
        lead_ms=450,
        trail_ms=900,
        snr_db=12.0,
        seed=51,
    ),
)

CONVERSATIONS: dict[str, list[str]] = {
    "support_call": ["support_call_1", "support_call_2", "support_call_3", "support_call_4", "support_call_5"],
    "address_change": ["short_hello", "medium_change_address", "short_yes", "short_no_thanks"],
    "barge_in": ["barge_in_question", "barge_in_interrupt"],
}


def _rms_db(x: np.ndarray) -> float:
    ms = float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0
    return 10 * np.log10(ms) if ms > 0 else -np.inf


def trim_edges(x: np.ndarray, rate: int, rel_db: float = -45.0, window_ms: float = 10.0) -> np.ndarray:
    """Cut the source's own leading/trailing silence (windows ``rel_db`` below the loudest window)."""
    win = max(1, int(rate * window_ms / 1000))
    n = len(x) // win
    if n == 0:
        return x
    energy = np.mean(np.square(x[: n * win].reshape(n, win)), axis=1)
    loud = np.flatnonzero(energy >= energy.max() * 10 ** (rel_db / 10))
    return x[loud[0] * win : (loud[-1] + 1) * win]


def _espeak(text: str, voice: str, speed: int, workdir: Path) -> tuple[np.ndarray, int]:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise FixtureError("espeak-ng not found: `apt-get install espeak-ng alsa-utils` (only needed to rebuild)")
    out = workdir / "speech.wav"
    subprocess.run([exe, "-v", voice, "-s", str(speed), "-w", str(out), text], check=True, capture_output=True)
    data, rate = read_audio(out)
    return data.mean(axis=1), rate


def _alsa(file: str) -> tuple[np.ndarray, int]:
    path = ALSA_DIR / file
    if not path.exists():
        raise FixtureError(f"{path} not found: `apt-get install alsa-utils` (only needed to rebuild)")
    data, rate = read_audio(path)
    return data.mean(axis=1), rate


def render(spec: Spec, workdir: Path) -> tuple[np.ndarray, str]:
    """The fixture's int16 24 kHz samples and its source description."""
    if spec.voice.startswith("alsa:"):
        file = spec.voice.split(":", 1)[1]
        raw, rate = _alsa(file)
        source = f"alsa-utils {ALSA_DIR / file} (human recording)"
    else:
        raw, rate = _espeak(spec.text, spec.voice, spec.speed, workdir)
        source = f"espeak-ng voice {spec.voice} at {spec.speed} wpm"
    speech = trim_edges(raw, rate)
    speech = to_pcm24k(speech[:, None], rate).astype(np.float64) / 32768.0
    speech *= 10 ** ((TARGET_DBFS - _rms_db(speech)) / 20)
    peak = float(np.max(np.abs(speech)))
    if peak > 10 ** (-1 / 20):
        speech *= 10 ** (-1 / 20) / peak
    lead = np.zeros(int(SAMPLE_RATE * spec.lead_ms / 1000))
    trail = np.zeros(int(SAMPLE_RATE * spec.trail_ms / 1000))
    signal = np.concatenate([lead, speech, trail])
    rng = np.random.default_rng(spec.seed)
    signal += rng.standard_normal(len(signal)) * 10 ** (ROOM_TONE_DBFS / 20)
    if spec.snr_db is not None:
        noise_raw, noise_rate = _alsa("Noise.wav")
        noise = to_pcm24k(noise_raw[:, None], noise_rate).astype(np.float64) / 32768.0
        noise = np.tile(noise, len(signal) // len(noise) + 1)[: len(signal)]
        noise *= 10 ** ((_rms_db(speech) - spec.snr_db - _rms_db(noise)) / 20)
        signal += noise
        source += f" + alsa-utils {ALSA_DIR / 'Noise.wav'} at {spec.snr_db:g} dB SNR"
    from loadtest.audio.convert import float_to_int16

    return float_to_int16(signal), source


def build(
    root: Path | None = None, only: list[str] | None = None, log: Callable[[str], None] | None = None
) -> Manifest:
    """Rebuild the fixtures (all, or those named in ``only``) into ``root`` and rewrite its manifest."""
    root = Path(root) if root is not None else fixtures_dir()
    try:
        manifest = Manifest.load(root)
    except FixtureError:
        manifest = Manifest.empty(root)
    wanted = [s for s in SPECS if only is None or s.name in only]
    unknown = set(only or ()) - {s.name for s in SPECS}
    if unknown:
        raise FixtureError(
            f"no build recipe for {', '.join(sorted(unknown))}; known: {', '.join(s.name for s in SPECS)}"
        )
    with tempfile.TemporaryDirectory(prefix="rtload-fixtures-") as tmp:
        for spec in wanted:
            pcm, source = render(spec, Path(tmp))
            path = root / f"{spec.name}.wav"
            write_wav(path, pcm)
            alsa = spec.voice.startswith("alsa:") or spec.snr_db is not None  # any GPL-2.0 ALSA material
            manifest.upsert(
                Fixture(
                    name=spec.name,
                    file=path.name,
                    duration_s=round(len(pcm) / SAMPLE_RATE, 4),
                    transcript=spec.text,
                    language=spec.language,
                    kind=spec.kind,
                    source=source,
                    licence=ALSA_LICENCE if alsa else ESPEAK_LICENCE,
                    sha256=sha256_file(path),
                    lead_silence_ms=spec.lead_ms,
                    trail_silence_ms=spec.trail_ms,
                    notes=ALSA_NOTE if alsa else ESPEAK_NOTE,
                    root=root,
                )
            )
            if log:
                log(f"built {path.name}  {len(pcm) / SAMPLE_RATE:5.2f} s  {spec.kind}")
    order = {s.name: i for i, s in enumerate(SPECS)}
    manifest.fixtures.sort(key=lambda f: (order.get(f.name, len(order)), f.name))
    manifest.conversations.update(CONVERSATIONS)
    manifest.save()
    return manifest
