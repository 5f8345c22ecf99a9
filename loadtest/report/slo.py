"""The SLO grammar of `rtload report capacity --slo`.

    slo      := clause ("," clause)*
    clause   := metric op number [unit]
    op       := "<" | "<=" | ">" | ">="
    metric   := rate | latency
    rate     := completed | failed | truncated | throttled | cancelled | non_completed
                (unit "%", optional)
    latency  := (handshake | created | ttfa | ttft | done) "_" (p50 | p90 | p95 | p99 | max)
                (unit "ms" or "s"; default ms)

Example: ``failed<1%,non_completed<=5%,ttfa_p95<1200ms,done_p99<8s``. A step meets the SLO
when every clause holds; a clause over a metric with no data (no rows) does not hold.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loadtest.report.stats import LATENCIES, PERCENTILES, RATE_NAMES

OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
STATS = (*(f"p{p}" for p in PERCENTILES), "max")
_CLAUSE = re.compile(r"^\s*([a-z_0-9]+)\s*(<=|>=|<|>)\s*([0-9]*\.?[0-9]+)\s*(%|ms|s)?\s*$")


class SloError(ValueError):
    """A malformed SLO (the message says which clause and what is allowed)."""


@dataclass(frozen=True)
class Clause:
    metric: str  # "failed" or "ttfa_p95"
    op: str
    threshold: float  # percent for rates, milliseconds for latencies
    kind: str  # "rate" | "latency"

    def text(self) -> str:
        unit = "%" if self.kind == "rate" else " ms"
        return f"{self.metric} {self.op} {self.threshold:g}{unit}"

    def holds(self, value: float | None) -> bool:
        return value is not None and value == value and OPS[self.op](value, self.threshold)


def parse_slo(text: str) -> list[Clause]:
    rates = ", ".join(RATE_NAMES)
    latencies = "/".join(LATENCIES) + " + _" + "/_".join(STATS)
    if not text or not text.strip():
        raise SloError("empty SLO; write e.g. 'failed<1%,ttfa_p95<1200ms'")
    clauses = []
    for part in text.split(","):
        m = _CLAUSE.match(part)
        if not m:
            raise SloError(
                f"cannot read SLO clause {part.strip()!r}; write <metric><op><number><unit>, e.g. ttfa_p95<1200ms"
            )
        metric, op, number, unit = m.groups()
        value = float(number)
        if metric in RATE_NAMES:
            if unit not in (None, "%"):
                raise SloError(f"SLO clause {part.strip()!r}: {metric} is a rate; give it in % (e.g. {metric}<1%)")
            clauses.append(Clause(metric, op, value, "rate"))
            continue
        base, _, stat = metric.rpartition("_")
        if base in LATENCIES and stat in STATS:
            if unit == "%":
                raise SloError(f"SLO clause {part.strip()!r}: {metric} is a latency; give it in ms or s")
            clauses.append(Clause(metric, op, value * 1000 if unit == "s" else value, "latency"))
            continue
        raise SloError(f"unknown SLO metric {metric!r}; rates: {rates}; latencies: {latencies}")
    return clauses


def evaluate(clauses: list[Clause], values: dict[str, Any]) -> list[str]:
    """The clauses that do not hold for ``values`` (metric -> number), as readable lines."""
    broken = []
    for clause in clauses:
        value = values.get(clause.metric)
        if not clause.holds(value):
            unit = "%" if clause.kind == "rate" else " ms"
            shown = (
                "no data"
                if value is None or value != value
                else f"{value:.2f}{unit}"
                if clause.kind == "rate"
                else f"{value:.1f}{unit}"
            )
            broken.append(f"{clause.metric} = {shown}, SLO {clause.text()}")
    return broken
