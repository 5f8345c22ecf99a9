"""Fault plans: which fault (if any) a response or an upgrade gets, drawn from a seeded RNG.

Response faults are drawn with ONE uniform number per response against the cumulative rates
in the order of ``RESPONSE_FAULTS`` (so rates add up; if they sum past 1 the later ones are
squeezed out). Names are the keys of ``loadtest.records.schema.FAULT_EXPECTATIONS``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

RESPONSE_FAULTS: tuple[str, ...] = (
    "server_error",
    "stall",
    "silence",
    "hang",
    "missing_audio",
    "text_only",
    "drop",
    "incomplete",
)
HANDSHAKE_FAULTS: tuple[str, ...] = ("handshake_5xx", "handshake_429")


@dataclass(slots=True)
class FaultPlan:
    fault: str = "none"
    params: dict[str, Any] = field(default_factory=dict)
    at: float = 1.0  # fraction of the answer's audio where a mid-response fault hits


def _uniform(rng: random.Random, span: Any) -> float:
    if isinstance(span, list | tuple):
        return rng.uniform(float(span[0]), float(span[1]))
    return float(span)


def plan_response(rng: random.Random, faults: dict[str, Any], extra_server_error: float = 0.0) -> FaultPlan:
    """The fault of one response. ``extra_server_error`` is the overload probability past the knee."""
    draw = rng.random()
    overload_draw = rng.random()
    params_rng = random.Random(rng.random())
    edge = 0.0
    chosen = "none"
    for name in RESPONSE_FAULTS:
        edge += float(faults[name]["rate"])
        if draw < edge:
            chosen = name
            break
    if chosen == "none" and overload_draw < extra_server_error:
        plan = FaultPlan("server_error", {"cause": "overload", "probability": round(extra_server_error, 4)})
        chosen = "server_error"
    else:
        plan = FaultPlan(chosen)
    if chosen == "none":
        return plan
    knobs = faults[chosen]
    if "at" in knobs:
        plan.at = _uniform(params_rng, knobs["at"])
        plan.params["at_fraction"] = round(plan.at, 4)
    if chosen == "server_error":
        after = params_rng.random() < float(knobs["after_output"])
        plan.params["after_output"] = after
        if not after:
            plan.at = 0.0
            plan.params.pop("at_fraction", None)
    elif chosen in ("stall", "silence"):
        plan.params["gap_s"] = round(_uniform(params_rng, knobs["gap_s"]), 3)
    return plan


def plan_handshake(rng: random.Random, faults: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """("none" | "handshake_5xx" | "handshake_429", params) for one upgrade."""
    draw = rng.random()
    pick = random.Random(rng.random())
    r5 = float(faults["handshake_5xx"]["rate"])
    r4 = float(faults["handshake_429"]["rate"])
    if draw < r5:
        return "handshake_5xx", {"status": int(pick.choice(faults["handshake_5xx"]["statuses"]))}
    if draw < r5 + r4:
        retry = round(_uniform(pick, faults["handshake_429"]["retry_after_s"]))
        return "handshake_429", {"status": 429, "retry_after_s": retry}
    return "none", {}
