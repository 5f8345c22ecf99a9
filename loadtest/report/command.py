"""`rtload report ...`: the report commands. Heavy imports (pandas, matplotlib) happen inside."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

import typer

FORMAT_HELP = "Output format: table (terminal), md (Markdown) or json."


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _check_format(fmt: str) -> str:
    from loadtest.report.render import FORMATS

    if fmt not in FORMATS:
        raise typer.BadParameter(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}", param_hint="--format")
    return fmt


def _system_pool() -> None:
    import pyarrow as pa

    # malloc, not Arrow's own pool: frames are built column by column, and memory Arrow frees
    # must be reusable by numpy (mimalloc keeps it), or the peak is the frame twice
    pa.set_memory_pool(pa.system_memory_pool())


# compact=True (strings of few values as categoricals) where it measured better at 10M rows:
# capacity, limits, soak and html (~30% less peak memory); summary and compare convert the
# strings back (astype(str)), which made the summary's build 2.6x slower, so they read str.
# "pandas": the reports read their rows into pandas frames as before they aggregated in DuckDB
# (bench/bench_report.py measures both paths on the same data with it; not for everyday use)
ENGINE_ENV = "RTLOAD_REPORT_ENGINE"


def _pandas_engine() -> bool:
    return os.environ.get(ENGINE_ENV) == "pandas"


def _load(run: Path, no_cache: bool = False, **kwargs: Any) -> Any:
    from loadtest.records.reader import RunDirError, read_run

    if _pandas_engine() and "scan_responses" in kwargs:
        wanted = kwargs.pop("scan_responses")
        kwargs["response_columns"] = list(dict.fromkeys([*wanted, *(kwargs.get("response_columns") or [])]))
    _system_pool()
    cache = not no_cache and not os.environ.get("RTLOAD_NO_CACHE")
    try:
        return read_run(run, cache=cache, **kwargs)
    except RunDirError as exc:
        _fail(str(exc))


def _optional(run: Path, no_cache: bool = False, only: Any = None) -> list[str]:
    """The columns of the optional sections ``run`` has (function calls, input transcription, a
    transport other than WebSocket), so a run without them reads nothing more; ``only`` keeps some."""
    from loadtest.records.reader import RunDirError, check_run_dir
    from loadtest.report.sections import optional_columns

    try:
        check_run_dir(run)
    except RunDirError as exc:
        _fail(str(exc))
    _system_pool()
    cache = not no_cache and not os.environ.get("RTLOAD_NO_CACHE")
    return [c for c in optional_columns(run, cache=cache) if only is None or c in only]


def _emit(report: Any, fmt: str) -> None:
    from loadtest.report.render import write

    if fmt != "md":
        for warning in report.warnings:
            typer.echo(f"warning: {warning}", err=True)
    write(report, fmt, sys.stdout)


CONFIDENCE = typer.Option(
    "95%",
    "--confidence",
    help="Confidence level of the SLO verdicts' intervals (Wilson for rates, order statistics for percentiles).",
)


PRICES = typer.Option(
    None,
    "--prices",
    help="A price table (TOML, per 1M tokens per model) instead of the shipped, dated list prices.",
    show_default=False,
)


def _prices(path: Path | None) -> Any:
    from loadtest.report.cost import PriceError, load_prices

    try:
        return load_prices(path)
    except PriceError as exc:
        _fail(f"--prices: {exc}")


def _confidence(text: str) -> float:
    from loadtest.report.confidence import parse_confidence

    try:
        return parse_confidence(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--confidence") from None


RUN_ARG = typer.Argument(..., help="The run directory (reports/<run_id>).", show_default=False)
NO_CACHE = typer.Option(
    False, "--no-cache", help="Do not read or write the caches (Parquet beside large JSONL files, kept report outputs)."
)


def summary(
    run: Path = RUN_ARG,
    fmt: str = typer.Option("table", "--format", "-f", help=FORMAT_HELP),
    write: bool = typer.Option(False, "--write", help="Also write summary.md and summary.json into the run directory."),
    prices: Path | None = PRICES,
    no_cache: bool = NO_CACHE,
) -> None:
    """Outcomes with reasons, latency percentiles, audio, tokens, cost, per target/scenario, harness health."""
    _check_format(fmt)
    from loadtest.report.render import render
    from loadtest.report.summary import RESPONSE_COLUMNS, SESSION_COLUMNS, build_summary

    table = _prices(prices)
    # the responses aggregated in DuckDB where they lie (a day-long run fits); the sessions in pandas;
    # the optional sections (function calls, transcription) read their own columns, only when present
    extra = _optional(run, no_cache)
    data = _load(
        run, no_cache, scan_responses=[*RESPONSE_COLUMNS, "transport"],
        response_columns=[*RESPONSE_COLUMNS, *extra] if extra else None, session_columns=SESSION_COLUMNS,
    )  # fmt: skip
    report = build_summary(data, table)
    _emit(report, fmt)
    if write:
        try:
            (data.path / "summary.md").write_text(render(report, "md"), encoding="utf-8")
            (data.path / "summary.json").write_text(render(report, "json"), encoding="utf-8")
        except OSError as exc:
            _fail(f"cannot write the summary into {data.path}: {exc.strerror}")
        typer.echo(f"wrote {data.path / 'summary.md'} and {data.path / 'summary.json'}", err=True)


def limits(
    run: Path = RUN_ARG,
    fmt: str = typer.Option("table", "--format", "-f", help=FORMAT_HELP),
    no_cache: bool = NO_CACHE,
) -> None:
    """Rate limits (remaining, time at zero, 429s, tokens per minute vs limit) and session limits."""
    _check_format(fmt)
    from loadtest.report.limits import RESPONSE_COLUMNS, build_limits

    data = _load(run, no_cache, scan_responses=RESPONSE_COLUMNS, compact=True)  # responses in DuckDB
    _emit(build_limits(data), fmt)


def capacity(
    run: Path = RUN_ARG,
    slo: str = typer.Option(
        "failed<1%,ttfa_p95<1200ms",
        "--slo",
        help="Comma-separated limits, e.g. 'failed<1%,ttfa_p95<1200ms'. Rates (%): completed failed truncated "
        "throttled cancelled non_completed; latencies (ms or s): handshake/created/ttfa/ttft/done "
        "_p50/_p90/_p95/_p99/_max.",
    ),
    buckets: int = typer.Option(
        10, "--buckets", min=2, max=100, help="Concurrency buckets when the run has no load steps."
    ),
    confidence: str = CONFIDENCE,
    fmt: str = typer.Option("table", "--format", "-f", help=FORMAT_HELP),
    no_cache: bool = NO_CACHE,
) -> None:
    """Per load step: users, responses/min, outcome rates, latency; the highest load that met the SLO and the knee."""
    _check_format(fmt)
    from loadtest.report.capacity import RESPONSE_COLUMNS, SESSION_COLUMNS, STEP_LATENCIES, build_capacity
    from loadtest.report.slo import SloError, parse_slo

    level = _confidence(confidence)
    try:
        clauses = parse_slo(slo)
    except SloError as exc:
        raise typer.BadParameter(str(exc), param_hint="--slo") from None
    # the responses in DuckDB, read a load step at a time (capacity.capacity_data); sessions and
    # rate limits (the projection to each limit is part of the capacity report) in pandas
    data = _load(
        run,
        no_cache,
        scan_responses=[*RESPONSE_COLUMNS, *_optional(run, no_cache, STEP_LATENCIES.values())],
        session_columns=SESSION_COLUMNS,
        compact=True,
    )
    _emit(build_capacity(data, clauses, slo, buckets=buckets, confidence=level), fmt)


def compare(
    run_a: Path = typer.Argument(..., help="The first run directory (the baseline).", show_default=False),
    run_b: Path | None = typer.Argument(
        None, help="The second run directory (leave out with --by).", show_default=False
    ),
    by: str = typer.Option(
        "", "--by", help="Compare the two halves of ONE run by this column instead: transport (--transport both)."
    ),
    slo: str = typer.Option("", "--slo", help="Also judge each run against this SLO (capacity's grammar)."),
    confidence: str = CONFIDENCE,
    prices: Path | None = PRICES,
    fmt: str = typer.Option("table", "--format", "-f", help=FORMAT_HELP),
    no_cache: bool = NO_CACHE,
) -> None:
    """Two runs side by side: outcome rates with Fisher's exact test, latency shifts with CIs and Mann-Whitney."""
    _check_format(fmt)
    from loadtest.report.compare import TARGET_COLUMNS, SplitError, build_compare, split_by
    from loadtest.report.slo import SloError, parse_slo
    from loadtest.report.summary import RESPONSE_COLUMNS, SESSION_COLUMNS

    level = _confidence(confidence)
    table = _prices(prices)
    try:
        clauses = parse_slo(slo) if slo.strip() else None
    except SloError as exc:
        raise typer.BadParameter(str(exc), param_hint="--slo") from None

    columns = [*RESPONSE_COLUMNS, *(c for c in TARGET_COLUMNS if c not in RESPONSE_COLUMNS)]
    # not session_id: nothing here reads it, and at 2.5M sessions a run its strings were ~175 MB a side
    session_columns = [*(c for c in SESSION_COLUMNS if c != "session_id"), "transport"]

    def kw_of(run: Path) -> dict[str, Any]:
        # each side aggregated in DuckDB; the rows in pandas only for what needs them: the SLO
        # verdicts (with --slo), the optional sections (function calls, transcription) and --by
        extra = _optional(run, no_cache)
        frame = [*RESPONSE_COLUMNS, *extra] if (clauses or extra or by) else None
        if by:
            frame = list(dict.fromkeys([*columns, *extra]))
        return {
            "scan_responses": columns,
            "response_columns": frame,
            "session_columns": session_columns,
            "with_rate_limits": False,
        }

    if by:
        if run_b is not None:
            raise typer.BadParameter("--by compares the halves of one run: give one run directory", param_hint="--by")
        try:  # (split in pandas: each half's aggregates from its rows, not from the whole run's scan)
            whole = _load(run_a, no_cache, **kw_of(run_a))
            a, b = split_by(dataclasses.replace(whole, scan=None), by)
        except SplitError as exc:
            raise typer.BadParameter(str(exc), param_hint="--by") from None
    else:
        if run_b is None:
            raise typer.BadParameter("give two run directories (or one and --by transport)", param_hint="RUN_B")
        a = _load(run_a, no_cache, **kw_of(run_a))
        b = _load(run_b, no_cache, **kw_of(run_b))
    _emit(build_compare(a, b, clauses, level, table), fmt)


