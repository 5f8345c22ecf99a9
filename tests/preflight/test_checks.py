"""Static preflight checks: each misconfiguration produces its named finding; correct ones pass."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from loadtest.preflight.checks import check_model, run_static
from loadtest.preflight.config import PreflightConfig
from loadtest.preflight.findings import Severity, failed

AZ = "wss://contoso.openai.azure.com"


def cfg(target: str, **kw: object) -> PreflightConfig:
    kw.setdefault("api_key_env", "PF_TEST_KEY")
    return PreflightConfig(target=target, **kw)  # type: ignore[arg-type]


def checks(findings: list) -> dict[str, Severity]:
    return {f.check: f.severity for f in findings}


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PF_TEST_KEY", "azure-key-0123456789")


def test_correct_azure_ga_passes() -> None:
    findings = run_static(cfg(f"{AZ}/openai/v1/realtime?model=gpt-realtime"))
    assert not failed(findings, strict=True), findings
    assert findings[0].check == "config" and findings[0].severity is Severity.OK


def test_correct_azure_preview_passes_with_a_deprecation_warning() -> None:
    findings = run_static(cfg(f"{AZ}/openai/realtime?api-version=2025-04-01-preview&deployment=gpt-realtime"))
    assert not failed(findings)
    assert checks(findings) == {"api.preview_deprecated": Severity.WARNING}


def test_api_version_on_ga_url() -> None:
    found = checks(run_static(cfg(f"{AZ}/openai/v1/realtime?model=gpt-realtime&api-version=2025-04-01-preview")))
    assert found["url.api_version_on_ga"] is Severity.ERROR


def test_preview_url_with_ga_dialect() -> None:
    found = checks(run_static(cfg(f"{AZ}/openai/realtime?api-version=2025-04-01-preview&deployment=d", dialect="ga")))
    assert found["url.shape_vs_dialect"] is Severity.ERROR


def test_ga_url_with_preview_dialect() -> None:
    found = checks(run_static(cfg(f"{AZ}/openai/v1/realtime?model=d", dialect="preview")))
    assert found["url.shape_vs_dialect"] is Severity.ERROR


def test_preview_needs_api_version_and_deployment() -> None:
    found = checks(run_static(cfg(f"{AZ}/openai/realtime?deployment=d")))
    assert found["url.missing_api_version"] is Severity.ERROR
    found = checks(run_static(cfg(f"{AZ}/openai/realtime?api-version=2025-04-01-preview")))
    assert found["url.missing_deployment"] is Severity.ERROR


def test_unknown_api_version_warns() -> None:
    found = checks(run_static(cfg(f"{AZ}/openai/realtime?api-version=2023-01-01&deployment=d")))
    assert found["url.unknown_api_version"] is Severity.WARNING


def test_openai_beta_header_on_ga() -> None:
    found = checks(
        run_static(
            cfg(
                "wss://api.openai.com/v1/realtime?model=gpt-realtime",
                dialect="ga",
                headers={"OpenAI-Beta": "realtime=v1"},
            )
        )
    )
    assert found["header.openai_beta_on_ga"] is Severity.ERROR


def test_beta_shape_on_openai_is_retired() -> None:
    found = checks(run_static(cfg("wss://api.openai.com/v1/realtime?model=gpt-realtime", dialect="preview")))
    assert found["dialect.beta_retired"] is Severity.ERROR


def test_missing_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PF_TEST_KEY")
    findings = run_static(cfg(f"{AZ}/openai/v1/realtime?model=gpt-realtime"))
    missing = [f for f in findings if f.check == "auth.missing"]
    assert missing and "PF_TEST_KEY" in missing[0].message
    found = checks(run_static(PreflightConfig(target=f"{AZ}/openai/v1/realtime?model=gpt-realtime")))
    assert found["auth.missing"] is Severity.ERROR


def test_openai_with_api_key_header_auth() -> None:
    found = checks(run_static(cfg("wss://api.openai.com/v1/realtime?model=gpt-realtime", auth="api-key")))
    assert found["auth.kind"] is Severity.ERROR


def test_key_in_url_warns_and_is_not_echoed() -> None:
    findings = run_static(cfg(f"{AZ}/openai/v1/realtime?model=gpt-realtime&api-key=SUPERSECRET"))
    assert checks(findings)["auth.key_in_url"] is Severity.WARNING
    assert "SUPERSECRET" not in json.dumps([f.as_dict() for f in findings])


def test_wrong_path_for_provider_and_unknown_path() -> None:
    assert checks(run_static(cfg(f"{AZ}/v1/realtime?model=d")))["url.shape_vs_provider"] is Severity.ERROR
    assert checks(run_static(cfg(f"{AZ}/voice?model=d")))["url.unknown_path"] is Severity.WARNING
    # a gateway's own path is what gateways do: noted, judged by the live session, no warning
    assert checks(run_static(cfg("wss://gw.example.com/voice?model=d")))["url.unknown_path"] is Severity.INFO


def test_invalid_url_is_one_finding() -> None:
    findings = run_static(cfg("not a url"))
    assert [f.check for f in findings] == ["url.invalid"]


def test_missing_model() -> None:
    assert checks(run_static(cfg(f"{AZ}/openai/v1/realtime")))["url.missing_model"] is Severity.ERROR


def test_retired_and_near_retirement_models() -> None:
    today = dt.date(2026, 11, 22)
    retired = check_model(cfg("wss://api.openai.com/v1/realtime?model=gpt-4o-realtime-preview-2024-12-17"), today)
    assert retired[0].check == "model.retired" and retired[0].severity is Severity.ERROR
    assert "gpt-realtime" in retired[0].fix
    azure = check_model(
        cfg(f"{AZ}/openai/realtime?api-version=2025-04-01-preview&deployment=gpt-4o-realtime-preview-2024-10-01"), today
    )
    assert azure[0].check == "model.retired" and azure[0].severity is Severity.WARNING
    near = check_model(cfg("wss://api.openai.com/v1/realtime?model=gpt-realtime-mini-2025-10-06"), dt.date(2026, 6, 1))
    assert near[0].check == "model.near_retirement"
    assert check_model(cfg("wss://api.openai.com/v1/realtime?model=gpt-realtime"), today) == []


def test_audio_settings() -> None:
    base = f"{AZ}/openai/v1/realtime?model=gpt-realtime"
    found = checks(run_static(cfg(base, sample_rate=16000, channels=2, sample_width_bits=24)))
    assert found["audio.sample_rate"] is Severity.ERROR
    assert found["audio.channels"] is Severity.ERROR
    assert found["audio.sample_width"] is Severity.ERROR
    assert "audio.sample_rate" in checks(run_static(cfg(base, audio_format="g711_ulaw", sample_rate=24000)))
    assert "audio.sample_rate" not in checks(run_static(cfg(base, audio_format="g711_ulaw", sample_rate=8000)))


def test_audio_file_stereo_44k_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "caller.wav"
    soundfile.write(path, np.zeros((4410, 2), dtype=np.int16), 44100, subtype="PCM_16")
    findings = [
        f for f in run_static(cfg(f"{AZ}/openai/v1/realtime?model=m", audio_file=str(path))) if f.check == "audio.file"
    ]
    assert len(findings) == 1 and findings[0].severity is Severity.ERROR
    assert "44100 Hz" in findings[0].message and "2 channels" in findings[0].message
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    findings = [
        f for f in run_static(cfg(f"{AZ}/openai/v1/realtime?model=m", audio_file=str(bad))) if f.check == "audio.file"
    ]
    assert findings[0].severity is Severity.ERROR and "not a readable audio file" in findings[0].message


def test_session_file_shapes(tmp_path: Path) -> None:
    preview_session = tmp_path / "session.json"
    preview_session.write_text(
        json.dumps({"type": "session.update", "session": {"modalities": ["text", "audio"], "voice": "alloy"}})
    )
    findings = run_static(cfg(f"{AZ}/openai/v1/realtime?model=m", session_file=str(preview_session)))
    messages = " ".join(f.message for f in findings)
    found = checks(findings)
    assert found["session.missing_type"] is Severity.ERROR
    assert found["session.preview_field"] is Severity.ERROR
    assert "session.modalities" in messages and "session.voice" in messages
    ga_session = tmp_path / "ga.json"
    ga_session.write_text(
        json.dumps({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["audio"]}})
    )
    assert (
        checks(run_static(cfg(f"{AZ}/openai/v1/realtime?model=m", session_file=str(ga_session)))).get("session.shape")
        is Severity.OK
    )
    found = checks(
        run_static(
            cfg(f"{AZ}/openai/realtime?api-version=2025-04-01-preview&deployment=d", session_file=str(ga_session))
        )
    )
    assert found["session.ga_field"] is Severity.ERROR
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{nope")
    assert (
        checks(run_static(cfg(f"{AZ}/openai/v1/realtime?model=m", session_file=str(garbage))))["session.file"]
        is Severity.ERROR
    )


def test_client_source_with_preview_handlers(tmp_path: Path) -> None:
    src = tmp_path / "agent.py"
    src.write_text(
        'if event["type"] == "response.audio.delta":\n    play(event)\nelif t == "response.done":\n    pass\n'
    )
    findings = run_static(cfg(f"{AZ}/openai/v1/realtime?model=m", client_source=[str(tmp_path)]))
    stale = [f for f in findings if f.check == "client.preview_event"]
    assert len(stale) == 1
    assert "agent.py:1" in stale[0].message and "response.output_audio.delta" in stale[0].message


def test_the_default_key_variable_is_not_added_to_credentials_given_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --api-key-env the provider's default variable is read (as `rtload run`), but not on top of an
    auth header flag or a key in the URL: one set of credentials goes out."""
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-default-0123456789")
    url = f"{AZ}/openai/v1/realtime?model=gpt-realtime"
    assert PreflightConfig(target=url).to_target().api_key == "azure-default-0123456789"
    header = PreflightConfig(target=url, headers={"api-key": "from-the-flag-0123"})
    assert header.api_key is None and ("api-key", "from-the-flag-0123") in header.to_target().headers()
    assert PreflightConfig(target=url + "&api-key=in-the-url-0123").api_key is None
    assert "auth.missing" not in checks(run_static(header))
