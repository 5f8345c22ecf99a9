"""The mock's WebRTC routes over loopback: the SDP exchange in both providers' forms, ephemeral keys
from client_secrets, and the refusals (bad SDP 400, unauthorised 401, no WebRTC extra 501)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys

import pytest

from tests.rtc_peer import KEY, post, wait_truth
from tests.support import ROOT, RtcPeer, client_secret, fast_mock

pytest.importorskip("aiortc")

MODEL = "gpt-realtime"


def http(mock: object) -> str:
    return mock.url.replace("ws://", "http://")  # type: ignore[attr-defined]


def candidates(sdp: str) -> list[str]:
    return [line.split()[4] for line in sdp.splitlines() if line.startswith("a=candidate:")]


def test_openai_plain_sdp_offer_gets_an_answer_and_a_session(mock_server) -> None:
    mock = mock_server(overrides=fast_mock())

    async def scenario() -> None:
        peer = RtcPeer()
        answer = await peer.call(http(mock), query=f"model={MODEL}")
        assert answer.status == 201, answer.text
        assert answer.headers["content-type"] == "application/sdp"
        assert re.fullmatch(r"/v1/realtime/calls/rtc_[0-9a-f]{32}", answer.headers["location"])
        assert answer.text.startswith("v=0") and "m=audio" in answer.text and "m=application" in answer.text
        assert set(candidates(answer.text)) == {"127.0.0.1"}  # loopback host candidates only, no STUN
        assert "typ srflx" not in answer.text and "typ relay" not in answer.text
        created = await peer.opened()
        assert created["session"]["model"] == MODEL and created["session"]["id"].startswith("sess_")
        await peer.close()

    asyncio.run(scenario())
    rows = wait_truth(mock, lambda r: r["kind"] == "session")
    assert len(rows) == 1 and rows[0]["transport"] == "webrtc" and rows[0]["status"] == 101
    assert rows[0]["session_id"].startswith("sess_") and rows[0]["t_end"] >= rows[0]["t_open"]


@pytest.mark.parametrize("form", ["multipart", "json"])
def test_openai_offer_with_its_session_configures_the_call(mock_server, form: str) -> None:
    mock = mock_server(overrides=fast_mock())
    session = {"type": "realtime", "model": MODEL, "instructions": "Be brief.",
               "audio": {"output": {"voice": "verse"}}}  # fmt: skip

    async def scenario() -> None:
        peer = RtcPeer()
        answer = await peer.call(http(mock), session=session, form=form)
        assert answer.status == 201, answer.text
        created = await peer.opened()
        assert created["session"]["instructions"] == "Be brief."
        assert created["session"]["audio"]["output"]["voice"] == "verse"
        await peer.close()

    asyncio.run(scenario())
    update = next(r for r in mock.truth() if r["kind"] == "session_update")
    assert update["session"] == session


@pytest.mark.parametrize("provider", ["openai", "azure"])
def test_client_secret_then_call_with_the_ephemeral_key(mock_server, provider: str) -> None:
    mock = mock_server(overrides=fast_mock())
    session = {"type": "realtime", "model": MODEL, "audio": {"output": {"voice": "coral"}}}

    async def scenario() -> None:
        minted = await client_secret(http(mock), provider, KEY, session, seconds=60)
        assert minted.status == 200, minted.text
        secret = minted.json()
        assert secret["value"].startswith("ek_") and secret["session"]["model"] == MODEL
        assert 50 <= secret["expires_at"] - __import__("time").time() <= 61
        peer = RtcPeer()
        answer = await peer.call(http(mock), provider=provider, key=secret["value"])
        assert answer.status == 201, answer.text
        where = "/openai/v1/realtime/calls/" if provider == "azure" else "/v1/realtime/calls/"
        assert answer.headers["location"].startswith(where)
        if provider == "azure":
            assert answer.headers.get("apim-request-id")
        created = await peer.opened()
        assert created["session"]["audio"]["output"]["voice"] == "coral"  # the key's session
        await peer.close()
        # an ephemeral key cannot mint another, and it is the provider's own
        again = await client_secret(http(mock), provider, secret["value"], session)
        assert again.status == 401
        other = "openai" if provider == "azure" else "azure"
        wrong = await RtcPeer().call(http(mock), provider=other, key=secret["value"], query=f"model={MODEL}")
        assert wrong.status == 401

    asyncio.run(scenario())


def test_bad_sdp_is_a_400_saying_what_is_wrong(mock_server) -> None:
    mock = mock_server(overrides=fast_mock())
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/sdp"}
    url = http(mock) + f"/v1/realtime/calls?model={MODEL}"

    async def scenario() -> None:
        not_sdp = await post(url, b"hello there", headers)
        assert not_sdp.status == 400 and not_sdp.headers["content-type"] == "application/json"
        error = not_sdp.json()["error"]
        assert error["code"] == "invalid_offer" and "v=0" in error["message"]
        # SDP-shaped, but no ICE credentials or fingerprint: aiortc cannot answer it
        broken = b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
        unusable = await post(url, broken, headers)
        assert unusable.status == 400 and unusable.json()["error"]["code"] == "invalid_offer"
        assert unusable.json()["error"]["message"].startswith("The SDP offer could not be used")
        wrong_type = await post(url, b"v=0\r\n", {**headers, "Content-Type": "text/plain"})
        assert wrong_type.status == 415 and "application/sdp" in wrong_type.json()["error"]["message"]
        no_sdp = await post(url, json.dumps({"session": {"type": "realtime"}}).encode(),
                            {**headers, "Content-Type": "application/json"})  # fmt: skip
        assert no_sdp.status == 400 and no_sdp.json()["error"]["param"] == "sdp"
        bad_session = await RtcPeer().call(http(mock), session={"type": "realtime", "model": MODEL, "voice": 3},
                                           form="multipart")  # fmt: skip
        assert bad_session.status == 400 and bad_session.json()["error"]["code"] == "unknown_parameter"

    asyncio.run(scenario())
    assert mock.stats()["sessions_active"] == 0


def test_unauthorised_is_a_401(mock_server) -> None:
    mock = mock_server(overrides=fast_mock())

    async def scenario() -> None:
        missing = await RtcPeer().call(http(mock), key=None, query=f"model={MODEL}")
        assert missing.status == 401 and "Authorization" in missing.json()["error"]["message"]
        wrong = await RtcPeer().call(http(mock), key="not-the-key", query=f"model={MODEL}")
        assert wrong.status == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
        azure = await RtcPeer().call(http(mock), provider="azure", key="not-the-key", query=f"model={MODEL}")
        assert azure.status == 401 and azure.headers.get("apim-request-id")
        secret = await client_secret(http(mock), "openai", "not-the-key")
        assert secret.status == 401
        unknown_model = await RtcPeer().call(http(mock), query="model=no-such-model")
        assert unknown_model.status == 400 and unknown_model.json()["error"]["code"] == "invalid_model"

    asyncio.run(scenario())
    refused = [r for r in mock.truth() if r["kind"] == "session" and r["status"] in (400, 401)]
    assert len(refused) >= 4 and {r["transport"] for r in refused} == {"webrtc"}


HIDDEN_AIORTC = """
import runpy, sys
sys.modules["aiortc"] = None  # as if the webrtc extra were not installed
sys.argv = ["loadtest", "mock", "--host", "127.0.0.1", "--port", "0", "--exit-with-parent"]
runpy.run_module("loadtest", run_name="__main__", alter_sys=True)
"""


def test_a_mock_without_the_webrtc_extra_says_so(tmp_path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", HIDDEN_AIORTC], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on ws://" in line, line
        base = line.rsplit(" ", 1)[1].strip().replace("ws://", "http://")
        answer = asyncio.run(post(base + f"/v1/realtime/calls?model={MODEL}", b"v=0\r\n",
                                  {"Authorization": f"Bearer {KEY}", "Content-Type": "application/sdp"}))  # fmt: skip
        assert answer.status == 501
        message = answer.json()["error"]["message"]
        assert "webrtc extra" in message and "realtime-loadtest[webrtc]" in message
    finally:
        proc.kill()
        proc.wait(5)


def test_a_call_never_connected_ends_and_frees_its_capacity(mock_server) -> None:
    mock = mock_server(overrides=fast_mock(**{"webrtc.connect_timeout_s": 1.0, "capacity.max_sessions": 1}))
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/sdp"}

    async def scenario() -> tuple[int, int, int]:
        from aiortc import RTCConfiguration, RTCPeerConnection

        from loadtest.mock import ice

        ice.use_host_addresses(["127.0.0.1"])
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # (no STUN: loopback only)
        pc.createDataChannel("oai-events")
        await pc.setLocalDescription(await pc.createOffer())
        url = http(mock) + f"/v1/realtime/calls?model={MODEL}"
        first = await post(url, pc.localDescription.sdp.encode(), headers)  # answered, never applied
        busy = await post(url, pc.localDescription.sdp.encode(), headers)  # the first holds the capacity
        await asyncio.sleep(2.0)
        again = await post(url, pc.localDescription.sdp.encode(), headers)  # freed by the timeout
        await pc.close()
        return first.status, busy.status, again.status

    assert asyncio.run(scenario()) == (201, 429, 201)
    rows = wait_truth(mock, lambda r: r["kind"] == "session" and r.get("ended_by") == "not_connected")
    assert rows and rows[0]["transport"] == "webrtc" and rows[0]["call_id"].startswith("rtc_")
