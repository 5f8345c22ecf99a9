"""The Realtime protocol dialects: GA, preview (beta) and Azure Voice Live. The only module that knows
wire names.

Everything else asks a :class:`Dialect` for event names and session shapes. See
``../shared/realtime-protocol.md`` §2 for GA and preview, ``../shared/voice-live.md`` §2-3 for Voice
Live: the preview event names and flat session, plus its own session fields (voice as an object,
``input_audio_sampling_rate``, more output formats, Azure noise suppression, echo cancellation and
semantic VAD) and its own server events (``warning``, audio timestamps, animation, avatar, MCP...).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any


class DialectName(StrEnum):
    GA = "ga"
    PREVIEW = "preview"
    VOICE_LIVE = "voicelive"


# Audio formats by their harness name -> (GA format object, preview string, sample rate). A harness
# format is what a session both sends and receives; ``pcm16_16000hz`` exists on Voice Live only
# (``input_audio_format: pcm16`` with ``input_audio_sampling_rate: 16000``, ``output_audio_format:
# pcm16_16000hz``).
AUDIO_FORMATS: dict[str, tuple[dict[str, Any], str, int]] = {
    "pcm16": ({"type": "audio/pcm", "rate": 24000}, "pcm16", 24000),
    "g711_ulaw": ({"type": "audio/pcmu"}, "g711_ulaw", 8000),
    "g711_alaw": ({"type": "audio/pcma"}, "g711_alaw", 8000),
    "pcm16_16000hz": ({"type": "audio/pcm", "rate": 16000}, "pcm16_16000hz", 16000),
}
VOICE_LIVE_ONLY_FORMATS = frozenset({"pcm16_16000hz"})
# Voice Live output formats (``output_audio_format``) and their sample rates; ``pcm16_8000hz`` is
# output only (input is 16 or 24 kHz PCM16, or G.711), so it is no harness format.
VOICE_LIVE_OUTPUT_FORMATS: dict[str, int] = {
    "pcm16": 24000, "pcm16_16000hz": 16000, "pcm16_8000hz": 8000, "g711_ulaw": 8000, "g711_alaw": 8000,
}  # fmt: skip
VOICE_LIVE_INPUT_RATES = (16000, 24000)
# The OpenAI voices: a Voice Live session names one as {"type": "openai", "name": ...}; any other
# name is taken for an Azure voice ({"type": "azure-standard", "name": "en-US-Ava:DragonHDLatestNeural"}).
OPENAI_VOICES = frozenset({"alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"})


def audio_format_name(value: Any) -> str | None:
    """The harness name (pcm16, g711_ulaw, g711_alaw, pcm16_16000hz) of a GA format object or a
    preview / Voice Live string."""
    if isinstance(value, str):
        return value if value in AUDIO_FORMATS else None
    if isinstance(value, dict):
        kind = value.get("type")
        for name, (ga, _preview, _rate) in AUDIO_FORMATS.items():
            if ga["type"] == kind:
                return name
    return None


# WebRTC's playback events (GA; the data channel's stand-in for the audio deltas it does not carry)
OUTPUT_AUDIO_BUFFER_STARTED = "output_audio_buffer.started"
OUTPUT_AUDIO_BUFFER_STOPPED = "output_audio_buffer.stopped"
OUTPUT_AUDIO_BUFFER_CLEARED = "output_audio_buffer.cleared"


@dataclass(frozen=True, slots=True)
class Dialect:
    """Wire names and shapes of one dialect."""

    name: DialectName
    # server -> client response events
    output_audio_delta: str
    output_audio_done: str
    output_audio_transcript_delta: str
    output_audio_transcript_done: str
    output_text_delta: str
    output_text_done: str
    # server -> client conversation item events sent for a new item
    item_added: tuple[str, ...]
    # server -> client events whose names both dialects share (still the dialect's to say)
    error: str
    session_created: str
    session_updated: str
    response_created: str
    response_done: str
    output_item_added: str
    output_item_done: str
    content_part_added: str
    content_part_done: str
    function_call_arguments_delta: str
    function_call_arguments_done: str
    rate_limits_updated: str
    input_audio_committed: str
    speech_started: str
    speech_stopped: str
    input_transcription_delta: str  # conversation.item.input_audio_transcription.*: the input audio's transcript
    input_transcription_completed: str
    input_transcription_failed: str
    transcription_session_updated: str | None  # preview only (GA: session.updated)
    input_timeout_triggered: str | None  # GA server VAD's idle_timeout_ms fired (the preview has none)
    # client -> server events
    client_session_update: str
    client_audio_append: str
    client_audio_commit: str
    client_audio_clear: str
    client_item_create: str
    client_item_truncate: str
    client_response_create: str
    client_response_cancel: str
    client_transcription_session_update: str | None  # preview only (GA: session.update, type "transcription")
    # assistant item content types
    content_audio: str
    content_text: str
    # the full set of event types in each direction
    client_events: frozenset[str]
    server_events: frozenset[str]

    @property
    def is_ga(self) -> bool:
        return self.name is DialectName.GA

    @property
    def is_voice_live(self) -> bool:
        """Voice Live: preview names and shapes plus its own session fields (``is_ga`` is False)."""
        return self.name is DialectName.VOICE_LIVE

    # ---- client event builders -------------------------------------------------------
    def session_update(
        self,
        *,
        output_modalities: list[str] | None = None,
        instructions: str | None = None,
        voice: str | None = None,
        audio_format: str = "pcm16",
        turn_detection: dict[str, Any] | str | None = "server_vad",
        transcription_model: str | None = None,
        max_output_tokens: int | str | None = None,
    ) -> dict[str, Any]:
        """A ``session.update`` event in this dialect.

        ``output_modalities`` uses GA vocabulary (``["audio"]`` or ``["text"]``); for preview it
        becomes ``modalities`` (audio always travels with text there). ``turn_detection`` is
        ``"server_vad"``, ``"semantic_vad"``, a full dict, or ``None`` for manual turns.
        """
        if isinstance(turn_detection, str):
            turn_detection = {"type": turn_detection}
        modalities = output_modalities or ["audio"]
        fmt_ga, fmt_preview, _rate = AUDIO_FORMATS[audio_format]
        if self.is_ga:
            audio_input: dict[str, Any] = {"format": fmt_ga, "turn_detection": turn_detection}
            if transcription_model:
                audio_input["transcription"] = {"model": transcription_model}
            audio_output: dict[str, Any] = {"format": fmt_ga}
            if voice:
                audio_output["voice"] = voice
            session: dict[str, Any] = {
                "type": "realtime",
                "output_modalities": ["text"] if modalities == ["text"] else ["audio"],
                "audio": {"input": audio_input, "output": audio_output},
            }
            if max_output_tokens is not None:
                session["max_output_tokens"] = max_output_tokens
        else:
            session = {
                "modalities": ["text"] if modalities == ["text"] else ["text", "audio"],
                "input_audio_format": fmt_preview,
                "output_audio_format": fmt_preview,
                "turn_detection": turn_detection,
            }
            if voice:
                session["voice"] = voice
            if transcription_model:
                session["input_audio_transcription"] = {"model": transcription_model}
            if max_output_tokens is not None:
                session["max_response_output_tokens"] = max_output_tokens
            if self.is_voice_live:
                _voice_live_session(session, audio_format, voice)
        if instructions is not None:
            session["instructions"] = instructions
        return {"type": self.client_session_update, "session": session}

    def response_create(
        self,
        *,
        output_modalities: list[str] | None = None,
        out_of_band: bool = False,
        instructions: str | None = None,
        metadata: dict[str, str] | None = None,
        input_items: list[dict[str, Any]] | None = None,
        max_output_tokens: int | str | None = None,
    ) -> dict[str, Any]:
        """A ``response.create`` event; ``out_of_band`` sets ``conversation: "none"``; ``input_items``
        sets the response's own input (``response.input``) instead of the whole conversation."""
        response: dict[str, Any] = {}
        if max_output_tokens is not None:
            response["max_output_tokens" if self.is_ga else "max_response_output_tokens"] = max_output_tokens
        if output_modalities:
            if self.is_ga:
                response["output_modalities"] = ["text"] if output_modalities == ["text"] else ["audio"]
            else:
                response["modalities"] = ["text"] if output_modalities == ["text"] else ["text", "audio"]
        if out_of_band:
            response["conversation"] = "none"
        if instructions is not None:
            response["instructions"] = instructions
        if metadata:
            response["metadata"] = metadata
        if input_items is not None:
            response["input"] = input_items
        create = self.client_response_create
        return {"type": create, "response": response} if response else {"type": create}

    # ---- a user's own session object (``rtload run --session-file``) -------------------------
    def turn_detection_of(self, session: dict[str, Any]) -> tuple[bool, Any]:
        """(present, value) of the session's turn detection (``None`` = turned off)."""
        if self.is_ga:
            inp = (session.get("audio") or {}).get("input") if isinstance(session.get("audio"), dict) else None
            if isinstance(inp, dict) and "turn_detection" in inp:
                return True, inp["turn_detection"]
            return False, None
        return ("turn_detection" in session), session.get("turn_detection")

    def formats_of(self, session: dict[str, Any]) -> tuple[Any, Any]:
        """The (input, output) audio format values the session sets (``None`` where it says nothing)."""
        if self.is_ga:
            audio = session.get("audio") if isinstance(session.get("audio"), dict) else {}
            inp, out = audio.get("input"), audio.get("output")
            return (
                inp.get("format") if isinstance(inp, dict) else None,
                out.get("format") if isinstance(out, dict) else None,
            )
        if self.is_voice_live:
            return voice_live_input_format(session), session.get("output_audio_format")
        return session.get("input_audio_format"), session.get("output_audio_format")

    def output_modalities_of(self, session: dict[str, Any]) -> list[str] | None:
        """The session's output modalities in GA vocabulary (``["audio"]`` or ``["text"]``), or None."""
        value = session.get("output_modalities" if self.is_ga else "modalities")
        if not isinstance(value, list) or not value:
            return None
        return ["audio"] if "audio" in value else ["text"]

    def transcription_of(self, session: dict[str, Any]) -> dict[str, Any] | None:
        """The session's input transcription object (GA ``audio.input.transcription``, preview
        ``input_audio_transcription``), or None when it turns none on."""
        if self.is_ga:
            audio = session.get("audio")
            inp = audio.get("input") if isinstance(audio, dict) else None
            value = inp.get("transcription") if isinstance(inp, dict) else None
        else:
            value = session.get("input_audio_transcription")
        return value if isinstance(value, dict) else None

    def is_transcription_session(self, session: dict[str, Any]) -> bool:
        """A GA session object of type ``transcription`` (preview says so by its event instead)."""
        return self.is_ga and session.get("type") == "transcription"

    def transcription_session_update(
        self,
        *,
        transcription_model: str,
        audio_format: str = "pcm16",
        turn_detection: dict[str, Any] | str | None = "server_vad",
    ) -> dict[str, Any]:
        """The event that makes a session transcription-only: GA ``session.update`` with ``type:
        "transcription"``, preview ``transcription_session.update`` (Voice Live has none)."""
        if isinstance(turn_detection, str):
            turn_detection = {"type": turn_detection}
        fmt_ga, fmt_preview, _rate = AUDIO_FORMATS[audio_format]
        transcription = {"model": transcription_model}
        if self.is_ga:
            audio_input = {"format": fmt_ga, "transcription": transcription, "turn_detection": turn_detection}
            session: dict[str, Any] = {"type": "transcription", "audio": {"input": audio_input}}
            return {"type": self.client_session_update, "session": session}
        if self.client_transcription_session_update is None:
            raise ValueError(f"the {self.name} dialect has no transcription-only sessions")
        session = {
            "input_audio_format": fmt_preview,
            "input_audio_transcription": transcription,
            "turn_detection": turn_detection,
        }
        return {"type": self.client_transcription_session_update, "session": session}

    def user_session_update(self, session: dict[str, Any], trigger: str) -> tuple[dict[str, Any], bool]:
        """``session.update`` carrying the user's ``session`` as given, plus only what the harness must
        add: ``type`` on GA when missing, and the turn detection the turn's ``trigger`` needs (off for
        ``manual``; server VAD where the session says nothing and the turn is ``server_vad``; off
        where it says nothing and the turn is ``text``). Returns (event, turn detection on)."""
        import copy

        body = copy.deepcopy(session)
        if self.is_ga:
            body.setdefault("type", "realtime")
        present, value = self.turn_detection_of(body)
        if trigger == "manual":
            value, present = None, False
        elif not present:
            value = {"type": "server_vad"} if trigger == "server_vad" else None
        if not present:
            if self.is_ga:
                audio = body.setdefault("audio", {})
                audio.setdefault("input", {})["turn_detection"] = value
            else:
                body["turn_detection"] = value
        return {"type": self.client_session_update, "session": body}, value is not None

    def user_text_item(self, text: str) -> dict[str, Any]:
        """A ``conversation.item.create`` event carrying one user text message."""
        return {"type": self.client_item_create, "item": self.user_text_message(text)}

    def function_call_output(self, call_id: str, output: str) -> dict[str, Any]:
        """A ``conversation.item.create`` event answering function call ``call_id`` with ``output``."""
        return {"type": self.client_item_create, "item": {"type": "function_call_output", "call_id": call_id,
                                                          "output": output}}  # fmt: skip

    @staticmethod
    def user_text_message(text: str) -> dict[str, Any]:
        """A user text message item (for ``conversation.item.create`` or ``response.input``)."""
        return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}

    def truncate(self, item_id: str, audio_end_ms: int, content_index: int = 0) -> dict[str, Any]:
        """A ``conversation.item.truncate`` event: the listener heard ``audio_end_ms`` of the item."""
        return {
            "type": self.client_item_truncate,
            "item_id": item_id,
            "content_index": content_index,
            "audio_end_ms": int(audio_end_ms),
        }

    @staticmethod
    def append_prefix() -> bytes:
        """The bytes of an ``input_audio_buffer.append`` event up to its base64 payload.

        Same in both dialects (a static method: :mod:`loadtest.audio.frames` builds its frames before
        any dialect is chosen); the pre-encoder writes ``prefix + b64 + b'"}'``.
        """
        return b'{"type":"' + _COMMON_NAMES["client_audio_append"].encode() + b'","audio":"'


def voice_live_input_format(session: dict[str, Any]) -> Any:
    """The harness name of a Voice Live session's input audio (``input_audio_format`` and
    ``input_audio_sampling_rate`` together; None where the session says neither)."""
    fmt, rate = session.get("input_audio_format"), session.get("input_audio_sampling_rate")
    if fmt is None and rate is None:
        return None
    if (fmt or "pcm16") == "pcm16":
        return {None: "pcm16", 24000: "pcm16", 16000: "pcm16_16000hz"}.get(rate, f"pcm16 at {rate} Hz")
    return fmt


def voice_live_voice(voice: str) -> dict[str, Any]:
    """A voice name as Voice Live's voice object."""
    return {"type": "openai" if voice in OPENAI_VOICES else "azure-standard", "name": voice}


def _voice_live_session(session: dict[str, Any], audio_format: str, voice: str | None) -> None:
    """The harness's preview session made Voice Live's: the voice object, the input rate field."""
    if voice:
        session["voice"] = voice_live_voice(voice)
    if audio_format == "pcm16_16000hz":
        session["input_audio_format"] = "pcm16"
        session["input_audio_sampling_rate"] = 16000


# Event names both dialects share: given to GA and PREVIEW alike, so every name is a Dialect attribute.
_COMMON_NAMES: dict[str, str] = {
    "error": "error",
    "session_created": "session.created",
    "session_updated": "session.updated",
    "response_created": "response.created",
    "response_done": "response.done",
    "output_item_added": "response.output_item.added",
    "output_item_done": "response.output_item.done",
    "content_part_added": "response.content_part.added",
    "content_part_done": "response.content_part.done",
    "function_call_arguments_delta": "response.function_call_arguments.delta",
    "function_call_arguments_done": "response.function_call_arguments.done",
    "rate_limits_updated": "rate_limits.updated",
    "input_audio_committed": "input_audio_buffer.committed",
    "speech_started": "input_audio_buffer.speech_started",
    "speech_stopped": "input_audio_buffer.speech_stopped",
    "input_transcription_delta": "conversation.item.input_audio_transcription.delta",
    "input_transcription_completed": "conversation.item.input_audio_transcription.completed",
    "input_transcription_failed": "conversation.item.input_audio_transcription.failed",
    "client_session_update": "session.update",
    "client_audio_append": "input_audio_buffer.append",
    "client_audio_commit": "input_audio_buffer.commit",
    "client_audio_clear": "input_audio_buffer.clear",
    "client_item_create": "conversation.item.create",
    "client_item_truncate": "conversation.item.truncate",
    "client_response_create": "response.create",
    "client_response_cancel": "response.cancel",
}

