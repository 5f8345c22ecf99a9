"""The command line itself: a usage error of any command is one line on stderr and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def rtload(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loadtest", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=60)  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "summary", ".", "--format", "xml"], "unknown format 'xml'"),
        (["report", "capacity", ".", "--slo", "ttfa<<1"], "cannot read SLO clause"),
        (["report", "html", ".", "--slo", "nope"], "--slo"),
        (["report", "summary"], "Missing argument"),
        (["run", "--users", "many"], "'--users'"),
        (["run", "--no-such-option"], "No such option: --no-such-option"),
        (["preflight", "--target", "mock", "--format", "yaml"], "--format"),
        (["mock", "--port", "http"], "'--port'"),
        (["fixtures", "check", "--bogus"], "No such option: --bogus"),
        (["no-such-command"], "No such command 'no-such-command'"),
    ],
)
def test_usage_errors_are_one_line_with_exit_code_2(args: list[str], message: str, tmp_path: Path) -> None:
    done = rtload(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("rtload: ") and message in lines[0]
    assert "--help" in lines[0]  # where to look next
    assert done.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_help_is_still_help(tmp_path: Path) -> None:
    for args in ([], ["report"], ["run", "--help"]):
        done = rtload(*args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "Usage" in done.stdout and done.stderr == ""


def test_an_error_inside_a_command_is_not_hidden_by_the_error_handler() -> None:
    """A command that fails with an unexpected error shows that error, not one of the handler's own
    (naming an exception class the installed click lacks raised AttributeError over it)."""
    import pytest
    import typer

    from loadtest.cli import OneLineErrors

    app = typer.Typer(cls=OneLineErrors, add_completion=False, pretty_exceptions_enable=False)

    @app.command()
    def boom() -> None:
        raise ValueError("the real error")

    @app.command()
    def other() -> None:  # two commands: the group dispatches by name, as rtload does
        pass

    with pytest.raises(ValueError, match="the real error"):
        typer.main.get_command(app).main(["boom"], prog_name="rtload", standalone_mode=True)
