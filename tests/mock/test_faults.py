"""Each fault appears at its configured rate (binomial bounds), as a client would see it, and in
the truth log with the same name; plus the stall's playback-clock gap and the silence variant."""

from __future__ import annotations

import collections
import math
from typing import Any

import pytest
from scipy.stats import binom

from loadtest.records.schema import FAULT_EXPECTATIONS
from tests.mock.observe import run_many
from tests.mock.schema_check import validate
from tests.support import fast_mock

RESPONSE_FAULTS = ("server_error", "stall", "silence", "hang", "missing_audio", "text_only", "drop", "incomplete")
FAST = fast_mock(
    40.0,
    (1, 3),
    **{"faults.stall.at": [0.03, 0.06], "faults.stall.gap_s": [0.5, 0.6], "faults.silence.gap_s": [0.5, 0.6]},
)


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


@pytest.mark.slow
def test_server_error_before_and_after_partial_output(mock_server) -> None:
    """Both variants of server_error at the default mix (after_output 0.5): before any output the
    client sees only response.created and the failed response.done; after partial output it sees
    audio deltas (up to the truth's at_ms) before the failed response.done."""
    mock = mock_server(seed=13, overrides={**FAST, "faults.server_error.rate": 1.0})
    seen = run_many(mock.url + "/v1/realtime?model=gpt-realtime", sessions=4, per_session=15)
    truth = {r["response_id"]: r for r in mock.truth() if r["kind"] == "response"}
    assert len(seen) == 60
    variants = collections.Counter()
    for s in seen:
        row = truth[s.response_id]
        assert row["fault"] == "server_error" and s.looks_like() == "server_error", row
        assert s.done["status"] == "failed"
        assert s.done["status_details"]["error"]["code"] == "server_error"
        types = [e["type"] for e in s.events]
        done_at = types.index("response.done")
        deltas = [i for i, t in enumerate(types) if t == "response.output_audio.delta"]
        after = row["params"]["after_output"]
        variants[after] += 1
        if after:
            # partial audio, all of it before the failed response.done, as much as the truth says
            assert deltas and max(deltas) < done_at, types
            assert "response.output_item.added" in types[:done_at]
            assert "response.output_audio.done" not in types  # the audio never finished
            received_ms = s.audio().size / 24
            assert abs(received_ms - row["params"]["at_ms"]) <= 0.1, (received_ms, row["params"])
            assert abs(row["audio_ms"] - received_ms) <= 0.1
            assert 0.2 <= row["params"]["at_fraction"] <= 0.7
        else:
            # right after response.created: no audio, no transcript, no item
            assert types == ["response.created", "response.done", "rate_limits.updated"], types
            assert not deltas and row["audio_ms"] == 0 and "at_fraction" not in row["params"]
            assert s.done["output"] == []
    lo, hi = _bounds(len(seen), 0.5)
    assert lo <= variants[True] <= hi and lo <= variants[False] <= hi, variants


def test_incomplete_fault_reports_max_output_tokens(mock_server) -> None:
    mock = mock_server(seed=3, overrides={**FAST, "faults.incomplete.rate": 1.0})
    seen = run_many(mock.url + "/v1/realtime?model=gpt-realtime", sessions=1, per_session=6)
    truth = {r["response_id"]: r for r in mock.truth() if r["kind"] == "response"}
    assert len(seen) == 6
    for s in seen:
        row = truth[s.response_id]
        assert row["fault"] == "incomplete" and s.looks_like() == "incomplete"
        validate(s.of("response.done")[0], "ga")
        assert s.done["status"] == "incomplete"
        assert s.done["status_details"] == {"type": "incomplete", "reason": "max_output_tokens"}
        assert FAULT_EXPECTATIONS[row["fault"]] == ("truncated", "incomplete_max_output_tokens")
        # cut short where the truth says, and the audio part is closed properly
        received_ms = s.audio().size / 24
        assert abs(received_ms - row["params"]["at_ms"]) <= 0.1 and 0.3 <= row["params"]["at_fraction"] <= 0.7
        assert s.of("response.output_audio.done") and s.done["output"][0]["status"] == "incomplete"
        heard = "".join(e["delta"] for e in s.of("response.output_audio_transcript.delta"))
        assert s.of("response.output_audio_transcript.done")[0]["transcript"] == heard
        assert len(heard) < len(row["transcript"])


