"""``--fail-on`` thresholds for CI gating: parse ``"failed>1%,ttfa_p95>1500ms"`` and check a run.

A threshold is ``<metric><op><value>`` with op one of ``> >= < <=``:

- an outcome (``completed failed truncated throttled cancelled``) or a reason (``server_error``,
  ``audio_stall``, ...): with ``%`` its share of all response rows, else its count;
  ``not_completed`` counts everything but completed and cancelled;
- a latency percentile ``ttfa_pNN``, ``ttft_pNN``, ``created_pNN``, ``done_pNN`` in ``ms`` (default)
  or ``s``;
- ``responses`` (the number of response rows), e.g. ``responses<10`` to fail a run that did nothing.

A threshold is crossed when the comparison holds (``failed>1%`` fails when more than 1% failed).
One the run cannot measure fails too, with a line saying why: a share when no response was
recorded, a percentile when no response has that latency (``ttfa_p95`` when every response failed
before its first audio). A gate that passed on nothing would tell CI the run was fine.

The confident form adds ``@`` and a confidence level to a share or a latency percentile:
``failed>1%@95%`` is crossed only when the whole 95% confidence interval of the failed share
(Wilson) lies above 1%, ``ttfa_p95>1500ms@95%`` only when the whole distribution-free interval of
the p95 lies above 1500 ms. A short CI run with 1 failure in 40 then passes instead of flapping,
and a run whose failures are clearly above the line still fails. Counts are exact and take no ``@``.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from loadtest.records.schema import CANCELLED, COMPLETED, OUTCOMES, REASONS

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_LATENCIES = ("ttfa", "ttft", "created", "done")
_THRESHOLD = re.compile(
    r"^\s*([a-z0-9_]+)\s*(>=|<=|>|<)\s*([0-9]+(?:\.[0-9]+)?)\s*(%|ms|s)?\s*(?:@\s*([0-9]+(?:\.[0-9]+)?%?))?\s*$"
)
_PCT = re.compile(r"^(" + "|".join(_LATENCIES) + r")_p(\d{1,2}(?:\.\d+)?)$")


@dataclass(frozen=True, slots=True)
class Threshold:
    text: str
    metric: str
    op: str
    value: float  # percent for shares, ms for latencies, a count otherwise
    unit: str  # "%" | "ms" | ""
    confidence: float | None = None  # the confident form: crossed only when the whole interval is

    def measure(self, rows: list[dict[str, Any]]) -> float | None:
        """The metric's value over response rows (None when it cannot be measured)."""
        if self.metric == "responses":
            return float(len(rows))
        m = _PCT.match(self.metric)
        if m:
            column = f"{m.group(1)}_ms"
            values = sorted(float(r[column]) for r in rows if r.get(column) is not None)
            return percentile(values, float(m.group(2))) if values else None
        hits = sum(1 for r in rows if _matches(self.metric, r))
        if self.unit == "%":
            return 100.0 * hits / len(rows) if rows else None
        return float(hits)

    def crossed(self, rows: list[dict[str, Any]]) -> tuple[bool, float | None]:
        value = self.measure(rows)
        if value is None:
            return False, None
        if self.confidence is None:
            return _OPS[self.op](value, self.value), value
        lo, hi = self.interval(rows)
        return _OPS[self.op](lo, self.value) and _OPS[self.op](hi, self.value), value

    def interval(self, rows: list[dict[str, Any]]) -> tuple[float, float]:
        """The confidence interval of the metric (the confident form only)."""
        from loadtest.report.confidence import percentile_interval, rate_interval_pct

        level = self.confidence if self.confidence is not None else 0.95
        m = _PCT.match(self.metric)
        if m:
            column = f"{m.group(1)}_ms"
            values = [float(r[column]) for r in rows if r.get(column) is not None]
            return percentile_interval(values, float(m.group(2)) / 100, level)
        hits = sum(1 for r in rows if _matches(self.metric, r))
        return rate_interval_pct(hits, len(rows), level) or (0.0, 100.0)

    def unmeasured(self, rows: list[dict[str, Any]]) -> str:
        """The line for a threshold the rows cannot measure."""
        m = _PCT.match(self.metric)
        why = f"no response has a {m.group(1)}_ms" if m and rows else "no response was recorded"
        threshold = self.text.strip()
        return f"{self.metric} cannot be measured: {why} (threshold {threshold}; a gate that cannot be checked fails)"

    def explain(self, value: float | None, rows: list[dict[str, Any]] | None = None) -> str:
        shown = "n/a" if value is None else f"{value:.4g}{self.unit}"
        if self.confidence is not None and value is not None and rows is not None:
            lo, hi = self.interval(rows)
            shown += f" ({100 * self.confidence:g}% CI [{lo:.4g}{self.unit}, {hi:.4g}{self.unit}])"
        return f"{self.metric} = {shown} (threshold {self.text.strip()})"


