"""`rtload preflight` end to end: the real command line against the mock on loopback."""

from __future__ import annotations

import json
import subprocess
import sys

from loadtest.mock.process import MockProcess
from tests.preflight.support import PREVIEW_Q, SECRET, by_check, preflight, severities
from tests.session.rawserver import SESSION_CREATED, SESSION_UPDATED, RawServer, event


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


def test_each_client_side_mistake_fails_through_the_command_line(mock: MockProcess, tmp_path) -> None:
    """The live session passes (the mock is right), but the client's own shape is wrong: exit 1."""
    ga = f"{mock.url}/openai/v1/realtime?model=gpt-realtime"
    preview_session = tmp_path / "session.json"
    preview_session.write_text(json.dumps({"type": "session.update", "session": {"modalities": ["audio"]}}))
    handler = tmp_path / "agent.py"
    handler.write_text('if event["type"] == "response.audio.delta":\n    play(event)\n')
    cases = [
        (("--session-file", str(preview_session)), "session.missing_type"),
        (("--client-source", str(handler)), "client.preview_event"),
        (("--sample-rate", "44100", "--channels", "2"), "audio.sample_rate"),
        (("--sample-rate", "44100", "--channels", "2"), "audio.channels"),
    ]
    for extra, check in cases:
        code, out, doc = preflight("--target", ga, "--format", "json", "--no-probe", *extra)
        assert code == 1 and doc is not None, (check, out)
        assert severities(doc, check) == {"error"}, check
        assert severities(doc, "live.audio_response") == {"ok"}, check  # the service itself was fine
    # loopback is no provider's host: an api-key header on the OpenAI shape is judged by the live session,
    # and the mock refuses it as OpenAI does
    code, _, doc = preflight("--target", f"{mock.url}/v1/realtime?model=gpt-realtime", "--auth", "api-key",
                             "--format", "json", "--no-probe")  # fmt: skip
    assert code == 1 and doc is not None and severities(doc, "auth.kind") == {"info", "error"}


def test_secrets_in_a_malformed_url_or_a_header_are_never_printed(mock: MockProcess) -> None:
    code, out, _ = preflight("--target", f"wss//{mock.url[5:]}/openai/v1/realtime?api-key={SECRET}")
    assert code == 1 and "is not a WebSocket URL" in out  # preflight() itself asserts the key is absent
    # the key given as a gateway-style header authenticates the live session, and is not echoed
    target = f"{mock.url}/openai/v1/realtime?model=gpt-realtime"
    cmd = [sys.executable, "-m", "loadtest", "preflight", "--target", target, "--header", f"api-key: {SECRET}",
           "--no-probe", "--timeout", "15"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS  live.handshake" in proc.stdout
    assert SECRET not in proc.stdout + proc.stderr


def test_events_of_the_other_dialect_are_named_live() -> None:
    """A GA-configured client meets a server that sends preview (and unknown) event names."""
    script = [
        SESSION_CREATED,
        SESSION_UPDATED,
        event({"type": "response.created", "event_id": "e3", "response": {"id": "resp_1", "status": "in_progress"}}),
        event({"type": "response.audio.delta", "event_id": "e4", "response_id": "resp_1", "delta": "AAAA"}),
        event({"type": "response.sparkle", "event_id": "e5"}),
        ("sleep", 0.5),
    ]
    server = RawServer(script)
    try:
        code, out, doc = preflight(
            "--target", f"{server.url}/v1/realtime?model=gpt-realtime", "--format", "json", "--no-probe",
            "--timeout", "5",
        )  # fmt: skip
    finally:
        server.join()
    assert code == 1 and doc is not None, out
    dialect = by_check(doc)["live.event_dialect"]
    assert len(dialect) == 1 and dialect[0]["severity"] == "error"
    assert "response.audio.delta" in dialect[0]["message"] and "response.output_audio.delta" in dialect[0]["message"]
    unknown = by_check(doc)["live.unknown_event"]
    assert [f["severity"] for f in unknown] == ["warning"] and "response.sparkle" in unknown[0]["message"]


def test_voicelive_url_passes_live_and_a_retired_model_fails_at_the_upgrade(mock: MockProcess) -> None:
    """Voice Live end to end: its own dialect passes every live step; a retired model is named by the
    static check and refused at the upgrade, with no probe of another dialect (Voice Live has one)."""
    url = f"{mock.url}/voice-live/realtime?api-version=2026-04-10&model="
    code, _, doc = preflight("--target", url + "gpt-4.1", "--format", "json")
    assert code == 0 and doc is not None and doc["ok"] is True, doc
    assert severities(doc, "live.audio_response") == {"ok"} and severities(doc, "live.text_response") == {"ok"}
    assert severities(doc, "url.voice_live") == {"info"}
    assert any(row["type"] == "response.audio.delta" for row in doc["timeline"])  # the preview-style names
    code, _, doc = preflight("--target", url + "gpt-4o-realtime-preview", "--format", "json")
    assert code == 1 and doc is not None
    assert severities(doc, "model.retired") == {"error"} and severities(doc, "live.handshake") == {"error"}
    assert "probe.dialect" not in by_check(doc)
