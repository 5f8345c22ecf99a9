"""End to end over loopback: the session client calls the mock over WebRTC (SDP to realtime/calls,
events on the oai-events data channel, Opus audio both ways) and records what it records over a
WebSocket, in both providers' forms; every fault agrees with the mock's truth log; a refused SDP
exchange and a failed ICE are handshake outcomes of their own."""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.server
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("aiortc")

from loadtest.mock.process import MockProcess, start_mock
from loadtest.records.schema import COMPLETED
from loadtest.session.scenario import Scenario, Turn
from tests.session.helpers import FAST_MOCK, ONE_TEXT, RESPONSE_FAULTS, Agreement, agreement, run_session

pytestmark = pytest.mark.e2e

AZURE = {"provider": "azure"}
FORMS = {"openai": {}, "azure": AZURE}
# a WebRTC answer plays in real time (the mock's audio.speed does not hurry RTP): answers take seconds
WEBRTC = {"transport": "webrtc", "connect_timeout_s": 15.0, "response_deadline_s": 30.0}  # (a loaded 2-core machine)
SPOKEN_AND_TEXT = Scenario(
    "spoken_text", [Turn("server_vad", "short_yes"), Turn("manual", "short_hello"), Turn("text")]
)
# the WebSocket fault table, and the refused set-ups (a call has no session of its own to fault)
CASES: dict[str, tuple[dict[str, Any], Scenario]] = {
    **RESPONSE_FAULTS,
    "handshake_5xx": ({"faults.handshake_5xx.rate": 1.0}, ONE_TEXT),
    "handshake_429": ({"faults.handshake_429.rate": 1.0}, ONE_TEXT),
}


@pytest.fixture(scope="module")
def webrtc_mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockProcess]:
    root = tmp_path_factory.mktemp("webrtc_mock")
    mock = start_mock(overrides=FAST_MOCK, truth_path=root / "truth.jsonl", log_path=root / "mock.log")
    try:
        yield mock
    finally:
        mock.stop()


@pytest.mark.parametrize("form", sorted(FORMS))
def test_spoken_and_text_turns_complete_over_webrtc(webrtc_mock: MockProcess, form: str) -> None:
    sink, _ = run_session(webrtc_mock.url, SPOKEN_AND_TEXT, target_kw=FORMS[form], **WEBRTC)
    assert [(r.outcome, r.reason) for r in sink.responses] == [(COMPLETED, "")] * 3, [
        (r.outcome, r.reason, r.error_message) for r in sink.responses
    ]
    (srec,) = sink.sessions
    assert srec.transport == "webrtc" and srec.handshake_status == 201 and srec.ended_by == "client_closed"
    assert srec.rtp_dropped == 0  # every packet of the mock's was authentic RTP the lane parsed
    # RTCP both ways (rtp_lane's receiver statistics, on the harness and the mock): none of the
    # mock's packets lost on loopback, none of ours in the mock's reports, and a round-trip time
    assert (srec.rtp_lost, srec.peer_rtp_lost) == (0, 0), (srec.rtp_lost, srec.peer_rtp_lost)
    assert srec.rtt_ms is not None and 0 < srec.rtt_ms < 250, srec.rtt_ms
    for rec in sink.responses:
        assert rec.transport == "webrtc"
        assert rec.ttfa_ms is not None and rec.ttfa_ms > 0  # the first RTP packet of the answer
        assert rec.audio_ms > 200 and rec.audio_deltas > 5  # decoded from 20 ms packets
        assert rec.done_ms >= rec.ttfa_ms
    vad, manual, text = sink.responses
    assert (vad.trigger, manual.trigger, text.trigger) == ("server_vad", "manual", "text")
    # the mock heard the caller's Opus audio: its truth names the fixtures it recognised
    truth = {row["response_id"]: row for row in webrtc_mock.truth() if row.get("kind") == "response"}
    assert truth[vad.response_id]["fault"] == "none" and truth[manual.response_id]["fault"] == "none"


