"""Run config files: names and types, paths relative to the file, precedence, TOML back out."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

from loadtest.locust.launcher import RunRequest
from loadtest.workload.errors import WorkloadError
from loadtest.workload.run_config import apply_to_locust, load_run_config, redacted, resolve, to_toml

from .helpers import write_text

DEFAULTS = {f.name: getattr(RunRequest(), f.name) for f in dataclasses.fields(RunRequest)}


def test_a_config_file_takes_every_option_by_its_flag_name(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    path = write_text(
        tmp_path / "conf" / "run.toml",
        'users = 12\nspawn-rate = 3\nduration = "90s"\nscenario = "mix.toml"\nsession_file = "agent.json"\n'
        'mock-set = ["audio.speed=20"]\nsummary = false\nstall-ms = 900\n[tool.locust]\nheadless = true\n',
    )
    got = load_run_config(path)
    assert got == {
        "users": 12,
        "spawn_rate": 3.0,
        "duration": "90s",
        "scenario": str(tmp_path / "conf" / "mix.toml"),  # paths are relative to the file
        "session_file": str(tmp_path / "conf" / "agent.json"),
        "mock_set": ["audio.speed=20"],
        "summary": False,
        "stall_ms": 900.0,
    }
    assert load_run_config(write_text(tmp_path / "b.toml", 'scenario = "conversation"\n'))["scenario"] == "conversation"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("users = \n", r"run\.toml: TOML syntax error: .*\(at line 1, column 9\)"),
        ("userz = 3\n", r"run\.toml: unknown key 'userz' \(did you mean 'users'\?\)"),
        ('users = "3"\n', r"run\.toml: users: expected an integer, got a string '3'"),
        ("duration = 60\n", r'duration: expected a string, got an integer 60 \(durations are strings: "60s"\)'),
        ('mock-set = "a=1"\n', r"run\.toml: mock-set: expected an array of strings"),
        ("users = 2\nusers_ = 3\n", r"unknown key 'users_'"),
        ("spawn-rate = 1\nspawn_rate = 2\n", r"spawn_rate is given twice"),
    ],
)
def test_a_bad_config_file_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(WorkloadError, match=message) as err:
        load_run_config(write_text(tmp_path / "run.toml", text))
    assert "\n" not in str(err.value)


def test_command_line_overrides_the_file_and_the_file_the_defaults() -> None:
    got = resolve(DEFAULTS, {"users": 12, "duration": "90s"}, {"users": 3})
    assert (got["users"], got["duration"], got["shape"]) == (3, "90s", "constant")


def test_the_printed_configuration_reads_back_the_same(tmp_path: Path) -> None:
    resolved = resolve(DEFAULTS, {"users": 12, "mock_set": ["audio.speed=20"], "no_check": True}, {"run_id": "x"})
    text = to_toml(resolved)
    assert tomllib.loads(text)["spawn-rate"] == 2.0
    again = resolve(DEFAULTS, load_run_config(write_text(tmp_path / "printed.toml", text)), {})
    assert again == resolved


def test_a_key_in_the_target_url_is_redacted() -> None:
    out = redacted({**DEFAULTS, "target": "wss://gw.example.test/realtime?api-key=sk-secret123&model=m"})
    assert "sk-secret123" not in to_toml(out) and "model=m" in out["target"]


def test_plain_locust_takes_the_top_level_keys_where_the_command_line_left_defaults(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "run.toml", 'users = 7\nduration = "2m"\nscenario = "quick_text"\nmodalities = "text"\n'
        'mock-set = ["a=1", "b=2"]\n[tool.locust]\nheadless = true\n'
    )  # fmt: skip
    parsed = SimpleNamespace(
        config=str(path), num_users=None, spawn_rate=1, run_time=None, rt_scenario="vad_turn", rt_modalities="",
        rt_mock_set="",
    )  # fmt: skip
    apply_to_locust(parsed, {"rt_scenario": "", "rt_modalities": "", "rt_mock_set": ""})
    assert (parsed.num_users, parsed.run_time) == (7, 120)
    assert parsed.rt_scenario == "vad_turn"  # given on the command line: kept
    assert (parsed.rt_modalities, parsed.rt_mock_set) == ("text", "a=1;b=2")
