"""``rtload scenarios list|show NAME``: the built-in scenarios, shipped as scenario files to copy."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="The built-in scenarios (scenario TOML files to copy and edit).", no_args_is_help=True)

    @group.command("list")
    def list_() -> None:
        """Each built-in scenario: its turns and what it does."""
        from loadtest.workload.scenario_file import builtin_names, load_mix

        rows = []
        for name in builtin_names():
            scenario = load_mix(name).scenarios[0]
            n = len(scenario.turns)
            triggers = ", ".join(dict.fromkeys(t.trigger for t in scenario.turns))
            kinds = f"{n} turn{'s' if n > 1 else ''} ({triggers}){', repeated' if scenario.repeat else ''}"
            rows.append((name, kinds, scenario.description))
        width = max(len(r[0]) for r in rows)
        turns = max(len(r[1]) for r in rows)
        for name, kinds, description in rows:
            typer.echo(f"{name:<{width}}  {kinds:<{turns}}  {description}".rstrip())
        typer.echo("\nrtload scenarios show NAME > my.toml, edit it, then: rtload run --scenario my.toml")

    @group.command("show")
    def show(name: str = typer.Argument(..., help="A built-in scenario name.")) -> None:
        """Print a built-in scenario's TOML file."""
        from loadtest.workload.errors import WorkloadError
        from loadtest.workload.scenario_file import builtin_text

        try:
            typer.echo(builtin_text(name), nl=False)
        except WorkloadError as exc:
            typer.echo(f"rtload scenarios: {exc}", err=True)
            raise typer.Exit(2) from None

    app.add_typer(group, name="scenarios")
