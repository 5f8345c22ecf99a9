"""Per-turn settings from a scenario file, run by the session client against the mock."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.protocol.dialects import GA, PREVIEW
from loadtest.workload.scenario_file import load_mix
from tests.session.helpers import FAST_MOCK, run_session

from .helpers import write_text

TURNS = """
[scenarios.turns]
[[scenarios.turns.turns]]
audio = "short_yes"
trigger = "manual"
modalities = ["text"]

[[scenarios.turns.turns]]
text = "Tell me a long story about the sea."
max_output_tokens = 5
think_time_s = [0.6, 0.6]

[[scenarios.turns.turns]]
text = "And a short one."
"""

BARGE = """
[scenarios.barge]
[[scenarios.barge.turns]]
audio = "barge_in_question"
trigger = "manual"

[[scenarios.barge.turns]]
audio = "barge_in_interrupt"
trigger = "manual"
barge_in = true
barge_in_after_ms = {after}
"""


@pytest.fixture
def mock(mock_server):  # type: ignore[no-untyped-def]
    return mock_server(overrides=FAST_MOCK)


def test_response_create_carries_the_turns_cap_in_each_dialects_name() -> None:
    assert GA.response_create(max_output_tokens=5) == {"type": "response.create", "response": {"max_output_tokens": 5}}
    assert PREVIEW.response_create(max_output_tokens="inf") == {
        "type": "response.create", "response": {"max_response_output_tokens": "inf"},
    }  # fmt: skip


def test_per_turn_modalities_cap_and_think_time_reach_the_mock(mock, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (scenario,) = load_mix(str(write_text(tmp_path / "t.toml", TURNS))).scenarios
    sink, _ = run_session(mock.url, scenario)
    rows = sorted(sink.responses, key=lambda r: r.turn_index)
    truth = {r["response_id"]: r for r in mock.truth() if r["kind"] == "response"}
    first, capped, plain = rows
    # turn 1 asked for text only: the mock answered in text, and the client judged it as text
    assert truth[first.response_id]["modalities"] == ["text"] and first.modalities == ["text"]
    assert (first.outcome, first.audio_deltas) == ("completed", 0)
    # turn 2's cap of 5 tokens cut its answer short on the mock; turn 3 had none
    assert truth[capped.response_id]["fault"] == "incomplete"
    assert (capped.outcome, capped.reason) == ("truncated", "incomplete_max_output_tokens")
    assert (plain.outcome, plain.modalities) == ("completed", ["audio"])
    # turn 2 waited its think time after turn 1's answer; turn 3 had none
    assert capped.t_trigger - first.t_done >= 0.6
    assert plain.t_trigger - capped.t_done < 0.5


@pytest.mark.parametrize("after", [250, 900])
def test_a_turns_barge_in_point_is_when_it_interrupts(mock, tmp_path: Path, after: int) -> None:  # type: ignore[no-untyped-def]
    (scenario,) = load_mix(str(write_text(tmp_path / "b.toml", BARGE.format(after=after)))).scenarios
    timeline: list[dict] = []
    run_session(mock.url, scenario, observer=timeline.append)
    truncated = [e for e in timeline if e["type"] == "conversation.item.truncated"]
    assert len(truncated) == 1, "the mock confirmed one truncation"
    assert after <= truncated[0]["audio_end_ms"] < after + 200