def failures(
    run: Path = RUN_ARG,
    bundle: Path | None = typer.Option(
        None, "--bundle", help="Write a zip for a support case (rows, traces, recordings, run.json)."
    ),
    fmt: str = typer.Option("table", "--format", "-f", help=FORMAT_HELP),
    no_cache: bool = NO_CACHE,
) -> None:
    """Every non-completed response with its ids, error and request ids; --bundle zips the evidence."""
    _check_format(fmt)
    from loadtest.records.schema import ResponseRecord, columns
    from loadtest.report.failures import build_failures, failed_sessions_filter, select_failures, write_bundle

    # only the rows the listing and the bundle hold (every column of them), selected in DuckDB, so a huge run fits
    if _pandas_engine():
        from loadtest.report.failures import failed_responses

        where = {"response_where": failed_responses(), "session_where": failed_sessions_filter()}
        data = _load(run, no_cache, with_rate_limits=False, with_health=False, **where)
    else:
        data = _load(
            run, no_cache, scan_responses=columns(ResponseRecord), with_rate_limits=False, with_health=False,
            session_where=failed_sessions_filter(),
        )  # fmt: skip
        select_failures(data)
    report = build_failures(data)
    if bundle is None:  # the listing has its rows: the frame's memory back before it is printed
        data.responses = data.responses.iloc[0:0]
    _emit(report, fmt)
    if bundle is not None:
        try:
            summary_line = write_bundle(data, bundle)
        except OSError as exc:
            _fail(f"cannot write the bundle {bundle}: {exc.strerror or exc}")
        typer.echo(summary_line, err=True)


def html(
    run: Path = RUN_ARG,
    output: Path | None = typer.Option(None, "-o", "--output", help="The HTML file (default: <run>/report.html)."),
    slo: str = typer.Option("failed<1%,ttfa_p95<1200ms", "--slo", help="The SLO for the capacity section."),
    confidence: str = CONFIDENCE,
    prices: Path | None = PRICES,
    no_cache: bool = NO_CACHE,
) -> None:
    """One self-contained HTML report (inline SVG plots, no network needed to view it)."""
    from loadtest.report.html import FRAME_COLUMNS, RESPONSE_COLUMNS, SESSION_COLUMNS, write_html
    from loadtest.report.slo import SloError, parse_slo

    level = _confidence(confidence)
    table = _prices(prices)
    try:
        clauses = parse_slo(slo)
    except SloError as exc:
        raise typer.BadParameter(str(exc), param_hint="--slo") from None
    extra = _optional(run, no_cache)
    # no response frame unless the run has optional sections (they read theirs): a day-long run's
    # page aggregates in DuckDB, and each plot fetches only its own columns
    frame = list(dict.fromkeys([*FRAME_COLUMNS, *extra])) if extra else None
    data = _load(
        run, no_cache, scan_responses=RESPONSE_COLUMNS, response_columns=frame, session_columns=SESSION_COLUMNS,
        compact=True,
    )  # fmt: skip
    for warning in data.warnings:
        typer.echo(f"warning: {warning}", err=True)
    target = output if output is not None else data.path / "report.html"
    try:
        write_html(data, target, clauses, slo, confidence=level, prices=table)
    except OSError as exc:
        _fail(f"cannot write {target}: {exc.strerror or exc}")
    typer.echo(f"wrote {target}", err=True)


