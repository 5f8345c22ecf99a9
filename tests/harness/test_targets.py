"""`rtload run` against full target URLs: what the user types is what is dialled and what is labelled.

The mock runs on loopback with its own key; every run is the real command line, one user, a few seconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadtest.cli import app
from loadtest.mock.process import MockProcess, start_mock
from loadtest.records.writer import read_rows
from tests.harness.conftest import rtload_run

KEY = "tg-SECRET-4b1d9e"
FAST = {"audio.speed": 20.0, "latency.created_ms": [10, 30], "latency.first_delta_ms": [10, 30]}
PREVIEW_Q = "api-version=2025-04-01-preview"
SHORT = ("--users", "1", "--spawn-rate", "1", "--duration", "3s", "--scenario", "quick_text")
SHORT += ("--no-summary", "--no-html")


@pytest.fixture(scope="module")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockProcess]:
    proc = start_mock(api_key=KEY, overrides=FAST, log_path=tmp_path_factory.mktemp("mock") / "mock.log")
    yield proc
    proc.stop()


def _run(tmp_path: Path, run_id: str, *args: str) -> tuple[dict, list[dict], list[dict], str]:
    env = {"AZURE_OPENAI_API_KEY": KEY, "OPENAI_API_KEY": KEY}
    proc = rtload_run(tmp_path, "--run-id", run_id, *SHORT, *args, env=env)
    out = proc.stdout + proc.stderr
    assert KEY not in out
    directory = tmp_path / "reports" / run_id
    assert proc.returncode == 0, out
    run = json.loads((directory / "run.json").read_text())
    return run, read_rows(directory / "responses.jsonl"), read_rows(directory / "sessions.jsonl"), out


@pytest.mark.parametrize(
    ("shape", "path", "extra"),
    [
        ("azure-ga", "/openai/v1/realtime", ("--provider", "azure")),
        ("azure-preview", f"/openai/realtime?{PREVIEW_Q}", ("--provider", "azure", "--dialect", "preview")),
        ("openai-ga", "/v1/realtime", ()),
    ],
)
def test_deployment_fills_a_full_url_that_names_no_model(
    mock: MockProcess, tmp_path: Path, shape: str, path: str, extra: tuple[str, ...]
) -> None:
    """Issue 23.6: `--target .../openai/v1/realtime --deployment D` dials D (it was refused 404 on every try)."""
    run, rows, sessions, out = _run(
        tmp_path, shape, "--target", f"{mock.url}{path}", "--deployment", "gpt-realtime-mini", *extra
    )
    assert rows and all(r["outcome"] == "completed" for r in rows), out
    assert {r["deployment"] for r in rows} == {"gpt-realtime-mini"}
    assert all(s["handshake_status"] == 101 for s in sessions)
    key = "deployment=gpt-realtime-mini" if shape == "azure-preview" else "model=gpt-realtime-mini"
    assert key in run["target"]["url"] and run["deployment"] == "gpt-realtime-mini"


def test_the_urls_model_labels_run_json_and_every_row(mock: MockProcess, tmp_path: Path) -> None:
    """Issue 21: `?model=M` without --deployment: run.json and rows say M, not the default gpt-realtime."""
    run, rows, sessions, out = _run(tmp_path, "labels", "--target", f"{mock.url}/v1/realtime?model=gpt-realtime-mini")
    assert rows and all(r["outcome"] == "completed" for r in rows), out
    assert run["deployment"] == "gpt-realtime-mini" and run["target"]["deployment"] == "gpt-realtime-mini"
    assert run["options"]["deployment"] == "gpt-realtime-mini"
    assert {r["deployment"] for r in rows} == {s["deployment"] for s in sessions} == {"gpt-realtime-mini"}


def _refused(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(app, ["run", "--out", str(tmp_path), *args], env=env)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rtload: "), result.output
    assert not list(tmp_path.iterdir())  # nothing started, nothing written
    return lines[0]


def test_a_url_model_and_a_different_deployment_are_one_line(tmp_path: Path) -> None:
    line = _refused(tmp_path, "--target", "ws://127.0.0.1:9/v1/realtime?model=gw-realtime", "--deployment", "other")
    assert "'other'" in line and "'gw-realtime'" in line and "--deployment" in line
    line = _refused(
        tmp_path, "--target", f"ws://127.0.0.1:9/openai/realtime?{PREVIEW_Q}&deployment=a", "--deployment", "b"
    )
    assert "'b'" in line and "'a'" in line


@pytest.mark.parametrize(
    ("target", "what"),
    [
        ("ws://127.0.0.1:9/openai/v1/realtime?model=gpt realtime", "a space at character"),
        ("ws://127.0.0.1:9/v1/realtime?model=gpt\trealtime", "a tab"),
        ('ws://127.0.0.1:9/v1/realtime?model="gpt"', "'\"'"),
        ("ws://127.0.0.1:9/v1/realtime?model=50%", "a % not followed by two hex digits"),
        (f"ws://127.0.0.1:9/v1/realtime?api-key={KEY}&model=gpt realtime", "a space"),  # the key is not echoed
    ],
)
def test_a_target_with_characters_a_url_cannot_hold_is_refused(tmp_path: Path, target: str, what: str) -> None:
    """Issue 23.8: it was accepted, and a malformed request line went out."""
    line = _refused(tmp_path, "--target", target, env={"OPENAI_API_KEY": KEY})
    assert "--target" in line and what in line
    assert KEY not in line


def test_an_azure_host_means_azure_unless_the_user_says_otherwise(tmp_path: Path) -> None:
    """Issue 23.9: the provider (and with it the default key variable) follows an Azure host."""
    env = {"AZURE_OPENAI_API_KEY": "", "OPENAI_API_KEY": ""}
    for host in ("res.openai.azure.com", "res.cognitiveservices.azure.com", "res.services.ai.azure.com"):
        line = _refused(tmp_path, "--target", f"wss://{host}", env=env)
        assert "AZURE_OPENAI_API_KEY is not set" in line, line
    line = _refused(tmp_path, "--target", "wss://res.openai.azure.com", "--provider", "openai", env=env)
    assert "OPENAI_API_KEY is not set" in line and "AZURE" not in line


def test_provider_gateway_dials_the_url_as_it_is_with_bearer_auth(mock: MockProcess, tmp_path: Path) -> None:
    """`--provider gateway` (issue 21): the URL as typed, OpenAI's Bearer auth, rows labelled a gateway."""
    run, rows, _, out = _run(tmp_path, "gateway", "--target", f"{mock.url}/v1/realtime?model=gpt-realtime-mini",
                             "--provider", "gateway")  # fmt: skip
    assert rows and all(r["outcome"] == "completed" for r in rows), out
    assert {r["provider"] for r in rows} == {"gateway"} and run["target"]["provider"] == "gateway"
    assert run["options"]["api_key_env"] == "OPENAI_API_KEY"
