"""`rtload fixtures import` and `check`: any input becomes 24 kHz PCM16 mono; bad input gets one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from loadtest.audio import fixtures
from loadtest.cli import app
from tests.support import peak_hz

runner = CliRunner()


def _tone(rate: int, seconds: float, freq: float = 1000.0, amp: float = 0.5, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    mono = amp * np.sin(2 * np.pi * freq * t)
    return mono if channels == 1 else np.stack([mono] * channels, axis=1)


def _import(tmp_path: Path, *args: str):
    return runner.invoke(app, ["fixtures", "import", *args, "--dir", str(tmp_path / "fx")])


CASES = [
    # (label, rate, channels, subtype, container)
    ("8k", 8000, 1, "PCM_16", "WAV"),
    ("16k", 16000, 1, "PCM_16", "WAV"),
    ("44k1", 44100, 1, "PCM_16", "WAV"),
    ("48k", 48000, 1, "PCM_16", "WAV"),
    ("stereo", 48000, 2, "PCM_16", "WAV"),
    ("float", 44100, 1, "FLOAT", "WAV"),
    ("pcm24", 48000, 1, "PCM_24", "WAV"),
    ("flac", 16000, 2, "PCM_16", "FLAC"),
    ("ogg", 48000, 1, "VORBIS", "OGG"),
]


@pytest.mark.parametrize(("label", "rate", "channels", "subtype", "container"), CASES)
def test_import_any_input_to_24k_mono_pcm16(tmp_path, label, rate, channels, subtype, container) -> None:
    seconds, freq = 1.5, 1000.0
    src = tmp_path / f"In {label}.{container.lower()}"
    sf.write(str(src), _tone(rate, seconds, freq, channels=channels), rate, subtype=subtype, format=container)
    result = _import(tmp_path, str(src), "--transcript", "a test tone")
    assert result.exit_code == 0, result.output
    manifest = fixtures.Manifest.load(tmp_path / "fx")
    fx = manifest.get(f"in_{label}")
    assert fx.kind == "imported" and fx.transcript == "a test tone"
    info = sf.info(str(fx.path))
    assert (info.samplerate, info.channels, info.subtype, info.format) == (24000, 1, "PCM_16", "WAV")
    pcm, _ = sf.read(str(fx.path), dtype="int16")
    assert abs(len(pcm) / 24000 - seconds) < 0.002  # duration preserved
    assert abs(fx.duration_s - seconds) < 0.002
    assert abs(peak_hz(pcm, 24000) - freq) <= 1.0  # frequency preserved
    rms = np.sqrt(np.mean((pcm[2400:-2400].astype(np.float64) / 32768) ** 2))
    assert abs(rms - 0.5 / np.sqrt(2)) < 0.02  # level preserved (downmix averages, does not sum)
    assert fixtures.check_manifest(manifest) == []


def test_float_overs_are_clipped_not_wrapped(tmp_path) -> None:
    src = tmp_path / "hot.wav"
    sf.write(str(src), _tone(24000, 0.5, 440, amp=1.6), 24000, subtype="FLOAT")
    assert _import(tmp_path, str(src), "--name", "hot").exit_code == 0
    pcm, _ = sf.read(str(tmp_path / "fx" / "hot.wav"), dtype="int16")
    assert pcm.max() == 32767 and pcm.min() == -32768
    # a wrapped over would flip sign next to the peak; clipped audio stays at the rail
    peak = int(np.argmax(pcm))
    assert np.all(pcm[peak : peak + 3] > 30000)


def test_import_refuses_to_overwrite_without_replace(tmp_path) -> None:
    src = tmp_path / "a.wav"
    sf.write(str(src), _tone(16000, 0.3), 16000)
    assert _import(tmp_path, str(src)).exit_code == 0
    again = _import(tmp_path, str(src))
    assert again.exit_code == 2
    assert "already exists" in again.stderr
    assert _import(tmp_path, str(src), "--replace").exit_code == 0


@pytest.mark.parametrize("content", [b"this is not audio at all\n" * 40, b"RIFF\x24\x00\x00\x00WAVEfmt garbage"])
def test_corrupt_or_non_audio_file_gets_one_clear_line(tmp_path, content: bytes) -> None:
    bad = tmp_path / "broken.wav"
    bad.write_bytes(content)
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest", "fixtures", "import", str(bad), "--dir", str(tmp_path / "fx")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert str(bad) in lines[0] and "not a readable audio file" in lines[0]
    assert not (tmp_path / "fx" / "broken.wav").exists()


def test_missing_file_gets_one_clear_line(tmp_path) -> None:
    result = _import(tmp_path, str(tmp_path / "nowhere.wav"))
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [f"rtload fixtures: {tmp_path / 'nowhere.wav'}: file not found"]


def test_check_reports_one_line_per_problem(tmp_path) -> None:
    root = tmp_path / "fx"
    good = tmp_path / "good.wav"
    sf.write(str(good), _tone(24000, 1.0), 24000, subtype="PCM_16")
    for name in ("ok", "stereo", "rate", "short", "corrupt", "missing", "width", "edited"):
        assert _import(tmp_path, str(good), "--name", name).exit_code == 0
    sf.write(str(root / "stereo.wav"), _tone(24000, 1.0, channels=2), 24000, subtype="PCM_16")
    sf.write(str(root / "rate.wav"), _tone(16000, 1.0), 16000, subtype="PCM_16")
    sf.write(str(root / "short.wav"), _tone(24000, 0.5), 24000, subtype="PCM_16")
    sf.write(str(root / "width.wav"), _tone(24000, 1.0), 24000, subtype="PCM_24")
    (root / "corrupt.wav").write_bytes(b"garbage" * 100)
    (root / "missing.wav").unlink()
    pcm, _ = sf.read(str(root / "edited.wav"), dtype="int16")
    sf.write(str(root / "edited.wav"), -pcm, 24000, subtype="PCM_16")
    data = json.loads((root / "manifest.json").read_text())
    data["conversations"] = {"call": ["ok", "ghost"]}
    (root / "manifest.json").write_text(json.dumps(data))

    result = runner.invoke(app, ["fixtures", "check", "--dir", str(root)])
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("PROBLEM ")]
    by_name: dict[str, str] = {}
    for ln in lines:
        by_name[ln.split()[1]] = by_name.get(ln.split()[1], "") + ln
    assert "channels" in by_name["stereo"]
    assert "sample rate 16000 Hz" in by_name["rate"]
    assert "lasts 0.500 s" in by_name["short"]
    assert "not a readable audio file" in by_name["corrupt"]
    assert "file missing" in by_name["missing"]
    assert "PCM_24" in by_name["width"]
    assert "sha256" in by_name["edited"]
    assert "'ghost'" in by_name["conversation"]
    assert "ok" not in by_name
    assert len(lines) == 8  # one per broken file and one for the conversation, nothing more
    assert "Traceback" not in result.output


def _truncated_wav(path: Path, seconds: float, keep_s: float) -> None:
    """A WAV whose header announces ``seconds`` of audio but whose file stops after ``keep_s``."""
    sf.write(str(path), _tone(24000, seconds), 24000, subtype="PCM_16")
    data = path.read_bytes()
    header = data.index(b"data") + 8
    path.write_bytes(data[: header + int(24000 * keep_s) * 2])


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loadtest", "fixtures", *args], capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def test_a_truncated_wav_is_refused_on_import_with_one_line(tmp_path: Path) -> None:
    """Issue 23.13: it imported as a 0.01 s fixture."""
    cut = tmp_path / "cut.wav"
    _truncated_wav(cut, 1.0, 0.01)
    proc = _cli("import", str(cut), "--dir", str(tmp_path / "fx"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(cut) in lines[0] and "truncated" in lines[0] and "1.00 s" in lines[0] and "0.01 s" in lines[0]
    assert not (tmp_path / "fx" / "cut.wav").exists()
    manifest = tmp_path / "fx" / "manifest.json"
    names = [f["name"] for f in json.loads(manifest.read_text())["fixtures"]] if manifest.exists() else []
    assert "cut" not in names


def test_check_flags_a_truncated_fixture_file(tmp_path: Path) -> None:
    """Issue 23.13: `fixtures check` called it ok (its length and checksum agree with a manifest written from
    the cut file; only the header tells)."""
    root = tmp_path / "fx"
    good = tmp_path / "good.wav"
    sf.write(str(good), _tone(24000, 1.0), 24000, subtype="PCM_16")
    for name in ("whole", "cut"):
        assert _import(tmp_path, str(good), "--name", name).exit_code == 0
    _truncated_wav(root / "cut.wav", 1.0, 0.25)
    data = json.loads((root / "manifest.json").read_text())
    for entry in data["fixtures"]:
        if entry["name"] == "cut":
            entry["duration_s"] = sf.info(str(root / "cut.wav")).duration
            entry["sha256"] = fixtures.sha256_file(root / "cut.wav")
    (root / "manifest.json").write_text(json.dumps(data))
    proc = _cli("check", "--dir", str(root))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    problems = [ln for ln in proc.stderr.splitlines() if ln.startswith("PROBLEM ")]
    assert len(problems) == 1 and problems[0].startswith("PROBLEM cut (cut.wav): truncated"), proc.stderr
    assert "1.00 s" in problems[0] and "0.25 s" in problems[0]
