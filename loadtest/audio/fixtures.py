"""The fixture manifest (``audio_fixtures/manifest.json``) and loading fixture audio.

Every fixture is a 24 kHz, 16-bit PCM, mono WAV file listed in the manifest with its transcript,
language, kind, source and licence. ``conversations`` maps a conversation name to the ordered fixture
names a caller says, one per turn. The directory is the repository's ``audio_fixtures/`` unless the
environment variable ``RTLOAD_FIXTURES`` names another one.

Manifest shape (JSON, written sorted and indented so diffs stay readable)::

    {"version": 1, "sample_rate": 24000,
     "fixtures": [{"name": "short_hello", "file": "short_hello.wav", "duration_s": 1.93,
                   "transcript": "...", "language": "en-US", "kind": "short",
                   "source": "espeak-ng ...", "licence": "CC0-1.0", "sha256": "...",
                   "lead_silence_ms": 400, "trail_silence_ms": 900, "notes": "..."}, ...],
     "conversations": {"support_call": ["support_call_1", "support_call_2", ...], ...}}
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loadtest.audio.riff import truncation

SAMPLE_RATE = 24000
MANIFEST_NAME = "manifest.json"
KINDS = ("short", "medium", "long", "turn", "barge_in", "noisy", "recording", "imported")


REPO_FIXTURES_DIR = Path(__file__).resolve().parents[2] / "audio_fixtures"


def fixtures_dir() -> Path:
    """The fixture directory now: ``$RTLOAD_FIXTURES`` if set, else the repository's ``audio_fixtures/``."""
    env = os.environ.get("RTLOAD_FIXTURES")
    return Path(env) if env else REPO_FIXTURES_DIR


FIXTURES_DIR: Path = fixtures_dir()


class FixtureError(Exception):
    """A fixture or manifest problem, with a message fit for one line of output."""


@dataclass
class Fixture:
    name: str
    file: str
    duration_s: float
    transcript: str
    language: str = "en-US"
    kind: str = "short"
    source: str = ""
    licence: str = ""
    sha256: str = ""
    lead_silence_ms: float = 0.0
    trail_silence_ms: float = 0.0
    notes: str = ""
    root: Path = field(default=FIXTURES_DIR, repr=False, compare=False)

    @property
    def path(self) -> Path:
        return self.root / self.file

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("root")
        return data


