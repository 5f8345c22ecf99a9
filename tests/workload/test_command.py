"""`rtload scenarios list|show`: the shipped built-in scenario files."""

from __future__ import annotations

from typer.testing import CliRunner

from loadtest.cli import app
from loadtest.session.scenario import SCENARIOS
from loadtest.workload.scenario_file import builtin_text


def test_list_names_every_built_in_with_its_turns_and_description() -> None:
    result = CliRunner().invoke(app, ["scenarios", "list"])
    assert result.exit_code == 0
    rows = [line for line in result.output.splitlines() if line.strip()]
    lines = {line.split()[0]: line for line in rows if line.split()[0] in SCENARIOS}
    assert set(lines) == set(SCENARIOS)
    assert "5 turns (server_vad)" in lines["conversation"] and "repeated" in lines["text_loop"]
    assert SCENARIOS["barge_in"].description in lines["barge_in"]


def test_show_prints_the_shipped_file_and_an_unknown_name_is_one_line() -> None:
    result = CliRunner().invoke(app, ["scenarios", "show", "out_of_band"])
    assert result.exit_code == 0 and result.output == builtin_text("out_of_band")
    assert "out_of_band = true" in result.output
    bad = CliRunner().invoke(app, ["scenarios", "show", "nope"])
    assert bad.exit_code == 2
    lines = [line for line in bad.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "unknown scenario 'nope': use one of barge_in" in lines[0]