def _full_tokens(transcript: str, audio: bool = True) -> int:
    """What the whole answer costs in output tokens (healthy.toml's token rates)."""
    text = math.ceil(len(transcript) * 0.25)
    return text + (math.ceil(max(0.6, len(transcript) / 14.0) * 10.0) if audio else 0)


@pytest.mark.parametrize("dialect", ["ga", "preview"])
def test_a_small_max_output_tokens_ends_the_response_incomplete(mock_server, dialect: str) -> None:
    """response.create with a low max_output_tokens (preview: max_response_output_tokens) cuts the
    answer short: incomplete / max_output_tokens, fault `incomplete` with cause client_limit; a
    limit above the answer's size (or none) completes it; a session-level limit works the same."""
    from loadtest.protocol.dialects import GA, PREVIEW
    from tests.mock.wsclient import KEY, Client, azure_preview_url, openai_url

    mock = mock_server(seed=9, overrides=FAST)
    d = GA if dialect == "ga" else PREVIEW
    field = "max_output_tokens" if dialect == "ga" else "max_response_output_tokens"
    delta = "response.output_audio.delta" if dialect == "ga" else "response.audio.delta"
    url, headers = (openai_url(mock.url), None) if dialect == "ga" else (azure_preview_url(mock.url), {"api-key": KEY})
    limit = 12
    done: list[dict[str, Any]] = []
    audio_deltas: list[int] = []
    with Client(url, headers) as c:
        c.until("session.created")
        c.send(d.session_update(turn_detection=None))
        c.until("session.updated")

        def ask(response: dict[str, Any] | None) -> None:
            c.send(d.user_text_item("Where is my order?"))
            start = len(c.events)
            c.send({"type": "response.create", **({"response": response} if response is not None else {})})
            done.append(c.until("response.done"))
            c.until("rate_limits.updated")
            audio_deltas.append(sum(1 for e in c.events[start:] if e["type"] == delta))

        ask({field: limit})  # capped
        ask({field: 4096})  # above any answer
        ask(None)  # "inf"
        c.send(d.session_update(turn_detection=None, max_output_tokens=limit))
        c.until("session.updated")
        ask(None)  # the session's limit applies
        ask({field: limit, ("output_modalities" if dialect == "ga" else "modalities"): ["text"]})  # text only
    for event in done:
        validate(event, dialect)
    bodies = [event["response"] for event in done]
    truth = {r["response_id"]: r for r in mock.truth() if r["kind"] == "response"}
    for body in (bodies[0], bodies[3], bodies[4]):
        row = truth[body["id"]]
        audio = body is not bodies[4]
        assert body["status"] == "incomplete", body["status_details"]
        assert body["status_details"] == {"type": "incomplete", "reason": "max_output_tokens"}
        assert body["max_output_tokens"] == limit
        assert row["fault"] == "incomplete"
        assert row["params"]["cause"] == "client_limit" and row["params"]["max_output_tokens"] == limit
        full = _full_tokens(row["transcript"], audio)
        assert limit < full and abs(row["params"]["at_fraction"] - limit / full) < 0.01
        if audio:
            assert row["audio_ms"] < 0.5 * max(600.0, len(row["transcript"]) / 14.0 * 1000)  # cut well short
        else:
            (text,) = body["output"][0]["content"]
            assert row["audio_ms"] == 0 and 0 < len(text["text"]) < 0.6 * len(row["transcript"])
        # the service stops at the limit: what it sends and bills is within it (short of it by less
        # than one more delta and its transcript piece)
        assert limit - 8 <= body["usage"]["output_tokens"] <= limit, (body["usage"], limit)
    assert audio_deltas[0] >= 1 and audio_deltas[3] >= 1  # cut short, not silent
    for body in bodies[1:3]:
        assert body["status"] == "completed" and truth[body["id"]]["fault"] == "none"
        assert abs(body["usage"]["output_tokens"] - _full_tokens(truth[body["id"]]["transcript"])) <= 1
