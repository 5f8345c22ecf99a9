"""Function calling in the mock: whether a response calls tools, which, and with what arguments.

Arguments are generated from each tool's JSON Schema ``parameters`` (objects, required and
optional properties, enums, consts, numbers within their bounds, strings with their formats,
arrays), drawn from the session's seeded RNG, so a ``--seed`` gives the same calls every run.
The arguments string is streamed in pieces (``response.function_call_arguments.delta``).

When a response calls (``plan_calls``):
- ``tool_choice`` ``"none"`` or no tools: never;
- ``"required"`` or a named function (GA ``{type: "function", name}``, preview the name): always,
  on a response the caller's input triggered (a follow-up after ``function_call_output`` speaks
  unless ``tools.chain_probability`` draws another call);
- ``"auto"``: the profile's ``tools.rules`` first (``"REGEX -> tool"`` on the caller's last text or
  recognised transcript, ``"fixture:NAME -> tool"`` on the recognised audio fixture), else
  ``tools.call_probability``.
``parallel_tool_calls`` (default true) lets one response make up to ``tools.calls_per_response``.
"""

from __future__ import annotations

import random
import re
import string
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

TOOL_FAULTS: tuple[str, ...] = ("tool_arguments_cut", "tool_server_error", "tool_call_hang", "tool_slow_arguments")
_WORDS = ("order", "account", "billing", "router", "store", "refund", "address", "plan", "ticket", "delivery")


class RuleError(ValueError):
    """A ``tools.rules`` entry the mock cannot use."""


@dataclass(slots=True)
class Rule:
    fixture: str | None
    pattern: re.Pattern[str] | None
    tool: str

    def matches(self, text: str | None, fixture: str | None) -> bool:
        if self.fixture is not None:
            return fixture == self.fixture
        return bool(text) and self.pattern is not None and self.pattern.search(text or "") is not None


def parse_rules(entries: list[str]) -> list[Rule]:
    rules = []
    for entry in entries:
        left, sep, tool = str(entry).rpartition("->")
        left, tool = left.strip(), tool.strip()
        if not sep or not left or not tool:
            raise RuleError(f"tools.rules {entry!r}: expected 'REGEX -> tool' or 'fixture:NAME -> tool'")
        if left.startswith("fixture:"):
            rules.append(Rule(left.removeprefix("fixture:").strip(), None, tool))
            continue
        try:
            rules.append(Rule(None, re.compile(left, re.IGNORECASE), tool))
        except re.error as exc:
            raise RuleError(f"tools.rules {entry!r}: not a regular expression ({exc})") from None
    return rules


@dataclass(slots=True)
class PlannedCall:
    name: str
    call_id: str
    item_id: str
    arguments: str  # the full, valid arguments JSON
    why: str  # required | named | rule | probability | chain
    sent: str = ""  # what the deltas carried so far
    done: bool = False
    t_arguments_done: float | None = None  # wall clock of arguments.done (a complete call)
    previous_item_id: str | None = None


@dataclass(slots=True)
class ToolContext:
    """What the caller said last (for the rules) and whether the response follows a tool output."""

    text: str | None = None
    fixture: str | None = None
    follow_up: bool = False
    follow_up_of: str | None = None  # the calling response a function_call_output answered


def _names(tools: list[dict[str, Any]]) -> list[str]:
    return [t["name"] for t in tools if t.get("type", "function") == "function" and t.get("name")]


def choose(tools: list[dict[str, Any]], tool_choice: Any, parallel: bool, knobs: dict[str, Any],
           rules: list[Rule], ctx: ToolContext, rng: random.Random) -> list[tuple[str, str]]:  # fmt: skip
    """The ``(tool name, why)`` calls a response makes (empty: it speaks)."""
    names = _names(tools)
    if not names or tool_choice == "none":
        return []
    named = None
    if isinstance(tool_choice, dict):
        named = tool_choice.get("name")
    elif isinstance(tool_choice, str) and tool_choice not in ("auto", "required"):
        named = tool_choice
    if ctx.follow_up:
        if rng.random() >= float(knobs["chain_probability"]):
            return []
        first: tuple[str, str] = (named if named in names else rng.choice(names), "chain")
    elif named is not None:
        if named not in names:
            return []
        first = (named, "named")
    elif tool_choice == "required":
        first = (_rule_tool(rules, names, ctx) or rng.choice(names), "required")
    else:
        ruled = _rule_tool(rules, names, ctx)
        if ruled is not None:
            first = (ruled, "rule")
        elif rng.random() < float(knobs["call_probability"]):
            first = (rng.choice(names), "probability")
        else:
            return []
    calls = [first]
    if parallel and named is None:
        lo, hi = (int(v) for v in knobs["calls_per_response"])
        for _ in range(max(1, rng.randint(lo, max(lo, hi))) - 1):
            calls.append((rng.choice(names), first[1]))
    return calls


