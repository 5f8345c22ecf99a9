"""Preflight on Azure Voice Live: its URL checks and its session checks, one line each."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest.preflight.checks import run_static
from loadtest.preflight.config import PreflightConfig
from loadtest.preflight.findings import Severity, failed

VL = "wss://contoso.services.ai.azure.com/voice-live/realtime"
E, W = Severity.ERROR, Severity.WARNING


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PF_TEST_KEY", "azure-key-0123456789")


def found(target: str, session: dict | None = None, tmp: Path | None = None, **kw: object) -> dict[str, Severity]:
    if session is not None and tmp is not None:
        path = tmp / "session.json"
        path.write_text(json.dumps(session))
        kw["session_file"] = str(path)
    cfg = PreflightConfig(target=target, api_key_env="PF_TEST_KEY", **kw)  # type: ignore[arg-type]
    findings = run_static(cfg)
    for f in findings:  # one line each
        assert "\n" not in f.message and "\n" not in (f.fix or "")
    return {f.check: f.severity for f in findings}


def test_a_correct_voicelive_url_passes_and_is_named() -> None:
    result = found(f"{VL}?api-version=2026-04-10&model=gpt-realtime")
    assert result == {"config": Severity.OK, "url.voice_live": Severity.INFO}
    cfg = PreflightConfig(target=f"{VL}?api-version=2026-04-10&model=gpt-4.1", api_key_env="PF_TEST_KEY")
    assert (cfg.inferred_provider, cfg.inferred_dialect) == ("voicelive", "voicelive")
    assert cfg.to_target().url() == f"{VL}?api-version=2026-04-10&model=gpt-4.1"


def test_agent_mode_passes() -> None:
    assert not failed(
        run_static(
            PreflightConfig(
                target=f"{VL}?api-version=2026-04-10&agent-name=booking&agent-project-name=contoso",
                api_key_env="PF_TEST_KEY",
            )
        )
    )


@pytest.mark.parametrize(
    ("query", "check", "severity"),
    [
        ("model=gpt-realtime", "url.missing_api_version", E),
        ("api-version=2024-10-01-preview&model=gpt-realtime", "url.unknown_api_version", W),
        ("api-version=2026-04-10", "url.missing_model", E),
        ("api-version=2026-04-10&deployment=gpt-realtime", "url.missing_model", E),
        ("api-version=2026-04-10&agent-name=booking", "url.voice_live_agent", E),
        ("api-version=2026-04-10&model=x&profile=byom-gemini", "url.voice_live_profile", E),
        ("api-version=2026-04-10&model=gpt-4o-realtime-preview", "model.retired", E),
    ],
)
def test_voicelive_url_findings(query: str, check: str, severity: Severity) -> None:
    assert found(f"{VL}?{query}").get(check) is severity


def test_voicelive_path_on_another_host_is_a_warning() -> None:
    url = "wss://contoso.openai.azure.com/voice-live/realtime?api-version=2026-04-10&model=gpt-realtime"
    assert found(url)["url.voice_live_host"] is W


@pytest.mark.parametrize(
    ("model", "session", "check"),
    [
        (
            "gpt-realtime",
            {"type": "realtime", "audio": {"input": {"format": {"type": "audio/pcm"}}}},
            "session.ga_shape",
        ),
        ("gpt-realtime", {"output_modalities": ["audio"]}, "session.ga_shape"),
        ("gpt-4.1", {"turn_detection": {"type": "semantic_vad"}}, "session.semantic_vad_model"),
        ("gpt-4.1", {"input_audio_transcription": {"model": "gpt-4o-transcribe"}}, "session.transcription_model"),
        ("gpt-realtime", {"input_audio_sampling_rate": 44100}, "session.sampling_rate"),
        ("gpt-realtime", {"output_audio_format": "mp3"}, "session.output_format"),
        ("gpt-realtime", {"voice": {"type": "elevenlabs", "name": "x"}}, "session.voice"),
        ("gpt-realtime", {"temperature": 0.3}, "session.temperature"),
    ],
)
def test_voicelive_session_findings(tmp_path: Path, model: str, session: dict, check: str) -> None:
    result = found(f"{VL}?api-version=2026-04-10&model={model}", session, tmp_path)
    assert result.get(check) is E, result


def test_a_voicelive_session_with_its_extras_passes(tmp_path: Path) -> None:
    session = {
        "modalities": ["text", "audio"],
        "voice": {"type": "azure-standard", "name": "en-US-Ava:DragonHDLatestNeural"},
        "input_audio_sampling_rate": 16000,
        "output_audio_format": "pcm16_16000hz",
        "input_audio_noise_reduction": {"type": "azure_deep_noise_suppression"},
        "input_audio_echo_cancellation": {"type": "server_echo_cancellation"},
        "input_audio_transcription": {"model": "azure-speech"},
        "turn_detection": {
            "type": "azure_semantic_vad",
            "end_of_utterance_detection": {"model": "semantic_detection_v1"},
        },
    }
    result = found(f"{VL}?api-version=2026-04-10&model=gpt-4.1", session, tmp_path)
    assert result == {"config": Severity.OK, "url.voice_live": Severity.INFO, "session.shape": Severity.OK}, result
    # the same session is fine for gpt-realtime too; semantic_vad and whisper-1 are fine there
    ok = {"turn_detection": {"type": "semantic_vad"}, "input_audio_transcription": {"model": "whisper-1"}}
    assert not failed(
        run_static(
            PreflightConfig(
                target=f"{VL}?api-version=2026-04-10&model=gpt-realtime",
                api_key_env="PF_TEST_KEY",
                session_file=_write(tmp_path, ok),
            )
        )
    )


def test_a_voice_as_a_string_is_a_warning(tmp_path: Path) -> None:
    assert (
        found(f"{VL}?api-version=2026-04-10&model=gpt-realtime", {"voice": "alloy"}, tmp_path)["session.voice_string"]
        is W
    )


def _write(tmp: Path, session: dict) -> str:
    path = tmp / "ok.json"
    path.write_text(json.dumps(session))
    return str(path)
