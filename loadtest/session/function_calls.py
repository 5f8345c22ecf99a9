"""Function calls: what a response called, whether the arguments hold, and the client's answer.

Pure: no sockets, no clocks. The :class:`~loadtest.session.router.EventRouter` records each call of
a response in its tracker's :class:`CallLog` (from ``response.output_item.added``/``.done`` with
``type: "function_call"``, the ``response.function_call_arguments.delta``/``.done`` events and the
calls in ``response.done``'s output) and judges the arguments against the session's tools
(:class:`ToolSchemas`: valid JSON matching each tool's ``parameters`` JSON Schema, checked with
``jsonschema``) when the response ends.

:func:`plan_follow_up` decides whether and how the client answers a finished calling response: one
``function_call_output`` per call (the scenario's tool table, ``Scenario.tools``: name ->
``ToolReply(output, latency_ms)``; :data:`DEFAULT_OUTPUT` for a function it does not name), after
the slowest call's simulated latency (the calls of one response run in parallel), then one
``response.create``. A response that did not complete (failed, cancelled, cut, invalid arguments, a
call never done), an out-of-band one, or one at the chain limit is not answered.
:class:`ChainLink` is what a follow-up knows of the response it answers.

A response without function calls never builds any of this: its tracker's ``calls`` stays None.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from loadtest.session.scenario import Scenario, ToolReply

DEFAULT_OUTPUT = '{"ok": true}'  # the output of a function the scenario's tool table does not name
FUNCTION_CALL = "function_call"  # the output item type of a call
INCOMPLETE = "incomplete"


@dataclass(slots=True)
class FunctionCall:
    """One call in a response's output."""

    item_id: str | None = None
    call_id: str | None = None
    name: str = ""
    parts: list[str] = field(default_factory=list)  # the argument deltas
    arguments: str | None = None  # the full arguments (``.done``, else the item's)
    done: bool = False  # the arguments are complete (``.done``, or a completed item in response.done)
    status: str | None = None  # the item's status (in_progress | completed | incomplete)
    t_first_delta: float | None = None
    t_done: float | None = None  # arrival of the arguments ``.done``
    valid: bool = False  # set when the response ends (:meth:`CallLog.judge`)

    @property
    def cut(self) -> bool:
        """The call stopped before its arguments were complete (the item says so, or no ``.done``)."""
        return self.status == INCOMPLETE or not self.done


class CallLog:
    """The calls of one response, in output order, found by item id or call id."""

    __slots__ = ("_by_key", "calls", "t_first_delta")

    def __init__(self) -> None:
        self.calls: list[FunctionCall] = []
        self._by_key: dict[str, FunctionCall] = {}
        self.t_first_delta: float | None = None  # the response's first arguments delta (its first output)

    def _call(self, item_id: Any, call_id: Any) -> FunctionCall:
        for key in (item_id, call_id):
            if isinstance(key, str) and key in self._by_key:
                call = self._by_key[key]
                break
        else:
            call = FunctionCall()
            self.calls.append(call)
        if isinstance(item_id, str) and call.item_id is None:
            call.item_id = item_id
            self._by_key[item_id] = call
        if isinstance(call_id, str) and call.call_id is None:
            call.call_id = call_id
            self._by_key[call_id] = call
        return call

    # -- events (called by the router) ---------------------------------------------------------
    def item(self, item: dict[str, Any], t: float) -> None:
        """``response.output_item.added``/``.done`` of a function call item."""
        call = self._call(item.get("id"), item.get("call_id"))
        name = item.get("name")
        if isinstance(name, str) and name:
            call.name = name
        status = item.get("status")
        if isinstance(status, str):
            call.status = status
        arguments = item.get("arguments")
        if isinstance(arguments, str) and status not in (None, "in_progress") and call.arguments is None:
            call.arguments = arguments  # the item as it ended (the arguments .done may not have come)

    def delta(self, event: dict[str, Any], t: float) -> bool:
        """An arguments delta; True when it is the response's first (its first output)."""
        call = self._call(event.get("item_id"), event.get("call_id"))
        piece = event.get("delta")
        if isinstance(piece, str):
            call.parts.append(piece)
        if call.t_first_delta is None:
            call.t_first_delta = t
        if self.t_first_delta is None:
            self.t_first_delta = t
            return True
        return False

    def arguments_done(self, event: dict[str, Any], t: float) -> None:
        call = self._call(event.get("item_id"), event.get("call_id"))
        name = event.get("name")  # GA only
        if isinstance(name, str) and name and not call.name:
            call.name = name
        arguments = event.get("arguments")
        call.arguments = arguments if isinstance(arguments, str) else "".join(call.parts)
        if not call.done:
            call.done = True
            call.t_done = t
        if call.t_first_delta is None:
            call.t_first_delta = t
        if self.t_first_delta is None:
            self.t_first_delta = t

    def output(self, item: dict[str, Any], t: float) -> None:
        """A call in ``response.done``'s output (a completed one whose ``.done`` never came counts
        as done when the response ends)."""
        self.item(item, t)
        call = self._call(item.get("id"), item.get("call_id"))
        if not call.done and call.status == "completed" and isinstance(item.get("arguments"), str):
            call.arguments = item["arguments"]
            call.done = True
            call.t_done = t

    def judge(self, schemas: ToolSchemas | None) -> None:
        """Each call's validity, once the response has ended."""
        for call in self.calls:
            text = call.arguments if call.arguments is not None else "".join(call.parts)
            call.valid = call.done and not call.cut and check_arguments(schemas, call.name, text)

    # -- facts ---------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [c.name for c in self.calls]

    @property
    def any_cut(self) -> bool:
        return any(c.cut for c in self.calls)

    @property
    def any_invalid(self) -> bool:
        return any(not c.valid for c in self.calls if not c.cut)

    @property
    def t_last_done(self) -> float | None:
        """When the last call's arguments were done (the tool round trip starts there)."""
        times = [c.t_done for c in self.calls if c.t_done is not None]
        return max(times) if times else None


