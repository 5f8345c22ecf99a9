"""One mock Realtime session: the client events it accepts and the responses it streams.

The message loop validates each client event like the services do; responses run as their
own tasks, paced on the event loop clock (audio is sent ahead of real time, ``audio.speed``
times faster), with the response's planned fault applied at its point.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pybase64
from websockets.exceptions import ConnectionClosed

from loadtest.mock import events as ev
from loadtest.mock import input_transcription, tool_calls, voicelive
from loadtest.mock.context import SessionContext
from loadtest.mock.faults import FaultPlan, plan_response
from loadtest.mock.host import AnswerAudio, MockResponse
from loadtest.mock.speech import WIRE_BYTES_PER_MS, Answer
from loadtest.mock.tools import PlannedCall, Rule, ToolContext, arguments_for, choose, parse_rules, plan_tool_fault
from loadtest.mock.truth import session_row
from loadtest.mock.vad import EnergyVad
from loadtest.mock.validate import (
    Invalid,
    check_event,
    response_create,
    session_update,
    transcription_session_update,
    user_item,
)
from loadtest.protocol.dialects import AUDIO_FORMATS, Dialect

if TYPE_CHECKING:
    from loadtest.mock.routing import Route

MIN_COMMIT_MS = 100.0
KEEP_INPUT_S = 60.0  # input audio kept for recognition (the longest fixture is 27 s)
EAGERNESS_SILENCE_MS = {"low": 1500, "medium": 700, "auto": 700, "high": 300}


def expiry_message(max_duration_s: float) -> str:
    """The services' words; a cap under a minute (tests) is given in seconds."""
    if max_duration_s < 60:
        return f"Your session hit the maximum duration of {max_duration_s:g} seconds."
    return f"Your session hit the maximum duration of {max_duration_s / 60:g} minutes."


def _new_id(rng: random.Random, prefix: str) -> str:
    return f"{prefix}_{rng.getrandbits(96):024x}"


def profile_rules(profile: dict[str, Any]) -> list[Rule]:
    key = tuple(profile["tools"]["rules"])
    rules = _RULES.get(key)
    if rules is None:
        rules = _RULES[key] = parse_rules(list(key))
    return rules


_RULES: dict[tuple[str, ...], list[Rule]] = {}


