"""`rtload preflight` on the targets users type: a URL without a model, a bad character, an Azure host,
the default key variables, and a dialect probe that compares like with like (issue 23, items 6-9)."""

from __future__ import annotations

import datetime as dt

import pytest

from loadtest.mock.process import MockProcess
from loadtest.preflight.config import PreflightConfig
from loadtest.preflight.findings import Severity
from loadtest.preflight.smoke import SmokeRun, dialect_refusal, preview_retirement
from loadtest.protocol.dialects import DialectName
from tests.preflight.support import SECRET, by_check, preflight, severities

PREVIEW_PATH = "/openai/realtime?api-version=2025-04-01-preview"
AZURE_PREVIEW_RETIRED = "2026-04-30"  # the table's date for the Azure preview api-versions


@pytest.mark.parametrize(
    ("path", "extra", "added"),
    [
        ("/openai/v1/realtime", ("--provider", "azure"), "model=gpt-realtime-mini"),
        (PREVIEW_PATH, ("--provider", "azure"), "deployment=gpt-realtime-mini"),
        ("/v1/realtime", (), "model=gpt-realtime-mini"),
    ],
)
def test_deployment_fills_a_url_that_names_no_model(
    mock: MockProcess, path: str, extra: tuple[str, ...], added: str
) -> None:
    """Item 6: preflight said "the URL names no model" and the live session was refused 404."""
    code, out, doc = preflight("--target", f"{mock.url}{path}", "--deployment", "gpt-realtime-mini", *extra,
                               "--format", "json")  # fmt: skip
    assert code == 0 and doc is not None, out
    assert "url.missing_model" not in by_check(doc) and "url.missing_deployment" not in by_check(doc)
    assert added in by_check(doc)["url.model_added"][0]["message"]
    connect = next(row for row in doc["timeline"] if row["type"] == "connect")
    assert added in connect["url"]
    assert severities(doc, "live.audio_response") == {"ok"}
    assert doc["dialect_probe"] is None  # nothing failed, so nothing to probe


def test_the_issues_configuration_is_not_told_to_move_to_preview(mock: MockProcess) -> None:
    """Item 7: `.../openai/v1/realtime --provider azure --deployment gpt-realtime` was advised --dialect preview,
    because the preview probe got the deployment and the GA session did not."""
    code, out, doc = preflight("--target", f"{mock.url}/openai/v1/realtime", "--provider", "azure",
                               "--deployment", "gpt-realtime", "--format", "json")  # fmt: skip
    assert code == 0 and doc is not None, out
    assert "probe.dialect" not in by_check(doc) and doc["dialect_probe"] is None


def test_a_ga_failure_that_is_not_the_dialect_gets_no_preview_advice(mock: MockProcess) -> None:
    """Item 7: GA refused for its api-version (401), preview happens to work: the advice is to fix the URL,
    and it names the preview's retirement date, never `--dialect preview` as the fix."""
    target = f"{mock.url}/openai/v1/realtime?model=gpt-realtime&api-version=2025-04-01-preview"
    code, out, doc = preflight("--target", target, "--format", "json")
    assert code == 1 and doc is not None, out
    assert doc["dialect_probe"] == {"configured": "ga", "ga": "fails", "preview": "works"}
    probe = by_check(doc)["probe.dialect"][0]
    assert "not for the dialect" in probe["message"] and "401" in probe["message"]
    assert "--dialect preview" not in probe["fix"] and AZURE_PREVIEW_RETIRED in probe["fix"]


def test_a_ga_refusal_for_the_dialect_names_the_retirement_date(mock: MockProcess) -> None:
    """Item 7: where GA is refused for the dialect (a preview-only endpoint rejects session.type), preview is
    offered, with the date it goes away."""
    code, out, doc = preflight("--target", f"{mock.url}{PREVIEW_PATH}&deployment=gpt-realtime", "--dialect", "ga",
                               "--format", "json")  # fmt: skip
    assert code == 1 and doc is not None, out
    probe = by_check(doc)["probe.dialect"][0]
    assert "refused" in probe["message"] and "session.type" in probe["message"]
    assert AZURE_PREVIEW_RETIRED in probe["fix"] and "retired" in probe["fix"]


def _run(dialect: str, *rows: dict) -> SmokeRun:
    return SmokeRun(dialect=dialect, timeline=[{"t": 0.0, "dir": "in", **row} for row in rows])


def test_dialect_refusal_tells_the_dialect_from_the_key_the_model_and_the_path() -> None:
    missing_path = {"type": "handshake", "status": 404, "error": 'HTTP 404 Not Found: {"error":{"code":"NotFound"}}'}
    assert dialect_refusal(_run(DialectName.GA, missing_path)) == "the GA path is not served here (404)"
    no_deployment = {"type": "handshake", "status": 404, "error": '{"error":{"code":"DeploymentNotFound"}}'}
    assert dialect_refusal(_run(DialectName.GA, no_deployment)) is None
    assert dialect_refusal(_run(DialectName.GA, {"type": "handshake", "status": 401, "error": "HTTP 401"})) is None
    preview_events = _run(DialectName.GA, {"type": "handshake", "status": 101}, {"type": "response.audio.delta"})
    assert "preview name" in (dialect_refusal(preview_events) or "")
    bad_key = {"type": "error", "error_code": "invalid_api_key", "error_message": "Incorrect API key provided"}
    assert dialect_refusal(_run(DialectName.GA, {"type": "handshake", "status": 101}, bad_key)) is None
    beta = {"type": "error", "error_code": "beta_api_shape_disabled", "error_message": "no beta"}
    assert dialect_refusal(_run(DialectName.PREVIEW, {"type": "handshake", "status": 101}, beta))


