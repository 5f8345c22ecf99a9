"""Scenario files: the shipped built-ins, a weighted mix with every turn field, and bad files."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest

from loadtest.audio.fixtures import Manifest, load_pcm
from loadtest.audio.frames import decode_appends, frames_for
from loadtest.session.scenario import SCENARIOS, ToolReply
from loadtest.workload.errors import WorkloadError
from loadtest.workload.scenario_file import builtin_names, builtin_text, load_mix

from .helpers import stereo_44k1_recording, write_text

MIX = """
[scenarios.booking]
weight = 3
description = "caller books a table"
think_time_s = [0.1, 0.2]
tool_chain_limit = 2

[[scenarios.booking.turns]]
audio = "support_call_1"
trigger = "server_vad"

[[scenarios.booking.turns]]
audio = "support_call_2"
trigger = "manual"
instructions = "Answer in one sentence."
modalities = ["text"]
max_output_tokens = 120
think_time_s = 1.5

[[scenarios.booking.turns]]
audio = "barge_in_interrupt"
barge_in = true
barge_in_after_ms = 250

[scenarios.booking.tools.find_table]
output = { free = true, tables = [4, 7] }
latency_ms = 300

[scenarios.booking.tools.book_table]
output = '{"booked": true}'

[scenarios.status]
repeat = true

[[scenarios.status.turns]]
text = "Is my table still booked?"