_COMMON_CLIENT = {
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.retrieve",
    "conversation.item.truncate",
    "conversation.item.delete",
    "response.create",
    "response.cancel",
}

_COMMON_SERVER = {
    "error",
    "session.created",
    "session.updated",
    "conversation.item.retrieved",
    "conversation.item.truncated",
    "conversation.item.deleted",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.completed",
    "conversation.item.input_audio_transcription.failed",
    "input_audio_buffer.committed",
    "input_audio_buffer.cleared",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "response.created",
    "response.done",
    "response.output_item.added",
    "response.output_item.done",
    "response.content_part.added",
    "response.content_part.done",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "rate_limits.updated",
}

GA = Dialect(
    name=DialectName.GA,
    output_audio_delta="response.output_audio.delta",
    output_audio_done="response.output_audio.done",
    output_audio_transcript_delta="response.output_audio_transcript.delta",
    output_audio_transcript_done="response.output_audio_transcript.done",
    output_text_delta="response.output_text.delta",
    output_text_done="response.output_text.done",
    item_added=("conversation.item.added", "conversation.item.done"),
    content_audio="output_audio",
    content_text="output_text",
    client_transcription_session_update=None,
    transcription_session_updated=None,
    input_timeout_triggered="input_audio_buffer.timeout_triggered",
    **_COMMON_NAMES,
    client_events=frozenset(_COMMON_CLIENT | {"output_audio_buffer.clear"}),
    server_events=frozenset(
        _COMMON_SERVER
        | {
            "conversation.item.added",
            "conversation.item.done",
            "conversation.item.input_audio_transcription.segment",
            "input_audio_buffer.timeout_triggered",
            "response.output_audio.delta",
            "response.output_audio.done",
            "response.output_audio_transcript.delta",
            "response.output_audio_transcript.done",
            "response.output_text.delta",
            "response.output_text.done",
            "output_audio_buffer.started",
            "output_audio_buffer.stopped",
            "output_audio_buffer.cleared",
        }
    ),
)

