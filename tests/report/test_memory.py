"""The harness's own memory over a run (health.jsonl rss_mb): its slope after warm-up, in summary and soak."""

from __future__ import annotations

import numpy as np
import pytest

from loadtest.records.schema import HealthRecord, ResponseRecord
from loadtest.report.memory import GROWTH_MB_PER_H, WARMUP_MAX_S, rss_trend
from tests.report.synth import T0, write_run


def _rss(
    seconds: int, mb_per_h: float, seed: int, base: float = 110.0, climb_s: float = 180.0
) -> tuple[np.ndarray, np.ndarray]:
    """One sample a second: a warm-up climb of 30 MB, then ``mb_per_h`` with allocator noise."""
    rng = np.random.default_rng(seed)
    t = T0 + np.arange(seconds, dtype=float)
    climb = np.minimum(t - T0, climb_s) / climb_s * 30.0
    rss = base - 30.0 + climb + mb_per_h * (t - T0) / 3600.0 + rng.normal(0, 0.8, t.size)
    return t, np.round(rss, 1)


def test_slope_after_warm_up_is_the_least_squares_line_and_growth_is_flagged() -> None:
    t, rss = _rss(1800, 60.0, seed=1)
    trend = rss_trend(t, rss)
    assert trend["warmup_s"] == WARMUP_MAX_S  # 20% of 30 min is 6 min: capped at 5
    keep = t >= T0 + WARMUP_MAX_S
    expected = np.polyfit(t[keep] - t[keep][0], rss[keep], 1)[0] * 3600
    assert trend["slope_mb_per_h"] == pytest.approx(expected, abs=0.01)
    assert trend["slope_mb_per_h"] == pytest.approx(60.0, rel=0.05)
    assert trend["grew"] is True and trend["rss_end_mb"] > trend["rss_start_mb"] + 20

    flat = rss_trend(*_rss(1800, 0.0, seed=2))
    assert abs(flat["slope_mb_per_h"]) < GROWTH_MB_PER_H and flat["grew"] is False
    # the warm-up's climb is left out: without it the same flat run would read as growth
    assert rss_trend(*_rss(1800, 0.0, seed=2), warmup_s=0)["slope_mb_per_h"] > 2 * GROWTH_MB_PER_H

    # a short run's slope is no trend: 9 MB/h over 4 minutes rises half a megabyte
    short = rss_trend(*_rss(300, 9.0, seed=3, climb_s=30.0))
    assert short["warmup_s"] == pytest.approx(60.0, abs=0.5) and short["slope_mb_per_h"] == pytest.approx(9.0, abs=3.0)
    assert short["grew"] is False
    # under two minutes after the warm-up: not assessed
    assert rss_trend(*_rss(120, 500.0, seed=4))["grew"] is None


def _health(worker: str, t: np.ndarray, rss: np.ndarray) -> list[HealthRecord]:
    return [
        HealthRecord(t=float(a), worker_id=worker, cpu_percent=20.0, rss_mb=float(b), clock_lag_p99_ms=2.0,
                     frames_late_pct=0.0, users=100)
        for a, b in zip(t, rss, strict=True)
    ]  # fmt: skip


def test_summary_and_soak_say_which_process_grew(tmp_path, cli) -> None:
    responses = [
        ResponseRecord(run_id="m", outcome="completed", t_trigger=T0 + 2 * i, ttfa_ms=500.0, done_ms=3000.0)
        for i in range(900)
    ]
    health = _health("w0", *_rss(1800, 40.0, seed=5)) + _health("w1", *_rss(1800, 0.0, seed=6))
    health += _health("master", *_rss(1800, 0.0, seed=7, base=80.0))
    run = write_run(tmp_path / "m", responses, health=health)

    d = cli.json("summary", run.path)
    by_worker = {w["worker_id"]: w for w in d["memory"]["workers"]}
    assert by_worker["w0"]["grew"] is True and by_worker["w0"]["slope_mb_per_h"] == pytest.approx(40.0, rel=0.1)
    assert by_worker["w1"]["grew"] is False and by_worker["master"]["grew"] is False
    text = cli("summary", run.path).stdout
    line = next(x for x in text.splitlines() if x.startswith("Did the load generator's memory grow?"))
    assert "YES: worker w0 +" in line and "MB/h after warm-up" in line and "w1" not in line

    soak = cli("soak", run.path)
    assert "Load generator memory (rss_mb after warm-up)" in soak.stdout
    assert "Did the load generator's memory grow? YES: worker w0" in soak.stdout
    assert cli.json("soak", run.path)["memory"]["grew"] is True

    flat = write_run(tmp_path / "flat", responses, health=[h for h in health if h.worker_id != "w0"])
    assert "memory grow? no: no process grew" in cli("summary", flat.path).stdout
    bare = write_run(tmp_path / "bare", responses)
    assert "memory grow? unknown: the run has no health.jsonl samples" in cli("soak", bare.path).stdout
