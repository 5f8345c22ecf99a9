"""A preflight finding: one named check result with a severity and a one-line fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    OK = "ok"  # the check passed
    INFO = "info"
    WARNING = "warning"  # worth fixing; does not fail the preflight unless --strict
    ERROR = "error"  # will fail: the preflight exits non-zero


@dataclass(frozen=True, slots=True)
class Finding:
    check: str  # stable id, e.g. "url.api_version_on_ga"
    severity: Severity
    message: str  # what is wrong (or what passed), one line
    fix: str = ""  # what to do, one line

    def as_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["severity"] = str(self.severity)
        return row


def failed(findings: list[Finding], *, strict: bool = False) -> bool:
    """True when the findings should fail the preflight."""
    bad = {Severity.ERROR, Severity.WARNING} if strict else {Severity.ERROR}
    return any(f.severity in bad for f in findings)
