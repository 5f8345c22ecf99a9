"""`rtload preflight`: static checks, a live smoke session and a dialect probe; exit 0 only when all pass."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

HELP = (
    "Check a Realtime configuration before a load test: URL shape vs provider and dialect, headers, auth, "
    "retired models, audio settings, the session shape, and a live smoke session with an event timeline."
)


def preflight(
    target: str = typer.Option(..., "--target", help="The URL your client uses (or a base URL), or 'mock'."),
    provider: str | None = typer.Option(
        None,
        help="openai | azure | voicelive | gateway (inferred from the URL: a /voice-live/realtime path means "
        "voicelive, another Azure host azure; any host not OpenAI's or Azure's is treated as a gateway).",
    ),
    dialect: str | None = typer.Option(None, help="ga | preview (inferred from the URL shape)."),
    deployment: str | None = typer.Option(
        None, help="Model (OpenAI) or deployment (Azure); fills a URL that names none."
    ),
    api_key_env: str | None = typer.Option(
        None,
        help="NAME of the variable holding the key (default OPENAI_API_KEY / AZURE_OPENAI_API_KEY / "
        "AZURE_VOICELIVE_API_KEY).",
    ),
    auth: str = typer.Option("auto", help="auto | bearer | api-key | entra"),
    header: list[str] = typer.Option([], "--header", help="Extra header 'Name: value' (repeatable)."),
    audio_format: str = typer.Option("pcm16", help="pcm16 | g711_ulaw | g711_alaw"),
    sample_rate: int | None = typer.Option(None, help="Sample rate your client sends (Hz)."),
    channels: int | None = typer.Option(None, help="Channels your client sends."),
    sample_width: int | None = typer.Option(None, help="Bits per sample your client sends."),
    audio_file: Path | None = typer.Option(None, help="An audio file your client streams: its format is checked."),
    session_file: Path | None = typer.Option(None, help="Your client's session.update event as JSON."),
    client_source: list[Path] = typer.Option([], "--client-source", help="Your client's code: stale event names."),
    live: bool = typer.Option(True, "--live/--no-live", help="Run the live smoke session."),
    probe: bool = typer.Option(True, "--probe/--no-probe", help="If the dialect fails, try the other one."),
    fixture: str | None = typer.Option(None, help="Fixture for the audio turn (default: the shortest utterance)."),
    timeout: float = typer.Option(20.0, help="Seconds the live smoke session may take."),
    strict: bool = typer.Option(False, help="Warnings fail too."),
    output_format: str = typer.Option("table", "--format", help="table | json"),
    proxy: str = typer.Option(
        "",
        help="HTTP proxy (CONNECT), e.g. http://user:password@proxy:3128 (default: HTTPS_PROXY / HTTP_PROXY, "
        "minus NO_PROXY; 'none' = direct). Its credentials are redacted.",
    ),
    ca_bundle: str = typer.Option(
        "", help="PEM file of CA certificates to trust besides the system's (default: SSL_CERT_FILE if set)."
    ),
) -> None:
    """Catch configuration and migration mistakes before a load test."""
    from loadtest.preflight import render
    from loadtest.preflight.checks import run_static
    from loadtest.preflight.config import PreflightConfig
    from loadtest.preflight.findings import failed
    from loadtest.protocol.targets import redact_text, secrets_of

    if output_format not in ("table", "json"):
        raise typer.BadParameter("use table or json", param_hint="--format")
    if dialect is not None and dialect not in ("ga", "preview"):
        raise typer.BadParameter(f"{dialect!r}: use ga or preview", param_hint="--dialect")
    if provider is not None and provider not in ("openai", "azure", "voicelive", "gateway"):
        raise typer.BadParameter(f"{provider!r}: use openai, azure, voicelive or gateway", param_hint="--provider")
    if auth not in ("auto", "bearer", "api-key", "entra"):
        raise typer.BadParameter(f"{auth!r}: use auto, bearer, api-key or entra", param_hint="--auth")
    headers: dict[str, str] = {}
    for item in header:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{item!r}: write it as 'Name: value'", param_hint="--header")
        headers[name.strip()] = value.strip()

    from loadtest.protocol.network import NetworkError, network_path

    try:
        network = network_path(proxy, ca_bundle)
    except NetworkError as exc:
        typer.echo(f"rtload preflight: {exc}", err=True)
        raise typer.Exit(2) from None

    mock = None
    api_key: str | None = None
    if target == "mock":
        from loadtest.mock.process import start_mock

        mock = start_mock(profile="healthy")
        target = mock.url
        api_key = "mock-key"
        provider = provider or "openai"
        deployment = deployment or "gpt-realtime"
        if provider == "voicelive":  # the mock's Voice Live endpoint, as a full URL the checks read
            target = f"{mock.url}/voice-live/realtime?api-version=2026-04-10&model={deployment}"
    try:
        cfg = PreflightConfig(
            target=target,
            provider=provider,
            dialect=dialect,
            deployment=deployment,
            api_key_env=api_key_env,
            auth=auth,
            headers=headers,
            audio_format=audio_format,
            sample_rate=sample_rate,
            channels=channels,
            sample_width_bits=sample_width,
            audio_file=str(audio_file) if audio_file else None,
            session_file=str(session_file) if session_file else None,
            client_source=[str(p) for p in client_source],
            api_key_literal=api_key,
            network=network,
        )
        findings = run_static(cfg)
        timeline_text: list[str] = []
        timeline_rows: list[dict] = []
        probe_result: dict | None = None
        if live and not any(f.check == "url.invalid" for f in findings):
            from loadtest.preflight.smoke import run_live

            live_result = run_live(cfg, fixture=fixture, timeout=timeout, probe=probe)
            findings.extend(live_result.findings)
            timeline_text = live_result.timeline_text
            timeline_rows = live_result.timeline_rows
            probe_result = live_result.probe
        bad = failed(findings, strict=strict)
        verdict = "preflight: FAILED (fix the FAIL lines above)" if bad else "preflight: passed"
        if output_format == "json":
            text = render.as_json(findings, timeline_rows, not bad, probe_result)
        else:
            text = render.table(findings, timeline_text, verdict)
        # whatever a finding quotes (a URL, a header, a server's message), no secret is printed
        typer.echo(redact_text(text, [*secrets_of(target, headers, (cfg.api_key,)), *network.secrets()]))
        sys.stdout.flush()
        raise typer.Exit(1 if bad else 0)
    finally:
        if mock is not None:
            mock.stop()


def register(app: typer.Typer) -> None:
    app.command("preflight", help=HELP)(preflight)
