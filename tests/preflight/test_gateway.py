"""`rtload preflight` through a gateway (issue 21): a raw server on 127.0.0.1 answers as LiteLLM's realtime
proxy does (it accepts the upgrade, then reports its backend's failure as an `error` event and a close)."""

from __future__ import annotations

import pytest

from loadtest.preflight.checks import run_static
from loadtest.preflight.config import PreflightConfig
from loadtest.preflight.findings import Severity
from tests.preflight.support import SECRET, by_check, preflight, severities
from tests.session.rawserver import SESSION_CREATED, SESSION_UPDATED, RawServer, close, gateway_error

MODEL = "gw-realtime"


def through(server: RawServer, *args: str, key: str = SECRET) -> dict:
    try:
        code, out, doc = preflight(
            "--target", f"{server.url}/v1/realtime?model={MODEL}", "--format", "json", "--timeout", "5", *args, key=key
        )
    finally:
        server.join()
    assert code == 1 and doc is not None, out
    return doc


def test_an_auth_kind_the_gateway_accepts_is_judged_by_the_live_session() -> None:
    """`--auth api-key` on the OpenAI URL shape FAILed statically although the gateway took it."""
    server = RawServer([SESSION_CREATED, SESSION_UPDATED, ("sleep", 0.3)])
    doc = through(server, "--auth", "api-key", "--no-probe")
    assert b"api-key: " + SECRET.encode() in server.request  # the header went to the gateway
    assert severities(doc, "auth.kind") == {"info", "ok"}
    assert "accepted --auth api-key" in next(f for f in by_check(doc)["auth.kind"] if f["severity"] == "ok")["message"]


def test_key_shape_warnings_only_on_the_providers_own_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    """A gateway's keys start with sk- (LiteLLM's): "the Azure key looks like an OpenAI key" is wrong there."""
    monkeypatch.setenv("GW_KEY", "sk-litellm-0123456789abcdef")

    def kinds(target: str) -> set[str]:
        cfg = PreflightConfig(target=target, api_key_env="GW_KEY")
        return {f.check for f in run_static(cfg) if f.severity is Severity.WARNING}

    assert "auth.key_kind" not in kinds(f"wss://gw.example.com/openai/v1/realtime?model={MODEL}")
    assert "auth.key_kind" not in kinds(f"ws://127.0.0.1:4000/openai/v1/realtime?model={MODEL}")
    assert "auth.key_kind" in kinds(f"wss://res.openai.azure.com/openai/v1/realtime?model={MODEL}")
    said = PreflightConfig(target=f"wss://res.openai.azure.com/openai/v1/realtime?model={MODEL}", provider="gateway",
                           api_key_env="GW_KEY")  # fmt: skip
    assert said.is_gateway and said.inferred_provider == "azure"  # a gateway on an Azure name, said so by the user
    assert "auth.key_kind" not in {f.check for f in run_static(said)}


@pytest.mark.parametrize(
    ("script", "check", "words"),
    [
        (  # LiteLLM: the backend refused the gateway's own key
            [gateway_error("Upstream realtime handshake rejected with HTTP 401"),
             close(1008, "Upstream realtime handshake rejected with HTTP 401")],
            "gateway.backend_auth",
            "backend key",
        ),
        (  # LiteLLM: the backend could not be reached (the proxy closes 1011 naming the connect error)
            [close(1011, "Internal server error: [Errno 111] Connect call failed ('10.1.2.3', 443)")],
            "gateway.backend_unreachable",
            "backend URL",
        ),
        (  # LiteLLM: a model its config.yaml does not list
            [gateway_error(f"litellm.BadRequestError: Invalid model name passed in model={MODEL}. Call `/v1/models` "
                           "to view available models for your key."), close(1011, "Internal server error")],
            "gateway.unknown_model",
            "model_name",
        ),
    ],
)  # fmt: skip
def test_gateway_side_failures_say_it_is_the_gateways_side(script: list, check: str, words: str) -> None:
    """The fix lines pointed at the user's setup, or read as a drop mid-answer."""
    doc = through(RawServer([*script, ("sleep", 0.3)]))
    found = by_check(doc)[check]
    assert [f["severity"] for f in found] == ["error"]
    assert found[0]["fix"].startswith("the gateway's side") and words in found[0]["fix"]
    for step in ("live.session", "live.close"):
        for f in by_check(doc).get(step, []):
            if f["severity"] == "error":
                assert f["fix"] == f"the gateway's side: see {check} below", (step, f)
    assert doc["dialect_probe"] is None  # the dialect is not at fault: no probe of the other one


def test_a_gateway_that_answers_502_cannot_reach_its_backend() -> None:
    server = RawServer([], status_line=b"HTTP/1.1 502 Bad Gateway", body=b"<html>502 Bad Gateway</html>")
    doc = through(server, "--no-probe")
    assert severities(doc, "gateway.backend_unreachable") == {"error"}
    assert by_check(doc)["live.handshake"][0]["fix"] == "the gateway's side: see gateway.backend_unreachable below"


def test_an_unreachable_gateway_is_no_gateway_side_failure() -> None:
    """Nothing answered at all: the handshake verdict (check the host and port) stands."""
    code, _, doc = preflight("--target", "ws://127.0.0.1:9/v1/realtime?model=x", "--format", "json", "--no-probe")
    assert code == 1 and doc is not None
    assert not [c for c in by_check(doc) if c.startswith("gateway.")]
    assert "host" in by_check(doc)["live.handshake"][0]["fix"]
