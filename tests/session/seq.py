"""Hand-written Realtime event sequences for the tracker and classifier tests (both dialects)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pybase64

from loadtest.protocol.dialects import Dialect
from loadtest.session.classifier import classify
from loadtest.session.config import Thresholds
from loadtest.session.function_calls import ToolSchemas
from loadtest.session.router import EventRouter
from loadtest.session.tracker import ResponseTracker

RATE = 24000


def tone(ms: float, amplitude: int = 8000) -> bytes:
    """A speech-loud 440 Hz tone of ``ms`` milliseconds (pcm16 24 kHz)."""
    n = int(RATE * ms / 1000)
    t = np.arange(n) / RATE
    return (amplitude * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()


def silence(ms: float) -> bytes:
    return bytes(int(RATE * ms / 1000) * 2)


class Seq:
    """Builds events for one response and feeds them to a router with explicit arrival times."""

    def __init__(
        self, dialect: Dialect, *, wants_audio: bool = True, rid: str = "resp_1", item: str = "item_A",
        tool_schemas: ToolSchemas | None = None,
    ):  # fmt: skip
        self.d = dialect
        self.rid = rid
        self.item = item
        self.finished: list[ResponseTracker] = []
        self.rate_limits: list[tuple[list[dict[str, Any]], float, str | None]] = []
        self.router = EventRouter(
            dialect,
            on_finished=self.finished.append,
            new_tracker=lambda: ResponseTracker(wants_audio=wants_audio),
            response_deadline_s=30.0,
            response_idle_s=5.0,
            on_rate_limits=lambda e, t, r: self.rate_limits.append((e, t, r)),
            tool_schemas=tool_schemas,
        )
        self.wants_audio = wants_audio
        self.n = 0

    def turn(self, t_trigger: float = 0.0, **kw: Any) -> ResponseTracker:
        tracker = ResponseTracker(wants_audio=self.wants_audio, **kw)
        tracker.t_trigger = t_trigger
        tracker.t_armed = t_trigger
        self.router.expect(tracker)
        return tracker

    def eid(self) -> str:
        self.n += 1
        return f"event_{self.n}"

    def feed(self, t: float, event: dict[str, Any]) -> None:
        event.setdefault("event_id", self.eid())
        self.router.feed(event, t)

    # -- events ---------------------------------------------------------------------------------
    def created(self, t: float, metadata: dict[str, str] | None = None) -> None:
        resp: dict[str, Any] = {"id": self.rid, "object": "realtime.response", "status": "in_progress", "output": []}
        if metadata:
            resp["metadata"] = metadata
        self.feed(t, {"type": "response.created", "response": resp})

    def item_added(self, t: float) -> None:
        item = {"id": self.item, "type": "message", "role": "assistant", "status": "in_progress", "content": []}
        self.feed(t, {"type": "response.output_item.added", "response_id": self.rid, "output_index": 0, "item": item})

    def part(self, t: float, kind: str | None = None, done: bool = False, text: str = "") -> None:
        kind = kind or self.d.content_audio.replace("output_", "")  # GA and preview both say "audio"/"text"
        part: dict[str, Any] = {"type": kind}
        if kind == "audio":
            part["transcript"] = text
        else:
            part["text"] = text
        name = "response.content_part.done" if done else "response.content_part.added"
        self.feed(
            t,
            {
                "type": name,
                "response_id": self.rid,
                "item_id": self.item,
                "output_index": 0,
                "content_index": 0,
                "part": part,
            },
        )

    def audio(self, t: float, pcm: bytes, event_id: str | None = None) -> None:
        ev = {
            "type": self.d.output_audio_delta,
            "response_id": self.rid,
            "item_id": self.item,
            "output_index": 0,
            "content_index": 0,
            "delta": pybase64.b64encode(pcm).decode(),
        }
        if event_id:
            ev["event_id"] = event_id
        self.feed(t, ev)

    def transcript(self, t: float, text: str) -> None:
        self.feed(
            t,
            {
                "type": self.d.output_audio_transcript_delta,
                "response_id": self.rid,
                "item_id": self.item,
                "output_index": 0,
                "content_index": 0,
                "delta": text,
            },
        )

    def transcript_done(self, t: float, text: str) -> None:
        self.feed(
            t,
            {
                "type": self.d.output_audio_transcript_done,
                "response_id": self.rid,
                "item_id": self.item,
                "output_index": 0,
                "content_index": 0,
                "transcript": text,
            },
        )

    def text(self, t: float, text: str) -> None:
        self.feed(
            t,
            {
                "type": self.d.output_text_delta,
                "response_id": self.rid,
                "item_id": self.item,
                "output_index": 0,
                "content_index": 0,
                "delta": text,
            },
        )

    def audio_done(self, t: float) -> None:
        self.feed(
            t,
            {
                "type": self.d.output_audio_done,
                "response_id": self.rid,
                "item_id": self.item,
                "output_index": 0,
                "content_index": 0,
            },
        )

    def done(
        self,
        t: float,
        status: str = "completed",
        reason: str | None = None,
        error: dict[str, Any] | None = None,
        output: list[dict[str, Any]] | None = None,
        rid: str | None = "",
    ) -> None:
        details: dict[str, Any] | None = None
        if status != "completed":
            details = {"type": status}
            if reason:
                details["reason"] = reason
            if error:
                details["error"] = error
        resp: dict[str, Any] = {
            "id": self.rid if rid == "" else rid,
            "object": "realtime.response",
            "status": status,
            "status_details": details,
            "output": output or [],
            "usage": {"total_tokens": 30, "input_tokens": 10, "output_tokens": 20},
        }
        self.feed(t, {"type": "response.done", "response": resp})

    def error(self, t: float, etype: str, code: str | None, echo: str | None = None, message: str = "") -> None:
        self.feed(
            t,
            {
                "type": "error",
                "error": {"type": etype, "code": code, "message": message, "param": None, "event_id": echo},
            },
        )

    def rate_limits_updated(self, t: float, tokens: int = 1000, requests: int = 50) -> None:
        self.feed(
            t,
            {
                "type": "rate_limits.updated",
                "rate_limits": [
                    {"name": "requests", "limit": 100, "remaining": requests, "reset_seconds": 1.0},
                    {"name": "tokens", "limit": 40000, "remaining": tokens, "reset_seconds": 2.265},
                ],
            },
        )

    # -- function calls -------------------------------------------------------------------------
    def call_item(self, index: int, name: str, arguments: str, status: str) -> dict[str, Any]:
        """The function call item at ``index`` of this response (item ``fc_<index>``, call ``call_<index>``)."""
        return {"id": f"fc_{index}", "type": "function_call", "status": status, "call_id": f"call_{index}",
                "name": name, "arguments": arguments}  # fmt: skip

    def call(
        self, t: float, index: int, name: str, arguments: str, *, pieces: int = 3, done: bool = True,
        status: str = "completed", spacing: float = 0.01,
    ) -> float:  # fmt: skip
        """One call in the service's order: item added, argument deltas, arguments .done (GA names the
        function there), item done. ``done=False`` stops after the deltas (a call never done); returns
        the time of its last event."""
        self.feed(t, {"type": self.d.output_item_added, "response_id": self.rid, "output_index": index,
                      "item": self.call_item(index, name, "", "in_progress")})  # fmt: skip
        where = {"response_id": self.rid, "item_id": f"fc_{index}", "output_index": index, "call_id": f"call_{index}"}
        size = max(1, -(-len(arguments) // pieces))
        for i in range(0, len(arguments), size):
            t += spacing
            self.feed(t, {"type": self.d.function_call_arguments_delta, **where, "delta": arguments[i : i + size]})
        if not done:
            return t
        t += spacing
        finished: dict[str, Any] = {"type": self.d.function_call_arguments_done, **where, "arguments": arguments}
        if self.d.is_ga:
            finished["name"] = name
        self.feed(t, finished)
        t += spacing
        self.feed(t, {"type": self.d.output_item_done, "response_id": self.rid, "output_index": index,
                      "item": self.call_item(index, name, arguments, status)})  # fmt: skip
        return t

    # -- whole answers --------------------------------------------------------------------------
    def speak(self, t0: float, chunks: list[bytes], spacing: float = 0.05, transcript: str = "Hello there.") -> float:
        """created, item, part, transcript and audio deltas from ``t0``; returns the last time used."""
        self.created(t0)
        self.item_added(t0 + 0.001)
        self.part(t0 + 0.002)
        t = t0 + 0.01
        self.transcript(t, transcript)
        for chunk in chunks:
            self.audio(t, chunk)
            t += spacing
        return t

    def finish_ok(self, t: float, transcript: str = "Hello there.") -> None:
        self.audio_done(t)
        self.transcript_done(t + 0.001, transcript)
        self.part(t + 0.002, done=True, text=transcript)
        self.done(t + 0.01)

    def outcome(self, thresholds: Thresholds | None = None) -> tuple[str, str]:
        assert len(self.finished) == 1, [tr.response_id for tr in self.finished]
        return classify(self.finished[0].facts(), thresholds)
