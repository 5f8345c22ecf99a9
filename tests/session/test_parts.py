"""The smaller parts: config and scenario checks, the transport (pings, headers), Entra tokens,
the trace ring, the audio clock stats and run_once for preflight."""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace

import pytest

from loadtest.protocol.auth import AuthError, EntraTokenProvider
from loadtest.protocol.targets import Target
from loadtest.session.config import SessionConfig
from loadtest.session.lagstats import LagStats
from loadtest.session.runner import run_once
from loadtest.session.scenario import SCENARIOS, Scenario, Turn, get_scenario
from loadtest.session.trace import TraceRing, elide
from loadtest.session.transport import WebSocketTransport
from tests.session.rawserver import SESSION_CREATED, RawServer, frame


# -- config and scenarios --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"audio_format": "mp3"}, "unknown audio format"),
        ({"pacing": "slow"}, "unknown pacing"),
        ({"output_modalities": ["video"]}, "output_modalities"),
        ({"frame_ms": 0}, "frame_ms"),
        ({"think_time_s": (2.0, 1.0)}, "think_time_s"),
    ],
)
def test_config_rejects_bad_values_with_one_line(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        SessionConfig(**kwargs)


def test_config_defaults_and_thresholds() -> None:
    cfg = SessionConfig()
    assert cfg.wants_audio and cfg.pacing == "realtime" and cfg.stall_threshold_ms == 1500.0
    th = SessionConfig(stall_threshold_ms=2000, inner_silence_threshold_ms=900, check_audio_length=False).thresholds()
    assert (th.stall_ms, th.inner_silence_ms, th.check_audio_length) == (2000, 900, False)
    assert not SessionConfig(output_modalities=["text"]).wants_audio


def test_builtin_scenarios_use_fixtures_from_the_manifest() -> None:
    from loadtest.audio.fixtures import Manifest

    names = set(Manifest.load().names())
    for scenario in SCENARIOS.values():
        assert set(scenario.fixtures) <= names, scenario.name
    assert {"quick_text", "single_turn", "vad_turn", "conversation", "barge_in", "out_of_band"} <= set(SCENARIOS)
    assert get_scenario("barge_in").turns[1].barge_in
    assert get_scenario("out_of_band").turns[1].out_of_band
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        get_scenario("nope")


def test_turn_and_scenario_checks() -> None:
    with pytest.raises(ValueError, match="unknown trigger"):
        Turn("push_to_talk")
    with pytest.raises(ValueError, match="out-of-band"):
        Turn("server_vad", out_of_band=True)
    with pytest.raises(ValueError, match="no turns"):
        Scenario("empty", [])
    assert Turn("text").text and Turn("manual").fixture
    swapped = get_scenario("conversation").with_fixtures(["short_yes", "short_hello"])
    assert swapped.fixtures == ["short_yes", "short_hello", "short_yes", "short_hello", "short_yes"]


# -- transport -------------------------------------------------------------------------------------
def test_pings_are_answered_and_headers_of_note_captured() -> None:
    ping = frame(b"are-you-there", opcode=0x9)
    server = RawServer(
        [SESSION_CREATED, ping, ("sleep", 0.3), frame(b"\x03\xe8bye", opcode=0x8)],
        extra=b"x-request-id: req-123\r\napim-request-id: apim-9\r\nx-ms-region: East US 2\r\nretry-after: 7\r\n"
        b"set-cookie: secret=1\r\n",
    )
    transport = WebSocketTransport()
    hs = transport.connect(server.url, [("api-key", "k")], timeout=5)
    assert hs.ok and hs.status == 101 and hs.ms is not None and hs.ms < 1000
    assert hs.headers == {"x-request-id": "req-123", "apim-request-id": "apim-9", "x-ms-region": "East US 2",
                          "retry-after": "7"}  # fmt: skip
    assert hs.request_id == "req-123" and hs.retry_after == 7.0
    messages: list[bytes] = []
    info = transport.receive_loop(lambda data, t: messages.append(bytes(data)))
    transport.abort()
    server.join()
    assert messages == [SESSION_CREATED[2:]]
    assert (info.code, info.reason, info.by_server) == (1000, "bye", True)
    # the client's pong: a masked frame with opcode 0xA carrying the ping's 13 bytes
    pong = server.received.find(b"\x8a\x8d")
    assert pong >= 0
    mask = server.received[pong + 2 : pong + 6]
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(server.received[pong + 6 : pong + 19]))
    assert body == b"are-you-there"


