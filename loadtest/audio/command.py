"""`rtload fixtures`: list, import, check and build the speech fixtures."""

from __future__ import annotations

from pathlib import Path

import typer

DIR_HELP = "Fixture directory (default: $RTLOAD_FIXTURES or the repository's audio_fixtures/)."


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"rtload fixtures: {message}", err=True)
    raise typer.Exit(code)


def _manifest(directory: Path | None):  # -> Manifest
    from loadtest.audio.fixtures import FixtureError, Manifest

    try:
        return Manifest.load(directory)
    except FixtureError as exc:
        _fail(str(exc))


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Speech fixtures: list, import, check, build.", no_args_is_help=True)

    @group.command("list")
    def list_(directory: Path | None = typer.Option(None, "--dir", help=DIR_HELP)) -> None:
        """Show the manifest as a table, then the conversations."""
        manifest = _manifest(directory)
        rows = [("NAME", "KIND", "SECONDS", "LANG", "LICENCE", "TRANSCRIPT")]
        for f in manifest.fixtures:
            rows.append((f.name, f.kind, f"{f.duration_s:.2f}", f.language, f.licence, _clip(f.transcript, 60)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        for row in rows:
            cells = [c.rjust(w) if i == 2 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=False))]
            typer.echo("  ".join([*cells, row[-1]]).rstrip())
        total = sum(f.duration_s for f in manifest.fixtures)
        typer.echo(f"\n{len(manifest.fixtures)} fixtures, {total:.1f} s of audio in {manifest.root}")
        if manifest.conversations:
            typer.echo("\nConversations:")
            for name, turns in manifest.conversations.items():
                typer.echo(f"  {name}: {' -> '.join(turns)}")

    @group.command("import")
    def import_(
        files: list[Path] = typer.Argument(..., help="WAV/FLAC/OGG files, any rate, channels and sample width."),
        name: str | None = typer.Option(None, "--name", help="Fixture name (one file only; default: file stem)."),
        transcript: str = typer.Option("", "--transcript", help="What is said (one file only)."),
        language: str = typer.Option("en-US", "--language", help="BCP 47 language tag."),
        licence: str = typer.Option("unknown", "--licence", help="Licence of the recording."),
        replace: bool = typer.Option(False, "--replace", help="Replace a fixture with the same name."),
        directory: Path | None = typer.Option(None, "--dir", help=DIR_HELP),
    ) -> None:
        """Convert audio files to 24 kHz PCM16 mono fixtures and add them to the manifest."""
        from loadtest.audio.fixtures import FixtureError, Manifest, fixtures_dir, import_file

        if len(files) > 1 and (name or transcript):
            _fail("--name and --transcript apply to a single FILE; import files one at a time to set them")
        root = directory or fixtures_dir()
        try:
            manifest = Manifest.load(root)
        except FixtureError:
            manifest = Manifest.empty(root)
        try:
            for src in files:
                fx = import_file(
                    src, manifest, name=name, transcript=transcript, language=language, licence=licence, replace=replace
                )
                typer.echo(f"imported {src} -> {fx.path} ({fx.duration_s:.2f} s, 24 kHz PCM16 mono)")
        except FixtureError as exc:
            manifest.save()  # keep the files imported before the bad one
            _fail(str(exc))
        manifest.save()

    @group.command("check")
    def check(directory: Path | None = typer.Option(None, "--dir", help=DIR_HELP)) -> None:
        """Validate every file against the manifest (rate, width, channels, duration, readable)."""
        from loadtest.audio.fixtures import check_manifest

        manifest = _manifest(directory)
        problems = check_manifest(manifest)
        for line in problems:
            typer.echo(f"PROBLEM {line}", err=True)
        if problems:
            _fail(f"{len(problems)} problem(s) in {manifest.root}", code=1)
        typer.echo(f"ok: {len(manifest.fixtures)} fixtures, {len(manifest.conversations)} conversations")

    @group.command("build")
    def build_(
        only: list[str] = typer.Option([], "--only", help="Rebuild just this fixture (repeatable)."),
        directory: Path | None = typer.Option(None, "--dir", help=DIR_HELP),
    ) -> None:
        """Rebuild the shipped fixtures from espeak-ng and alsa-utils (needs those Debian packages)."""
        from loadtest.audio.build import build
        from loadtest.audio.fixtures import FixtureError

        try:
            manifest = build(directory, only or None, log=typer.echo)
        except FixtureError as exc:
            _fail(str(exc))
        typer.echo(f"wrote {manifest.root / 'manifest.json'} ({len(manifest.fixtures)} fixtures)")

    app.add_typer(group, name="fixtures")
