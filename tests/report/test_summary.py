"""`rtload report summary`: every figure against numpy on the synthetic rows."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from loadtest.records.schema import HealthRecord, ResponseRecord, SessionRecord
from tests.report.synth import T0, ramp_run, write_run

P = (50, 90, 95, 99)


def _check_pct(got: dict, values: np.ndarray) -> None:
    assert got["n"] == values.size
    for p in P:
        assert got[f"p{p}"] == pytest.approx(np.percentile(values, p), rel=1e-9)
    assert got["max"] == pytest.approx(values.max())


def test_outcomes_reasons_and_latency_match_numpy(ramp, cli) -> None:
    d = cli.json("summary", ramp.path)
    n = len(ramp.responses)
    counts = Counter(r.outcome for r in ramp.responses)
    for outcome in ("completed", "failed", "truncated", "throttled", "cancelled"):
        assert d["outcomes"][outcome]["count"] == counts[outcome]
        assert d["outcomes"][outcome]["rate_pct"] == pytest.approx(100 * counts[outcome] / n)
    assert d["outcomes"]["non_completed"]["count"] == n - counts["completed"]
    reasons = Counter((r.outcome, r.reason) for r in ramp.responses if r.outcome != "completed")
    assert {(x["outcome"], x["reason"]): x["count"] for x in d["reasons"]} == dict(reasons)
    assert [x["count"] for x in d["reasons"]] == sorted((x["count"] for x in d["reasons"]), reverse=True)
    for label, col in (("created", "created_ms"), ("ttfa", "ttfa_ms"), ("ttft", "ttft_ms"), ("done", "done_ms")):
        _check_pct(d["latency_ms"][label], ramp.values(col))
    handshake = np.array([s.handshake_ms for s in ramp.sessions], dtype=float)
    _check_pct(d["latency_ms"]["handshake"], handshake)
    assert d["run"]["responses"] == n and d["run"]["sessions"] == len(ramp.sessions)
    assert d["run"]["in_progress"] is False


def test_audio_tokens_and_groups_match_numpy(ramp, cli) -> None:
    d = cli.json("summary", ramp.path)
    audio = ramp.values("audio_ms")
    with_audio = audio[audio > 0]
    a = d["audio"]
    assert a["responses_with_audio"] == with_audio.size
    assert a["audio_ms_mean"] == pytest.approx(with_audio.mean())
    assert a["audio_ms_p95"] == pytest.approx(np.percentile(with_audio, 95))
    assert a["stalls"] == sum(r.reason == "audio_stall" for r in ramp.responses)
    under = ramp.values("underrun_ms")
    assert a["responses_with_underrun"] == int((under > 0).sum())
    assert a["underrun_ms_total"] == pytest.approx(under.sum())
    gaps = np.array([r.max_delta_gap_ms for r in ramp.responses if r.audio_ms > 0])
    assert a["max_delta_gap_ms_p95"] == pytest.approx(np.percentile(gaps, 95))
    t = d["tokens"]
    assert t["input"] == sum(r.input_tokens for r in ramp.responses)
    assert t["total"] == sum(r.total_tokens for r in ramp.responses)
    minutes = (ramp.run["t_end"] - ramp.run["t_start"]) / 60
    assert t["per_minute"] == pytest.approx(sum(r.total_tokens for r in ramp.responses) / minutes)
    by_target = {row["target"]: row for row in d["by_target"]}
    assert set(by_target) == {"mock", "mock-b"}
    for name, row in by_target.items():
        rows = [r for r in ramp.responses if r.target == name]
        assert row["responses"] == len(rows)
        assert row["failed_pct"] == pytest.approx(100 * sum(r.outcome == "failed" for r in rows) / len(rows))
        ttfa = np.array([r.ttfa_ms for r in rows if r.ttfa_ms is not None])
        assert row["ttfa_p95"] == pytest.approx(np.percentile(ttfa, 95))
    by_scenario = {row["scenario"]: row for row in d["by_scenario"]}
    assert by_scenario["two_turns"]["responses"] == sum(r.scenario == "two_turns" for r in ramp.responses)


def test_table_and_markdown_print_the_same_figures(ramp, cli) -> None:
    text = cli("summary", ramp.path).stdout
    n = len(ramp.responses)
    failed = sum(r.outcome == "failed" for r in ramp.responses)
    assert f"{100 * failed / n:.2f}%" in text
    assert f"{np.percentile(ramp.values('ttfa_ms'), 95):.1f}" in text
    assert f"{np.percentile(ramp.values('done_ms'), 99):.1f}" in text
    md = cli("summary", ramp.path, "--format", "md").stdout
    assert md.startswith("# Summary of run ramp-run")
    assert "| completed |" in md and f"| {failed} | {100 * failed / n:.2f}% |" in md
    assert "unknown: the run has no health.jsonl" in text


def test_write_puts_summary_md_and_json_in_the_run_dir(tmp_path, cli) -> None:
    run = ramp_run(tmp_path / "w")
    cli("summary", run.path, "--write")
    data = json.loads((run.path / "summary.json").read_text())
    assert data["run"]["responses"] == len(run.responses)
    assert (run.path / "summary.md").read_text().startswith("# Summary of run w")


def test_health_verdict_names_the_worker_that_saturated(tmp_path, cli) -> None:
    responses = [ResponseRecord(run_id="h", outcome="completed", t_trigger=T0 + i, ttfa_ms=500.0) for i in range(10)]
    calm = [
        HealthRecord(
            t=T0 + i,
            worker_id="w1",
            cpu_percent=40.0 + i,
            rss_mb=200,
            clock_lag_p99_ms=3,
            frames_late_pct=0.0,
            users=10,
        )
        for i in range(20)
    ]
    run = write_run(tmp_path / "calm", responses, health=calm)
    d = cli.json("summary", run.path)
    assert d["health"]["bottleneck"] is False
    assert d["health"]["workers"][0]["cpu_percent_p95"] == pytest.approx(np.percentile(40.0 + np.arange(20), 95))
    assert "Was the load generator the bottleneck? no" in cli("summary", run.path).stdout
    hot = calm + [
        HealthRecord(
            t=T0 + i, worker_id="w2", cpu_percent=99.0, rss_mb=300, clock_lag_p99_ms=250, frames_late_pct=4.0, users=50
        )
        for i in range(20)
    ]
    run = write_run(tmp_path / "hot", responses, health=hot)
    d = cli.json("summary", run.path)
    assert d["health"]["bottleneck"] is True
    assert all("worker w2" in reason for reason in d["health"]["reasons"]) and len(d["health"]["reasons"]) == 3
    assert "yes, the load generator may have been the bottleneck" in cli("summary", run.path).stdout
    # only the receive side fell behind (CPU and the audio clock fine): still a bottleneck, named
    behind = calm + [
        HealthRecord(t=T0 + i, worker_id="w3", cpu_percent=60.0, rss_mb=300, clock_lag_p99_ms=2,
                     frames_late_pct=0.0, recv_lag_p99_ms=20.0 + 5 * i, users=50)
        for i in range(10)
    ]  # fmt: skip
    run = write_run(tmp_path / "behind", responses, health=behind)
    d = cli.json("summary", run.path)
    w3 = next(w for w in d["health"]["workers"] if w["worker_id"] == "w3")
    assert w3["recv_lag_p99_ms_max"] == 65.0
    assert d["health"]["bottleneck"] is True and d["health"]["reasons"] == ["worker w3: receive lag p99 65 ms >= 50 ms"]
    assert next(w for w in d["health"]["workers"] if w["worker_id"] == "w1")["recv_lag_p99_ms_max"] is None


def test_the_master_is_judged_on_its_cpu_alone(tmp_path, cli) -> None:
    """The master runs no sessions: a pause of its loop (its probe's wake-ups late) delays no audio
    frame and no read, so it is no reason to doubt the run's latencies (it was, on every run with
    workers: its test_start work pauses it ~30 ms); its CPU still is (records, heartbeats)."""
    responses = [ResponseRecord(run_id="m", outcome="completed", t_trigger=T0 + i, ttfa_ms=500.0) for i in range(10)]

    def rows(worker: str, cpu: float, lag: float, late: float) -> list[HealthRecord]:
        return [HealthRecord(t=T0 + i, worker_id=worker, cpu_percent=cpu, rss_mb=200, clock_lag_p99_ms=lag,
                             frames_late_pct=late, recv_lag_p99_ms=None, users=0) for i in range(20)]  # fmt: skip

    worker = rows("w0", 30.0, 2.0, 0.0)
    run = write_run(tmp_path / "paused", responses, health=worker + rows("master", 5.0, 80.0, 2.1))
    d = cli.json("summary", run.path)
    assert d["health"]["bottleneck"] is False, d["health"]
    run = write_run(tmp_path / "busy", responses, health=worker + rows("master", 97.0, 80.0, 2.1))
    d = cli.json("summary", run.path)
    assert d["health"]["bottleneck"] is True and d["health"]["reasons"] == ["worker master: CPU p95 97% >= 90%"]


def test_media_packets_the_server_sent_as_garbage_are_counted_and_said(tmp_path, cli) -> None:
    responses = [ResponseRecord(run_id="g", outcome="completed", t_trigger=T0 + i, ttfa_ms=500.0) for i in range(4)]
    sessions = [
        SessionRecord(run_id="g", session_id=f"s{i}", transport="webrtc", t_start=T0 + i, rtp_dropped=dropped)
        for i, dropped in enumerate((0, 7, 0, 5))
    ]
    run = write_run(tmp_path / "garbage", responses, sessions)
    assert cli.json("summary", run.path)["run"]["rtp_dropped"] == {"packets": 12, "sessions": 2}
    assert "12 media packets from the server were dropped in 2 WebRTC session(s)" in cli("summary", run.path).stdout
    clean = write_run(tmp_path / "clean", responses, [SessionRecord(run_id="c", session_id="s", t_start=T0)])
    assert cli.json("summary", clean.path)["run"]["rtp_dropped"] == {"packets": 0, "sessions": 0}
    assert "media packets" not in cli("summary", clean.path).stdout


def test_the_webrtc_path_figures_from_rtcp_are_summarised(tmp_path, cli) -> None:
    responses = [ResponseRecord(run_id="p", outcome="completed", t_trigger=T0 + i, ttfa_ms=500.0) for i in range(5)]
    figures = [(0, 12.5, 0), (3, 40.0, 0), (0, None, 2), (None, None, None), (1, 20.0, 0)]  # the 4th: no RTCP yet
    sessions = [
        SessionRecord(run_id="p", session_id=f"s{i}", transport="webrtc", t_start=T0 + i, rtp_lost=lost, rtt_ms=rtt,
                      peer_rtp_lost=peer)
        for i, (lost, rtt, peer) in enumerate(figures)
    ]  # fmt: skip
    run = write_run(tmp_path / "path", responses, sessions)
    path = cli.json("summary", run.path)["run"]["webrtc_path"]
    rtts = np.array([12.5, 40.0, 20.0])
    assert path["sessions_with_rtt"] == 3
    assert path["rtt_p50_ms"] == pytest.approx(np.percentile(rtts, 50)) and path["rtt_max_ms"] == 40.0
    assert path["rtt_p95_ms"] == pytest.approx(np.percentile(rtts, 95), abs=0.01)
    assert path["lost_inbound"] == {"packets": 4, "sessions": 2, "sessions_known": 4}
    assert path["lost_outbound"] == {"packets": 2, "sessions": 1, "sessions_known": 4}
    text = cli("summary", run.path).stdout
    assert "WebRTC path (RTCP): round-trip p50 20 ms" in text
    assert "the server's packets lost on the way here: 4 in 2 of 4 session(s)" in text
    assert "ours the server reported lost: 2 in 1 of 4 session(s)" in text
    websocket = write_run(tmp_path / "ws", responses, [SessionRecord(run_id="w", session_id="s", t_start=T0)])
    assert cli.json("summary", websocket.path)["run"]["webrtc_path"] is None
    assert "WebRTC path" not in cli("summary", websocket.path).stdout


def test_bad_format_is_one_clear_line(ramp, cli) -> None:
    result = cli("summary", ramp.path, "--format", "xml", code=2)
    assert "unknown format 'xml'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def _row_value(text: str, label: str) -> str:
    """The last cell of the table row whose first cell is ``label``."""
    line = next(line for line in text.splitlines() if line.startswith(label + "  "))
    return line.split()[-1]


def test_audio_and_token_figures_the_tables_print(ramp, cli) -> None:
    rows = ramp.responses
    audio = np.array([r.audio_ms for r in rows], dtype=float)
    with_audio = audio[audio > 0]
    longest = np.array([r.longest_underrun_ms for r in rows], dtype=float)
    gaps = np.array([r.max_delta_gap_ms for r in rows], dtype=float)
    output = np.array([r.output_tokens for r in rows])
    total = np.array([r.total_tokens for r in rows], dtype=float)
    d = cli.json("summary", ramp.path)
    a, t = d["audio"], d["tokens"]
    assert a["audio_ms_p50"] == pytest.approx(np.median(with_audio))
    assert a["longest_underrun_ms_max"] == pytest.approx(longest.max()) == 2000.0  # the audio_stall rows
    assert a["max_delta_gap_ms_max"] == pytest.approx(gaps.max())
    assert t["output"] == int(output.sum()) and t["responses_with_usage"] == len(rows)
    assert t["per_response_mean"] == pytest.approx(total.mean())
    text = cli("summary", ramp.path).stdout
    assert _row_value(text, "audio ms per response (p50)") == f"{np.median(with_audio):.1f}"
    assert _row_value(text, "longest underrun ms") == "2000.0"
    assert _row_value(text, "largest delta gap max ms") == f"{gaps.max():.1f}"
    assert _row_value(text, "output") == str(int(output.sum()))
    assert _row_value(text, "per response (mean)") == f"{total.mean():.1f}"


def test_the_report_commands_do_not_import_scipy_stats_until_a_test_needs_it() -> None:
    """Importing scipy.stats costs about 0.6 s, paid by every run's summary and every report
    command; only compare, soak and quantile intervals call it, on first use."""
    code = (
        "import sys\n"
        "import loadtest.report.summary, loadtest.report.capacity, loadtest.report.limits, loadtest.report.compare\n"
        "import loadtest.report.soak, loadtest.report.html\n"
        "print(sorted(m for m in sys.modules if m.startswith('scipy.stats')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]", out.stdout
