"""Printing preflight results: a table for people, JSON for CI."""

from __future__ import annotations

from typing import Any

import orjson

from loadtest.preflight.findings import Finding, Severity

_MARK = {
    Severity.OK: "PASS",
    Severity.INFO: "INFO",
    Severity.WARNING: "WARN",
    Severity.ERROR: "FAIL",
}


def table(findings: list[Finding], timeline: list[str] | None = None, verdict: str = "") -> str:
    lines: list[str] = []
    if timeline:
        lines.append("Event timeline (live smoke session):")
        lines.extend(f"  {row}" for row in timeline)
        lines.append("")
    width = max((len(f.check) for f in findings), default=10)
    for f in findings:
        lines.append(f"{_MARK[f.severity]}  {f.check:<{width}}  {f.message}")
        if f.fix and f.severity in (Severity.ERROR, Severity.WARNING):
            lines.append(f"      {'':<{width}}  fix: {f.fix}")
    if verdict:
        lines.append("")
        lines.append(verdict)
    return "\n".join(lines)


def as_json(findings: list[Finding], timeline: list[dict[str, Any]] | None, ok: bool, probe: dict | None) -> str:
    doc = {
        "ok": ok,
        "findings": [f.as_dict() for f in findings],
        "timeline": timeline or [],
        "dialect_probe": probe,
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()