def test_every_fault_agrees_with_the_truth_log_over_webrtc(tmp_path, capsys) -> None:
    mocks: dict[str, MockProcess] = {}

    def start(fault: str) -> None:
        mocks[fault] = start_mock(
            overrides={**FAST_MOCK, **CASES[fault][0]},
            seed=7,
            truth_path=tmp_path / f"truth-{fault}.jsonl",
            log_path=tmp_path / f"{fault}.log",
            ready_timeout=60.0,
        )

    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # (a dozen aiortc imports at once time out on 2 cores)
        list(pool.map(start, CASES))
    results: dict[tuple[str, str], Any] = {}
    errors: list[BaseException] = []
    try:

        def one(fault: str, form: str) -> None:
            try:
                results[(fault, form)] = run_session(
                    mocks[fault].url, CASES[fault][1], target_kw=FORMS[form], **WEBRTC
                )[0]
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=one, args=(f, form)) for f in CASES for form in FORMS]
        for th in threads:
            th.start()
        for th in threads:
            th.join(90)
        assert not errors, errors
        total = Agreement()
        lines = []
        for fault, mock in mocks.items():  # both forms' sessions against the one mock of the fault
            sinks = [results[(fault, form)] for form in FORMS]
            both = SimpleNamespace(
                responses=[r for s in sinks for r in s.responses], sessions=[r for s in sinks for r in s.sessions]
            )
            mine = agreement(both, mock.truth())  # type: ignore[arg-type]
            lines.append(f"{fault:14s} {mine.agree}/{mine.total}")
            total.agree += mine.agree
            total.total += mine.total
            total.mismatches += [f"{fault}: {m}" for m in mine.mismatches]
            for name, n in mine.faults.items():
                total.faults[name] = total.faults.get(name, 0) + n
        with capsys.disabled():
            print(f"\nWebRTC agreement {total.agree}/{total.total}\n" + "\n".join(lines))
        refused = {r.error_message or "" for s in results.values() for r in s.responses if r.reason == "connect_error"}
        assert not total.mismatches, (sorted(refused)[:3], total.mismatches)
        assert total.rate == 1.0
        assert set(CASES) <= set(total.faults), total.faults
        for form in FORMS:
            assert all(r.transport == "webrtc" for r in results[("none", form)].responses)
            assert results[("drop", form)].sessions[0].ended_by == "dropped"
    finally:
        stoppers = [threading.Thread(target=m.stop) for m in mocks.values()]
        for th in stoppers:
            th.start()
        for th in stoppers:
            th.join(10)


class _Refusing(http.server.BaseHTTPRequestHandler):
    """realtime/calls answering 400 to every offer."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"error":{"message":"Invalid SDP offer","type":"invalid_request_error"}}'
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return None


class _Unreachable(_Refusing):
    """A valid SDP answer from a peer that is gone before ICE can check a pair."""

    def do_POST(self) -> None:
        offer = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        sdp = offer.split("\r\n\r\n", 1)[-1] if "form-data" in self.headers.get("Content-Type", "") else offer
        sdp = sdp[: sdp.find("\r\n--")] if "\r\n--" in sdp else sdp
        body = asyncio.run(_answer_then_vanish(sdp)).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/sdp")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


async def _answer_then_vanish(offer: str) -> str:
    from aiortc import RTCPeerConnection, RTCSessionDescription

    pc = RTCPeerConnection()
    pc.on("datachannel", lambda channel: None)
    await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    sdp = pc.localDescription.sdp
    await pc.close()  # its candidates now point at closed sockets
    return sdp


@pytest.mark.parametrize(
    ("handler", "reason"), [(_Refusing, "webrtc_sdp_rejected"), (_Unreachable, "webrtc_ice_failed")]
)
def test_a_refused_offer_and_a_failed_ice_are_handshake_outcomes(handler: type, reason: str) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"ws://127.0.0.1:{server.server_address[1]}"
        t0 = time.monotonic()
        sink, _ = run_session(url, ONE_TEXT, **{**WEBRTC, "connect_timeout_s": 4.0})
        assert time.monotonic() - t0 < 10
    finally:
        server.shutdown()
    (rec,) = sink.responses
    (srec,) = sink.sessions
    assert (rec.outcome, rec.reason) == ("failed", reason), rec.error_message
    assert srec.ended_by == "handshake_failed" and rec.transport == "webrtc"
    if reason == "webrtc_sdp_rejected":
        assert rec.handshake_status == 400 and "Invalid SDP offer" in (rec.error_message or "")
    else:
        assert rec.handshake_status == 201 and "ICE" in (rec.error_message or "")


def test_garbage_media_on_the_path_is_dropped_counted_and_the_answer_still_plays(tmp_path) -> None:
    """The mock sends a datagram that looks like SRTP and fails authentication after every 10th
    packet of its line (a broken middlebox): the client drops each, counts them in the session's
    rtp_dropped (what the mock sent, but for any still in flight at the hang-up), and the answers
    around them complete."""
    overrides = {**FAST_MOCK, "webrtc.garbage_every_packets": 10}
    with start_mock(overrides=overrides, truth_path=tmp_path / "truth.jsonl", log_path=tmp_path / "mock.log") as mock:
        sink, _ = run_session(mock.url, Scenario("spoken", [Turn("server_vad", "short_yes")]), **WEBRTC)
        sent = mock.stats()["rtp_garbage_sent"]
    assert [(r.outcome, r.reason) for r in sink.responses] == [(COMPLETED, "")]
    (srec,) = sink.sessions
    assert sent >= 5 and sent - 2 <= srec.rtp_dropped <= sent, (sent, srec.rtp_dropped)
