"""A calling response on the wire: function-call items, argument deltas, their faults.

Event order (both dialects; the preview's ``arguments.done`` has no ``name``, GA adds the
``conversation.item.added``/``.done`` pair where preview sends ``conversation.item.created``)::

    response.created
    per call i:  response.output_item.added   item {type: function_call, status: in_progress, arguments: ""}
                 conversation.item.added (GA) | conversation.item.created (preview)
                 response.function_call_arguments.delta   x N
                 response.function_call_arguments.done    {call_id, name (GA), arguments}
                 conversation.item.done (GA)
                 response.output_item.done    item {status: completed, arguments}
    response.done    output: every call item
    rate_limits.updated

Faults (``faults.tool_*`` in the profile, drawn once per calling response):
``tool_arguments_cut`` the arguments stop mid-JSON at ``at``: ``.done`` carries the cut string,
the item is ``incomplete``, the response ``incomplete`` / ``max_output_tokens``;
``tool_server_error`` every call completes, then ``response.done`` is ``failed`` ``server_error``
(the calls in its output); ``tool_call_hang`` the deltas stop at ``at``: no ``.done``, no
``response.done`` (a ``response.cancel`` still ends it); ``tool_slow_arguments`` the deltas come
``delta_ms`` apart.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from loadtest.mock import events as ev
from loadtest.mock.host import MockResponse, SessionHost
from loadtest.mock.tools import PlannedCall, pieces


def output_tokens(session: SessionHost, calls: list[PlannedCall], sent: bool = False) -> int:
    """Text tokens of the calls' arguments (all of them, or only what was sent)."""
    per_char = float(session.profile["rate_limits"]["text_tokens_per_char"])
    return math.ceil(sum(len(c.sent if sent and not c.done else c.arguments) for c in calls) * per_char)


def call_items(resp: MockResponse) -> list[dict[str, Any]]:
    """The calls' items as they stand: complete ones ``completed``, cut ones ``incomplete``."""
    items = []
    for c in resp.calls:
        arguments, status = (c.arguments, "completed") if c.done else (c.sent, "incomplete")
        items.append(ev.function_call_item(c.item_id, c.call_id, c.name, arguments, status))
    return items


async def stream_calls(session: SessionHost, resp: MockResponse, first_at: float) -> None:
    """Send the calls of ``resp`` after ``response.created`` and end the response."""
    knobs = session.profile["tools"]
    fault = resp.plan.fault
    params = resp.plan.params
    step_s = float(params.get("delta_ms", knobs["arguments_delta_ms"])) / 1000.0
    dialect = session.dialect
    when = first_at
    for index, call in enumerate(resp.calls):
        item = ev.function_call_item(call.item_id, call.call_id, call.name, "", "in_progress")
        await session.send({"type": "response.output_item.added", "response_id": resp.id, "output_index": index,
                            "item": item})  # fmt: skip
        previous = None
        if not resp.out_of_band:
            previous = call.previous_item_id = session.last_item_id
            session.items[call.item_id] = dict(item)
            session.last_item_id = call.item_id
            name = "conversation.item.added" if dialect.is_ga else "conversation.item.created"
            await session.send({"type": name, "previous_item_id": previous, "item": item})
        where = {"response_id": resp.id, "item_id": call.item_id, "output_index": index, "call_id": call.call_id}
        parts = pieces(call.arguments, session.tools_rng, tuple(knobs["delta_chars"]))
        last = index == len(resp.calls) - 1
        cut = len(parts)
        if last and fault in ("tool_arguments_cut", "tool_call_hang"):
            cut = max(1, min(len(parts) - 1, int(len(parts) * float(params["at_fraction"]))))
        for piece in parts[:cut]:
            await session.sleep_until(when)
            when += step_s
            await session.send({"type": "response.function_call_arguments.delta", **where, "delta": piece})
            call.sent += piece
            if resp.t_first_arguments is None:
                resp.t_first_arguments = time.time()
        if cut < len(parts):
            params["arguments_sent"] = call.sent
            if fault == "tool_call_hang":
                session.write_truth(resp, fault)
                log_calls(session, resp, fault)
                await asyncio.Event().wait()  # only a cancel or the socket closing ends it
            await _arguments_done(session, resp, call, where, call.sent)
            await _close_call(session, resp, call, index, previous, "incomplete", call.sent)
            await finish_calls(session, resp, "incomplete", {"type": "incomplete", "reason": "max_output_tokens"})
            return
        call.done = True
        call.t_arguments_done = time.time()
        await _arguments_done(session, resp, call, where, call.arguments)
        await _close_call(session, resp, call, index, previous, "completed", call.arguments)
    if fault == "tool_server_error":
        await finish_calls(session, resp, "failed", {"type": "failed", "error": session.server_error_body()})
        return
    await finish_calls(session, resp, "completed", None)


