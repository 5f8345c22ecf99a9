"""The input-transcription section, and runs told apart by transport."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy import stats

from loadtest.report.function_calls import FUNCTION_COLUMNS
from loadtest.report.sections import optional_columns
from loadtest.report.transcription import TRANSCRIPTION_COLUMNS
from tests.report.synth import T0, TRANSCRIPTION_ERRORS, tool_run, write_run
from tests.support import check_percentile_block, wilson_pct


@pytest.fixture(scope="module")
def heard(tmp_path_factory: pytest.TempPathFactory):
    return tool_run(tmp_path_factory.mktemp("runs") / "heard", scenarios=("booking", "transcribe"))


def test_states_times_errors_and_wer_as_the_rows_say(heard, cli) -> None:
    d = cli.json("summary", heard.path)["input_transcription"]
    rows = [r for r in heard.responses if r.input_transcription]
    states = Counter(r.input_transcription for r in rows)
    assert d["turns"] == len(rows) == 300  # one row per turn carries it
    got = {s["state"]: s for s in d["states"]}
    assert list(got) == ["completed", "failed", "missing"]
    for state, s in got.items():
        assert s["count"] == states[state] > 0
        assert s["rate_pct"] == pytest.approx(100 * states[state] / len(rows))
        assert s["ci_pct"] == pytest.approx(wilson_pct(states[state], len(rows)))
    check_percentile_block(d["latency_ms"]["first_delta"], heard.values("input_transcript_first_ms"))
    check_percentile_block(d["latency_ms"]["completed"], heard.values("input_transcript_done_ms"))
    errors = Counter(r.input_transcription_error for r in rows if r.input_transcription == "failed")
    assert {e["error"]: e["count"] for e in d["errors"]} == dict(errors)
    assert set(errors) == set(TRANSCRIPTION_ERRORS)
    wer = heard.values("input_transcript_wer")
    w = d["wer"]
    assert w["n"] == wer.size and w["mean"] == pytest.approx(wer.mean())
    for p in (50, 90, 95, 99):
        assert w[f"p{p}"] == pytest.approx(np.percentile(wer, p))
    assert w["with_errors"] == int((wer > 0).sum()) > 0 and w["exact"] == int((wer == 0).sum())
    by = {s["scenario"]: s for s in d["by_scenario"]}
    assert set(by) == {"booking", "transcribe"}
    for name, s in by.items():
        mine = [r for r in rows if r.scenario == name]
        assert s["turns"] == len(mine)
        done = np.array([r.input_transcript_done_ms for r in mine if r.input_transcript_done_ms is not None])
        assert s["done_p95"] == pytest.approx(np.percentile(done, 95))
    text = cli("summary", heard.path).stdout
    for title in ("Input transcription", "Input transcription times", "Word error rate", "failures by error"):
        assert title in text
    assert f"{100 * wer.mean():.2f}%" in text  # WER shown in percent


def test_transcription_only_rows_have_their_section_and_no_call_section(tmp_path, cli) -> None:
    run = tool_run(tmp_path / "t")
    rows = []
    for r in run.responses:  # keep only the transcription of each turn's first row
        if r.input_transcription:
            r.function_calls, r.function_names, r.function_args_ms, r.function_args_valid = 0, [], [], []
            r.chain_depth, r.tool_round_trip_ms, r.tool_latency_ms, r.final_answer_ms = 0, None, None, None
            r.outcome, r.reason = "completed", ""
            rows.append(r)
    only = write_run(tmp_path / "only", rows)
    assert optional_columns(only.path) == TRANSCRIPTION_COLUMNS
    d = cli.json("summary", only.path)
    assert d["function_calls"] is None and d["input_transcription"]["turns"] == len(rows)
    cap = cli("capacity", only.path, "--slo", "failed<50%").stdout
    assert "transcript p95" in cap and "tool rt p95" not in cap


def test_compare_sets_transcription_times_and_wer_side_by_side(tmp_path, cli) -> None:
    a = tool_run(tmp_path / "a", seed=5, wer=0.1)
    b = tool_run(tmp_path / "b", seed=6, wer=0.4)
    d = cli.json("compare", a.path, b.path)["input_transcription"]
    done = next(r for r in d["latency_ms"] if r["metric"] == "input_transcript_done")
    da, db = a.values("input_transcript_done_ms"), b.values("input_transcript_done_ms")
    assert done["shift_p50"] == pytest.approx(np.percentile(db, 50) - np.percentile(da, 50))
    assert done["mannwhitney_p"] == pytest.approx(stats.mannwhitneyu(da, db, alternative="two-sided").pvalue)
    wa, wb = 100 * a.values("input_transcript_wer"), 100 * b.values("input_transcript_wer")
    w = d["wer_pct"]
    assert w["shift_p95"] == pytest.approx(np.percentile(wb, 95) - np.percentile(wa, 95)) and w["shift_p95"] > 0
    assert w["mannwhitney_p"] == pytest.approx(stats.mannwhitneyu(wa, wb, alternative="two-sided").pvalue)
    failed = next(r for r in d["rates"] if r["measure"] == "transcription failed")
    assert failed["a_count"] == failed["b_count"] == 12 and failed["fisher_p"] == pytest.approx(1.0)
    text = cli("compare", a.path, b.path).stdout
    assert "Input transcription: shifts" in text and "word error rate" in text


def _rows(path, transport: str, n: int = 40):
    from loadtest.records.schema import ResponseRecord

    return [
        ResponseRecord(
            run_id=path.name,
            transport=transport,
            outcome="completed",
            t_trigger=T0 + i,
            ttfa_ms=300.0 + i,
            done_ms=900.0,
        )
        for i in range(n)
    ]


def test_a_websocket_run_and_a_webrtc_run_compare_by_transport(tmp_path, cli) -> None:
    ws = write_run(tmp_path / "ws", _rows(tmp_path / "ws", ""))  # "" = written before the column: websocket
    rtc = write_run(tmp_path / "rtc", _rows(tmp_path / "rtc", "webrtc"))
    assert optional_columns(ws.path) == [] and optional_columns(rtc.path) == ["transport"]
    assert cli.json("summary", rtc.path)["run"]["transports"] == ["webrtc"]
    assert cli.json("summary", ws.path)["run"]["transports"] == ["websocket"]
    d = cli.json("compare", ws.path, rtc.path)
    assert (d["a"]["transport"], d["b"]["transport"]) == ("websocket", "webrtc")
    runs = cli("compare", ws.path, rtc.path).stdout.split("\n\n")[0]
    assert "transport" in runs and "websocket" in runs and "webrtc" in runs
    mixed = write_run(tmp_path / "mixed", _rows(tmp_path / "mixed", "") + _rows(tmp_path / "mixed", "webrtc"))
    by = {r["transport"]: r["responses"] for r in cli.json("summary", mixed.path)["by_transport"]}
    assert by == {"websocket": 40, "webrtc": 40}
    assert "By transport" in cli("summary", mixed.path).stdout


def test_optional_columns_name_every_section_a_run_has(heard) -> None:
    assert optional_columns(heard.path) == [*FUNCTION_COLUMNS, *TRANSCRIPTION_COLUMNS]