def _rule_tool(rules: list[Rule], names: list[str], ctx: ToolContext) -> str | None:
    for rule in rules:
        if rule.tool in names and rule.matches(ctx.text, ctx.fixture):
            return rule.tool
    return None


def schema_of(tools: list[dict[str, Any]], name: str) -> dict[str, Any]:
    for tool in tools:
        if tool.get("name") == name:
            params = tool.get("parameters")
            return params if isinstance(params, dict) else {"type": "object", "properties": {}}
    return {"type": "object", "properties": {}}


def generate(schema: Any, rng: random.Random, depth: int = 0) -> Any:
    """A value valid for the JSON Schema ``schema`` (the common keywords; unknown ones ignored)."""
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return rng.choice(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return generate(rng.choice(schema[key]), rng, depth + 1)
    if isinstance(schema.get("allOf"), list) and schema["allOf"]:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            if isinstance(part, dict):
                merged.update(part)
        return generate(merged, rng, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        props = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        out: dict[str, Any] = {}
        for key, sub in props.items():
            if key in required or (depth < 3 and rng.random() < 0.5):
                out[key] = generate(sub, rng, depth + 1)
        return out
    if kind == "array":
        lo = int(schema.get("minItems", 1))
        hi = int(schema.get("maxItems", max(lo, 3)))
        return [generate(schema.get("items", {}), rng, depth + 1) for _ in range(rng.randint(lo, max(lo, hi)))]
    if kind == "integer":
        lo = _bound(schema, "minimum", "exclusiveMinimum", 1, 1)
        hi = _bound(schema, "maximum", "exclusiveMaximum", -1, lo + 999)
        return rng.randint(int(lo), int(max(lo, hi)))
    if kind == "number":
        lo = _bound(schema, "minimum", "exclusiveMinimum", 0.01, 0.0)
        hi = _bound(schema, "maximum", "exclusiveMaximum", -0.01, lo + 1000.0)
        return round(rng.uniform(lo, hi), 2) if hi > lo else lo
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return _string(schema, rng)


def _bound(schema: dict[str, Any], inclusive: str, exclusive: str, step: float, default: float) -> float:
    if isinstance(schema.get(inclusive), int | float):
        return float(schema[inclusive])
    if isinstance(schema.get(exclusive), int | float):
        return float(schema[exclusive]) + step
    return float(default)


def _string(schema: dict[str, Any], rng: random.Random) -> str:
    fmt = schema.get("format")
    if fmt == "date":
        return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if fmt == "date-time":
        return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z"
    if fmt == "email":
        return f"{rng.choice(_WORDS)}{rng.randint(1, 99)}@example.com"
    if fmt == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    lo = int(schema.get("minLength", 1))
    hi = int(schema.get("maxLength", max(lo, 24)))
    if isinstance(schema.get("pattern"), str) and schema["pattern"].strip("^$").isalnum():
        return schema["pattern"].strip("^$")
    text = " ".join(rng.choice(_WORDS) for _ in range(3)) + f" {rng.randint(100, 999)}"
    while len(text) < lo:
        text += rng.choice(string.ascii_lowercase)
    return text[: max(lo, hi)]


def arguments_for(tools: list[dict[str, Any]], name: str, rng: random.Random) -> str:
    value = generate(schema_of(tools, name), rng)
    return orjson.dumps(value if isinstance(value, dict) else {"value": value}).decode()


def pieces(arguments: str, rng: random.Random, size: tuple[int, int]) -> list[str]:
    """``arguments`` cut into delta pieces of ``size`` characters (as the service streams tokens)."""
    out, i = [], 0
    lo, hi = max(1, int(size[0])), max(1, int(size[1]))
    while i < len(arguments):
        step = rng.randint(lo, max(lo, hi))
        out.append(arguments[i : i + step])
        i += step
    return out or [""]


def plan_tool_fault(rng: random.Random, faults: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The fault of one calling response (one draw against the cumulative rates of TOOL_FAULTS)."""
    draw = rng.random()
    params_rng = random.Random(rng.random())
    edge = 0.0
    for name in TOOL_FAULTS:
        edge += float(faults[name]["rate"])
        if draw < edge:
            knobs = faults[name]
            params: dict[str, Any] = {}
            if "at" in knobs:
                at = knobs["at"]
                params["at_fraction"] = round(params_rng.uniform(float(at[0]), float(at[1])), 4)
            if "delta_ms" in knobs:
                span = knobs["delta_ms"]
                params["delta_ms"] = round(params_rng.uniform(float(span[0]), float(span[1])), 1)
            return name, params
    return "none", {}
