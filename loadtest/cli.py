"""`rtload`: the command line. Each command lives in its package's ``command`` module.

Command modules import their heavy dependencies (locust, pandas, matplotlib, the mock's
asyncio stack) inside the command body, so ``rtload --help`` stays fast and one command's
imports (gevent's monkey-patching for ``run``) never leak into another.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

try:  # typer >= 0.25 carries its own copy of click
    from typer._click import exceptions as cli_errors
except ImportError:  # pragma: no cover - older typer on click
    from click import exceptions as cli_errors  # type: ignore[no-redef]

from loadtest import __version__

# Ctrl-C at a prompt: typer's Abort, and click's where this typer's copy of click has one (typer
# 0.29's does not: naming it in the except clause raised AttributeError over any other error)
ABORTS: tuple[type[BaseException], ...] = tuple({typer.Abort, getattr(cli_errors, "Abort", typer.Abort)})


class OneLineErrors(TyperGroup):
    """The root group: a usage error click or typer raises itself (a bad choice, a bad ``--format`` or
    ``--slo``, an unknown option or command) is one line on stderr and exit code 2, like every
    other bad input, instead of a usage banner and a boxed panel."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except cli_errors.NoArgsIsHelpError as exc:  # `rtload` alone (or a group alone): its help
            typer.echo(exc.ctx.get_help())
            code = 0
        except cli_errors.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "rtload"
            sys.stderr.write(f"rtload: {one_line(exc.format_message())} (see {where} --help)\n")
            code = exc.exit_code
        except cli_errors.ClickException as exc:
            sys.stderr.write(f"rtload: {one_line(exc.format_message())}\n")
            code = exc.exit_code
        except ABORTS:
            sys.stderr.write("rtload: aborted\n")
            code = 1
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


def one_line(message: str) -> str:
    return " ".join(message.split())


app = typer.Typer(
    name="rtload",
    cls=OneLineErrors,
    help="Load and soak testing for the OpenAI and Azure OpenAI Realtime API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rtload {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Load and soak testing for the OpenAI and Azure OpenAI Realtime API."""


# Each module exposes ``register(app: typer.Typer) -> None``; one line each, in README order.
COMMAND_MODULES: tuple[str, ...] = (
    "loadtest.mock.command",
    "loadtest.locust.command",
    "loadtest.audio.command",
    "loadtest.report.command",
    "loadtest.preflight.command",
    "loadtest.workload.command",
)

for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