class MockSession:
    """``ws`` is the WebSocket connection, or an object that behaves like one (the WebRTC shell's
    data channel, loadtest/mock/rtc_channel.py); ``media``, when given, takes the answer's audio
    instead of ``response.output_audio.delta`` events (WebRTC: the Opus track)."""

    def __init__(self, ctx: SessionContext, ws: Any, route: Route, index: int, *, media: AnswerAudio | None = None,
                 transport: str = "websocket") -> None:  # fmt: skip
        self.ctx = ctx
        self.ws = ws
        self.media = media
        self.transport = transport
        self.route = route
        self.dialect: Dialect = ctx.dialect(route.dialect)
        self.rng = random.Random(f"{ctx.seed}:{index}")
        # function calls and input transcription draw from their own streams: turning them on
        # changes no other draw, and their values do not depend on the responses' timing
        self.tools_rng = random.Random(f"{ctx.seed}:{index}:tools")
        self.transcription_rng = random.Random(f"{ctx.seed}:{index}:transcription")
        self.id = _new_id(self.rng, "sess")
        self.conversation_id = _new_id(self.rng, "conv")
        self.profile = ctx.profile
        self.loop = asyncio.get_running_loop()
        self.t_open = time.time()
        max_s = float(self.profile["session"]["max_duration_s"]) or (
            voicelive.max_duration_s(self.profile) if route.provider == "voicelive"
            else 3600.0 if route.provider == "openai" else 1800.0
        )  # fmt: skip
        self.max_duration_s = max_s
        self.expires_at = int(self.t_open + max_s)
        self.cfg: dict[str, Any] = {
            "output_modalities": ["audio"],
            "instructions": "You are a helpful customer-service assistant.",
            "voice": "alloy",
            "input_format": "pcm16",
            "output_format": "pcm16",
            "turn_detection": {
                "type": "server_vad",
                "threshold": 0.5,
                "prefix_padding_ms": 300,
                "silence_duration_ms": 500,
                "idle_timeout_ms": None,
                "create_response": True,
                "interrupt_response": True,
            },
            "transcription": None,
            "max_output_tokens": "inf",
            "session_type": "realtime",
            "tools": [],
            "tool_choice": "auto",
            "parallel_tool_calls": None,
            "noise_reduction": None,
        }
        if route.intent == "transcription":
            self.cfg["session_type"] = "transcription"
        if self.dialect.is_voice_live:
            voicelive.session_defaults(self.cfg, route.api_version)
        self.vad: EnergyVad | None = None
        self._reset_vad()
        self.items: dict[str, dict[str, Any]] = {}
        self.item_audio_ms: dict[str, float] = {}
        self.item_answers: dict[str, Answer] = {}  # assistant item -> its answer (truncation)
        self.last_item_id: str | None = None
        self.audio_clock_ms = 0.0  # all audio appended in this session
        self.buffer_ms = 0.0  # audio appended since the last commit/clear
        self.speech_item_id: str | None = None
        self.pending_input_text = 0  # text chars since the last response (usage)
        self.pending_input_audio_ms = 0.0
        self.active: MockResponse | None = None  # the default-conversation response
        self.out_of_band: set[MockResponse] = set()
        self.responses = 0
        self.expired = False
        self.closing = False
        self._event_n = 0
        self._event_prefix = "event_" + self.id[5:17]
        self._expiry: asyncio.TimerHandle | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._idle_from_ms = 0.0
        # function calling and input transcription (loadtest/mock/tools.py, transcribe.py)
        self.tool_ctx = ToolContext()
        self.calls_by_id: dict[str, str] = {}  # call_id -> the response that made it
        self.answered: dict[str, list[str]] = {}  # calling response id -> call_ids answered so far
        self._input_pcm: list[np.ndarray] = []  # decoded input since the last commit (when needed)
        self._input_kept_ms = 0.0
        self._keep_input = False
        self._transcriptions: set[asyncio.Task[None]] = set()

    # ---- sending ------------------------------------------------------------------------
    def _event_id(self) -> str:
        self._event_n += 1
        return f"{self._event_prefix}{self._event_n:06d}"

    async def send(self, event: dict[str, Any]) -> None:
        event["event_id"] = self._event_id()
        await self.ws.send(orjson.dumps(event), text=True)
        self.ctx.stats.events += 1

    async def _send_frames(self, frames: list[bytes]) -> None:
        send_many = getattr(self.ws, "send_many", None)
        if send_many is not None:
            await send_many(frames)
        else:
            for frame in frames:
                await self.ws.send(frame, text=True)
        self.ctx.stats.events += len(frames)

    async def send_error(self, exc: Invalid, client_event_id: str | None = None) -> None:
        await self.send(
            {"type": "error", "error": ev.error_body(exc.code, exc.message, exc.param, client_event_id, exc.error_type)}
        )

    # ---- lifecycle -----------------------------------------------------------------------
    async def run(self) -> None:
        self._expiry = self.loop.call_later(self.max_duration_s, self._on_expiry)
        try:
            await self.send({"type": "session.created", "session": self._session_object()})
            async for message in self.ws:
                await self.on_message(message)
        except ConnectionClosed:
            pass
        finally:
            if self._expiry:
                self._expiry.cancel()
            if self._idle:
                self._idle.cancel()
            for task in list(self._transcriptions):
                task.cancel()
            for resp in [r for r in (self.active, *self.out_of_band) if r is not None]:
                if resp.task and not resp.task.done():
                    resp.task.cancel()
                if not resp.truth_written:
                    self.write_truth(
                        resp, "drop" if resp.plan.fault == "drop" else "none", {"ended_by": "connection_closed"}
                    )
                tool_calls.log_calls(self, resp, "session_expired" if self.expired else resp.plan.fault)
            self.ctx.truth.write(
                session_row(
                    self.route,
                    "session_expired" if self.expired else "none",
                    101,
                    {"max_duration_s": self.max_duration_s} if self.expired else {},
                    session_id=self.id,
                    t_open=self.t_open,
                    t_end=time.time(),
                    close_code=self.ws.close_code,
                    responses=self.responses,
                    transport=self.transport,
                )
            )

    def _session_object(self) -> dict[str, Any]:
        body = ev.session_object(self.dialect, self.id, self.route.deployment, self.cfg, self.expires_at)
        if self.dialect.is_voice_live:
            body = voicelive.session_object(body, self.cfg, self.route.api_version)
        return body

    def _reset_vad(self) -> None:
        td = self.cfg["turn_detection"]
        if td is None:
            self.vad = None
            return
        vad_knobs = self.profile["vad"]
        if td.get("type") == "semantic_vad":
            silence = EAGERNESS_SILENCE_MS.get(td.get("eagerness") or "auto", 700)
        else:
            silence = td.get("silence_duration_ms") or 500
        self.vad = EnergyVad(
            threshold=float(td.get("threshold") if td.get("threshold") is not None else 0.5),
            prefix_padding_ms=int(td.get("prefix_padding_ms") if td.get("prefix_padding_ms") is not None else 300),
            silence_duration_ms=int(silence),
            frame_ms=int(vad_knobs["frame_ms"]),
            floor_db=float(vad_knobs["floor_db"]),
            span_db=float(vad_knobs["span_db"]),
        )

    def _on_expiry(self) -> None:
        self.loop.create_task(self._expire())

    async def _expire(self) -> None:
        if self.closing:
            return
        self.expired = True
        self.closing = True
        for resp in [r for r in (self.active, *self.out_of_band) if r is not None]:
            if resp.task and not resp.task.done():
                resp.task.cancel()
            if not resp.truth_written:
                self.write_truth(resp, "session_expired", {"planned_fault": resp.plan.fault})
        reason = expiry_message(self.max_duration_s)
        style = self.profile["session"]["expiry_style"]
        if style == "auto":  # (a WebRTC call has no close frame to carry the reason: the error event does)
            style = "close" if self.dialect.is_ga and self.transport == "websocket" else "error"
        try:
            if style == "error":
                await self.send({"type": "error", "error": ev.error_body("session_expired", reason)})
            await self.ws.close(1001, reason)
        except ConnectionClosed:
            pass

    # ---- client events ---------------------------------------------------------------------
    async def on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            await self.send_error(Invalid("invalid_event", "Binary frames are not supported; send JSON text events."))
            return
        try:
            event = orjson.loads(message)
        except orjson.JSONDecodeError:
            await self.send_error(
                Invalid("invalid_json", "The server could not parse the event: it is not valid JSON.")
            )
            return
        client_event_id = event.get("event_id") if isinstance(event, dict) else None
        try:
            kind = check_event(event, self.dialect)
            handler = _HANDLERS.get(kind)
            if handler is not None:
                await handler(self, event)
        except Invalid as exc:
            await self.send_error(exc, client_event_id)

    async def on_session_update(self, event: dict[str, Any]) -> None:
        self.apply_session(event.get("session"))
        await self.send({"type": "session.updated", "session": self._session_object()})

    def apply_session(self, session: Any) -> None:
        """Validate a ``session`` object (as in ``session.update``) and make it the session's
        configuration; raises :class:`Invalid`. A WebRTC call applies its session this way before
        ``session.created``."""
        if self.dialect.is_voice_live:
            voices = self.profile["audio"]["voices"]
            changes = voicelive.validate_session(session, voices, self.cfg, self.route.deployment)
        else:
            changes = session_update(session, self.dialect, self.profile["audio"]["voices"])
        if self.route.intent == "transcription" and changes.get("session_type") != "transcription":
            raise Invalid("invalid_value", f"Invalid value: '{changes.get('session_type')}'. This endpoint (intent="
                          "transcription) supports 'transcription' sessions.", "session.type")  # fmt: skip
        # what the client asked for, as received (tests check a session file arrives as sent)
        self.ctx.truth.write({"kind": "session_update", "session_id": self.id, "session": session})
        if "voice" in changes and isinstance(changes["voice"], dict):
            changes["voice"] = changes["voice"].get("id")
        td_changed = "turn_detection" in changes
        if td_changed and changes["turn_detection"] is not None:
            merged = dict(self.cfg["turn_detection"] or {})
            merged.update(changes["turn_detection"])
            if merged.get("type") == "semantic_vad":
                merged.setdefault("eagerness", "auto")
            changes["turn_detection"] = merged
        self.cfg.update(changes)
        if td_changed or "input_format" in changes:
            self._reset_vad()
        if "input_format" in changes:
            self._input_pcm, self._input_kept_ms = [], 0.0
        self._update_keep_input()

    async def on_transcription_session_update(self, event: dict[str, Any]) -> None:
        """Preview ``transcription_session.update``: the session becomes transcription-only."""
        changes = transcription_session_update(event.get("session"))
        self.ctx.truth.write({"kind": "session_update", "session_id": self.id, "session": event.get("session")})
        if changes.get("turn_detection") is not None:
            merged = dict(self.cfg["turn_detection"] or {})
            merged.update(changes["turn_detection"])
            changes["turn_detection"] = merged
        self.cfg.update(changes)
        self._reset_vad()
        self._input_pcm, self._input_kept_ms = [], 0.0
        self._update_keep_input()
        await self.send({"type": "transcription_session.updated", "session": self._session_object()})

    @property
    def transcription_only(self) -> bool:
        return self.cfg.get("session_type") == "transcription"

    def _update_keep_input(self) -> None:
        """Input audio is kept until the commit when something will listen to it (transcription,
        tool rules); at most KEEP_INPUT_S of it, so a caller that never commits holds no more."""
        self._keep_input = voicelive.wants_transcription(self.route, self.cfg) or bool(self.cfg.get("tools"))
        if not self._keep_input:
            self._input_pcm, self._input_kept_ms = [], 0.0

    def _keep(self, pcm: np.ndarray) -> None:
        rate = AUDIO_FORMATS[self.cfg["input_format"]][2]
        self._input_pcm.append(pcm)
        self._input_kept_ms += pcm.size * 1000.0 / rate
        while self._input_kept_ms > KEEP_INPUT_S * 1000.0 and len(self._input_pcm) > 1:
            self._input_kept_ms -= self._input_pcm.pop(0).size * 1000.0 / rate

    async def on_append(self, event: dict[str, Any]) -> None:
        audio = event.get("audio")
        if not isinstance(audio, str):
            raise Invalid("invalid_type", "Invalid type for 'audio': expected a base64-encoded string.", "audio")
        try:
            data = pybase64.b64decode(audio)
        except ValueError:
            raise Invalid("invalid_value", "Invalid 'audio': not valid base64.", "audio") from None
        fmt = self.cfg["input_format"]
        ms = len(data) / WIRE_BYTES_PER_MS[fmt]
        if self.vad is None and not self._keep_input:
            self.audio_clock_ms += ms
            self.buffer_ms += ms
            self.ctx.stats.appends += 1
            return
        await self.append_input(self.ctx.decode_input(data, fmt), ms)

    async def append_input(self, pcm: np.ndarray, ms: float) -> None:
        """Caller audio into the input buffer (and the VAD): ``pcm`` int16 samples at the input
        format's rate, ``ms`` long. WebRTC feeds the decoded Opus track here."""
        fmt = self.cfg["input_format"]
        clock = self.audio_clock_ms
        self.audio_clock_ms += ms
        self.buffer_ms += ms
        self.ctx.stats.appends += 1
        keep = self._keep_input
        if self.vad is None and not keep:
            return
        if keep:
            self._keep(pcm)
        if self.vad is None:
            return
        for vad_event in self.vad.feed(pcm, AUDIO_FORMATS[fmt][2], clock):
            if vad_event.kind == "started":
                if self._idle is not None:
                    self._idle.cancel()
                    self._idle = None
                self.speech_item_id = _new_id(self.rng, "item")
                await self.send(
                    {
                        "type": "input_audio_buffer.speech_started",
                        "audio_start_ms": vad_event.audio_ms,
                        "item_id": self.speech_item_id,
                    }
                )
                td = self.cfg["turn_detection"] or {}
                if self.active is not None and td.get("interrupt_response", True):
                    await self.cancel(self.active, "turn_detected")
            else:
                item_id = self.speech_item_id or _new_id(self.rng, "item")
                self.speech_item_id = None
                await self.send(
                    {
                        "type": "input_audio_buffer.speech_stopped",
                        "audio_end_ms": vad_event.audio_ms,
                        "item_id": item_id,
                    }
                )
                await self._commit(item_id)
                td = self.cfg["turn_detection"] or {}
                if td.get("create_response", True) and not self.transcription_only:
                    if self.active is None:
                        self.start_response({}, trigger=self.loop.time())
                    else:
                        await self.send_error(self._already_active())

    async def on_commit(self, event: dict[str, Any]) -> None:
        if self.buffer_ms < MIN_COMMIT_MS:
            raise Invalid(
                "input_audio_buffer_commit_empty",
                f"Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, "
                f"but buffer only has {self.buffer_ms:.2f}ms of audio.",
            )
        item_id = self.speech_item_id or _new_id(self.rng, "item")
        self.speech_item_id = None
        if self.vad is not None:
            self.vad.reset()
        await self._commit(item_id)

    async def _commit(self, item_id: str) -> None:
        # how much input audio the item holds, at the session's input format (tests check the rate)
        self.ctx.truth.write(
            {"kind": "input_committed", "session_id": self.id, "item_id": item_id, "audio_ms": self.buffer_ms}
        )
        seconds = self.buffer_ms / 1000.0
        self.pending_input_audio_ms += self.buffer_ms
        self.buffer_ms = 0.0
        previous = self.last_item_id
        await self.send({"type": "input_audio_buffer.committed", "previous_item_id": previous, "item_id": item_id})
        item = ev.user_item(self.dialect, item_id, ev.audio_user_content(self.dialect))
        await self._add_item(item, previous)
        self._on_input_committed(item_id, seconds)

    def _on_input_committed(self, item_id: str, seconds: float) -> None:
        """Recognise the committed audio (tool rules see it) and transcribe it when configured."""
        chunks, self._input_pcm, self._input_kept_ms = self._input_pcm, [], 0.0
        if not chunks:
            return
        from loadtest.mock.transcribe import fixture_index

        rate = AUDIO_FORMATS[self.cfg["input_format"]][2]
        heard = fixture_index().recognise(np.concatenate(chunks), rate)
        self.tool_ctx.text, self.tool_ctx.fixture = (heard.transcript if heard.fixture else None), heard.fixture
        if voicelive.wants_transcription(self.route, self.cfg):
            task = self.loop.create_task(input_transcription.run(self, item_id, heard, seconds, time.time()))
            self._transcriptions.add(task)
            task.add_done_callback(self._transcriptions.discard)

    async def _add_item(self, item: dict[str, Any], previous: str | None) -> None:
        self.items[item["id"]] = item
        self.last_item_id = item["id"]
        if self.dialect.is_ga:
            await self.send({"type": "conversation.item.added", "previous_item_id": previous, "item": item})
            await self.send({"type": "conversation.item.done", "previous_item_id": previous, "item": item})
        else:
            await self.send({"type": "conversation.item.created", "previous_item_id": previous, "item": item})

    async def on_clear(self, event: dict[str, Any]) -> None:
        self.buffer_ms = 0.0
        self._input_pcm, self._input_kept_ms = [], 0.0
        if self.vad is not None:
            self.vad.reset()
        await self.send({"type": "input_audio_buffer.cleared"})

    async def on_item_create(self, event: dict[str, Any]) -> None:
        item = dict(user_item(event.get("item"), self.dialect))
        item.setdefault("id", _new_id(self.rng, "item"))
        item["object"] = "realtime.item"
        item["status"] = "completed"
        for part in item.get("content") or []:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                self.pending_input_text += len(part["text"])
        previous = event.get("previous_item_id", self.last_item_id)
        await self._add_item(item, previous)
        self._on_item_added(item)

    def _on_item_added(self, item: dict[str, Any]) -> None:
        """A caller's item: its text feeds the tool rules; a function_call_output answers a call."""
        if item.get("type") == "message" and item.get("role") == "user":
            parts = [p for p in item.get("content") or [] if isinstance(p, dict)]
            texts = [p["text"] for p in parts if isinstance(p.get("text"), str)]
            if texts:
                self.tool_ctx.text, self.tool_ctx.fixture = " ".join(texts), None
            return
        if item.get("type") != "function_call_output":
            return
        call_id = item["call_id"]
        response_id = self.calls_by_id.get(call_id)
        self.pending_input_text += len(item["output"])
        if response_id is not None:
            self.answered.setdefault(response_id, []).append(call_id)
            self.tool_ctx.follow_up = True
            self.tool_ctx.follow_up_of = response_id
        self.ctx.truth.write({"kind": "function_call_output", "session_id": self.id, "item_id": item["id"],
                                 "call_id": call_id, "response_id": response_id, "known_call": response_id is not None,
                                 "output_chars": len(item["output"])})  # fmt: skip

    async def on_item_retrieve(self, event: dict[str, Any]) -> None:
        item = self.items.get(str(event.get("item_id")))
        if item is None:
            raise Invalid("item_not_found", f"Item with item_id '{event.get('item_id')}' not found.", "item_id")
        await self.send({"type": "conversation.item.retrieved", "item": item})

    async def on_item_delete(self, event: dict[str, Any]) -> None:
        item_id = str(event.get("item_id"))
        if self.items.pop(item_id, None) is None:
            raise Invalid("item_not_found", f"Item with item_id '{item_id}' not found.", "item_id")
        await self.send({"type": "conversation.item.deleted", "item_id": item_id})

    async def on_item_truncate(self, event: dict[str, Any]) -> None:
        item_id = str(event.get("item_id"))
        item = self.items.get(item_id)
        if item is None or item.get("role") != "assistant":
            raise Invalid("item_not_found", f"Item with item_id '{item_id}' not found.", "item_id")
        end = event.get("audio_end_ms")
        if not isinstance(end, int) or end < 0:
            raise Invalid("invalid_value", "Invalid 'audio_end_ms': expected a non-negative integer.", "audio_end_ms")
        audio_ms = self.item_audio_ms.get(item_id, 0.0)
        if end > audio_ms:
            raise Invalid(
                "invalid_value",
                f"Audio content of {int(audio_ms)}ms is already shorter than {end}ms.",
                "audio_end_ms",
            )
        self._drop_unheard(item, item_id, end)
        await self.send(
            {
                "type": "conversation.item.truncated",
                "item_id": item_id,
                "content_index": int(event.get("content_index") or 0),
                "audio_end_ms": end,
            }
        )

    def _drop_unheard(self, item: dict[str, Any], item_id: str, end_ms: int) -> None:
        """After a truncate the item's audio and transcript stop at ``end_ms`` (what was played)."""
        answer = self.item_answers.get(item_id)
        self.item_audio_ms[item_id] = float(end_ms)
        for part in item.get("content") or []:
            if answer is not None and isinstance(part.get("transcript"), str):
                heard = answer.transcript_upto(end_ms)
                part["transcript"] = heard if len(heard) < len(part["transcript"]) else part["transcript"]
        transcript = next((p.get("transcript") for p in item.get("content") or []), None)
        self.ctx.truth.write({"kind": "truncate", "session_id": self.id, "item_id": item_id,
                                 "audio_end_ms": end_ms, "transcript": transcript})  # fmt: skip

    async def on_response_create(self, event: dict[str, Any]) -> None:
        if self.transcription_only:
            raise Invalid("invalid_request_error", "Responses are not supported in a transcription session.", "type")
        params = response_create(event.get("response"), self.dialect)
        if not params.get("out_of_band") and self.active is not None:
            raise self._already_active()
        self.start_response(params, trigger=self.loop.time())

    async def on_response_cancel(self, event: dict[str, Any]) -> None:
        wanted = event.get("response_id")
        candidates = [r for r in (self.active, *self.out_of_band) if r is not None]
        target = next((r for r in candidates if wanted in (None, r.id)), None)
        if target is None:
            raise Invalid("response_cancel_not_active", "Cancellation failed: no active response found.")
        await self.cancel(target, "client_cancelled")

    async def on_output_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        await self.send({"type": "output_audio_buffer.cleared", "response_id": self.active.id if self.active else None})

    def _already_active(self) -> Invalid:
        rid = self.active.id if self.active else ""
        return Invalid(
            "conversation_already_has_active_response",
            f"Conversation already has an active response in progress: {rid}. Wait until the response is "
            "finished before creating a new one.",
        )

    # ---- responses ------------------------------------------------------------------------
    def start_response(self, params: dict[str, Any], trigger: float) -> MockResponse:
        ctx = self.ctx
        latency_extra, error_extra = ctx.limits.overload(self.route.deployment)
        if self.dialect.is_voice_live:  # a cascade answers later than a native model
            latency_extra += voicelive.class_latency_s(self.rng, self.route, self.profile)
        plan = plan_response(self.rng, self.profile["faults"], error_extra)
        answer = self.rng.choice(ctx.bank.answers)
        modalities = params.get("output_modalities") or self.cfg["output_modalities"]
        rl = self.profile["rate_limits"]
        input_text = int(self.pending_input_text * float(rl["text_tokens_per_char"])) + 10
        input_audio = int(self.pending_input_audio_ms / 1000.0 * float(rl["audio_tokens_per_second"]))
        self.pending_input_text = 0
        self.pending_input_audio_ms = 0.0
        resp = MockResponse(
            id=_new_id(self.rng, "resp"),
            item_id=_new_id(self.rng, "item"),
            out_of_band=bool(params.get("out_of_band")),
            modalities=list(modalities),
            output_format=params.get("output_format") or self.cfg["output_format"],
            voice=self.cfg["voice"],
            max_output_tokens=params.get("max_output_tokens", self.cfg["max_output_tokens"]),
            metadata=params.get("metadata"),
            answer=answer,
            plan=plan,
            trigger=trigger,
            input_tokens=(input_text, input_audio),
            temperature=float(params.get("temperature", self.cfg.get("temperature", 0.8))),
        )
        if isinstance(params.get("voice"), str | dict):
            voice = params["voice"]
            resp.voice = voice.get("id") if isinstance(voice, dict) else voice
        self._plan_calls(resp, params)
        resp.kind = "text" if modalities == ["text"] or plan.fault == "text_only" else "audio"
        if resp.calls:
            pass  # a calling response speaks no audio: its fault is a tool fault (or none)
        elif modalities == ["text"] and plan.fault in ("text_only", "stall", "silence", "missing_audio"):
            plan.fault = "none"  # text was asked for: an audio fault has nothing to act on
            plan.params = {}
        # a max_output_tokens below the answer's size cuts it short (incomplete)
        full = self._output_tokens(resp, resp.answer.duration_ms, len(answer.transcript))
        limit = resp.max_output_tokens
        if plan.fault == "none" and isinstance(limit, int) and limit < sum(full) and not resp.calls:
            plan.fault = "incomplete"
            plan.at = limit / sum(full)
            plan.params = {"max_output_tokens": limit, "at_fraction": round(plan.at, 4), "cause": "client_limit"}
        if resp.out_of_band:
            self.out_of_band.add(resp)
        else:
            self.active = resp
        self.responses += 1
        ctx.stats.responses += 1
        resp.task = self.loop.create_task(self._run(resp, latency_extra))
        return resp

    def _plan_calls(self, resp: MockResponse, params: dict[str, Any]) -> None:
        """Whether ``resp`` calls tools (loadtest/mock/tools.py); a calling response's plan becomes
        its tool fault, drawn from the session RNG only when it calls."""
        ctx = self.tool_ctx
        follow_up_of = ctx.follow_up_of if ctx.follow_up else None
        ctx.follow_up, ctx.follow_up_of = False, None
        resp.follow_up_of = follow_up_of
        if follow_up_of is not None:
            resp.answered_call_ids = self.answered.pop(follow_up_of, [])
        tools = params.get("tools", self.cfg.get("tools") or [])
        if not tools or (resp.out_of_band and "tools" not in params):
            return
        tool_choice = params.get("tool_choice", self.cfg.get("tool_choice", "auto"))
        parallel = params.get("parallel_tool_calls", self.cfg.get("parallel_tool_calls"))
        knobs = self.profile["tools"]
        view = ToolContext(ctx.text, ctx.fixture, follow_up=follow_up_of is not None)
        rng = self.tools_rng
        chosen = choose(tools, tool_choice, parallel is not False, knobs, profile_rules(self.profile), view, rng)
        for name, why in chosen:
            call = PlannedCall(name, _new_id(rng, "call")[:21], _new_id(rng, "item"), arguments_for(tools, name, rng),
                               why)  # fmt: skip
            resp.calls.append(call)
            self.calls_by_id[call.call_id] = resp.id
        if resp.calls:
            fault, fault_params = plan_tool_fault(rng, self.profile["faults"])
            resp.plan = FaultPlan(fault, fault_params)

    def _output_tokens(self, resp: MockResponse, audio_ms: float, chars: int) -> tuple[int, int]:
        rl = self.profile["rate_limits"]
        text = math.ceil(chars * float(rl["text_tokens_per_char"]))
        audio = 0 if resp.kind == "text" else math.ceil(audio_ms / 1000.0 * float(rl["audio_tokens_per_second"]))
        return text, audio

    def response_body(self, resp: MockResponse, status: str, **extra: Any) -> dict[str, Any]:
        return ev.response_object(
            self.dialect,
            resp.id,
            status=status,
            conversation_id=None if resp.out_of_band else self.conversation_id,
            modalities=resp.modalities,
            output_format=resp.output_format,
            voice=resp.voice,
            max_output_tokens=resp.max_output_tokens,
            metadata=resp.metadata,
            temperature=resp.temperature,
            **extra,
        )

    def write_truth(self, resp: MockResponse, fault: str, extra: dict[str, Any] | None = None) -> None:
        if resp.truth_written:
            return
        resp.truth_written = True
        params = dict(resp.plan.params) if fault == resp.plan.fault else {}
        if extra:
            params.update(extra)
        self.ctx.stats.faults[fault] = self.ctx.stats.faults.get(fault, 0) + 1
        self.ctx.truth.write(
            {
                "kind": "response",
                "t": time.time(),
                "session_id": self.id,
                "response_id": resp.id,
                "fault": fault,
                "params": params,
                "t_created": resp.t_created,
                "t_first_audio": resp.t_first_audio if self.media is None else self.media.first_audio_at(resp.id),
                "transport": self.transport,
                "dialect": self.route.dialect,
                "provider": self.route.provider,
                "deployment": self.route.deployment,
                "out_of_band": resp.out_of_band,
                "modalities": resp.modalities,
                "audio_format": resp.output_format,
                "audio_ms": round(resp.audio_ms, 1),
                "transcript": "" if resp.calls else resp.answer.transcript,
                "status": resp.status,
                "function_calls": [call.name for call in resp.calls],
                "call_ids": [call.call_id for call in resp.calls],
                "follow_up_of": resp.follow_up_of,
                "answered_call_ids": resp.answered_call_ids,
                "t_first_arguments": resp.t_first_arguments,
            }
        )

    def finish_response(self, resp: MockResponse) -> None:
        if self.active is resp:
            self.active = None
            self._arm_idle_timeout(resp)
        self.out_of_band.discard(resp)

    def _arm_idle_timeout(self, resp: MockResponse) -> None:
        """GA server VAD ``idle_timeout_ms``: no speech that long after the answer's playback ends
        -> ``input_audio_buffer.timeout_triggered``, a commit and a new response."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        td = self.cfg["turn_detection"] or {}
        idle_ms = td.get("idle_timeout_ms")
        if not self.dialect.is_ga or td.get("type") != "server_vad" or not idle_ms or self.closing or resp.calls:
            return
        played_until = (resp.first_send + resp.audio_ms / 1000.0) if resp.first_send is not None else self.loop.time()
        when = max(self.loop.time(), played_until) + float(idle_ms) / 1000.0
        self._idle_from_ms = self.audio_clock_ms
        self._idle = self.loop.call_at(when, lambda: self.loop.create_task(self._idle_timeout()))

    async def _idle_timeout(self) -> None:
        self._idle = None
        if self.active is not None or (self.vad is not None and self.vad.in_speech) or self.closing:
            return
        item_id = _new_id(self.rng, "item")
        with contextlib.suppress(ConnectionClosed):
            await self.send(
                {
                    "type": "input_audio_buffer.timeout_triggered",
                    "audio_start_ms": int(self._idle_from_ms),
                    "audio_end_ms": int(self.audio_clock_ms),
                    "item_id": item_id,
                }
            )
            await self._commit(item_id)
            if (self.cfg["turn_detection"] or {}).get("create_response", True) and self.active is None:
                self.start_response({}, trigger=self.loop.time())

    async def sleep_until(self, when: float) -> float:
        """Sleep until loop time ``when``; returns how late the wake-up was (s)."""
        delay = when - self.loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        return self.loop.time() - when

    async def _send_created(self, resp: MockResponse) -> None:
        resp.t_created = time.time()
        resp.created_sent = True
        await self.send({"type": "response.created", "response": self.response_body(resp, "in_progress")})

    async def send_rate_limits(self) -> None:
        await self.send(
            {"type": "rate_limits.updated", "rate_limits": self.ctx.limits.rate_limits(self.route.limits_key)}
        )

    async def _fail(self, resp: MockResponse, error: dict[str, Any], fault: str) -> None:
        resp.status = "failed"
        self.finish_response(resp)
        self.write_truth(resp, fault)
        body = self.response_body(
            resp,
            "failed",
            status_details={"type": "failed", "error": error},
            usage=ev.usage(self.dialect, *resp.input_tokens, 0, 0),
        )
        await self.send({"type": "response.done", "response": body})
        await self.send_rate_limits()

    async def _run(self, resp: MockResponse, latency_extra: float) -> None:
        try:
            await self._stream(resp, latency_extra)
        except (ConnectionClosed, asyncio.CancelledError):
            self.finish_response(resp)
        except Exception:  # a bug in the mock must not kill the server; it shows in the log
            self.finish_response(resp)
            raise

    async def _stream(self, resp: MockResponse, latency_extra: float) -> None:
        lat = self.profile["latency"]
        plan = resp.plan
        created_at = resp.trigger + self.rng.uniform(*lat["created_ms"]) / 1000.0 + latency_extra
        first_gap = self.rng.uniform(*lat["first_delta_ms"]) / 1000.0
        await self.sleep_until(created_at)
        answer = resp.answer
        text_tokens, audio_tokens = self._output_tokens(resp, answer.duration_ms, len(answer.transcript))
        ok, which = self.ctx.limits.admit_response(
            self.route.limits_key, sum(resp.input_tokens) + text_tokens + audio_tokens
        )
        await self._send_created(resp)
        if not ok:
            resp.plan = FaultPlan("rate_limited", {"limit": which})
            message = (
                f"Rate limit reached for {self.route.deployment} on {which} per min. Please try again in a few seconds."
            )
            await self._fail(resp, {"type": which, "code": "rate_limit_exceeded", "message": message}, "rate_limited")
            return
        if plan.fault == "server_error" and not plan.params.get("after_output"):
            await self._fail(resp, self.server_error_body(), "server_error")
            return
        if resp.calls:
            await tool_calls.stream_calls(self, resp, created_at + first_gap + latency_extra / 2)
            return
        dialect = self.dialect
        item = ev.assistant_item(dialect, resp.item_id, "in_progress", [])
        base = {"response_id": resp.id}
        await self.send({"type": "response.output_item.added", **base, "output_index": 0, "item": item})
        if not resp.out_of_band:
            stored = ev.assistant_item(dialect, resp.item_id, "in_progress", [])
            self.items[resp.item_id] = stored
            resp.previous_item_id = self.last_item_id
            self.last_item_id = resp.item_id
            name = "conversation.item.added" if dialect.is_ga else "conversation.item.created"
            await self.send({"type": name, "previous_item_id": resp.previous_item_id, "item": item})
        resp.item_open = True
        where = {**base, "item_id": resp.item_id, "output_index": 0, "content_index": 0}
        await self.send({"type": "response.content_part.added", **where, "part": ev.part(resp.kind, "")})
        first_at = created_at + first_gap + latency_extra / 2
        if resp.kind == "text":
            ended = await self._stream_text(resp, where, first_at)
        else:
            ended = await self._stream_audio(resp, where, first_at)
        if ended:
            return
        await self._complete(resp, where)

    def server_error_body(self) -> dict[str, Any]:
        contact = " or contact aoai-realtimeapi-dri@microsoft.com" if self.route.provider == "azure" else ""
        return {
            "type": "server_error",
            "code": "server_error",
            "message": "The server had an error while processing your request. Sorry about that! You can retry your "
            f"request{contact}. (Please include the session ID {self.id} in your message.)",
        }

    async def _fault_at_cut(self, resp: MockResponse) -> bool:
        """Apply an end-of-output fault at its point; True when the response ends here."""
        fault = resp.plan.fault
        if fault == "server_error":
            await self._fail(resp, self.server_error_body(), "server_error")
            return True
        if fault == "hang":
            self.write_truth(resp, "hang")
            await asyncio.Event().wait()  # never finishes: only a cancel or the socket closing ends it
            return True
        if fault == "drop":
            self.write_truth(resp, "drop")
            self.ctx.stats.drops += 1
            self.ws.transport.abort()
            raise ConnectionClosed(None, None)
        return False  # incomplete: the caller finishes the response short

    def _fit_limit(self, resp: MockResponse, pieces: Iterable[tuple[float, bytes]]) -> int:
        """How many leading pieces ``(audio ms, transcript JSON)`` fit in the client's max_output_tokens
        (at least one). The service stops generating when that budget is spent, so what a response cut
        by the client's limit sends, and bills in ``usage``, stays within it."""
        limit = int(resp.plan.params["max_output_tokens"])
        audio_ms, chars, fit = 0.0, 0, 0
        for dur_ms, text_json in pieces:
            audio_ms += dur_ms
            chars += len(orjson.loads(text_json)) if text_json else 0
            if sum(self._output_tokens(resp, audio_ms, chars)) > limit:
                break
            fit += 1
        return max(1, fit)

    async def _stream_text(self, resp: MockResponse, where: dict[str, Any], first_at: float) -> bool:
        pieces = resp.answer.text_pieces
        cut = len(pieces)
        if resp.plan.params.get("cause") == "client_limit":
            cut = self._fit_limit(resp, ((0.0, piece) for piece in pieces))
        elif resp.plan.fault in ("server_error", "hang", "drop", "incomplete"):
            cut = max(1, int(len(pieces) * resp.plan.at))
        step = float(self.profile["latency"]["text_delta_ms"]) / 1000.0
        name = self.dialect.output_text_delta.encode()
        head = b'{"type":"' + name + b'","response_id":"' + resp.id.encode() + b'","item_id":"' + resp.item_id.encode()
        head += b'","output_index":0,"content_index":0,"event_id":"'
        for index, piece in enumerate(pieces[:cut]):
            await self.sleep_until(first_at + index * step)
            await self.ws.send(head + self._event_id().encode() + b'","delta":' + piece + b"}", text=True)
            resp.transcript.append(orjson.loads(piece))
        if cut < len(pieces):
            return await self._fault_at_cut(resp)
        return False

    async def _stream_audio(self, resp: MockResponse, where: dict[str, Any], first_at: float) -> bool:
        answer = resp.answer
        plan = resp.plan
        fault = plan.fault
        deltas = answer.deltas[resp.output_format]
        cut_index = len(deltas)
        if fault in ("stall", "silence", "hang", "drop", "incomplete") or (
            fault == "server_error" and plan.params.get("after_output")
        ):
            if plan.params.get("cause") == "client_limit":
                cut_index = self._fit_limit(resp, ((d.dur_ms, d.transcript_json) for d in deltas))
            else:
                cut_ms = plan.at * answer.duration_ms
                cut_index = next((i for i, d in enumerate(deltas) if d.start_ms >= cut_ms), len(deltas) - 1)
                cut_index = max(1, cut_index)
            plan.params["at_ms"] = round(
                deltas[cut_index].start_ms if cut_index < len(deltas) else answer.duration_ms, 1
            )
        speed = float(self.profile["audio"]["speed"])
        stats = self.ctx.stats
        send_audio = fault != "missing_audio"
        rid, iid = resp.id.encode(), resp.item_id.encode()
        audio_head = (
            b'{"type":"' + self.dialect.output_audio_delta.encode() + b'","response_id":"' + rid + b'","item_id":"'
            + iid + b'","output_index":0,"content_index":0,"event_id":"'
        )  # fmt: skip
        text_head = (
            b'{"type":"' + self.dialect.output_audio_transcript_delta.encode() + b'","response_id":"' + rid
            + b'","item_id":"' + iid + b'","output_index":0,"content_index":0,"event_id":"'
        )  # fmt: skip
        base_t = first_at  # loop time at which audio position base_ms is sent
        base_ms = 0.0
        inserted_ms = 0.0  # silence inserted so far (the `silence` fault)
        first_send: float | None = None
        ws = self.ws
        media = self.media
        for index, delta in enumerate(deltas):
            if index == cut_index:
                if fault == "stall":
                    # the client has heard everything sent so far by first_send + position; starve it for gap_s
                    position_s = (delta.start_ms + inserted_ms) / 1000.0
                    resume = (
                        (first_send if first_send is not None else self.loop.time()) + position_s + plan.params["gap_s"]
                    )
                    await self.sleep_until(resume)
                    if first_send is not None:  # the starvation as delivered (a loaded loop wakes late)
                        plan.params["stall_ms"] = round((self.loop.time() - first_send - position_s) * 1000, 1)
                    base_t, base_ms = resume, delta.start_ms + inserted_ms
                elif fault == "silence":
                    silent = self.ctx.bank.silence[resp.output_format]
                    count = max(1, round(plan.params["gap_s"] * 10))
                    for _ in range(count):
                        when = base_t + (delta.start_ms + inserted_ms - base_ms) / 1000.0 / speed
                        lag = await self.sleep_until(when)
                        stats.lag(lag)
                        if media is not None:
                            media.audio(resp.id, None, silent)
                        else:
                            await ws.send(
                                audio_head + self._event_id().encode() + b'","delta":"' + silent.b64 + b'"}', text=True
                            )
                        inserted_ms += silent.dur_ms
                        resp.audio_ms += silent.dur_ms
                    plan.params["silence_ms"] = round(count * silent.dur_ms, 1)
                else:
                    return await self._fault_at_cut(resp)
            when = base_t + (delta.start_ms + inserted_ms - base_ms) / 1000.0 / speed
            lag = await self.sleep_until(when)
            stats.lag(lag)
            if first_send is not None and fault != "stall":  # (a stall starves the player on purpose)
                # would a real-time player that started at the first delta already need this audio?
                stats.playback_checked += 1
                if self.loop.time() > first_send + (delta.start_ms + inserted_ms) / 1000.0:
                    stats.playback_late += 1
            frames = []
            if delta.transcript_json:
                frames.append(text_head + self._event_id().encode() + b'","delta":' + delta.transcript_json + b"}")
                resp.transcript.append(orjson.loads(delta.transcript_json))
            if send_audio:
                if media is None:
                    frames.append(audio_head + self._event_id().encode() + b'","delta":"' + delta.b64 + b'"}')
                else:
                    media.audio(resp.id, resp.answer, delta)
                stats.deltas += 1
            if frames:
                await self._send_frames(frames)
            if send_audio:
                if first_send is None:
                    first_send = self.loop.time()
                    resp.first_send = first_send
                    resp.t_first_audio = time.time()
                resp.audio_ms += delta.dur_ms
        return False

    async def _complete(self, resp: MockResponse, where: dict[str, Any]) -> None:
        dialect = self.dialect
        incomplete = resp.plan.fault == "incomplete"
        text = "".join(resp.transcript) if incomplete else resp.answer.transcript
        if resp.kind == "audio":
            if dialect.is_voice_live:  # word timestamps when asked, a warning now and then
                for extra in voicelive.timestamp_events(self.cfg, where, text, resp.audio_ms):
                    await self.send(extra)
                if (warning := voicelive.warning_event(self.rng, self.profile)) is not None:
                    await self.send(warning)
            await self.send({"type": dialect.output_audio_done, **where})
            await self.send({"type": dialect.output_audio_transcript_done, **where, "transcript": text})
        else:
            await self.send({"type": dialect.output_text_done, **where, "text": text})
        await self.send({"type": "response.content_part.done", **where, "part": ev.part(resp.kind, text)})
        status = "incomplete" if incomplete else "completed"
        item = ev.assistant_item(dialect, resp.item_id, status, [ev.assistant_content(dialect, resp.kind, text)])
        await self._close_item(resp, item)
        resp.status = status
        details = {"type": "incomplete", "reason": "max_output_tokens"} if incomplete else None
        text_tokens, audio_tokens = self._output_tokens(resp, resp.audio_ms, len(text))
        usage = ev.usage(dialect, *resp.input_tokens, text_tokens, audio_tokens)
        self.finish_response(resp)
        self.write_truth(resp, resp.plan.fault)
        body = self.response_body(resp, status, output=[item], status_details=details, usage=usage)
        await self.send({"type": "response.done", "response": body})
        await self.send_rate_limits()

    async def _close_item(self, resp: MockResponse, item: dict[str, Any]) -> None:
        resp.item_open = False
        if not resp.out_of_band:
            self.items[resp.item_id] = item
            self.item_audio_ms[resp.item_id] = resp.audio_ms
            self.item_answers[resp.item_id] = resp.answer
            if self.dialect.is_ga:
                done = {"type": "conversation.item.done", "previous_item_id": resp.previous_item_id, "item": item}
                await self.send(done)
        await self.send({"type": "response.output_item.done", "response_id": resp.id, "output_index": 0, "item": item})

    async def cancel(self, resp: MockResponse, reason: str) -> None:
        """End ``resp`` now with status cancelled (reason turn_detected or client_cancelled)."""
        if resp.task is not None and not resp.task.done():
            resp.task.cancel()
        self.finish_response(resp)
        if not resp.created_sent:
            await self._send_created(resp)
        if resp.calls:
            await tool_calls.cancel_calls(self, resp, reason)
            return
        dialect = self.dialect
        text = "".join(resp.transcript)
        output: list[dict[str, Any]] = []
        if resp.item_open:
            where = {"response_id": resp.id, "item_id": resp.item_id, "output_index": 0, "content_index": 0}
            if resp.kind == "audio":
                await self.send({"type": dialect.output_audio_done, **where})
                await self.send({"type": dialect.output_audio_transcript_done, **where, "transcript": text})
            else:
                await self.send({"type": dialect.output_text_done, **where, "text": text})
            await self.send({"type": "response.content_part.done", **where, "part": ev.part(resp.kind, text)})
            item = ev.assistant_item(
                dialect, resp.item_id, "incomplete", [ev.assistant_content(dialect, resp.kind, text)]
            )
            await self._close_item(resp, item)
            output = [item]
        resp.status = "cancelled"
        self.write_truth(resp, reason, {"planned_fault": resp.plan.fault})
        text_tokens, audio_tokens = self._output_tokens(resp, resp.audio_ms, len(text))
        body = self.response_body(
            resp,
            "cancelled",
            output=output,
            status_details={"type": "cancelled", "reason": reason},
            usage=ev.usage(dialect, *resp.input_tokens, text_tokens, audio_tokens),
        )
        await self.send({"type": "response.done", "response": body})
        await self.send_rate_limits()


_HANDLERS = {
    "session.update": MockSession.on_session_update,
    "transcription_session.update": MockSession.on_transcription_session_update,
    "input_audio_buffer.append": MockSession.on_append,
    "input_audio_buffer.commit": MockSession.on_commit,
    "input_audio_buffer.clear": MockSession.on_clear,
    "conversation.item.create": MockSession.on_item_create,
    "conversation.item.retrieve": MockSession.on_item_retrieve,
    "conversation.item.delete": MockSession.on_item_delete,
    "conversation.item.truncate": MockSession.on_item_truncate,
    "response.create": MockSession.on_response_create,
    "response.cancel": MockSession.on_response_cancel,
    "output_audio_buffer.clear": MockSession.on_output_audio_buffer_clear,
}