PREVIEW = Dialect(
    name=DialectName.PREVIEW,
    output_audio_delta="response.audio.delta",
    output_audio_done="response.audio.done",
    output_audio_transcript_delta="response.audio_transcript.delta",
    output_audio_transcript_done="response.audio_transcript.done",
    output_text_delta="response.text.delta",
    output_text_done="response.text.done",
    item_added=("conversation.item.created",),
    content_audio="audio",
    content_text="text",
    client_transcription_session_update="transcription_session.update",
    transcription_session_updated="transcription_session.updated",
    input_timeout_triggered=None,
    **_COMMON_NAMES,
    client_events=frozenset(_COMMON_CLIENT | {"transcription_session.update"}),
    server_events=frozenset(
        _COMMON_SERVER
        | {
            "conversation.created",
            "conversation.item.created",
            "response.audio.delta",
            "response.audio.done",
            "response.audio_transcript.delta",
            "response.audio_transcript.done",
            "response.text.delta",
            "response.text.done",
            "transcription_session.updated",
        }
    ),
)

# Server events Voice Live adds to the preview set ([R0410], the azure-ai-voicelive ServerEventType
# enum; the foundry_agent_call events are documented but not in the SDK). The client records them
# in the response's trace (they carry its response_id) and never ends a session on one.
VOICE_LIVE_SERVER_EVENTS = frozenset(
    {
        "warning",
        "session.avatar.connecting", "session.avatar.switch_to_speaking", "session.avatar.switch_to_idle",
        "response.audio_timestamp.delta", "response.audio_timestamp.done",
        "response.animation_viseme.delta", "response.animation_viseme.done",
        "response.animation_blendshapes.delta", "response.animation_blendshapes.done",
        "response.video.delta", "output_audio_buffer.cleared",
        "mcp_list_tools.in_progress", "mcp_list_tools.completed", "mcp_list_tools.failed",
        "response.mcp_call_arguments.delta", "response.mcp_call_arguments.done",
        "response.mcp_call.in_progress", "response.mcp_call.completed", "response.mcp_call.failed",
        "response.foundry_agent_call_arguments.delta", "response.foundry_agent_call_arguments.done",
        "response.foundry_agent_call.in_progress", "response.foundry_agent_call.completed",
        "response.foundry_agent_call.failed",
        "response.web_search_call.searching", "response.web_search_call.in_progress",
        "response.web_search_call.completed",
        "response.file_search_call.searching", "response.file_search_call.in_progress",
        "response.file_search_call.completed",
        "response.audio_transcript.annotation.added", "response.invocation.delta",
    }
)  # fmt: skip
VOICE_LIVE_CLIENT_EVENTS = frozenset(
    {"output_audio_buffer.clear", "session.avatar.connect", "input_text.delta", "input_text.done",
     "mcp_approval_response"}
)  # fmt: skip