def test_the_retirement_advice_comes_from_the_table() -> None:
    azure = PreflightConfig(target="wss://res.openai.azure.com/openai/v1/realtime?model=d")
    assert "was retired on 2026-04-30" in preview_retirement(azure, "2025-04-01-preview", dt.date(2026, 12, 1))
    assert "retires on 2026-04-30" in preview_retirement(azure, "2024-12-17", dt.date(2026, 1, 1))
    openai = PreflightConfig(target="wss://api.openai.com/v1/realtime?model=gpt-realtime")
    assert "2026-05-07" in preview_retirement(openai, None, dt.date(2026, 12, 1))


def test_a_url_model_and_a_different_deployment_fail(mock: MockProcess) -> None:
    code, out, doc = preflight("--target", f"{mock.url}/v1/realtime?model=gpt-realtime", "--deployment", "other",
                               "--format", "json", "--no-live")  # fmt: skip
    assert code == 1 and doc is not None, out
    mismatch = by_check(doc)["url.deployment_mismatch"]
    assert [f["severity"] for f in mismatch] == ["error"]
    assert "'other'" in mismatch[0]["message"] and "'gpt-realtime'" in mismatch[0]["message"]


@pytest.mark.parametrize(
    ("target", "what"),
    [
        ("ws://127.0.0.1:9/v1/realtime?model=gpt realtime", "a space at character 39"),
        ("ws://127.0.0.1:9/v1/realtime?model=gpt-realtime&x=<y>", "'<'"),
        ("ws://127.0.0.1:9/v1/realtime?model=100%", "a % not followed by two hex digits"),
    ],
)
def test_a_target_with_characters_a_url_cannot_hold_is_refused(target: str, what: str) -> None:
    """Item 8: preflight dialled it and sent a malformed request line."""
    code, out, doc = preflight("--target", target, "--format", "json")
    assert code == 1 and doc is not None, out
    assert [f["check"] for f in doc["findings"]] == ["url.invalid"]
    assert what in doc["findings"][0]["message"]
    assert doc["timeline"] == []  # nothing was sent


def test_preflight_reads_the_default_key_variables_as_run_does(mock: MockProcess) -> None:
    """Item 9: without --api-key-env, AZURE_OPENAI_API_KEY (Azure) / OPENAI_API_KEY (OpenAI), as `rtload run`."""
    azure = f"{mock.url}/openai/v1/realtime?model=gpt-realtime"
    code, out, doc = preflight("--target", azure, "--format", "json", key_env=None,
                               env={"AZURE_OPENAI_API_KEY": SECRET})  # fmt: skip
    assert code == 0 and doc is not None, out
    assert severities(doc, "live.handshake") == {"ok"}
    openai = f"{mock.url}/v1/realtime?model=gpt-realtime"
    code, out, doc = preflight("--target", openai, "--format", "json", key_env=None, env={"OPENAI_API_KEY": SECRET})
    assert code == 0 and doc is not None, out
    code, out, doc = preflight("--target", openai, "--format", "json", "--no-live", key_env=None,
                               env={"AZURE_OPENAI_API_KEY": SECRET})  # fmt: skip
    assert code == 1 and doc is not None
    assert "OPENAI_API_KEY is not set" in by_check(doc)["auth.missing"][0]["message"]


@pytest.mark.parametrize("host", ["res.openai.azure.com", "res.cognitiveservices.azure.com", "r.services.ai.azure.com"])
def test_an_azure_host_means_azure(host: str) -> None:
    """Item 9: an Azure host takes the Azure key variable and the Azure URL shape, unless --provider says otherwise."""
    code, out, doc = preflight("--target", f"wss://{host}/openai/v1/realtime?model=gpt-realtime", "--format",
                               "json", "--no-live", key_env=None, env={"AZURE_OPENAI_API_KEY": "k" * 32})  # fmt: skip
    assert code == 0 and doc is not None, out
    assert doc["findings"][0]["check"] == "config"
    code, out, doc = preflight("--target", f"wss://{host}/openai/v1/realtime?model=gpt-realtime", "--provider",
                               "openai", "--format", "json", "--no-live", key_env=None,
                               env={"AZURE_OPENAI_API_KEY": "k" * 32})  # fmt: skip
    assert code == 1 and doc is not None
    assert "OPENAI_API_KEY is not set" in by_check(doc)["auth.missing"][0]["message"]
    assert by_check(doc)["auth.missing"][0]["severity"] == Severity.ERROR


def test_the_probe_dials_the_same_prefix_model_key_and_headers_in_the_other_dialect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Item 7, like with like: only the dialect's own parts of the URL and headers differ."""
    monkeypatch.setenv("APIM_KEY", "apim-key-0123456789")
    cfg = PreflightConfig(target="wss://apim.azure-api.net/myapi/openai/v1/realtime", provider="azure",
                          deployment="gpt-realtime", api_key_env="APIM_KEY", headers={"X-Team": "voice"})  # fmt: skip
    ga, preview = cfg.to_target(DialectName.GA), cfg.to_target(DialectName.PREVIEW)
    assert ga.url() == "wss://apim.azure-api.net/myapi/openai/v1/realtime?model=gpt-realtime"
    assert preview.url().startswith("wss://apim.azure-api.net/myapi/openai/realtime?api-version=")
    assert preview.url().endswith("&deployment=gpt-realtime")
    assert ga.headers() == preview.headers() == [("api-key", "apim-key-0123456789"), ("X-Team", "voice")]