class ToolSchemas:
    """The session's tools, as the client told the service (``tools`` in ``session.update``).

    ``tools`` None: the client does not know them (they are not in its session object); arguments
    are then judged only as a JSON object. A function the known tools do not name is invalid.
    """

    def __init__(self, tools: Any) -> None:
        self.known = isinstance(tools, list)
        self._schemas: dict[str, Any] = {}
        for tool in tools if isinstance(tools, list) else ():
            if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                self._schemas[tool["name"]] = tool.get("parameters")
        self._validators: dict[str, Any] = {}

    @classmethod
    def of_session(cls, session: dict[str, Any] | None) -> ToolSchemas:
        return cls(session.get("tools") if isinstance(session, dict) else None)

    def check(self, name: str, value: Any) -> bool:
        """``value`` (parsed arguments) matches function ``name``'s parameters."""
        if not self.known:
            return isinstance(value, dict)
        if name not in self._schemas:
            return False
        schema = self._schemas[name]
        if not isinstance(schema, dict):
            return isinstance(value, dict)
        validator = self._validators.get(name)
        if validator is None:
            from jsonschema.validators import validator_for

            validator = self._validators[name] = validator_for(schema)(schema)
        try:
            return bool(validator.is_valid(value))
        except Exception:  # a schema jsonschema cannot apply: the arguments cannot be said to match it
            return False


def check_arguments(schemas: ToolSchemas | None, name: str, arguments: str) -> bool:
    """The arguments string is JSON matching function ``name``'s parameters (an object when the
    tools are not known)."""
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return False
    if schemas is None:
        return isinstance(value, dict)
    return schemas.check(name, value)


# --- the follow-up -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FollowUp:
    """How the client answers a calling response."""

    outputs: tuple[tuple[str, str], ...]  # (call_id, output), in output order
    latency_ms: float  # the simulated tool time: the slowest call's (they run in parallel)
    t_arguments_done: float | None  # the last call's arguments .done


@dataclass(frozen=True, slots=True)
class ChainLink:
    """What a follow-up response knows of the calling response it answers."""

    parent_response_id: str | None
    depth: int  # 1 for the first follow-up of a turn
    tool_latency_ms: float
    t_arguments_done: float | None  # the parent's last call's arguments .done
    t_turn_trigger: float | None  # the turn's trigger (its first response's)

    @classmethod
    def after(cls, parent_id: str | None, parent: ChainLink | None, parent_trigger: float | None,
              plan: FollowUp) -> ChainLink:  # fmt: skip
        """The link of the follow-up answering a response (``parent``: that response's own link)."""
        if parent is None:
            return cls(parent_id, 1, plan.latency_ms, plan.t_arguments_done, parent_trigger)
        return cls(parent_id, parent.depth + 1, plan.latency_ms, plan.t_arguments_done, parent.t_turn_trigger)


def plan_follow_up(
    calls: CallLog | None,
    reason: str,
    *,
    status: str | None,
    out_of_band: bool,
    depth: int,
    limit: int,
    tools: dict[str, ToolReply],
) -> FollowUp | None:
    """The answer to a finished response (None: it is not answered).

    Answered only when the response completed (``reason`` empty, ``status`` completed) with every
    call done and its call id known, in-band, and ``depth`` (its place in the chain: 0 for the
    turn's first response) is below ``limit``.
    """
    if calls is None or not calls.calls or reason or status != "completed" or out_of_band or depth >= limit:
        return None
    outputs: list[tuple[str, str]] = []
    latency = 0.0
    for call in calls.calls:
        if not call.done or call.cut or not call.call_id:
            return None
        reply = tools.get(call.name)
        outputs.append((call.call_id, reply.output if reply is not None else DEFAULT_OUTPUT))
        if reply is not None:
            latency = max(latency, float(reply.latency_ms))
    return FollowUp(tuple(outputs), latency, calls.t_last_done)


class Calling(Protocol):
    """What :func:`follow_up_of` reads of a finished response (a ResponseTracker)."""

    calls: CallLog | None
    chain: ChainLink | None
    status: str | None
    out_of_band: bool


def follow_up_of(response: Calling, reason: str, scenario: Scenario, default_limit: int) -> FollowUp | None:
    """:func:`plan_follow_up` for a finished response of ``scenario`` (its tool table and chain
    limit; ``default_limit`` when the scenario sets none)."""
    link, limit = response.chain, scenario.tool_chain_limit
    return plan_follow_up(
        response.calls,
        reason,
        status=response.status,
        out_of_band=response.out_of_band,
        depth=link.depth if link is not None else 0,
        limit=default_limit if limit is None else limit,
        tools=scenario.tools,
    )
