"""`rtload`: the command line. Each command lives in its package's ``command`` module.

Command modules import their heavy dependencies (locust, pandas, matplotlib, the mock's
asyncio stack) inside the command body, so ``rtload --help`` stays fast and one command's
imports (gevent's monkey-patching for ``run``) never leak into another.
"""

from __future__ import annotations

import importlib

import typer

from loadtest import __version__

app = typer.Typer(
    name="rtload",
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
