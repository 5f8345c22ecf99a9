from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadtest.cli import app
from tests.report.synth import SynthRun, ramp_run


@pytest.fixture(scope="session")
def ramp(tmp_path_factory: pytest.TempPathFactory) -> SynthRun:
    return ramp_run(tmp_path_factory.mktemp("runs") / "ramp-run")


class Cli:
    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0):
        result = self.runner.invoke(app, ["report", *[str(a) for a in args]])
        assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr, result.exception)
        return result

    def json(self, *args: str | Path) -> dict:
        return json.loads(self(*args, "--format", "json").stdout)


@pytest.fixture
def cli() -> Cli:
    return Cli()
