"""`rtload preflight` end to end: the real command line against the mock on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from loadtest.mock.process import MockProcess, start_mock

SECRET = "pf-SECRET-7f3a9c51d2"
FAST = {"audio.speed": 60.0, "latency.created_ms": [5, 10], "latency.first_delta_ms": [5, 10]}
PREVIEW_Q = "api-version=2025-04-01-preview&deployment="


@pytest.fixture(scope="module")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockProcess]:
    log = tmp_path_factory.mktemp("mock") / "mock.log"
    proc = start_mock(api_key=SECRET, overrides=FAST, log_path=log)
    yield proc
    proc.stop()


def preflight(*args: str, key: str | None = SECRET) -> tuple[int, str, dict | None]:
    env = dict(os.environ)
    env.pop("PF_KEY", None)
    if key is not None:
        env["PF_KEY"] = key
    cmd = [sys.executable, "-m", "loadtest", "preflight", "--api-key-env", "PF_KEY", "--timeout", "15", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=90)
    out = proc.stdout + proc.stderr
    assert SECRET not in out, "the API key was printed"
    assert "Traceback" not in out, out
    doc = json.loads(proc.stdout) if "--format" in args else None
    return proc.returncode, out, doc


def by_check(doc: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for f in doc["findings"]:
        out.setdefault(f["check"], []).append(f)
    return out


def severities(doc: dict, check: str) -> set[str]:
    return {f["severity"] for f in by_check(doc).get(check, [])}


def test_correct_openai_ga_passes(mock: MockProcess) -> None:
    code, out, _ = preflight("--target", f"{mock.url}/v1/realtime?model=gpt-realtime")
    assert code == 0, out
    assert "preflight: passed" in out
    for step in ("live.handshake", "live.session", "live.audio", "live.audio_response", "live.text_response"):
        assert f"PASS  {step}" in out
    assert "response.output_audio.delta" in out  # the timeline shows the GA event names


def test_correct_azure_ga_passes_json(mock: MockProcess) -> None:
    code, _, doc = preflight("--target", f"{mock.url}/openai/v1/realtime?model=gpt-realtime", "--format", "json")
    assert code == 0 and doc is not None and doc["ok"] is True
    assert severities(doc, "live.audio_response") == {"ok"}
    assert severities(doc, "live.rate_limits") == {"ok"}
    assert any(row["type"] == "response.done" for row in doc["timeline"])


def test_correct_azure_preview_passes(mock: MockProcess) -> None:
    code, out, doc = preflight("--target", f"{mock.url}/openai/realtime?{PREVIEW_Q}gpt-realtime", "--format", "json")
    assert code == 0, out
    assert doc is not None and doc["ok"] is True
    assert severities(doc, "api.preview_deprecated") == {"warning"}
    assert any(row["type"] == "response.audio.delta" for row in doc["timeline"])  # preview names


def test_api_version_on_azure_ga_url(mock: MockProcess) -> None:
    target = f"{mock.url}/openai/v1/realtime?model=gpt-realtime&api-version=2025-04-01-preview"
    code, _, doc = preflight("--target", target, "--format", "json", "--no-probe")
    assert code == 1 and doc is not None
    assert severities(doc, "url.api_version_on_ga") == {"error"}
    handshake = by_check(doc)["live.handshake"][0]
    assert handshake["severity"] == "error" and "401" in handshake["message"]


def test_openai_beta_header_on_ga(mock: MockProcess) -> None:
    target = f"{mock.url}/v1/realtime?model=gpt-realtime"
    args = ("--target", target, "--dialect", "ga", "--header", "OpenAI-Beta: realtime=v1", "--format", "json")
    code, _, doc = preflight(*args, "--no-probe")
    assert code == 1 and doc is not None
    assert severities(doc, "header.openai_beta_on_ga") == {"error"}
    session = by_check(doc)["live.session"][0]
    assert session["severity"] == "error" and "beta_api_shape_disabled" in session["message"]


def test_wrong_key_is_named_and_never_printed(mock: MockProcess) -> None:
    wrong = "pf-WRONG-1234567890"
    code, out, doc = preflight(
        "--target", f"{mock.url}/v1/realtime?model=gpt-realtime", "--format", "json", "--no-probe", key=wrong
    )
    assert code == 1 and doc is not None
    assert wrong not in out
    session = by_check(doc)["live.session"][0]
    assert "invalid_api_key" in session["message"]
    code, out, doc = preflight(
        "--target", f"{mock.url}/openai/v1/realtime?model=gpt-realtime", "--format", "json", "--no-probe", key=wrong
    )
    assert code == 1 and doc is not None and wrong not in out
    assert "401" in by_check(doc)["live.handshake"][0]["message"]


def test_missing_key_env(mock: MockProcess) -> None:
    code, out, _ = preflight("--target", f"{mock.url}/v1/realtime?model=gpt-realtime", "--no-live", key=None)
    assert code == 1
    assert "PF_KEY is not set" in out


def test_retired_and_unknown_deployments(mock: MockProcess) -> None:
    retired = f"{mock.url}/openai/realtime?{PREVIEW_Q}gpt-4o-realtime-preview-2024-10-01"
    code, _, doc = preflight("--target", retired, "--format", "json", "--no-probe")
    assert code == 1 and doc is not None
    assert severities(doc, "model.retired") == {"warning"}
    assert "404" in by_check(doc)["live.handshake"][0]["message"]
    code, _, doc = preflight(
        "--target", f"{mock.url}/openai/v1/realtime?model=gpt-nonexistent", "--format", "json", "--no-probe"
    )
    assert code == 1 and doc is not None
    assert "404" in by_check(doc)["live.handshake"][0]["message"]


def test_probe_finds_ga_when_preview_is_configured_on_openai(mock: MockProcess) -> None:
    target = f"{mock.url}/v1/realtime?model=gpt-realtime"
    code, _, doc = preflight("--target", target, "--dialect", "preview", "--format", "json")
    assert code == 1 and doc is not None
    assert doc["dialect_probe"] == {"configured": "preview", "preview": "fails", "ga": "works"}
    probe = by_check(doc)["probe.dialect"][0]
    assert "--dialect ga" in probe["fix"]


def test_probe_finds_preview_on_the_azure_preview_path(mock: MockProcess) -> None:
    target = f"{mock.url}/openai/realtime?{PREVIEW_Q}gpt-realtime"
    code, _, doc = preflight("--target", target, "--dialect", "ga", "--format", "json")
    assert code == 1 and doc is not None
    assert severities(doc, "url.shape_vs_dialect") == {"error"}
    assert doc["dialect_probe"] == {"configured": "ga", "ga": "fails", "preview": "works"}


def test_bad_flags_get_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest", "preflight", "--target", "ws://127.0.0.1:9/x", "--dialect", "beta"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "use ga or preview" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unreachable_target_is_a_finding() -> None:
    target = "ws://127.0.0.1:9/v1/realtime?model=gpt-realtime"
    code, _, doc = preflight("--target", target, "--format", "json", "--no-probe")
    assert code == 1 and doc is not None
    handshake = by_check(doc)["live.handshake"][0]
    assert handshake["severity"] == "error" and "upgrade refused" in handshake["message"]