@dataclass
class Manifest:
    root: Path
    fixtures: list[Fixture]
    conversations: dict[str, list[str]]
    version: int = 1
    sample_rate: int = SAMPLE_RATE

    @classmethod
    def load(cls, root: Path | None = None) -> Manifest:
        """Read ``manifest.json`` from ``root`` (default :func:`fixtures_dir`)."""
        root = Path(root) if root is not None else fixtures_dir()
        path = root / MANIFEST_NAME
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FixtureError(
                f"no fixture manifest at {path}: run `rtload fixtures build` or set RTLOAD_FIXTURES"
            ) from None
        except (OSError, ValueError) as exc:
            raise FixtureError(f"cannot read fixture manifest {path}: {exc}") from None
        fixtures = []
        known = set(Fixture.__dataclass_fields__) - {"root"}
        for entry in raw.get("fixtures", []):
            fixtures.append(Fixture(**{k: v for k, v in entry.items() if k in known}, root=root))
        return cls(
            root=root,
            fixtures=fixtures,
            conversations={k: list(v) for k, v in raw.get("conversations", {}).items()},
            version=int(raw.get("version", 1)),
            sample_rate=int(raw.get("sample_rate", SAMPLE_RATE)),
        )

    @classmethod
    def empty(cls, root: Path) -> Manifest:
        return cls(root=Path(root), fixtures=[], conversations={})

    def names(self) -> list[str]:
        return [f.name for f in self.fixtures]

    def get(self, name: str) -> Fixture:
        for fixture in self.fixtures:
            if fixture.name == name:
                return fixture
        raise FixtureError(f"no fixture named {name!r} in {self.root / MANIFEST_NAME}: see `rtload fixtures list`")

    def conversation(self, name: str) -> list[Fixture]:
        if name not in self.conversations:
            raise FixtureError(f"no conversation named {name!r}; known: {', '.join(sorted(self.conversations))}")
        return [self.get(n) for n in self.conversations[name]]

    def upsert(self, fixture: Fixture) -> None:
        """Add ``fixture``, replacing one with the same name."""
        fixture.root = self.root
        self.fixtures = [f for f in self.fixtures if f.name != fixture.name] + [fixture]

    def save(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        data = {
            "version": self.version,
            "sample_rate": self.sample_rate,
            "fixtures": [f.to_json() for f in self.fixtures],
            "conversations": self.conversations,
        }
        path = self.root / MANIFEST_NAME
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(path)
        _load_cached.cache_clear()
        return path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Any soundfile-readable file -> (float64 samples shaped (frames, channels), rate).

    Raises :class:`FixtureError` with one line when the file is missing or not audio.
    """
    import soundfile as sf

    if not Path(path).is_file():
        raise FixtureError(f"{path}: file not found")
    try:
        data, rate = sf.read(str(path), dtype="float64", always_2d=True)
    except FileNotFoundError:
        raise FixtureError(f"{path}: file not found") from None
    except (sf.LibsndfileError, RuntimeError, OSError, TypeError) as exc:
        reason = str(exc).split(":")[-1].strip() or "unreadable"
        raise FixtureError(f"{path}: not a readable audio file (WAV/FLAC/OGG expected): {reason}") from None
    return data, int(rate)


def to_pcm24k(data: np.ndarray, rate: int) -> np.ndarray:
    """(frames, channels) float audio at any rate -> int16 mono 24 kHz (downmix, soxr, clip-safe)."""
    from loadtest.audio.convert import float_to_int16

    mono = data.mean(axis=1) if data.ndim == 2 else np.asarray(data, dtype=np.float64)
    if rate != SAMPLE_RATE and mono.size:
        import soxr

        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    return float_to_int16(mono)


def write_wav(path: Path, pcm: np.ndarray) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(pcm, dtype=np.int16), SAMPLE_RATE, subtype="PCM_16", format="WAV")


@functools.lru_cache(maxsize=256)
def _load_cached(key: str, root: str | None) -> np.ndarray:
    candidate = Path(key)
    if candidate.suffix and candidate.exists():
        path = candidate
    else:
        path = Manifest.load(Path(root) if root else None).get(key).path
    data, rate = read_audio(path)
    pcm = to_pcm24k(data, rate)
    pcm.setflags(write=False)
    return pcm


def load_pcm(name_or_path: str | Path, root: Path | None = None) -> np.ndarray:
    """int16 mono 24 kHz samples of a fixture (by manifest name) or of an audio file path.

    Cached per process (the returned array is read-only, share it freely).
    """
    return _load_cached(str(name_or_path), str(root) if root is not None else None)


# ---- validation and import ------------------------------------------------------------------
DURATION_TOLERANCE_S = 0.005


def check_manifest(manifest: Manifest) -> list[str]:
    """Every problem with the manifest and its files, one line each (empty when all is well)."""
    import soundfile as sf

    problems: list[str] = []
    seen: set[str] = set()
    for fx in manifest.fixtures:
        label = f"{fx.name} ({fx.file})"
        if fx.name in seen:
            problems.append(f"{fx.name}: listed twice in the manifest; keep one entry")
        seen.add(fx.name)
        if fx.kind not in KINDS:
            problems.append(f"{fx.name}: unknown kind {fx.kind!r}; use one of {', '.join(KINDS)}")
        path = fx.path
        if not path.exists():
            problems.append(f"{label}: file missing; rebuild (`rtload fixtures build`) or re-import it")
            continue
        try:
            info = sf.info(str(path))
        except Exception as exc:  # libsndfile reports every unreadable file its own way
            problems.append(f"{label}: not a readable audio file ({str(exc).split(':')[-1].strip()}); re-import it")
            continue
        before = len(problems)
        cut = truncation(path)
        if cut:
            problems.append(f"{label}: {cut}; rebuild or re-import it from a complete file")
        if info.format != "WAV" or info.subtype != "PCM_16":
            problems.append(f"{label}: is {info.format}/{info.subtype}, expected WAV/PCM_16; re-import it")
        if info.samplerate != manifest.sample_rate:
            problems.append(f"{label}: sample rate {info.samplerate} Hz, expected {manifest.sample_rate}; re-import it")
        if info.channels != 1:
            problems.append(f"{label}: {info.channels} channels, expected mono; re-import it")
        actual = info.frames / info.samplerate if info.samplerate else 0.0
        if abs(actual - fx.duration_s) > DURATION_TOLERANCE_S:
            problems.append(f"{label}: lasts {actual:.3f} s but the manifest says {fx.duration_s:.3f} s")
        if info.frames == 0:
            problems.append(f"{label}: contains no audio")
        if len(problems) == before and fx.sha256 and sha256_file(path) != fx.sha256:
            problems.append(f"{label}: content differs from the manifest's sha256; rebuild or re-import it")
    for conv, names in manifest.conversations.items():
        if not names:
            problems.append(f"conversation {conv}: has no turns")
        for n in names:
            if n not in seen:
                problems.append(f"conversation {conv}: turn {n!r} is not a fixture in the manifest")
    return problems


def fixture_name_from(path: Path) -> str:
    """A manifest name from a file name: lower case, [a-z0-9_] only."""
    cleaned = "".join(c if c.isalnum() else "_" for c in path.stem.lower()).strip("_")
    return "_".join(p for p in cleaned.split("_") if p) or "imported"


def import_file(
    src: Path,
    manifest: Manifest,
    *,
    name: str | None = None,
    transcript: str = "",
    language: str = "en-US",
    licence: str = "unknown",
    replace: bool = False,
) -> Fixture:
    """Convert any readable audio file to a 24 kHz PCM16 mono fixture, write it, add it to ``manifest``.

    The caller saves the manifest. Raises :class:`FixtureError` (one line) on bad input.
    """
    name = name or fixture_name_from(src)
    if name in manifest.names() and not replace:
        raise FixtureError(f"a fixture named {name!r} already exists; pass --name NEW or --replace")
    cut = truncation(src) if Path(src).is_file() else None
    if cut:
        raise FixtureError(f"{src}: {cut}; re-copy or re-export the complete file")
    data, rate = read_audio(src)
    if data.shape[0] == 0:
        raise FixtureError(f"{src}: contains no audio samples")
    pcm = to_pcm24k(data, rate)
    dest = manifest.root / f"{name}.wav"
    write_wav(dest, pcm)
    info = "" if data.shape[1] == 1 else f", downmixed from {data.shape[1]} channels"
    fixture = Fixture(
        name=name,
        file=dest.name,
        duration_s=round(len(pcm) / SAMPLE_RATE, 4),
        transcript=transcript,
        language=language,
        kind="imported",
        source=f"imported from {src.name} ({rate} Hz{info})",
        licence=licence,
        sha256=sha256_file(dest),
        root=manifest.root,
    )
    manifest.upsert(fixture)
    _load_cached.cache_clear()
    return fixture