@pytest.mark.skipif(sys.platform != "linux", reason="kernel arrival stamps (SO_TIMESTAMP) are read on Linux")
def test_receive_lag_is_measured_from_the_kernels_arrival_stamps() -> None:
    """A reader that gets round to its socket 0.4 s after the bytes arrived records ~400 ms of lag;
    the message keeps the kernel's arrival time, not the late read's."""
    receive_lag = LagStats()
    server = RawServer([("sleep", 0.1), SESSION_CREATED, ("sleep", 0.9), frame(b"\x03\xe8", opcode=0x8)])
    transport = WebSocketTransport(receive_lag=receive_lag)
    assert transport.connect(server.url, [], timeout=5).ok
    receive_lag.take()
    time.sleep(0.5)  # session.created (sent 0.1 s after the upgrade) waits in the socket
    arrivals: list[float] = []
    read_at = time.time()
    transport.receive_loop(lambda data, t: arrivals.append(t))
    transport.abort()
    server.join()
    lag = receive_lag.take()
    assert lag["frames"] >= 1
    assert 300 <= lag["max_lag_ms"] <= 2000, lag
    assert arrivals and read_at - arrivals[0] >= 0.3  # stamped when it arrived, not when it was read


def test_fragmented_messages_are_reassembled() -> None:
    server = RawServer([frame(b'{"type":"sess', fin=False), frame(b'ion.created"}', opcode=0x0), ("sleep", 0.1)])
    transport = WebSocketTransport()
    assert transport.connect(server.url, [], timeout=5).ok
    messages: list[bytes] = []
    info = transport.receive_loop(lambda data, t: messages.append(bytes(data)))
    transport.abort()
    assert messages == [b'{"type":"session.created"}'] and info.code == 1006


def test_sends_after_close_return_false() -> None:
    server = RawServer([("sleep", 0.2)])
    transport = WebSocketTransport()
    assert transport.connect(server.url, [], timeout=5).ok
    assert transport.send(b'{"type":"response.create"}')
    transport.close()
    assert not transport.send(b'{"type":"response.create"}')
    transport.abort()
    transport.abort()  # idempotent


# -- auth ------------------------------------------------------------------------------------------
class FakeCredential:
    def __init__(self) -> None:
        self.calls = 0

    def get_token(self, scope: str) -> SimpleNamespace:
        self.calls += 1
        return SimpleNamespace(token=f"tok{self.calls}", expires_on=time.time() + 3600)


def test_entra_tokens_are_cached_and_become_a_bearer_header() -> None:
    cred = FakeCredential()
    provider = EntraTokenProvider(credential=cred)
    assert provider.token() == "tok1" and provider.token() == "tok1" and cred.calls == 1
    target = Target(base_url="wss://res.openai.azure.com", provider="azure", auth="entra")
    assert ("Authorization", "Bearer tok1") in target.headers(provider.token())


def test_entra_failure_is_one_line() -> None:
    class Broken:
        def get_token(self, scope: str) -> None:
            raise RuntimeError("DefaultAzureCredential failed to retrieve a token\nmore lines")

    with pytest.raises(AuthError, match=r"^Entra ID token for .* failed: DefaultAzureCredential failed") as err:
        EntraTokenProvider(credential=Broken()).token()
    assert "\n" not in str(err.value)


def test_entra_failure_is_a_recorded_connect_error() -> None:
    class Broken:
        def get_token(self, scope: str) -> None:
            raise RuntimeError("no credential")

    target = Target(base_url="ws://127.0.0.1:9", provider="azure", auth="entra")
    from loadtest.session.client import RealtimeSession
    from loadtest.session.sink import MemorySink

    sink = MemorySink()
    RealtimeSession(target, get_scenario("quick_text"), SessionConfig(), sink,
                    token_provider=EntraTokenProvider(credential=Broken())).run()  # fmt: skip
    assert [(r.outcome, r.reason) for r in sink.responses] == [("failed", "connect_error")]
    assert "no credential" in (sink.sessions[0].handshake_error or "")


