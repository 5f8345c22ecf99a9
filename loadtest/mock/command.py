"""`rtload mock`: run the mock Realtime server."""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("mock")(mock)


def mock(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8765, "--port", help="Port (0 picks a free one; the ready line says which)."),
    profile: str = typer.Option("healthy", "--profile", help="healthy | flaky | overloaded | FILE.toml"),
    seed: int = typer.Option(0, "--seed", help="Seed of every random draw (faults, answers, ids)."),
    truth: Path | None = typer.Option(None, "--truth", help="Write the ground-truth log (JSONL) here."),
    api_key: str = typer.Option("mock-key", "--api-key", help="The API key accepted (unless the profile lists keys)."),
    exit_with_parent: bool = typer.Option(
        False, "--exit-with-parent", hidden=True, help="Stop when stdin closes (start_mock uses it)."
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="Override one profile knob: --set faults.stall.rate=1.0 (repeatable)."
    ),
) -> None:
    """Run the mock Realtime server (OpenAI and Azure URL shapes, GA and preview dialects, faults)."""
    from loadtest.mock.profile import ProfileError, load_profile

    try:
        merged = load_profile(profile, list(set_))
    except ProfileError as exc:
        print(f"rtload mock: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    if not 0 <= port <= 65535:
        print(f"rtload mock: --port {port} is not a TCP port (0-65535)", file=sys.stderr)
        raise typer.Exit(2)
    from loadtest.mock.server import run

    try:
        run(
            merged,
            host=host,
            port=port,
            seed=seed,
            api_key=api_key,
            truth_path=truth,
            exit_with_parent=exit_with_parent,
        )
    except OSError as exc:
        print(f"rtload mock: cannot listen on {host}:{port} ({exc.strerror or exc})", file=sys.stderr)
        raise typer.Exit(2) from None
