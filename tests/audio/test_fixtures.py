"""The shipped fixtures: valid against their manifest, the promised set, and reproducible."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from loadtest.audio import fixtures
from loadtest.audio.analysis import AudioAnalyzer

MANIFEST = fixtures.Manifest.load(fixtures.REPO_FIXTURES_DIR)


def test_every_shipped_fixture_passes_check() -> None:
    assert fixtures.check_manifest(MANIFEST) == []
    for fx in MANIFEST.fixtures:
        info = sf.info(str(fx.path))
        assert (info.samplerate, info.channels, info.subtype, info.format) == (24000, 1, "PCM_16", "WAV"), fx.name
        assert fx.transcript and fx.language and fx.source and fx.licence and fx.sha256, fx.name


def test_check_command_on_the_shipped_set() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest", "fixtures", "check"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"ok: {len(MANIFEST.fixtures)} fixtures")


@pytest.mark.parametrize(
    ("kind", "low", "high", "count"), [("short", 1, 3, 3), ("medium", 4, 8, 2), ("long", 15, 30, 2)]
)
def test_the_promised_durations(kind: str, low: float, high: float, count: int) -> None:
    chosen = [f for f in MANIFEST.fixtures if f.kind == kind]
    assert len(chosen) >= count
    for fx in chosen:
        assert low <= fx.duration_s <= high, (fx.name, fx.duration_s)


def test_conversations_barge_in_noisy_and_demo_defaults() -> None:
    assert MANIFEST.get("short_hello").kind == "short"
    call = MANIFEST.conversation("support_call")
    assert len(call) >= 3 and all(f.kind == "turn" for f in call)
    assert [f.kind for f in MANIFEST.conversation("barge_in")] == ["barge_in", "barge_in"]
    assert any(f.kind == "noisy" for f in MANIFEST.fixtures)
    assert any("human recording" in f.source for f in MANIFEST.fixtures)
    total_bytes = sum(f.path.stat().st_size for f in MANIFEST.fixtures)
    assert total_bytes < 8_000_000  # "a few MB"


def test_caller_silence_is_really_there() -> None:
    """Lead 300-600 ms and trail 800-1000 ms, as measured in the audio, match the manifest."""
    for fx in MANIFEST.fixtures:
        if fx.kind == "noisy":
            continue  # the noise fills the silence on purpose
        assert 300 <= fx.lead_silence_ms <= 600 and 800 <= fx.trail_silence_ms <= 1000, fx.name
        analyzer = AudioAnalyzer()
        analyzer.feed(fixtures.load_pcm(fx.name).tobytes(), 0.0)
        analyzer.finish()
        assert abs(analyzer.leading_silence_ms - fx.lead_silence_ms) <= 60, fx.name
        assert abs(analyzer.trailing_silence_ms - fx.trail_silence_ms) <= 120, fx.name


def test_load_pcm_is_cached_read_only_and_accepts_paths() -> None:
    a = fixtures.load_pcm("short_hello")
    assert a is fixtures.load_pcm("short_hello")
    assert a.dtype == np.int16 and not a.flags.writeable
    assert len(a) == round(MANIFEST.get("short_hello").duration_s * 24000)
    assert np.array_equal(fixtures.load_pcm(MANIFEST.get("short_hello").path), a)
    with pytest.raises(fixtures.FixtureError, match="no fixture named 'nope'"):
        fixtures.load_pcm("nope")


def test_env_var_points_at_another_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RTLOAD_FIXTURES", str(tmp_path))
    with pytest.raises(fixtures.FixtureError, match="no fixture manifest"):
        fixtures.Manifest.load()


def test_build_reproduces_the_committed_files(tmp_path) -> None:
    assert shutil.which("espeak-ng"), "rebuilding needs espeak-ng and alsa-utils: run `make sysdeps`"
    from loadtest.audio.build import build

    names = ["short_hello", "short_front_center", "support_call_1", "noisy_order_status"]
    rebuilt = build(tmp_path / "a", names)
    again = build(tmp_path / "b", names)
    for name in names:
        # deterministic: the same machine builds the same bytes twice (no clock, seeded noise)
        assert rebuilt.get(name).sha256 == again.get(name).sha256, name
        if rebuilt.get(name).sha256 == MANIFEST.get(name).sha256:
            continue
        # another espeak-ng/soxr build may differ in the last bits; the recipe must still give the
        # same utterance: same length, and the difference at least 40 dB below the speech
        ours = fixtures.load_pcm(rebuilt.get(name).path).astype(np.float64)
        shipped = fixtures.load_pcm(MANIFEST.get(name).path).astype(np.float64)
        assert len(ours) == len(shipped), (name, len(ours), len(shipped))
        residual_db = 10 * np.log10(np.mean((ours - shipped) ** 2) / np.mean(shipped**2) + 1e-12)
        assert residual_db < -40, (name, f"rebuilt differs from the shipped file by {residual_db:.1f} dB")
    # the rebuilt files are valid; only conversation turns not rebuilt here are reported
    assert all(p.startswith("conversation ") for p in fixtures.check_manifest(rebuilt))
    assert rebuilt.conversations["support_call"] == MANIFEST.conversations["support_call"]