# -- trace ring and clock stats --------------------------------------------------------------------
def test_trace_ring_elides_payloads() -> None:
    ring = TraceRing(3)
    ring.add(1.0, {"type": "input_audio_buffer.append", "audio": "A" * 400}, "out")
    ring.add_payload(2.0, "response.output_audio.delta", 4800, "ev1")
    ring.add(3.0, {"type": "response.done", "response": {"id": "resp_1"}})
    ring.add(4.0, {"type": "rate_limits.updated"})
    events = ring.events()
    assert events[0] == {"t": 2.0, "dir": "note", "type": "trace.truncated", "dropped": 1}
    assert events[1] == {"t": 2.0, "dir": "in", "type": "response.output_audio.delta", "payload_bytes": 4800,
                         "event_id": "ev1"}  # fmt: skip
    assert elide({"type": "input_audio_buffer.append", "audio": "A" * 400})["audio"] == "<400 chars elided>"
    assert TraceRing(0).events() == []


def test_trace_ring_keeps_the_newest_in_order_across_many_wraps() -> None:
    ring = TraceRing(4)
    for k in range(11):
        if k % 3 == 0:
            ring.add(float(k), {"type": "response.created", "k": k})
        else:
            ring.add_payload(float(k), "response.output_audio.delta", k, f"ev{k}" if k % 2 else None, "in")
    events = ring.events()
    assert len(ring) == 4 and ring.dropped == 7
    assert events[0] == {"t": 7.0, "dir": "note", "type": "trace.truncated", "dropped": 7}
    assert [e["t"] for e in events[1:]] == [7.0, 8.0, 9.0, 10.0]
    assert events[2] == {"t": 8.0, "dir": "in", "type": "response.output_audio.delta", "payload_bytes": 8}
    assert events[3] == {"t": 9.0, "dir": "in", "type": "response.created", "k": 9}


def test_trace_ring_entries_allocate_nothing_the_garbage_collector_tracks() -> None:
    """Hundreds of sessions add ~20 entries a second each: a tracked object per entry filled the
    collector's young generation and paused the process for up to ~100 ms."""
    import gc

    ring = TraceRing(200)
    event_ids = [f"event_{k}" for k in range(5000)]
    gc.disable()
    try:
        gc.collect()
        before = len(gc.get_objects())
        for k in range(5000):
            ring.add_payload(float(k), "response.output_audio.delta", 4800, event_ids[k])
        after = len(gc.get_objects())
    finally:
        gc.enable()
    assert after - before < 50, after - before


def test_audio_clock_stats() -> None:
    clock = LagStats()
    for lag in [0.0] * 98 + [30.0, 120.0]:
        clock.record(lag)
    stats = clock.take()
    assert stats["frames"] == 100 and stats["late_pct"] == 2.0 and stats["max_lag_ms"] == 120.0
    assert stats["p99_lag_ms"] == 120.0 and stats["mean_lag_ms"] == pytest.approx(1.5)


# -- run_once (preflight) --------------------------------------------------------------------------
@pytest.mark.e2e
def test_run_once_returns_records_and_the_timeline(fast_mock) -> None:
    seen: list[dict] = []
    target = Target(base_url=fast_mock.url, api_key="mock-key")
    result = run_once(target, "quick_text", SessionConfig(pacing="fast"), observer=seen.append)
    assert result.ok and len(result.responses) == 1 and result.sessions[0].ended_by == "client_closed"
    assert result.timeline == seen and result.elapsed_s < 10
    types = [e["type"] for e in result.timeline]
    for expected in ("connect", "handshake", "session.created", "session.update", "response.create",
                     "response.created", "response.done", "outcome", "close"):  # fmt: skip
        assert expected in types
    assert all("delta" not in e or isinstance(e.get("delta_chars"), int) for e in result.timeline)
    done = next(e for e in result.timeline if e["type"] == "response.done")
    assert done["status"] == "completed" and done["response_id"].startswith("resp_")
    bad = run_once(Target(base_url=fast_mock.url, api_key="nope", provider="azure"), "quick_text")
    assert not bad.ok and bad.responses[0].reason == "handshake_401"


def test_check_fixtures_names_the_missing_one() -> None:
    from loadtest.session.scenario import check_fixtures

    for scenario in SCENARIOS.values():
        check_fixtures(scenario)
    with pytest.raises(ValueError, match="unknown fixture 'no_such_clip'"):
        check_fixtures(Scenario("x", [Turn("manual", "no_such_clip")]))