[[scenarios.status.turns]]
text = "Summarise the call."
out_of_band = true
"""


def test_every_builtin_is_a_shipped_file_equal_to_the_built_in_scenario() -> None:
    manifest = Manifest.load()
    assert builtin_names() == sorted(SCENARIOS)
    for name in builtin_names():
        assert f"[scenarios.{name}]" in builtin_text(name)
        (scenario,) = load_mix(name).scenarios
        for turn in scenario.turns:  # an audio turn's expected transcript is the manifest's
            if turn.trigger != "text":
                assert turn.transcript == manifest.get(turn.fixture).transcript
        plain = dataclasses.replace(scenario, turns=[dataclasses.replace(t, transcript=None) for t in scenario.turns])
        assert plain == SCENARIOS[name], name


def test_a_mix_file_carries_weights_turn_settings_and_tools(tmp_path: Path) -> None:
    mix = load_mix(str(write_text(tmp_path / "mix.toml", MIX)))
    booking, status = mix.scenarios
    assert (booking.name, booking.weight, status.name, status.weight) == ("booking", 3.0, "status", 1.0)
    assert booking.description == "caller books a table" and status.repeat and not booking.repeat
    vad, manual, barge = booking.turns
    assert (vad.trigger, vad.fixture, vad.think_time_s) == ("server_vad", "support_call_1", (0.1, 0.2))
    assert (manual.trigger, manual.instructions, manual.modalities, manual.max_output_tokens) == (
        "manual", "Answer in one sentence.", ["text"], 120,
    )  # fmt: skip
    assert manual.think_time_s == (1.5, 1.5)
    assert barge.barge_in and barge.barge_in_after_ms == 250.0 and barge.trigger == "server_vad"
    assert booking.tools == {
        "find_table": ToolReply(output='{"free": true, "tables": [4, 7]}', latency_ms=300.0),
        "book_table": ToolReply(output='{"booked": true}', latency_ms=0.0),
    }
    assert booking.tool_chain_limit == 2 and status.tool_chain_limit is None
    text, oob = status.turns
    assert (text.trigger, text.text) == ("text", "Is my table still booked?")
    assert oob.out_of_band and oob.trigger == "text"


def test_a_mix_picks_by_weight() -> None:
    mix = load_mix("quick_text")
    mix.scenarios = [dataclasses.replace(mix.scenarios[0], name="a", weight=3.0), mix.scenarios[0]]
    rng = random.Random(1)
    picks = [mix.pick(rng).name for _ in range(4000)]
    assert 2850 <= picks.count("a") <= 3150  # 3:1, ~10 sigma from 1:1


def test_a_recording_is_converted_once_at_load_to_24k_mono(tmp_path: Path) -> None:
    source = load_pcm("short_hello")
    wav = stereo_44k1_recording(tmp_path / "caller.wav", source)
    path = write_text(
        tmp_path / "rec.toml",
        '[scenarios.rec]\n[[scenarios.rec.turns]]\naudio = "caller.wav"\ntrigger = "manual"\ntranscript = "Hello."\n',
    )
    (turn,) = load_mix(str(path)).scenarios[0].turns
    assert turn.fixture == str(wav.resolve()) and turn.transcript == "Hello."
    sent = np.frombuffer(decode_appends(frames_for(turn.fixture, 100, "pcm16")), dtype="<i2")
    # 24 kHz mono: as long as the source, and the mean of the two channels (0.75 of the source)
    assert abs(len(sent) - len(source)) <= 2
    n = min(len(sent), len(source))
    corr = np.corrcoef(sent[:n].astype(float), source[:n].astype(float))[0, 1]
    assert corr > 0.99
    assert 0.7 < np.abs(sent).sum() / np.abs(source).sum() < 0.8


BAD = [
    ("syntax", "[scenarios.x\n", r"bad\.toml: TOML syntax error: .*line 1"),
    (
        "unknown key",
        '[scenarios.x]\n[[scenarios.x.turns]]\ntext = "hi"\ntrigerr = "text"\n',
        r"bad\.toml: scenarios\.x\.turns\[1\]: unknown key 'trigerr' \(did you mean 'trigger'\?\)",
    ),
    (
        "missing fixture",
        '[scenarios.x]\n[[scenarios.x.turns]]\naudio = "no_such_clip"\n',
        r"bad\.toml: scenarios\.x\.turns\[1\]\.audio: no fixture named 'no_such_clip'",
    ),
    (
        "missing recording",
        '[scenarios.x]\n[[scenarios.x.turns]]\naudio = "calls/missing.wav"\n',
        r"bad\.toml: scenarios\.x\.turns\[1\]\.audio: .*missing\.wav: file not found",
    ),
    (
        "wrong type",
        '[scenarios.x]\nweight = "3"\n[[scenarios.x.turns]]\ntext = "hi"\n',
        r"bad\.toml: scenarios\.x\.weight: expected an integer or a number, got a string '3'",
    ),
    (
        "per-turn settings on a server_vad turn",
        '[scenarios.x]\n[[scenarios.x.turns]]\naudio = "short_hello"\ninstructions = "be brief"\n',
        r"server_vad turn does not send; use trigger = \"manual\"",
    ),
    ("no turns", "[scenarios.x]\nweight = 1\n", r"scenarios\.x: no turns"),
    (
        "negative chain limit",
        '[scenarios.x]\ntool_chain_limit = -1\n[[scenarios.x.turns]]\ntext = "hi"\n',
        r"scenarios\.x\.tool_chain_limit: -1 must be 0 or more",
    ),
    (
        "barge-in first",
        '[scenarios.x]\n[[scenarios.x.turns]]\naudio = "short_hello"\nbarge_in = true\n',
        r"the first turn has no answer to interrupt",
    ),
    (
        "transcription session without a model",
        '[scenarios.x]\nsession_type = "transcription"\n[[scenarios.x.turns]]\naudio = "short_hello"\n',
        r"session_type \"transcription\" needs transcription_model",
    ),
    (
        "a text turn in a transcription session",
        '[scenarios.x]\nsession_type = "transcription"\ntranscription_model = "whisper-1"\n'
        '[[scenarios.x.turns]]\ntext = "hi"\n',
        r"scenarios\.x\.turns\[1\]: a transcription session has no responses",
    ),
    (
        "unknown session type",
        '[scenarios.x]\nsession_type = "chat"\n[[scenarios.x.turns]]\ntext = "hi"\n',
        r"scenarios\.x\.session_type: 'chat'; use one of realtime, transcription",
    ),
    (
        "transcription beside a session file",
        '[scenarios.x]\nsession_file = "s.json"\ntranscription_model = "whisper-1"\n'
        '[[scenarios.x.turns]]\ntext = "hi"\n',
        r"with a session_file, set the transcription in that file instead",
    ),
]


@pytest.mark.parametrize(("case", "text", "message"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_scenario_file_is_one_line_naming_file_and_key(
    tmp_path: Path, case: str, text: str, message: str
) -> None:
    path = write_text(tmp_path / "bad.toml", text)
    with pytest.raises(WorkloadError) as err:
        load_mix(str(path))
    assert "\n" not in str(err.value)
    assert str(path) in str(err.value)
    assert __import__("re").search(message, str(err.value)), str(err.value)


def test_an_unknown_builtin_names_the_known_ones() -> None:
    with pytest.raises(WorkloadError, match="unknown scenario 'nope': use one of barge_in, conversation"):
        load_mix("nope")