async def _arguments_done(session: SessionHost, resp: MockResponse, call: PlannedCall, where: dict[str, Any],
                          arguments: str) -> None:  # fmt: skip
    done: dict[str, Any] = {"type": "response.function_call_arguments.done", **where, "arguments": arguments}
    if session.dialect.is_ga:
        done["name"] = call.name
    await session.send(done)


async def _close_call(session: SessionHost, resp: MockResponse, call: PlannedCall, index: int,
                      previous: str | None, status: str, arguments: str) -> None:  # fmt: skip
    item = ev.function_call_item(call.item_id, call.call_id, call.name, arguments, status)
    if not resp.out_of_band:
        session.items[call.item_id] = item
        if session.dialect.is_ga:
            await session.send({"type": "conversation.item.done", "previous_item_id": previous, "item": item})
    await session.send({"type": "response.output_item.done", "response_id": resp.id, "output_index": index,
                        "item": item})  # fmt: skip


async def finish_calls(session: SessionHost, resp: MockResponse, status: str,
                       details: dict[str, Any] | None) -> None:  # fmt: skip
    """``response.done`` of a calling response (also after a cancel: the calls as far as sent)."""
    resp.status = status
    session.finish_response(resp)
    cancelled = status == "cancelled"
    fault = (details or {}).get("reason", "client_cancelled") if cancelled else resp.plan.fault
    session.write_truth(resp, fault, {"planned_fault": resp.plan.fault} if cancelled else None)
    log_calls(session, resp, fault)
    output = [item for item, call in zip(call_items(resp), resp.calls, strict=True) if call.sent or call.done]
    usage = ev.usage(session.dialect, *resp.input_tokens, output_tokens(session, resp.calls, sent=True), 0)
    body = session.response_body(resp, status, output=output, status_details=details, usage=usage)
    await session.send({"type": "response.done", "response": body})
    await session.send_rate_limits()


def log_calls(session: SessionHost, resp: MockResponse, fault: str) -> None:
    """One truth row per call (once per response: a hung call is logged when it hangs)."""
    if resp.calls_logged:
        return
    resp.calls_logged = True
    for call in resp.calls:
        session.ctx.truth.write(
            {
                "kind": "function_call",
                "session_id": session.id,
                "response_id": resp.id,
                "item_id": call.item_id,
                "call_id": call.call_id,
                "name": call.name,
                "why": call.why,
                "arguments": call.arguments,
                "arguments_sent": call.arguments if call.done else call.sent,
                "done": call.done,
                "fault": fault,
                "t_arguments_done": call.t_arguments_done,
            }
        )


async def cancel_calls(session: SessionHost, resp: MockResponse, reason: str) -> None:
    """End a calling response cancelled mid-call: the open call's arguments ``.done`` (cut), its
    item ``incomplete``, then ``response.done`` cancelled."""
    for index, call in enumerate(resp.calls):
        if call.done or not call.sent:
            continue
        where = {"response_id": resp.id, "item_id": call.item_id, "output_index": index, "call_id": call.call_id}
        await _arguments_done(session, resp, call, where, call.sent)
        await _close_call(session, resp, call, index, call.previous_item_id, "incomplete", call.sent)
    await finish_calls(session, resp, "cancelled", {"type": "cancelled", "reason": reason})
