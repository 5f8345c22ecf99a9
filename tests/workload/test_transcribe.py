"""Input transcription end to end through `rtload run` against the mock: the shipped `transcribe`
and `transcribe_only` scenarios, WER 0 on the fixtures and about the substitution knob's rate with
it on, the transcription faults agreeing 100% with the truth log, G.711 input still recognised."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scipy.stats import binom

from loadtest.records.schema import TRANSCRIPTION_FAULT_EXPECTATIONS
from loadtest.records.writer import read_rows
from loadtest.session.input_transcript import normalise
from tests.harness.conftest import assert_agrees_with_truth, mock_args, responses, rtload_run, run_dir
from tests.support import transcription_agreement

pytestmark = [pytest.mark.e2e]

QUICK = ("transcription.first_delta_ms=[40,120]", "transcription.delta_ms=5")
TRANSCRIBE_FIXTURES = {"short_hello", "medium_store_hours", "support_call_2", "short_front_center"}


def _run(
    tmp_path: Path, run_id: str, *sets: str, scenario: str = "transcribe", dialect: str = "ga", args: tuple = ()
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Path]:
    provider = "azure" if dialect == "preview" else "openai"  # OpenAI retired the preview (beta) shape
    done = rtload_run(
        tmp_path, *mock_args(*QUICK, *sets), "--provider", provider, "--dialect", dialect, "--scenario", scenario,
        "--pacing", "fast", "--users", "2", "--duration", "4s", "--run-id", run_id, "--no-summary", *args,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = run_dir(tmp_path, run_id)
    return responses(out), read_rows(out / "mock_truth.jsonl"), out


def _agrees(rows: list[dict[str, Any]], truth: list[dict[str, Any]]) -> int:
    checked, wrong = transcription_agreement(rows, truth)
    assert checked > 0 and wrong == [], wrong[:5]
    return checked


# timing: the transcript's first delta comes 40-120 ms after the commit; read together with the
# committed event by a harness starved of its core, both carry one arrival stamp (0 ms apart)
@pytest.mark.timing
@pytest.mark.parametrize("dialect", ["ga", "preview"])
def test_the_transcribe_scenario_records_transcript_times_and_no_word_errors(tmp_path: Path, dialect: str) -> None:
    rows, truth, out = _run(tmp_path, f"clean-{dialect}", dialect=dialect)
    assert_agrees_with_truth(out)  # every response completed, as its (no) fault says
    assert {r["fixture"] for r in rows} == TRANSCRIBE_FIXTURES
    assert {r["input_transcription"] for r in rows} == {"completed"}
    assert {r["input_transcript_wer"] for r in rows} == {0.0}
    for r in rows:
        assert 30.0 <= r["input_transcript_first_ms"] <= r["input_transcript_done_ms"] < 5000.0
        assert r["input_transcription_error"] is None
    assert _agrees(rows, truth) == len(rows)
    models = {t["model"] for t in truth if t["kind"] == "transcription"}
    assert models == {"gpt-4o-mini-transcribe"}  # the scenario turned it on, in this dialect's shape


def test_the_substitution_knob_gives_a_measured_wer_near_its_rate(tmp_path: Path) -> None:
    rate = 0.3
    rows, truth, _ = _run(tmp_path, "substituted", f"transcription.substitution_rate={rate}")
    _agrees(rows, truth)  # each row's WER is the one its transcript has against the fixture's
    expected = {t["item_id"]: t for t in truth if t["kind"] == "transcription"}
    words = sum(len(normalise(t["expected"]).split()) for t in expected.values())
    errors = sum(t["substituted_words"] for t in expected.values())
    measured = sum(r["input_transcript_wer"] * len(normalise(_said(r)).split()) for r in rows)
    assert abs(measured - errors) <= max(1.0, 0.05 * errors)  # a substituted word is a word error
    lo, hi = binom.ppf([0.0001, 0.9999], words, rate) / words
    assert lo <= measured / words <= hi, (measured, words)  # the measured WER is the knob's rate
    assert any(r["input_transcript_wer"] > 0 for r in rows)


def _said(row: dict[str, Any]) -> str:
    from loadtest.session.input_transcript import expected_transcript

    return expected_transcript(None, row["fixture"]) or ""


def test_transcription_faults_agree_with_the_truth_log_and_leave_responses_completed(tmp_path: Path) -> None:
    rows, truth, out = _run(
        tmp_path, "faults", "faults.transcription_failed.rate=0.3", "faults.transcription_slow.rate=0.3",
        "faults.transcription_slow.delay_ms=[300,600]", args=("--users", "3"),
    )  # fmt: skip
    checked = _agrees(rows, truth)
    faults = {t["fault"] for t in truth if t["kind"] == "transcription"}
    assert faults == set(TRANSCRIPTION_FAULT_EXPECTATIONS), (faults, checked)
    assert {r["input_transcription"] for r in rows} == {"completed", "failed"}
    assert_agrees_with_truth(out)  # a failed transcription changes no response's outcome
    assert {r["outcome"] for r in rows} == {"completed"}


def test_g711_input_is_still_recognised_and_transcribed_without_errors(tmp_path: Path) -> None:
    rows, truth, _ = _run(tmp_path, "ulaw", args=("--audio-format", "g711_ulaw"))
    assert {r["audio_format"] for r in rows} == {"g711_ulaw"}
    assert {r["input_transcript_wer"] for r in rows} == {0.0}
    recognised = {t["fixture"] for t in truth if t["kind"] == "transcription"}
    assert recognised == TRANSCRIBE_FIXTURES
    _agrees(rows, truth)


@pytest.mark.parametrize("dialect", ["ga", "preview"])
def test_a_transcription_only_run_has_one_row_per_utterance(tmp_path: Path, dialect: str) -> None:
    rows, truth, _ = _run(
        tmp_path, f"only-{dialect}", "faults.transcription_failed.rate=0.25", scenario="transcribe_only",
        dialect=dialect,
    )  # fmt: skip
    assert not [t for t in truth if t["kind"] == "response"]  # nothing was answered
    kept = [t["session"] for t in truth if t["kind"] == "session_update"]
    assert kept and all(s.get("type", "transcription") == "transcription" for s in kept)
    assert rows and all(r["response_id"] is None and r["modalities"] == [] for r in rows)
    assert all(r["item_id"] and r["item_id"].startswith("item_") for r in rows)
    _agrees(rows, truth)
    for r in rows:
        want = {"completed": ("completed", ""), "failed": ("failed", "transcription_failed")}
        assert (r["outcome"], r["reason"]) == want[r["input_transcription"]]
        assert r["done_ms"] is not None and r["done_ms"] >= r["input_transcript_done_ms"]
    assert {r["input_transcription"] for r in rows} == {"completed", "failed"}
    assert {r["trigger"] for r in rows} == {"server_vad", "manual"}
