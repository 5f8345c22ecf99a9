"""The session client on Azure Voice Live: its own events are known and harmless, and kept as
evidence in the trace of a response that did not complete."""

from __future__ import annotations

import pytest

from loadtest.session.scenario import Scenario, Turn
from tests.session.helpers import FAST_MOCK, agreement, run_session

VOICELIVE = {"provider": "voicelive", "deployment": "gpt-realtime"}
SESSION = {"modalities": ["text", "audio"], "turn_detection": None, "output_audio_timestamp_types": ["word"]}


@pytest.mark.e2e
def test_voicelive_events_are_known_harmless_and_traced(mock_server) -> None:
    """Word timestamps and a warning before every answer's audio.done: the answers complete, no
    event is unknown; an answer cut short keeps them in its trace."""
    mock = mock_server(overrides={**FAST_MOCK, "voicelive.warning_rate": 1.0, "faults.incomplete.rate": 0.5}, seed=5)
    scenario = Scenario("vl", [Turn("text")] * 4, session=SESSION)
    sink, session = run_session(mock.url, scenario, target_kw=VOICELIVE)
    assert session.unknown_events == 0
    result = agreement(sink, [t for t in mock.truth() if t.get("session_id") == sink.sessions[0].session_id])
    assert result.rate == 1.0 and not result.mismatches, result
    outcomes = {r.outcome for r in sink.responses}
    assert outcomes == {"completed", "truncated"}, outcomes  # seed 5: both kinds
    cut = next(r for r in sink.responses if r.outcome == "truncated")
    types = [e.get("type") for e in sink.traces[cut.trace_file]]
    assert "warning" in types and "response.audio_timestamp.delta" in types
    assert {(r.provider, r.model_class, r.dialect) for r in sink.responses} == {("voicelive", "native", "voicelive")}
