"""`rtload fixtures list` and `rtload fixtures build`, run as the real command line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.audio import fixtures

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = fixtures.Manifest.load(fixtures.REPO_FIXTURES_DIR)


def rtload(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RTLOAD_FIXTURES"}  # the repository's fixtures
    env["COLUMNS"] = "200"  # help text is not wrapped mid-option
    return subprocess.run(
        [sys.executable, "-m", "loadtest", "fixtures", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_list_shows_every_fixture_with_its_duration_and_transcript() -> None:
    proc = rtload("list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "SECONDS", "LANG", "LICENCE", "TRANSCRIPT"]
    rows = {line.split()[0]: line for line in lines[1 : len(MANIFEST.fixtures) + 1]}
    assert list(rows) == MANIFEST.names()  # every fixture, in manifest order, one line each
    for fx in MANIFEST.fixtures:
        row = rows[fx.name]
        cells = row.split()
        assert cells[1] == fx.kind and cells[2] == f"{fx.duration_s:.2f}" and cells[3] == fx.language, row
        transcript = " ".join(fx.transcript.split())
        assert transcript[:40] in row, (fx.name, row)  # the start of it (long ones are clipped)
        if len(transcript) > 60:
            assert row.endswith("…") and transcript not in row, row
        else:
            assert row.endswith(transcript), row
    total = sum(f.duration_s for f in MANIFEST.fixtures)
    assert f"{len(MANIFEST.fixtures)} fixtures, {total:.1f} s of audio in {MANIFEST.root}" in proc.stdout
    assert "Conversations:" in proc.stdout
    for name, turns in MANIFEST.conversations.items():
        assert f"  {name}: {' -> '.join(turns)}" in lines
    assert proc.stderr == ""


def test_list_without_a_manifest_says_so_in_one_line(tmp_path: Path) -> None:
    proc = rtload("list", "--dir", str(tmp_path))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"rtload fixtures: no fixture manifest at {tmp_path / 'manifest.json'}: "
        "run `rtload fixtures build` or set RTLOAD_FIXTURES"
    ]


def test_build_help_names_its_options() -> None:
    proc = rtload("build", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "espeak-ng" in proc.stdout
    for option in ("--only", "--dir"):
        assert option in proc.stdout


def test_build_refuses_an_unknown_fixture_and_writes_nothing(tmp_path: Path) -> None:
    proc = rtload("build", "--only", "no_such_fixture", "--dir", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("rtload fixtures: no build recipe for no_such_fixture; known: short_hello,")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="rebuilding needs espeak-ng (`make sysdeps`)")
def test_build_one_fixture_into_a_directory(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = rtload("build", "--only", "short_hello", "--dir", str(out), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("built short_hello.wav")
    assert proc.stdout.splitlines()[-1] == f"wrote {out / 'manifest.json'} (1 fixtures)"
    built = fixtures.Manifest.load(out)
    assert built.names() == ["short_hello"]
    fx, shipped = built.get("short_hello"), MANIFEST.get("short_hello")
    assert fx.path == out / "short_hello.wav" and fx.path.exists()
    assert fx.sha256 == fixtures.sha256_file(fx.path)
    assert (fx.transcript, fx.kind, fx.language) == (shipped.transcript, shipped.kind, shipped.language)
    assert abs(fx.duration_s - shipped.duration_s) < 0.05
    # the file is valid; only the conversations naming fixtures not built here are reported
    problems = fixtures.check_manifest(built)
    assert problems and all(p.startswith("conversation ") for p in problems), problems
    # and the list command reads the new directory
    listed = rtload("list", "--dir", str(out))
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1].split()[:3] == ["short_hello", "short", f"{fx.duration_s:.2f}"]
