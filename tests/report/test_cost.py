"""Cost by kind of token against a price table: hand-computed figures, lookups, bad price files."""

from __future__ import annotations

import pytest

from loadtest.records.schema import ResponseRecord, SessionRecord
from tests.report.synth import T0, write_run

PRICES = """
currency = "USD"
date = "2030-01-01"
[models."gpt-x"]
source = "a contract"
text_input = 1.0
text_cached_input = 0.5
text_output = 2.0
audio_input = 10.0
audio_cached_input = 0.25
audio_output = 20.0
"""


def _row(**kw) -> ResponseRecord:
    return ResponseRecord(run_id="c", target="mock", scenario="s", session_id="sess_1", outcome="completed", **kw)


@pytest.fixture
def run(tmp_path):
    responses = [
        # GA: 1500 cached of which 1000 audio -> 500 cached text
        _row(deployment="gpt-x-2025-01-01", input_text_tokens=1000, input_audio_tokens=2000, input_cached_tokens=1500,
             input_cached_audio_tokens=1000, output_text_tokens=100, output_audio_tokens=500),
        # preview: 250 cached, no split -> text first (200), the rest (50) audio
        _row(deployment="gpt-x", input_text_tokens=200, input_audio_tokens=300, input_cached_tokens=250,
             output_text_tokens=0, output_audio_tokens=1000),
        _row(deployment="gpt-x"),  # no usage: a failed upgrade
        _row(deployment="other-model", input_text_tokens=10, output_audio_tokens=10),
    ]  # fmt: skip
    sessions = [SessionRecord(run_id="c", session_id="sess_1", target="mock", scenario="s", t_open=T0, t_end=T0 + 120)]
    prices = tmp_path / "prices.toml"
    prices.write_text(PRICES)
    return write_run(tmp_path / "c", responses, sessions), prices


def test_cost_by_hand(run, cli) -> None:
    synth, prices = run
    # by hand, per 1M tokens:
    # r1: 500*1 + 500*0.5 + 1000*10 + 1000*0.25 + 100*2 + 500*20 = 21,200
    # r2: 0*1 + 200*0.5 + 250*10 + 50*0.25 + 0*2 + 1000*20 = 22,612.5
    total = (21_200 + 22_612.5) / 1e6
    d = cli.json("summary", synth.path, "--prices", prices)["cost"]
    t = d["total"]
    assert (t["responses"], t["priced"]) == (4, 2)
    assert t["cost"] == pytest.approx(total)
    assert t["per_response"] == pytest.approx(total / 2)
    assert t["session_minutes"] == pytest.approx(2.0)
    assert t["per_session_minute"] == pytest.approx(total / 2)
    assert t["per_1000_minutes"] == pytest.approx(1000 * total / 2)
    assert d["unpriced"] == {"no_usage": 1, "unknown_models": {"other-model": 1}}
    assert d["prices"]["date"] == "2030-01-01" and d["by_scenario"][0]["cost"] == pytest.approx(total)
    text = cli("summary", synth.path, "--prices", prices).stdout
    assert "Cost (estimate at the list prices of 2030-01-01)" in text
    assert "no price for the deployment(s) other-model (1); add them with --prices FILE" in text
    assert f"{1000 * total / 2:.2f}" in text  # 21.91


def test_the_shipped_table_prices_every_mock_model_it_names(run, cli) -> None:
    synth, _ = run
    d = cli.json("summary", synth.path)["cost"]
    assert d["prices"]["path"].startswith("the shipped table") and d["total"]["priced"] == 0
    assert set(d["unpriced"]["unknown_models"]) == {"gpt-x-2025-01-01", "gpt-x", "other-model"}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("not toml [", "is not valid TOML"),
        ('date = "x"', "has no [models"),
        ('[models."m"]\ntext_input = 1', "needs a price >= 0 (per 1M tokens) for text_cached_input"),
    ],
)
def test_bad_price_file_is_one_line_exit_2(run, cli, tmp_path, text: str, words: str) -> None:
    synth, _ = run
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    result = cli("summary", synth.path, "--prices", bad, code=2)
    assert words in result.stderr and "Traceback" not in result.stderr
    assert "cannot read the price file" in cli("summary", synth.path, "--prices", tmp_path / "nope.toml", code=2).stderr


def test_compare_carries_the_cost_of_both_runs(run, cli) -> None:
    synth, prices = run
    d = cli.json("compare", synth.path, synth.path, "--prices", prices)
    assert (
        d["cost"]["a"]["total"]["cost"] == pytest.approx((21_200 + 22_612.5) / 1e6) == d["cost"]["b"]["total"]["cost"]
    )
    assert (
        "Cost (estimate at the list prices of 2030-01-01)"
        in cli("compare", synth.path, synth.path, "--prices", prices).stdout
    )
