"""Profiles and `--set` overrides; bad input gets one clear line and exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from loadtest.mock.profile import ProfileError, format_override, load_profile, parse_override, profile_names
from loadtest.session.config import SessionConfig


def test_the_shortest_silence_a_profile_inserts_is_over_the_clients_threshold() -> None:
    """The mock inserts silence in 100 ms deltas (gap_s rounded): a drawn 1.525 s gap was 1,500 ms, which is
    not over the client's 1,500 ms, so a silence fault read as completed (bench/bench_gateway.py saw it)."""
    threshold = SessionConfig().inner_silence_threshold_ms
    for name in profile_names():
        low = load_profile(name)["faults"]["silence"]["gap_s"][0]
        assert round(low * 10) * 100.0 > threshold, (name, low)


def test_shipped_profiles_load_and_differ() -> None:
    assert {"healthy", "flaky", "overloaded"} <= set(profile_names())
    healthy, flaky, overloaded = (load_profile(n) for n in ("healthy", "flaky", "overloaded"))
    assert all(v["rate"] == 0.0 for v in healthy["faults"].values())
    assert all(0 < v["rate"] <= 0.05 for v in flaky["faults"].values())
    assert overloaded["capacity"]["max_sessions"] > 0 and overloaded["capacity"]["knee_sessions"] > 0
    assert overloaded["rate_limits"]["tokens_per_minute"] < healthy["rate_limits"]["tokens_per_minute"]


def test_set_overrides_are_toml_values() -> None:
    assert parse_override("faults.stall.rate=1.0") == ("faults.stall.rate", 1.0)
    assert parse_override("faults.stall.gap_s=[2, 3]") == ("faults.stall.gap_s", [2, 3])
    assert parse_override("session.expiry_style=close") == ("session.expiry_style", "close")
    assert parse_override("api.allow_beta=true") == ("api.allow_beta", True)
    profile = load_profile("flaky", ["faults.stall.rate=1", "session.max_duration_s=3"])
    assert profile["faults"]["stall"]["rate"] == 1.0 and profile["session"]["max_duration_s"] == 3
    for key, value in (("a.b", 1.5), ("a.b", True), ("a.b", "x y"), ("a.b", [1, "z"])):
        assert parse_override(format_override(key, value)) == (key, value)


@pytest.mark.parametrize(
    "overrides",
    [
        ["faults.stal.rate=1"],
        ["faults.stall=1"],
        ["faults.stall.rate=high"],
        ["nonsense"],
        ["api.allow_beta=1"],
        ["audio.delta_ms=300"],
        ["session.expiry_style=3"],
    ],
)
def test_bad_overrides_are_refused(overrides) -> None:
    with pytest.raises(ProfileError):
        load_profile("healthy", overrides)


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("faults.stall.rate=5", "a probability from 0 to 1"),
        ("tools.call_probability=-0.1", "a probability from 0 to 1"),
        ("capacity.max_sessions=-3", "0 or more"),
        ("capacity.max_sessions=2.5", "a whole number"),
        ("tools.calls_per_response=[1, 2.5]", "a whole number"),
        ("audio.speed=0", "above 0"),
        ("audio.delta_ms=[500, 100]", "low <= high"),
        ("audio.delta_ms=[100]", "low <= high"),
        ("faults.drop.at=[0.2, 1.5]", "fractions of the response"),
        ("faults.stall.gap_s=[-1, 2]", "0 or more"),
        ("faults.handshake_5xx.statuses=[500, 700]", "an HTTP status"),
        ("deployments.retired_status=44", "an HTTP status"),
    ],
)
def test_knobs_out_of_range_are_refused_with_what_they_take(override, needle) -> None:
    """A value of the right type but out of its range was taken silently (a stall rate of 5, a
    negative session cap, a span drawn from high to low)."""
    with pytest.raises(ProfileError, match=needle):
        load_profile("healthy", [override])


def test_in_range_values_of_every_kind_are_kept() -> None:
    profile = load_profile(
        "healthy",
        ["vad.floor_db=-70", "session.max_duration_s=1.5", "capacity.max_sessions=3.0", "faults.stall.gap_s=[2, 3]",
         "faults.stall.rate=1", "faults.handshake_5xx.statuses=[503]"],
    )  # fmt: skip
    assert profile["vad"]["floor_db"] == -70 and profile["session"]["max_duration_s"] == 1.5
    assert profile["capacity"]["max_sessions"] == 3 and isinstance(profile["capacity"]["max_sessions"], int)
    assert profile["faults"]["stall"]["gap_s"] == [2.0, 3.0] and profile["faults"]["stall"]["rate"] == 1.0
    assert profile["faults"]["handshake_5xx"]["statuses"] == [503]


def test_every_range_rule_names_a_real_knob() -> None:
    """A misspelt name in a rule would leave that knob unchecked."""
    from loadtest.mock import profile as knobs

    healthy = load_profile("healthy")
    leaves: set[str] = set()

    def walk(node: dict, prefix: str = "") -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                leaves.add(f"{prefix}{key}")

    walk(healthy)
    for dotted in knobs.POSITIVE | knobs.SIGNED | knobs.COUNTS:
        assert dotted in leaves, dotted
    for leaf in knobs.PROBABILITIES | knobs.FRACTIONS | knobs.STATUSES:
        assert any(k.rsplit(".", 1)[-1] == leaf for k in leaves), leaf


def test_profile_file_with_unknown_knob_names_it(tmp_path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text("[faults.stall]\nrate = 0.5\n[capacity]\nmax_session = 3\n")
    with pytest.raises(ProfileError, match=r"capacity\.max_session"):
        load_profile(str(path))
    path.write_text("[faults.stall]\nrate = 1.5\n")
    with pytest.raises(ProfileError, match=r"mine\.toml: 'faults\.stall\.rate' = 1\.5: expected a probability"):
        load_profile(str(path))
    path.write_text("[faults.stall]\nrate = 0.5\n")
    assert load_profile(str(path))["faults"]["stall"]["rate"] == 0.5


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--profile", "nope"], "unknown mock profile 'nope'"),
        (["--set", "faults.stal.rate=1"], "unknown knob"),
        (["--profile", "/no/such.toml"], "no such profile file"),
        (["--set", 'tools.rules=["order status"]'], "expected 'REGEX -> tool'"),
        (["--set", 'tools.rules=["(order -> lookup"]'], "not a regular expression"),
        (["--set", "faults.stall.rate=5"], "faults.stall.rate=5: expected a probability from 0 to 1"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(args, needle) -> None:
    proc = subprocess.run([sys.executable, "-m", "loadtest", "mock", "--port", "0", *args],
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr
