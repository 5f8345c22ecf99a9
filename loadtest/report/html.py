"""`rtload report html`: one self-contained HTML file (inline CSS and SVG, no scripts, no network)."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path

from loadtest import __version__
from loadtest.records.reader import RunData
from loadtest.report import plots, scanned
from loadtest.report.capacity import RESPONSE_COLUMNS as CAPACITY_COLUMNS
from loadtest.report.capacity import SESSION_COLUMNS as CAPACITY_SESSIONS
from loadtest.report.capacity import build_capacity
from loadtest.report.confidence import DEFAULT_CONFIDENCE
from loadtest.report.cost import PriceTable, money
from loadtest.report.evidence import evidence_html
from loadtest.report.limits import RESPONSE_COLUMNS as LIMITS_COLUMNS
from loadtest.report.limits import SESSION_COLUMNS as LIMITS_SESSIONS
from loadtest.report.limits import build_limits
from loadtest.report.render import Report, Table, numeric_column
from loadtest.report.slo import Clause
from loadtest.report.soak import RESPONSE_COLUMNS as SOAK_COLUMNS
from loadtest.report.soak import build_soak
from loadtest.report.stats import time_span
from loadtest.report.summary import RESPONSE_COLUMNS as SUMMARY_COLUMNS
from loadtest.report.summary import SESSION_COLUMNS as SUMMARY_SESSIONS
from loadtest.report.summary import build_summary

# The response columns the page needs (summary, capacity, limits, soak and the plots); a run with
# function calls, input transcription or WebRTC rows adds its sections' (sections.optional_columns).
RESPONSE_COLUMNS = sorted(
    {
        *SUMMARY_COLUMNS,
        *CAPACITY_COLUMNS,
        *LIMITS_COLUMNS,
        *SOAK_COLUMNS,
        "audio_ms",
        "max_delta_gap_ms",
        "longest_underrun_ms",
    }
)

# The session columns the page reads (summary, capacity, limits): not session_id nor url, whose
# strings were most of a day-long run's sessions in memory (2.5 million of them).
SESSION_COLUMNS = sorted(
    {*(c for c in SUMMARY_SESSIONS if c != "session_id"), *CAPACITY_SESSIONS, *LIMITS_SESSIONS, "transport"}
)

# The columns the page read in pandas when the run has optional sections (function calls,
# transcription: their sections and plots read the frame); otherwise every section aggregates in
# DuckDB (read_run(scan_responses=...)), each plot too (scanned.outcome_buckets, latency_buckets, gap_values).
FRAME_COLUMNS = sorted(
    {*CAPACITY_COLUMNS, *LIMITS_COLUMNS, "t_trigger", "t_done", "outcome", "ttfa_ms", "done_ms", "audio_ms",
     "max_delta_gap_ms", "longest_underrun_ms"}
)  # fmt: skip

CSS = """
body { font-family: -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 0;
       color: #222; background: #fafafa; }
header { background: #1f2d3d; color: #fff; padding: 14px 24px; }
header h1 { margin: 0; font-size: 20px; }
header p { margin: 4px 0 0; color: #c9d3de; font-size: 13px; }
main { padding: 16px 24px; }
.kpis { display: flex; gap: 12px; flex-wrap: wrap; margin-bottom: 14px; }
.kpi { background: #fff; border: 1px solid #e3e3e3; border-radius: 6px; padding: 8px 14px; min-width: 120px; }
.kpi b { display: block; font-size: 18px; }
.kpi span { color: #666; font-size: 12px; }
.plots { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 12px; }
.plot { background: #fff; border: 1px solid #e3e3e3; border-radius: 6px; padding: 6px; }
.plot svg { width: 100%; height: auto; display: block; }
section { margin-top: 18px; }
.evidence { margin-top: 12px; } .evidence audio { width: 100%; margin-top: 6px; }
h2 { font-size: 17px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
table { border-collapse: collapse; background: #fff; margin: 8px 0 4px; font-size: 12px; }
th, td { border: 1px solid #e0e0e0; padding: 3px 8px; text-align: right; }
th { background: #f0f3f6; }
td.l, th.l { text-align: left; }
td.bad { color: #b71c1c; font-weight: bold; }
h3 { font-size: 13px; margin: 14px 0 2px; color: #333; }
.note { color: #666; font-size: 12px; margin: 2px 0 10px; }
.warn { background: #fff4e5; border: 1px solid #ffcc80; padding: 6px 12px; border-radius: 6px; font-size: 13px; }
.verdict { font-size: 13px; margin: 4px 0; }
"""


def _cell(text: str, numeric: bool) -> str:
    classes = [] if numeric else ["l"]
    if text == "BROKEN" or text.startswith("broken") or text.startswith("rises"):
        classes.append("bad")
    attr = f' class="{" ".join(classes)}"' if classes else ""
    return f"<td{attr}>{html.escape(text)}</td>"


def table_html(table: Table) -> str:
    numeric = [i > 0 and numeric_column([row[i] for row in table.rows]) for i in range(len(table.columns))]
    head = "".join(
        f"<th{'' if n else ' class=l'}>{html.escape(c)}</th>" for c, n in zip(table.columns, numeric, strict=True)
    )
    body = "".join(
        "<tr>" + "".join(_cell(c, n) for c, n in zip(row, numeric, strict=True)) + "</tr>" for row in table.rows
    )
    if not table.rows:
        body = f'<tr><td class="l" colspan="{len(table.columns)}">(none)</td></tr>'
    note = f'<p class="note">{html.escape(table.note)}</p>' if table.note else ""
    return (
        f"<h3>{html.escape(table.title)}</h3><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"
    )


def report_html(report: Report, title: str) -> str:
    parts = [f"<section><h2>{html.escape(title)}</h2>"]
    parts.extend(f'<p class="verdict">{html.escape(n)}</p>' for n in report.notes)
    parts.extend(table_html(t) for t in report.tables)
    parts.append("</section>")
    return "".join(parts)


def _gaps_plot(data: RunData) -> str:
    if data.scan is None or len(data.responses.columns):
        return plots.audio_gaps(data.responses)
    return plots.audio_gaps(data.responses, scanned.gap_values(data.scan))


def _outcomes_plot(data: RunData, start: float | None) -> str:
    if data.scan is None or len(data.responses.columns) or start is None:
        return plots.outcomes_over_time(data.responses, start)
    return plots.outcomes_over_time(data.responses, start, scanned.outcome_buckets(data.scan, start))


def _latency_plot(data: RunData, start: float | None) -> str:
    if data.scan is None or len(data.responses.columns) or start is None:
        return plots.latency_over_time(data.responses, start)
    return plots.latency_over_time(data.responses, start, scanned.latency_buckets(data.scan, start))


def build_html(
    data: RunData,
    clauses: list[Clause],
    slo_text: str,
    confidence: float = DEFAULT_CONFIDENCE,
    prices: PriceTable | None = None,
) -> str:
    summary = build_summary(data, prices)
    capacity = build_capacity(data, clauses, slo_text, confidence=confidence)
    limits = build_limits(data)
    soak = build_soak(data, 300.0)
    if data.scan is not None:
        start, _ = scanned.time_span(data.run, data.scan, data.sessions)
    else:
        start, _ = time_span(data.run, data.responses, data.sessions)
    cap = capacity.data
    figures = [
        ("outcomes", _outcomes_plot(data, start)),
        ("latency-time", _latency_plot(data, start)),
        ("capacity", plots.capacity_curve(cap)),
        ("latency-step", plots.latency_per_step(cap)),
        ("rate-limits", plots.rate_limits_over_time(data.rate_limits, start)),
        ("audio-gaps", _gaps_plot(data)),
    ]
    s = summary.data
    calls, transcripts = s["function_calls"], s["input_transcription"]  # None: the run has no such section
    if calls is not None:
        figures.append(("tool-round-trip", plots.tool_round_trip_over_time(data.responses, start)))
    if transcripts is not None:
        figures.append(("transcription", plots.transcription_over_time(data.responses, start)))
    o = s["outcomes"]

    def kpi(value: str, label: str) -> str:
        return f'<div class="kpi"><b>{html.escape(value)}</b><span>{html.escape(label)}</span></div>'

    def p(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}%"

    ttfa = s["latency_ms"]["ttfa"]["p95"]
    extra_kpis = []
    if calls is not None:
        rt = calls["latency_ms"]["tool_round_trip"]["p95"]
        extra_kpis.append(kpi("-" if rt is None else f"{rt:.0f} ms", "tool round trip p95"))
    if transcripts is not None:
        wer = transcripts["wer"]["mean"]
        extra_kpis.append(kpi("-" if wer is None else f"{100 * wer:.1f}%", "input transcript WER (mean)"))
    kpis = "".join(
        [
            kpi(str(s["run"]["responses"]), "responses"),
            kpi(p(o["completed"]["rate_pct"]), "completed"),
            kpi(p(o["failed"]["rate_pct"]), "failed"),
            kpi(p(o["truncated"]["rate_pct"]), "truncated"),
            kpi(p(o["throttled"]["rate_pct"]), "throttled"),
            kpi("-" if ttfa is None else f"{ttfa:.0f} ms", "first audio p95"),
            kpi(cap["max_ok"]["group"] if cap["max_ok"] else "-", "highest load that met the SLO"),
            kpi(cap["knee"]["group"] if cap["knee"] else "-", "knee (first broken)"),
            kpi(
                money(s["cost"]["total"]["per_1000_minutes"]),
                f"{s['cost']['prices']['currency']} per 1,000 min (estimate at {s['cost']['prices']['date']} prices)",
            ),
            *extra_kpis,
        ]
    )
    warnings = ""
    if data.warnings:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in data.warnings)
        warnings = f'<div class="warn"><b>Warnings</b><ul>{items}</ul></div>'
    plot_html = "".join(f'<div class="plot" id="plot-{name}">{svg}</div>' for name, svg in figures)
    generated = datetime.now(tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    incomplete = s["run"]["incomplete"]  # workers lost mid-run: said first, in one line
    state = "still being written" if data.in_progress else "incomplete" if incomplete else "complete"
    lost = f'<div class="warn" id="incomplete"><b>{html.escape(incomplete)}</b></div>' if incomplete else ""
    title = f"rtload report: {data.run_id}"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>run {state} · generated {generated} by rtload {__version__}"
        f" · SLO {html.escape(slo_text)}</p></header><main>{lost}"
        f'<div class="kpis">{kpis}</div>{warnings}'
        f'<div class="plots">{plot_html}</div>'
        + report_html(capacity, "Capacity")
        + report_html(summary, "Summary")
        + report_html(limits, "Limits")
        + report_html(soak, "Soak windows (5 min)")
        + evidence_html(data.path)
        + "</main></body></html>\n"
    )


def write_html(
    data: RunData,
    path: Path,
    clauses: list[Clause],
    slo_text: str,
    confidence: float = DEFAULT_CONFIDENCE,
    prices: PriceTable | None = None,
) -> Path:
    path = Path(path)
    text = build_html(data, clauses, slo_text, confidence, prices)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
