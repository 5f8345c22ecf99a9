"""``rtload run``: a load test through Locust (headless), with the embedded mock when asked.

This module imports no Locust and no gevent: Locust runs in child processes (a standalone process,
or a master plus ``--workers N`` local workers on loopback), started as
``python -m locust -f loadtest/locustfile.py --headless ...``. See :mod:`loadtest.locust.launcher`.
"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        ctx: typer.Context,
        target: str = typer.Option("mock", help="mock (the embedded mock server) or the service URL."),
        provider: str = typer.Option(
            "",
            help="openai | azure | voicelive (Azure Voice Live) | gateway (default: from the URL; a Voice Live "
            "path means voicelive, another Azure host azure).",
        ),
        dialect: str = typer.Option("ga", help="ga | preview (Voice Live has its own: leave it out)"),
        deployment: str = typer.Option(
            "",
            help="Model (OpenAI, Voice Live) or deployment (Azure): fills a URL that names none; default: the "
            "URL's, or gpt-realtime on a bare host.",
        ),
        api_key_env: str = typer.Option(
            "",
            help="NAME of the variable holding the API key (default OPENAI_API_KEY / AZURE_OPENAI_API_KEY).",
        ),
        auth: str = typer.Option("auto", help="auto | bearer | api-key | entra"),
        api_version: str = typer.Option("", help="Azure preview or Voice Live api-version."),
        query: list[str] = typer.Option(
            [], "--query", help="Voice Live URL query parameter name=value (agent-name, agent-project-name, profile)."
        ),
        scenario: str = typer.Option(
            "single_turn", help="Built-in scenario name (rtload scenarios list) or a scenario TOML file."
        ),
        session_file: str = typer.Option("", help="The session object (JSON) your agent sends in session.update."),
        no_check: bool = typer.Option(False, "--no-check", help="Skip preflight's static checks of the session file."),
        fixture: str = typer.Option("", help="Audio fixture(s) to use instead of the scenario's (comma-separated)."),
        modalities: str = typer.Option(
            "", help="Requested output: audio | text (default: the session file's, else audio)."
        ),
        audio_format: str = typer.Option(
            "", help="pcm16 | g711_ulaw | g711_alaw | pcm16_16000hz (Voice Live); default: the session file's or pcm16."
        ),
        pacing: str = typer.Option("realtime", help="realtime (speaking pace) | fast"),
        transport: str = typer.Option(
            "websocket",
            help="websocket | webrtc (SDP to /realtime/calls, events on the oai-events data channel, Opus audio) | "
            "both (users alternate between the two by user id: an A/B in one run).",
        ),
        users: int = typer.Option(4, "--users", "-u", help="Users (concurrent sessions); the top of a step shape."),
        spawn_rate: float = typer.Option(2.0, "--spawn-rate", "-r", help="Users started per second."),
        duration: str = typer.Option("1m", "--duration", "-t", help="Run time, e.g. 90s, 5m, 2h ('' = shape decides)."),
        shape: str = typer.Option("constant", help="constant | step | soak | spike"),
        step_users: int = typer.Option(0, help="Users added per step (step shape; 0 = users/4)."),
        step_duration: str = typer.Option("30s", help="How long each step is held."),
        start_users: int = typer.Option(0, help="Users of the first step (0 = step users)."),
        spike_users: int = typer.Option(0, help="Users during the spike (0 = 3 x users)."),
        spike_at: str = typer.Option("", help="When the spike starts (default: a third of the duration)."),
        spike_duration: str = typer.Option("30s", help="How long the spike lasts."),
        session_lifetime: str = typer.Option("", help="Recycle each session at this age (soak), e.g. 10m."),
        reconnect_max: str = typer.Option("30s", help="Cap of the reconnect backoff (retry-after is honoured)."),
        deadline: str = typer.Option("30s", help="Time a response may take before it counts as a timeout."),
        stall_ms: float = typer.Option(1500.0, help="Audio gap (ms) that counts as a stall."),
        keep_audio: str = typer.Option(
            "failed",
            help="Keep the audio a caller heard, as WAVs beside the traces: none | failed (every response that "
            "did not complete and had audio) | sample (also 5% of completed ones).",
        ),
        workers: int = typer.Option(0, help="Local worker processes (0 = one standalone process)."),
        master: bool = typer.Option(False, "--master", help="Run as the master of a distributed run."),
        expect_workers: int = typer.Option(0, help="With --master: workers to wait for (default --workers or 1)."),
        worker: bool = typer.Option(False, "--worker", help="Run as a worker of a distributed run."),
        master_host: str = typer.Option("127.0.0.1", help="With --worker: the master's address."),
        master_port: int = typer.Option(0, help="Master port (default: a free port locally, 5557 across machines)."),
        out: str = typer.Option("reports", help="Folder that receives the run directory."),
        run_id: str = typer.Option("", help="Run id (default: time-based)."),
        mock_profile: str = typer.Option("healthy", help="Mock profile when --target mock (healthy, flaky, ...)."),
        mock_set: list[str] = typer.Option([], "--mock-set", help="Mock profile override key=value (repeatable)."),
        fail_on: str = typer.Option(
            "",
            help='Thresholds that fail the run, e.g. "failed>1%,ttfa_p95>1500ms"; add @95% to a share or a percentile '
            '("failed>1%@95%") to fail only when its whole 95% confidence interval is past the line.',
        ),
        progress_every: float = typer.Option(5.0, help="Seconds between progress lines (0 = none)."),
        summary: bool = typer.Option(True, help="Print the summary at the end."),
        html: bool = typer.Option(True, help="Also write Locust's HTML and CSV reports into the run directory."),
        proxy: str = typer.Option(
            "",
            help="HTTP proxy for the connections (CONNECT), e.g. http://user:password@proxy:3128 (default: "
            "HTTPS_PROXY / HTTP_PROXY, minus the hosts in NO_PROXY; 'none' = direct). Its credentials are redacted.",
        ),
        ca_bundle: str = typer.Option(
            "", help="PEM file of CA certificates to trust besides the system's (default: SSL_CERT_FILE if set)."
        ),
        allow_worker_loss: bool = typer.Option(
            False, help="Exit 0 even when a worker was lost mid-run (run.json and the summary still say so)."
        ),
        config: str = typer.Option("", "--config", help="A run config TOML file: any of these options by name."),
        print_config: bool = typer.Option(
            False, "--print-config", help="Print the resolved configuration as TOML (a run config file) and exit."
        ),
    ) -> None:
        """Run a load test (Locust, headless) and write the run directory."""
        from loadtest.locust.launcher import RunRequest, launch

        values = {k: v for k, v in locals().items() if k in RunRequest.__dataclass_fields__}
        from loadtest.workload.run_config import redacted, to_toml

        resolved = _resolve(ctx, values, config)
        config_toml = to_toml(redacted(resolved))  # the run directory keeps it (no secret)
        if print_config:
            typer.echo(config_toml, nl=False)
            raise typer.Exit(0)
        raise typer.Exit(launch(RunRequest(**resolved), config_toml))


def _resolve(ctx: typer.Context, values: dict, config: str) -> dict:
    """Defaults < the --config file < the options given on the command line (exit 2 on a bad file)."""
    import sys

    from loadtest.workload.errors import WorkloadError
    from loadtest.workload.run_config import load_run_config, resolve

    def typed(name: str) -> bool:  # typer vendors its own click: compare the source by name
        source = ctx.get_parameter_source(name)
        return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")

    given = {k: v for k, v in values.items() if typed(k)}
    try:
        from_file = load_run_config(config) if config else {}
    except WorkloadError as exc:
        sys.stderr.write(f"rtload: {exc}\n")
        raise typer.Exit(2) from None
    return resolve(values, from_file, given)
