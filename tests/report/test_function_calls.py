"""The function-calls section: summary, capacity, compare and html on runs with known tool round trips."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy import stats

from loadtest.records.reader import read_run
from loadtest.report.function_calls import FUNCTION_COLUMNS, function_call_data
from loadtest.report.sections import optional_columns
from loadtest.report.transcription import TRANSCRIPTION_COLUMNS, transcription_data
from tests.report.synth import older_run, ramp_run, tool_run
from tests.support import check_percentile_block, wilson_pct


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory):
    return tool_run(tmp_path_factory.mktemp("runs") / "tools")


def test_summary_counts_calls_validity_and_round_trips_as_the_rows_say(tools, cli) -> None:
    d = cli.json("summary", tools.path)["function_calls"]
    rows = tools.responses
    assert d["calls"] == sum(r.function_calls for r in rows) > 0
    assert d["responses_with_calls"] == sum(r.function_calls > 0 for r in rows)
    assert d["parallel"] == sum(r.function_calls > 1 for r in rows) > 0
    assert d["followups"] == sum(r.chain_depth > 0 for r in rows)
    assert d["deepest"] == 2
    names = Counter(n for r in rows for n in r.function_names)
    valid = Counter(n for r in rows for n, ok in zip(r.function_names, r.function_args_valid, strict=True) if ok)
    by_name = {x["name"]: x for x in d["by_name"]}
    assert {k: v["calls"] for k, v in by_name.items()} == dict(names)
    assert [x["name"] for x in d["by_name"]] == [n for n, _ in names.most_common()]
    for name, row in by_name.items():
        assert row["checked"] == names[name] and row["valid"] == valid[name]
        assert row["valid_ci_pct"] == pytest.approx(wilson_pct(valid[name], names[name]))
        pairs = [(n, a) for r in rows for n, a in zip(r.function_names, r.function_args_ms, strict=True)]
        args = np.array([a for n, a in pairs if n == name])
        assert row["arguments_done_p95"] == pytest.approx(np.percentile(args, 95))
    assert by_name["get_weather"]["valid"] < by_name["get_weather"]["calls"]  # k % 7 == 0 turns sent bad JSON
    k, n = sum(valid.values()), sum(names.values())
    assert d["arguments"] == {
        "checked": n,
        "valid": k,
        "valid_pct": pytest.approx(100 * k / n),
        "valid_ci_pct": pytest.approx(wilson_pct(k, n)),
    }
    check_percentile_block(d["latency_ms"]["tool_round_trip"], tools.values("tool_round_trip_ms"))
    check_percentile_block(d["latency_ms"]["tool_latency"], tools.values("tool_latency_ms"))
    less = np.array([r.tool_round_trip_ms - r.tool_latency_ms for r in rows if r.tool_round_trip_ms is not None])
    check_percentile_block(d["latency_ms"]["round_trip_less_tool"], less)
    args = np.array([a for r in rows for a in r.function_args_ms])
    check_percentile_block(d["latency_ms"]["arguments_done"], args)
    in_chain = lambda r: r.function_calls > 0 or r.chain_depth > 0  # noqa: E731
    check_percentile_block(d["latency_ms"]["final_answer_called"], tools.values("final_answer_ms", in_chain))
    direct = tools.values("final_answer_ms", lambda r: not in_chain(r))
    check_percentile_block(d["latency_ms"]["final_answer_direct"], direct)
    chains = Counter(r.chain_depth for r in rows if in_chain(r))
    again = Counter(r.chain_depth for r in rows if in_chain(r) and r.function_calls)
    assert [(c["depth"], c["responses"], c["called"]) for c in d["chain_depth"]] == [
        (depth, chains[depth], again[depth]) for depth in sorted(chains)
    ]
    refused = sum(r.reason == "followup_rejected" for r in rows)
    assert refused > 0
    failures = [(f["outcome"], f["reason"], f["count"]) for f in d["failures"]]
    assert failures == [("failed", "followup_rejected", refused)]
    assert d["failures"][0]["rate_pct"] == pytest.approx(100 * refused / sum(in_chain(r) for r in rows))


def test_the_tables_print_the_section(tools, cli) -> None:
    text = cli("summary", tools.path).stdout
    for title in ("Function calls", "Function calls by name", "Tool round trip and final answer", "Chain depth"):
        assert f"\n{title}" in text
    assert "Function-call chains that did not complete" in text and "followup_rejected" in text
    p95 = np.percentile(tools.values("tool_round_trip_ms"), 95)
    assert f"{p95:.1f} [" in text  # the p95 with its interval
    md = cli("summary", tools.path, "--format", "md").stdout
    assert "## Function calls by name" in md and "| get_weather |" in md


def test_a_run_without_calls_or_written_before_the_columns_has_no_section_and_no_error(tmp_path, cli) -> None:
    old = older_run(tmp_path / "old")
    now = ramp_run(tmp_path / "now")  # today's rows: 0 calls, empty lists, no transcription
    for run in (old, now):
        assert optional_columns(run.path) == []
        d = cli.json("summary", run.path)
        assert d["function_calls"] is None and d["input_transcription"] is None
        assert d["run"]["transports"] == ["websocket"]
        text = cli("summary", run.path).stdout
        assert "Function calls" not in text and "Input transcription" not in text
        assert "tool rt p95" not in cli("capacity", run.path).stdout
        # read on purpose, the columns are empty: still no section
        data = read_run(run.path, response_columns=[*FUNCTION_COLUMNS, *TRANSCRIPTION_COLUMNS, "reason"])
        assert function_call_data(data.responses) is None and transcription_data(data.responses) is None
    both = cli.json("compare", old.path, now.path)
    assert both["function_calls"] is None and both["input_transcription"] is None
    assert "Function calls" not in cli("compare", old.path, now.path).stdout


def test_compare_shows_a_slower_round_trip_as_significant(tmp_path, cli) -> None:
    a = tool_run(tmp_path / "a", seed=3, round_trip_ms=400.0)
    b = tool_run(tmp_path / "b", seed=4, round_trip_ms=700.0)
    d = cli.json("compare", a.path, b.path)["function_calls"]
    rt = next(r for r in d["latency_ms"] if r["metric"] == "tool_round_trip")
    ta, tb = a.values("tool_round_trip_ms"), b.values("tool_round_trip_ms")
    assert rt["a_n"] == ta.size and rt["b_n"] == tb.size
    assert rt["shift_p50"] == pytest.approx(np.percentile(tb, 50) - np.percentile(ta, 50))
    assert rt["shift_p95"] == pytest.approx(np.percentile(tb, 95) - np.percentile(ta, 95))
    assert rt["mannwhitney_p"] == pytest.approx(stats.mannwhitneyu(ta, tb, alternative="two-sided").pvalue)
    lo, hi = rt["shift_p50_ci95"]
    assert 0 < lo < rt["shift_p50"] < hi and rt["significant"] is True
    final = next(r for r in d["latency_ms"] if r["metric"] == "final_answer_called")
    assert final["shift_p50"] > 0
    valid = next(r for r in d["rates"] if r["measure"] == "arguments valid")
    ka = sum(v for r in a.responses for v in r.function_args_valid)
    na = sum(len(r.function_args_valid) for r in a.responses)
    assert (valid["a_count"], valid["b_count"]) == (ka, ka)  # the same turns sent bad JSON in both
    assert valid["fisher_p"] == pytest.approx(stats.fisher_exact([[ka, na - ka], [ka, na - ka]]).pvalue)
    assert valid["significant"] is False
    text = cli("compare", a.path, b.path).stdout
    assert "Function calls: shifts (ms)" in text and "Function calls: rates" in text
    assert f"{rt['shift_p50']:+.1f} [" in text


def test_compare_with_a_run_that_made_no_call_reads_dash_on_that_side(tools, tmp_path, cli) -> None:
    old = older_run(tmp_path / "old")
    d = cli.json("compare", old.path, tools.path)["function_calls"]
    rt = next(r for r in d["latency_ms"] if r["metric"] == "tool_round_trip")
    assert rt["a_n"] == 0 and rt["a_p50"] is None and rt["shift_p50"] is None and rt["b_n"] > 0
    cli("compare", old.path, tools.path)  # and the tables print


def test_capacity_has_the_round_trip_per_step(tools, cli) -> None:
    d = cli.json("capacity", tools.path, "--slo", "failed<20%")
    assert [r["group"] for r in d["rows"]] == ["step 0", "step 1"]
    for step, row in enumerate(d["rows"]):
        rt = tools.values("tool_round_trip_ms", lambda r, s=step: r.step == s)
        assert row["tool_round_trip"]["n"] == rt.size
        assert row["tool_round_trip"]["p95"] == pytest.approx(np.percentile(rt, 95))
        final = tools.values("final_answer_ms", lambda r, s=step: r.step == s)
        assert row["final_answer"]["p95"] == pytest.approx(np.percentile(final, 95))
    text = cli("capacity", tools.path, "--slo", "failed<20%").stdout
    assert "tool rt p95" in text and "final answer p95" in text
    p95 = np.percentile(tools.values("tool_round_trip_ms", lambda r: r.step == 1), 95)
    assert f"{p95:.1f}" in text


def test_html_has_the_section_its_plot_and_headline(tools, cli, tmp_path) -> None:
    out = tmp_path / "report.html"
    cli("html", tools.path, "-o", out)
    text = out.read_text()
    assert text.count("<svg") == 8  # the six plots, tool round trip, input transcription
    assert 'id="plot-tool-round-trip"' in text and 'id="plot-transcription"' in text
    assert "Function calls by name" in text and "Input transcription" in text
    assert "tool round trip p95" in text and "tool rt p95" in text  # headline and capacity column
    old = older_run(tmp_path / "old")
    cli("html", old.path, "-o", tmp_path / "old.html")
    assert (tmp_path / "old.html").read_text().count("<svg") == 6


@pytest.mark.browser
def test_the_round_trip_and_transcription_plots_render_in_chromium(tools, cli, tmp_path) -> None:
    from matplotlib import image

    from loadtest.report import plots
    from tests.browser import screenshot

    out = tmp_path / "report.html"
    cli("html", tools.path, "-o", out)
    width, height = 1400, 1900
    screenshot(out.as_uri(), tmp_path / "shot.png", width, height)
    png = (image.imread(tmp_path / "shot.png")[:, :, :3] * 255).astype(int)

    def pixels(region: np.ndarray, colour: str) -> int:
        rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
        return int((np.abs(region - rgb).sum(axis=2) < 40).sum())

    row4 = png[1300:height]  # the fourth row of the 2-column grid of plots
    assert pixels(row4[:, 20 : width // 2], plots.ROUND_TRIP_COLOUR) > 100
    assert pixels(row4[:, 20 : width // 2], plots.FINAL_ANSWER_COLOUR) > 100
    assert pixels(row4[:, width // 2 : width - 20], plots.TRANSCRIPT_COLOUR) > 100
    assert pixels(png[:1300], plots.ROUND_TRIP_COLOUR) < 50  # not drawn in the other plots


def test_the_pure_functions_read_lists_from_the_reader_and_from_plain_pandas_alike(tools, cli) -> None:
    import pandas as pd

    from loadtest.records.schema import to_row

    data = read_run(tools.path, response_columns=[*FUNCTION_COLUMNS, "reason", "outcome"])
    names = data.responses["function_names"]
    assert isinstance(names.dtype, pd.ArrowDtype)  # Arrow lists, not one numpy array per row
    assert next(v for v in names if len(v)) == ["get_weather"]
    plain = pd.DataFrame([to_row(r) for r in tools.responses])  # lists as Python objects, as a notebook has them
    assert plain["function_names"].dtype == object
    from_reader, from_plain = function_call_data(data.responses), function_call_data(plain)
    assert from_plain["by_name"] == from_reader["by_name"]
    summary = cli.json("summary", tools.path)["function_calls"]
    pairs = [(r["name"], r["valid"]) for r in from_plain["by_name"]]
    assert [(r["name"], r["valid"]) for r in summary["by_name"]] == pairs
    assert from_plain["arguments"] == from_reader["arguments"]