VOICE_LIVE = replace(
    PREVIEW,
    name=DialectName.VOICE_LIVE,
    client_transcription_session_update=None,
    transcription_session_updated=None,
    client_events=frozenset((PREVIEW.client_events - {"transcription_session.update"}) | VOICE_LIVE_CLIENT_EVENTS),
    server_events=frozenset(
        (PREVIEW.server_events - {"conversation.created", "transcription_session.updated"}) | VOICE_LIVE_SERVER_EVENTS
    ),
)

DIALECTS: dict[str, Dialect] = {DialectName.GA: GA, DialectName.PREVIEW: PREVIEW, DialectName.VOICE_LIVE: VOICE_LIVE}

# Preview name -> GA name, for the events renamed at GA (both directions are looked up).
RENAMED_EVENTS: dict[str, str] = {
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
    "conversation.item.created": "conversation.item.added",
    "transcription_session.update": "session.update",
    "transcription_session.updated": "session.updated",
}


def get_dialect(name: str) -> Dialect:
    """The dialect called ``name`` (``ga``, ``preview`` or ``voicelive``)."""
    try:
        return DIALECTS[DialectName(name.lower())]
    except (ValueError, KeyError):
        raise ValueError(f"unknown dialect {name!r}: use 'ga', 'preview' or 'voicelive'") from None


def other_dialect_hint(event_type: str, dialect: Dialect) -> str | None:
    """If ``event_type`` belongs to the other dialect, one line saying so, else None."""
    if event_type in dialect.server_events or event_type in dialect.client_events:
        return None
    if dialect.is_ga and event_type in RENAMED_EVENTS:
        return f"`{event_type}` is the preview name; GA sends `{RENAMED_EVENTS[event_type]}`"
    if not dialect.is_ga:
        for old, new in RENAMED_EVENTS.items():
            if new == event_type:
                return f"`{event_type}` is the GA name; the preview dialect sends `{old}`"
    return None