def soak(
    run: Path = RUN_ARG,
    window: str = typer.Option("5m", "--window", "-w", help="Window length: 30s, 5m, 1h (a bare number is minutes)."),
    fmt: str = typer.Option("table", "--format", "-f", help=FORMAT_HELP),
    no_cache: bool = NO_CACHE,
) -> None:
    """Time windows over a long run, with drift detection on failure rate and latency."""
    _check_format(fmt)
    from loadtest.report.soak import RESPONSE_COLUMNS, build_soak, parse_window

    try:
        seconds = parse_window(window)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--window") from None
    data = _load(run, no_cache, scan_responses=RESPONSE_COLUMNS, with_rate_limits=False)
    _emit(build_soak(data, seconds), fmt)


def register(app: typer.Typer) -> None:
    report_app = typer.Typer(
        name="report",
        help="Reports on a run directory: summary, limits, capacity, compare, failures, html, soak.",
        no_args_is_help=True,
    )
    from loadtest.report.memo import memoized, memoized_page

    report_app.command("summary")(memoized("summary", summary))
    report_app.command("limits")(memoized("limits", limits))
    report_app.command("capacity")(memoized("capacity", capacity))
    report_app.command("compare")(memoized("compare", compare))
    report_app.command("failures")(memoized("failures", failures))
    report_app.command("html")(memoized_page("html", html))  # the page is kept as a file
    report_app.command("soak")(memoized("soak", soak))
    report_app.command("windows", hidden=True)(memoized("soak", soak))
    app.add_typer(report_app, name="report")
