"""A report is data (for ``--format json``) plus tables (for the terminal and Markdown).

Numbers are formatted one way everywhere: milliseconds with one decimal, rates as percent
with two decimals, counts as integers, missing values as ``-``.
"""

from __future__ import annotations

import codecs
import math
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

FORMATS = ("table", "md", "json")


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass
class Report:
    title: str
    data: dict[str, Any]
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # verdict lines printed after the tables
    warnings: list[str] = field(default_factory=list)
    headline: list[str] = field(default_factory=list)  # lines printed right under the title


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def ms(value: Any) -> str:
    return "-" if missing(value) else f"{float(value):.1f}"


def pct(value: Any) -> str:
    return "-" if missing(value) else f"{float(value):.2f}%"


def num(value: Any, digits: int = 1) -> str:
    if missing(value):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.{digits}f}"


def interval_table(
    blocks: dict[str, dict[str, Any]], titles: dict[str, str], title: str, percents: tuple[int, ...], note: str = ""
) -> Table:
    """Latency percentiles with their intervals (``confidence.percentile_intervals`` blocks), one row
    per latency that has values."""
    return Table(
        title,
        ["latency", "n", *(f"p{p} [CI]" for p in percents), "max"],
        [
            [titles[k], count(b["n"]), *(with_interval(b[f"p{p}"], b[f"p{p}_lo"], b[f"p{p}_hi"]) for p in percents),
             ms(b["max"])]
            for k, b in blocks.items()
            if b["n"]
        ],
        note=note,
    )  # fmt: skip


def count(value: Any) -> str:
    return "-" if missing(value) else str(int(value))


def with_interval(value: Any, lo: Any, hi: Any, fmt: Any = ms) -> str:
    """``812.3 [790.1, 840.0]``: a figure and its interval (an unbounded side, None, says so)."""
    if missing(value):
        return "-"
    left = "unbounded" if missing(lo) else fmt(lo)
    right = "unbounded" if missing(hi) else fmt(hi)
    return f"{fmt(value)} [{left}, {right}]"


_NUMERIC = re.compile(r"^[+-]?[0-9][0-9.,e+-]*(%| ms| s)?( \[.*\])?$|^-$|^<[0-9.]+$")


def numeric_column(cells: list[str]) -> bool:
    real = [c for c in cells if c != "-"]
    return all(_NUMERIC.match(c) for c in real)


def _text_table(table: Table) -> str:
    widths = [len(c) for c in table.columns]
    for row in table.rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    right = [i > 0 and numeric_column([row[i] for row in table.rows]) for i in range(len(table.columns))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.rjust(w) if r else cell.ljust(w) for cell, w, r in zip(cells, widths, right, strict=True)
        ).rstrip()

    out = [table.title, line(table.columns), line(["-" * w for w in widths])]
    out.extend(line(row) for row in table.rows)
    if not table.rows:
        out.append("(none)")
    if table.note:
        out.append(table.note)
    return "\n".join(out)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(table: Table) -> str:
    out = [f"## {table.title}", ""]
    if table.rows:
        out.append("| " + " | ".join(_md_cell(c) for c in table.columns) + " |")
        right = [i > 0 and numeric_column([row[i] for row in table.rows]) for i in range(len(table.columns))]
        out.append("|" + "|".join(" ---: " if r else " --- " for r in right) + "|")
        out.extend("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows)
    else:
        out.append("(none)")
    if table.note:
        out.extend(["", table.note])
    return "\n".join(out)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def to_json(data: dict[str, Any]) -> str:
    return orjson.dumps(
        data, default=_json_default, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    ).decode()


def render(report: Report, fmt: str) -> str:
    if fmt == "json":
        return to_json({**report.data, "warnings": report.warnings})
    if fmt == "md":
        parts = [f"# {report.title}", ""]
        parts.extend(f"**{line}**\n" for line in report.headline)
        if report.warnings:
            parts.extend(["> **Warnings**", *[f"> - {w}" for w in report.warnings], ""])
        for table in report.tables:
            parts.extend([_md_table(table), ""])
        if report.notes:
            parts.extend([f"- {n}" for n in report.notes])
        return "\n".join(parts).rstrip() + "\n"
    parts = [report.title, "=" * len(report.title), *report.headline]
    for table in report.tables:
        parts.extend([_text_table(table), ""])
    parts.extend(report.notes)
    return "\n".join(parts).rstrip() + "\n"


WRITE_CHUNK = 1 << 20  # bytes of a JSON report decoded and written at a time


def write(report: Report, fmt: str, stream: Any) -> None:
    """``stream.write(render(report, fmt))`` without the whole text in memory twice: JSON (a
    failure listing can be hundreds of MB) is written from its bytes a chunk at a time."""
    if fmt != "json":
        stream.write(render(report, fmt))
        return
    raw = orjson.dumps(
        {**report.data, "warnings": report.warnings},
        default=_json_default,
        option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
    )
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(raw)
    for at in range(0, len(raw), WRITE_CHUNK):
        stream.write(decoder.decode(view[at : at + WRITE_CHUNK]))
    stream.write(decoder.decode(b"", final=True))