def _matches(metric: str, row: dict[str, Any]) -> bool:
    outcome = row.get("outcome") or ""
    if metric == "not_completed":
        return outcome not in (COMPLETED, CANCELLED)
    if metric in OUTCOMES:
        return outcome == metric
    return (row.get("reason") or "") == metric


def percentile(sorted_values: list[float], pct: float) -> float:
    """Linear-interpolated percentile of already sorted values."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    k = (len(sorted_values) - 1) * pct / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def parse_fail_on(spec: str | None) -> list[Threshold]:
    """Parse a comma-separated list; ValueError with a one-line message for bad input."""
    if not spec or not spec.strip():
        return []
    out: list[Threshold] = []
    for part in spec.split(","):
        if not part.strip():
            continue
        m = _THRESHOLD.match(part.lower())
        if not m:
            raise ValueError(f"bad --fail-on threshold {part.strip()!r}: use e.g. failed>1% or ttfa_p95>1500ms")
        metric, op, number, unit = m.group(1), m.group(2), float(m.group(3)), m.group(4) or ""
        level = _level(m.group(5), part) if m.group(5) else None
        if level is not None and not (_PCT.match(metric) or unit == "%"):
            raise ValueError(
                f"bad --fail-on threshold {part.strip()!r}: @confidence applies to a % share or a latency "
                "percentile (a count is exact), e.g. failed>1%@95%"
            )
        if _PCT.match(metric):
            if unit == "%":
                raise ValueError(f"bad --fail-on threshold {part.strip()!r}: a latency takes ms or s, not %")
            number = number * 1000.0 if unit == "s" else number
            unit = "ms"
        elif metric == "responses" or metric == "not_completed" or metric in OUTCOMES or metric in REASONS:
            if unit in ("ms", "s"):
                raise ValueError(f"bad --fail-on threshold {part.strip()!r}: {metric} takes a count or a %")
        else:
            known = ", ".join((*OUTCOMES, "not_completed", "responses", "ttfa_p95", "done_p99", "<reason>"))
            raise ValueError(f"bad --fail-on metric {metric!r} in {part.strip()!r}: use one of {known}")
        out.append(Threshold(part.strip(), metric, op, number, unit, level))
    return out


def _level(text: str, part: str) -> float:
    value = float(text.rstrip("%"))
    value = value / 100 if text.endswith("%") or value > 1 else value
    if not 0.5 <= value < 1:
        raise ValueError(f"bad --fail-on threshold {part.strip()!r}: the confidence after @ must be 50%..99.9%")
    return value


def check(thresholds: Iterable[Threshold], rows: list[dict[str, Any]]) -> list[str]:
    """One line per crossed or unmeasurable threshold (empty when the run passes)."""
    lines = []
    for t in thresholds:
        crossed, value = t.crossed(rows)
        if value is None:
            lines.append(t.unmeasured(rows))
        elif crossed:
            lines.append(t.explain(value, rows))
    return lines
