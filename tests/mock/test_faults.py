"""Each fault appears at its configured rate (binomial bounds), as a client would see it, and in
the truth log with the same name; plus the stall's playback-clock gap and the silence variant."""

from __future__ import annotations

import collections

import pytest
from scipy.stats import binom

from loadtest.records.schema import FAULT_EXPECTATIONS
from tests.mock.observe import run_many

RESPONSE_FAULTS = ("server_error", "stall", "silence", "hang", "missing_audio", "text_only", "drop", "incomplete")
FAST = {
    "audio.speed": 40.0,
    "latency.created_ms": [1, 3],
    "latency.first_delta_ms": [1, 3],
    "faults.stall.at": [0.03, 0.06],
    "faults.stall.gap_s": [0.5, 0.6],
    "faults.silence.gap_s": [0.5, 0.6],
}


def _bounds(n: int, p: float, alpha: float = 0.001) -> tuple[int, int]:
    return int(binom.ppf(alpha / 2, n, p)), int(binom.ppf(1 - alpha / 2, n, p))


@pytest.mark.slow
def test_every_response_fault_at_its_rate_and_in_the_truth_log(mock_server) -> None:
    rate = 0.07
    mock = mock_server(seed=11, overrides={**FAST, **{f"faults.{name}.rate": rate for name in RESPONSE_FAULTS}})
    # a stall here is at most ~0.6 s of audio already sent + 0.6 s gap: well under the hang timeout
    seen = run_many(mock.url + "/v1/realtime?model=gpt-realtime", sessions=8, per_session=20, hang_after_s=2.0)
    truth = {r["response_id"]: r for r in mock.truth() if r["kind"] == "response"}
    n = len(seen)
    assert n == 160
    observed = collections.Counter()
    for s in seen:
        row = truth[s.response_id]
        assert row["fault"] in FAULT_EXPECTATIONS
        # what the client saw is what the mock says it did
        assert s.looks_like() == row["fault"], (row, [e["type"] for e in s.events][-6:])
        observed[row["fault"]] += 1
    lo, hi = _bounds(n, rate)
    for name in RESPONSE_FAULTS:
        assert lo <= observed[name] <= hi, (name, observed[name], (lo, hi))
    none_lo, none_hi = _bounds(n, 1 - rate * len(RESPONSE_FAULTS))
    assert none_lo <= observed["none"] <= none_hi
    # parameters are recorded
    for row in truth.values():
        if row["fault"] in ("stall", "silence"):
            assert 0.5 <= row["params"]["gap_s"] <= 0.6 and row["params"]["at_ms"] > 0
        if row["fault"] == "server_error":
            assert isinstance(row["params"]["after_output"], bool)


def test_stall_is_a_gap_on_the_playback_clock(mock_server) -> None:
    stall = {"faults.stall.rate": 1.0, "faults.stall.gap_s": [1.5, 1.7], "faults.stall.at": [0.1, 0.1]}
    mock = mock_server(overrides={**FAST, **stall, "audio.speed": 10.0})
    (seen,) = run_many(mock.url + "/v1/realtime?model=gpt-realtime", sessions=1, per_session=1, hang_after_s=8)
    row = next(r for r in mock.truth() if r["kind"] == "response")
    assert row["fault"] == "stall" and seen.done["status"] == "completed"
    underruns = [u for u in seen.playback_underruns() if u > 0.1]
    assert len(underruns) == 1
    assert abs(underruns[0] - row["params"]["gap_s"]) < 0.25, (underruns, row["params"])
    # deltas before and after the stall still arrive ahead of real time
    assert seen.max_gap_s() > row["params"]["gap_s"]


def test_silence_sends_that_much_silent_audio(mock_server) -> None:
    mock = mock_server(overrides={**FAST, "faults.silence.rate": 1.0, "faults.silence.gap_s": [2.0, 2.0]})
    (seen,) = run_many(mock.url + "/v1/realtime?model=gpt-realtime", sessions=1, per_session=1)
    row = next(r for r in mock.truth() if r["kind"] == "response")
    assert row["fault"] == "silence" and row["params"]["silence_ms"] == 2000.0
    assert 1990 <= seen.longest_zero_run_ms() <= 2100
    assert max(seen.playback_underruns(), default=0) < 0.2  # silence is sent, not withheld


def test_faults_are_deterministic_under_seed(mock_server) -> None:
    quick = ("server_error", "missing_audio", "text_only", "incomplete")
    overrides = {**FAST, "audio.speed": 200.0, **{f"faults.{name}.rate": 0.15 for name in quick}}

    def faults(seed: int) -> list[tuple[str, object]]:
        mock = mock_server(seed=seed, overrides=overrides)
        run_many(mock.url + "/v1/realtime?model=gpt-realtime", sessions=1, per_session=16)
        mock.stop()
        return [(r["fault"], r["response_id"]) for r in mock.truth() if r["kind"] == "response"]

    first, again, other = faults(5), faults(5), faults(6)
    assert first == again
    assert first != other


def test_audio_faults_do_not_apply_to_text_responses(mock_server) -> None:
    from tests.mock.wsclient import Client, openai_url

    mock = mock_server(overrides={**FAST, "faults.stall.rate": 0.5, "faults.missing_audio.rate": 0.5})
    with Client(openai_url(mock.url)) as c:
        c.recv()
        for _ in range(4):
            c.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
            done = c.until("response.done")
            assert done["response"]["status"] == "completed"
    assert {r["fault"] for r in mock.truth() if r["kind"] == "response"} == {"none"}
