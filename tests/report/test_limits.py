"""`rtload report limits`: rate-limit series, throttling, budget and session limits."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from loadtest.records.schema import SessionRecord
from tests.report.synth import T0, write_run


def test_rate_limit_series_and_throttling(ramp, cli) -> None:
    d = cli.json("limits", ramp.path)
    series = {r["name"]: r for r in d["rate_limits"]}
    tokens = [r for r in ramp.rate_limits if r.name == "tokens"]
    remaining = np.array([r.remaining for r in tokens])
    assert series["tokens"]["samples"] == len(tokens)
    assert series["tokens"]["limit"] == 100000
    assert series["tokens"]["lowest_remaining"] == remaining.min() == 0
    first_zero = next(r.t for r in tokens if r.remaining == 0)
    assert series["tokens"]["first_zero_s"] == pytest.approx(first_zero - ramp.run["t_start"])
    assert series["tokens"]["zero_samples"] == int((remaining == 0).sum())
    times = np.array([r.t for r in tokens])
    at_zero = sum(times[i + 1] - times[i] for i in range(len(tokens) - 1) if remaining[i] == 0)
    assert series["tokens"]["time_at_zero_s"] == pytest.approx(at_zero) == 200.0
    assert series["tokens"]["resets"] == int((np.diff(remaining) > 0).sum())
    assert series["requests"]["lowest_remaining"] == 985 and series["requests"]["resets"] == 1
    th = d["throttling"]
    assert th["handshake_429"] == sum(s.handshake_status == 429 for s in ramp.sessions)
    assert th["handshake_429_retry_after_s"]["p50"] == pytest.approx(np.median([2.0, 4.0]))
    assert th["handshake_429_retry_after_s"]["max"] == 4.0
    assert th["rate_limit_exceeded"] == sum(r.reason == "rate_limit_exceeded" for r in ramp.responses)
    assert th["rate_limit_exceeded_retry_after_s"]["p50"] == 1.5  # "Please try again in 1.5s."


def test_tokens_per_minute_against_the_limit(ramp, cli) -> None:
    d = cli.json("limits", ramp.path)
    minute = np.floor((np.array([r.t_done for r in ramp.responses]) - ramp.run["t_start"]) / 60).astype(int)
    per_min = np.bincount(minute, weights=[r.total_tokens for r in ramp.responses])
    tpm = d["tokens_per_minute"]
    assert tpm["peak"] == pytest.approx(per_min.max())
    assert tpm["mean"] == pytest.approx(per_min.mean())
    assert tpm["limit"] == 100000
    assert tpm["headroom_pct"] == pytest.approx(100 * (100000 - per_min.max()) / 100000)
    text = cli("limits", ramp.path).stdout
    assert f"{100 * (100000 - per_min.max()) / 100000:.2f}%" in text


def test_session_limits(ramp, cli) -> None:
    d = cli.json("limits", ramp.path)["sessions"]
    opened = [s for s in ramp.sessions if s.t_open is not None]
    durations = np.array([s.duration_s for s in opened])
    assert d["count"] == len(ramp.sessions) and d["opened"] == len(opened)
    assert d["lifetime_s"]["p50"] == pytest.approx(np.percentile(durations, 50))
    assert d["longest_session_s"] == pytest.approx(durations.max())
    assert d["ended_by"] == dict(Counter(s.ended_by for s in ramp.sessions))
    expired = [s.duration_s for s in ramp.sessions if s.ended_by == "session_expired"]
    assert d["hit_max_duration"] == len(expired) > 0
    assert d["observed_max_duration_s"] == pytest.approx(max(expired))
    # peak concurrency, brute force: sessions open at each opening instant
    opens = [(s.t_open, s.t_end) for s in opened]
    brute = max(sum(1 for a, b in opens if a <= t < b) for t, _ in opens)
    assert d["peak_concurrent"] == brute
    assert {r["status"]: r["count"] for r in d["refused_upgrades"]} == {401: 1, 429: 2, 503: 1}
    hs = np.array([s.handshake_ms for s in ramp.sessions])
    assert d["handshake_ms"]["p95"] == pytest.approx(np.percentile(hs, 95))


def test_peak_concurrency_edges(tmp_path, cli) -> None:
    # back-to-back sessions (one ends as the next opens) never overlap; an unended one stays open
    sessions = [
        SessionRecord(session_id="a", t_open=T0, t_end=T0 + 10, handshake_status=101),
        SessionRecord(session_id="b", t_open=T0 + 10, t_end=T0 + 20, handshake_status=101),
        SessionRecord(session_id="c", t_open=T0 + 15, t_end=None, handshake_status=101),
        SessionRecord(session_id="d", t_open=T0 + 30, t_end=T0 + 40, handshake_status=101),
    ]
    run = write_run(tmp_path / "edges", [], sessions)
    d = cli.json("limits", run.path)["sessions"]
    assert d["peak_concurrent"] == 2
    assert d["peak_concurrent_at_s"] == pytest.approx(15.0)


def test_reset_seconds_and_responses_per_minute(ramp, cli) -> None:
    d = cli.json("limits", ramp.path)
    series = {r["name"]: r for r in d["rate_limits"]}
    for name in ("tokens", "requests"):
        resets = np.array([r.reset_seconds for r in ramp.rate_limits if r.name == name])
        assert series[name]["reset_seconds_p50"] == pytest.approx(np.median(resets))
    assert series["tokens"]["reset_seconds_p50"] == 9.0  # 6..12 s
    # responses per minute: attempts bucketed by the whole minute of their trigger since the start
    minute = np.floor((np.array([r.t_trigger for r in ramp.responses]) - ramp.run["t_start"]) / 60).astype(int)
    per_min = np.bincount(minute)
    limit = max(r.limit for r in ramp.rate_limits if r.name == "requests")
    rpm = d["requests_per_minute"]
    assert rpm["minutes"] == per_min.size == 10
    assert rpm["peak"] == per_min.max() and rpm["mean"] == pytest.approx(per_min.mean())
    assert rpm["limit"] == limit == 1000
    assert rpm["headroom_pct"] == pytest.approx(100 * (limit - per_min.max()) / limit)
    text = cli("limits", ramp.path).stdout
    row = next(line for line in text.splitlines() if line.startswith("responses per minute")).split()[3:]
    mean = per_min.mean()
    mean_text = str(int(mean)) if float(mean).is_integer() else f"{mean:.1f}"
    assert row == [
        str(per_min.size),
        str(per_min.max()),
        mean_text,
        str(limit),
        f"{100 * (limit - per_min.max()) / limit:.2f}%",
    ]
    tokens_line = next(line for line in text.splitlines() if line.startswith("tokens  "))
    assert tokens_line.split()[-1] == "9"  # reset p50 (s), printed as a plain number
    requests_line = next(line for line in text.splitlines() if line.startswith("requests  "))
    assert requests_line.split()[-1] == "0.06"


def test_projection_of_sessions_at_each_limit(ramp, cli) -> None:
    # by hand from the records: session-minutes, tokens and responses per session-minute, the limits
    opened = [s for s in ramp.sessions if s.t_open is not None]
    minutes = sum(s.t_end - s.t_open for s in opened) / 60
    tokens = sum(r.total_tokens for r in ramp.responses)
    per_tokens, per_requests = tokens / minutes, len(ramp.responses) / minutes
    d = cli.json("limits", ramp.path)
    p = d["projection"]
    assert p["session_minutes"] == pytest.approx(minutes)
    rows = {r["limit_name"]: r for r in p["limits"]}
    assert rows["tokens"]["per_session_minute"] == pytest.approx(per_tokens)
    assert rows["tokens"]["sessions_at_limit"] == pytest.approx(100000 / per_tokens)
    assert rows["requests"]["sessions_at_limit"] == pytest.approx(1000 / per_requests)
    # the 429 refusals: sessions open (t_open <= t < t_end) when each was refused
    refused = sorted(s.t_end for s in ramp.sessions if s.handshake_status == 429)
    open_then = [sum(1 for s in opened if s.t_open <= t < s.t_end) for t in refused]
    assert p["refused_429"]["count"] == 2 and p["refused_429"]["first_open_sessions"] == open_then[0]
    assert p["refused_429"]["open_sessions_p50"] == pytest.approx(np.median(open_then))
    text = cli("limits", ramp.path).stdout
    assert f"reached at about {100000 / per_tokens:,.0f} concurrent sessions" in text
    assert f"the first with {open_then[0]} sessions open" in text
    cap = cli.json("capacity", ramp.path)
    assert cap["projection"]["limits"] == p["limits"]
