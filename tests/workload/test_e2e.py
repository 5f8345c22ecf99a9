"""End to end through `rtload run` against the mock: the user's own session, scenarios, recordings, config.

What a session file says is checked on the mock's side (its truth log records each
``session.update`` as received, and how much input audio each committed item held), never from the
server's echo.
"""

from __future__ import annotations

import collections
import hashlib
import subprocess
import sys
import tomllib
from pathlib import Path

import orjson
import pytest
from scipy.stats import binom

from loadtest.audio.fixtures import load_pcm, read_audio, to_pcm24k
from loadtest.records.writer import read_rows
from tests.harness.conftest import mock_args, responses, rtload_cmd, rtload_run, run_dir

from .helpers import PREVIEW_SESSION, SESSIONS, leaves, stereo_44k1_recording, truth_rows, write_json, write_text

pytestmark = [pytest.mark.e2e]


@pytest.mark.parametrize("dialect", ["ga", "preview"])
def test_a_session_file_arrives_at_the_mock_as_sent(tmp_path: Path, dialect: str) -> None:
    sent = SESSIONS[dialect]
    path = write_json(tmp_path / f"{dialect}.json", sent)
    provider = "azure" if dialect == "preview" else "openai"  # OpenAI retired the preview (beta) shape
    done = rtload_run(
        tmp_path, *mock_args(), "--provider", provider, "--dialect", dialect, "--session-file", str(path),
        "--scenario", "vad_turn",
        "--users", "1", "--duration", "3s", "--run-id", dialect, "--no-summary",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = run_dir(tmp_path, dialect)
    received = truth_rows(out, "session_update")
    assert received, "the mock logged no session.update"
    for row in received:  # field by field: every leaf the file has, with its value, and nothing more
        got, want = leaves(row["session"]), leaves(sent)
        assert sorted(got) == sorted(want)
        for key, value in want.items():
            assert got[key] == value, key
    rows = responses(out)
    assert rows and {r["outcome"] for r in rows} == {"completed"}
    assert {r["dialect"] for r in rows} == {dialect}
    run = orjson.loads((out / "run.json").read_bytes())
    (recorded,) = run["workload"]["session_files"]
    assert recorded["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() and recorded["session"] == sent
    assert run["config"]["session-file"] == str(path.resolve()) and run["config"]["dialect"] == dialect


def test_a_preview_shaped_file_against_ga_is_stopped_by_preflights_check(tmp_path: Path) -> None:
    path = write_json(tmp_path / "old.json", PREVIEW_SESSION)
    done = rtload_run(tmp_path, *mock_args(), "--session-file", str(path), "--run-id", "stopped", "--duration", "3s")
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert lines[0].startswith(f"rtload: session file {path} fails preflight's static checks for the ga dialect")
    assert any(line.startswith("FAIL  session.missing_type") for line in lines)
    assert any("session.modalities is a preview field; GA rejects it" in line for line in lines)
    assert not (tmp_path / "reports").exists() and "mock" not in done.stdout  # nothing started


MIX = """
[scenarios.often]
weight = 3
[[scenarios.often.turns]]
text = "Book a table for two."

[scenarios.rarely]
weight = 1
[[scenarios.rarely.turns]]
text = "Cancel my booking."
modalities = ["text"]
"""


def test_two_scenarios_weighted_3_to_1_give_sessions_in_that_ratio(tmp_path: Path) -> None:
    path = write_text(tmp_path / "mix.toml", MIX)
    done = rtload_run(
        tmp_path, *mock_args(), "--scenario", str(path), "--pacing", "fast", "--users", "8", "--spawn-rate", "40",
        "--duration", "10s", "--run-id", "mix", "--no-summary",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = run_dir(tmp_path, "mix")
    sessions = read_rows(out / "sessions.jsonl")
    counts = collections.Counter(s["scenario"] for s in sessions)
    n = len(sessions)
    assert set(counts) == {"often", "rarely"} and n >= 60, counts  # ~100-200 on a quiet machine
    lo, hi = binom.interval(0.999, n, 0.75)
    assert lo <= counts["often"] <= hi, f"{counts} in {n} sessions: outside the 99.9% binomial interval for 3:1"
    # every response row names the scenario its session ran, with that scenario's modalities
    by_session = {s["session_id"]: s["scenario"] for s in sessions}
    rows = responses(out)
    assert rows and all(r["scenario"] == by_session[r["session_id"]] for r in rows)
    assert {tuple(r["modalities"]) for r in rows if r["scenario"] == "rarely"} == {("text",)}
    assert {tuple(r["modalities"]) for r in rows if r["scenario"] == "often"} == {("audio",)}
    run = orjson.loads((out / "run.json").read_bytes())
    assert run["workload"]["scenarios"] == [{"name": "often", "weight": 3.0}, {"name": "rarely", "weight": 1.0}]
    assert run["workload"]["scenario_file"]["content"] == MIX


def test_a_users_44k1_stereo_recording_is_streamed_as_24k_mono(tmp_path: Path) -> None:
    wav = stereo_44k1_recording(tmp_path / "caller.wav", load_pcm("short_hello"))
    path = write_text(
        tmp_path / "rec.toml",
        '[scenarios.caller]\n[[scenarios.caller.turns]]\naudio = "caller.wav"\ntrigger = "manual"\n',
    )
    done = rtload_run(
        tmp_path, *mock_args(), "--scenario", str(path), "--users", "1", "--duration", "3s", "--run-id", "rec",
        "--no-summary",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = run_dir(tmp_path, "rec")
    data, rate = read_audio(wav)
    assert (rate, data.shape[1]) == (44100, 2)
    expected_ms = len(to_pcm24k(data, rate)) / 24.0  # 24 kHz mono samples -> ms
    committed = truth_rows(out, "input_committed")
    assert committed, "the mock committed no input audio"
    # the mock counts input bytes at 24 kHz 16-bit mono: the same length means that is what arrived
    assert all(abs(row["audio_ms"] - expected_ms) < 0.1 for row in committed), (committed, expected_ms)
    rows = responses(out)
    assert rows and {r["outcome"] for r in rows} == {"completed"}
    assert {r["fixture"] for r in rows} == {str(wav.resolve())}


def test_config_file_with_a_command_line_override_and_print_config_round_trips(tmp_path: Path) -> None:
    conf = write_text(
        tmp_path / "run.toml",
        'scenario = "quick_text"\nusers = 3\nduration = "3s"\npacing = "fast"\nrun-id = "conf"\nsummary = false\n'
        f'out = "{tmp_path / "reports"}"\n'
        'mock-set = ["audio.speed=20", "latency.created_ms=[10,30]", "latency.first_delta_ms=[10,30]"]\n',
    )
    base = [sys.executable, "-m", "loadtest", "run"]
    printed = subprocess.run([*base, "--config", str(conf), "--users", "1", "--print-config"],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    resolved = tomllib.loads(printed.stdout)
    assert (resolved["users"], resolved["duration"], resolved["scenario"]) == (1, "3s", "quick_text")
    assert not (tmp_path / "reports").exists()  # --print-config starts nothing
    again_path = write_text(tmp_path / "printed.toml", printed.stdout)
    again = subprocess.run([*base, "--config", str(again_path), "--print-config"],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert again.returncode == 0 and again.stdout == printed.stdout
    done = subprocess.run([*base, "--config", str(conf), "--users", "1", "--progress-every", "0"],
                          capture_output=True, text=True, timeout=90)  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = tmp_path / "reports" / "conf"
    run = orjson.loads((out / "run.json").read_bytes())
    assert run["config"] == {**resolved, "progress-every": 0.0} and run["shape"]["users"] == 1
    assert {s["user_id"] for s in read_rows(out / "sessions.jsonl")} == {1}
    assert {r["scenario"] for r in responses(out)} == {"quick_text"}


def test_plain_locust_takes_the_same_file_through_its_config_option(tmp_path: Path) -> None:
    mix = write_text(tmp_path / "mix.toml", MIX)
    conf = write_text(
        tmp_path / "run.toml",
        f'scenario = "{mix.name}"\npacing = "fast"\nrun-id = "plain"\nout = "{tmp_path / "reports"}"\n'
        'mock-set = ["audio.speed=20"]\n[tool.locust]\nheadless = true\nusers = 2\nspawn-rate = 10\nrun-time = "3s"\n',
    )
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", "loadtest/locustfile.py", "--config", str(conf), "--only-summary"],
        capture_output=True, text=True, timeout=90, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / "reports" / "plain"
    sessions = read_rows(out / "sessions.jsonl")
    assert sessions and {s["scenario"] for s in sessions} <= {"often", "rarely"}
    assert {s["user_id"] for s in sessions} <= {1, 2}


BAD_FILES = [
    ("config syntax", "run.toml", "users = = 3\n", "--config", r"run\.toml: TOML syntax error: .*line 1"),
    ("config unknown key", "run.toml", "userz = 3\n", "--config", r"run\.toml: unknown key 'userz'"),
    ("config wrong type", "run.toml", 'users = "many"\n', "--config", r"run\.toml: users: expected an integer"),
    ("scenario syntax", "s.toml", "[scenarios.x\n", "--scenario", r"s\.toml: TOML syntax error"),
    ("scenario unknown key", "s.toml", '[scenarios.x]\nwieght = 2\n[[scenarios.x.turns]]\ntext = "hi"\n',
     "--scenario", r"s\.toml: scenarios\.x: unknown key 'wieght' \(did you mean 'weight'\?\)"),
    ("missing fixture", "s.toml", '[scenarios.x]\n[[scenarios.x.turns]]\naudio = "no_such_clip"\n', "--scenario",
     r"s\.toml: scenarios\.x\.turns\[1\]\.audio: no fixture named 'no_such_clip'"),
    ("scenario wrong type", "s.toml", '[scenarios.x]\nrepeat = "yes"\n[[scenarios.x.turns]]\ntext = "hi"\n',
     "--scenario", r"s\.toml: scenarios\.x\.repeat: expected a boolean, got a string 'yes'"),
    ("session syntax", "s.json", '{"instructions": "hi",}', "--session-file", r"s\.json:1:23: not valid JSON"),
    ("session wrong type", "s.json", '["not", "an", "object"]', "--session-file", r"s\.json: no session object"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "name", "text", "flag", "message"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_every_bad_file_is_one_line_exit_2_nothing_started(
    tmp_path: Path, case: str, name: str, text: str, flag: str, message: str
) -> None:
    path = write_text(tmp_path / name, text)
    done = subprocess.run([*rtload_cmd("--out", str(tmp_path / "reports")), flag, str(path)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rtload: "), done.stderr
    assert __import__("re").search(message, lines[0]), lines[0]
    assert not (tmp_path / "reports").exists() and not done.stdout.strip()
