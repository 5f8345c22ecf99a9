"""Client event validation, the way the services answer (``error`` events with the real codes).

GA rejects ``session.update`` without ``session.type``, preview-only names and unknown fields;
the preview dialect rejects GA-only names. Field lists follow the official openai-python types
(``types/realtime`` for GA, ``types/beta/realtime`` for preview).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loadtest.protocol.dialects import AUDIO_FORMATS, VOICE_LIVE_ONLY_FORMATS, Dialect, audio_format_name


@dataclass(slots=True)
class Invalid(Exception):
    code: str
    message: str
    param: str | None = None
    error_type: str = "invalid_request_error"


# Top-level fields each client event may carry (besides `type` and `event_id`).
_EVENT_FIELDS: dict[str, frozenset[str]] = {
    "session.update": frozenset({"session"}),
    "transcription_session.update": frozenset({"session"}),
    "input_audio_buffer.append": frozenset({"audio"}),
    "input_audio_buffer.commit": frozenset(),
    "input_audio_buffer.clear": frozenset(),
    "output_audio_buffer.clear": frozenset(),
    "conversation.item.create": frozenset({"item", "previous_item_id"}),
    "conversation.item.retrieve": frozenset({"item_id"}),
    "conversation.item.truncate": frozenset({"item_id", "content_index", "audio_end_ms"}),
    "conversation.item.delete": frozenset({"item_id"}),
    "response.create": frozenset({"response"}),
    "response.cancel": frozenset({"response_id"}),
}

GA_SESSION = frozenset(
    {
        "type", "model", "output_modalities", "instructions", "audio", "include", "max_output_tokens", "prompt",
        "tool_choice", "tools", "tracing", "truncation", "parallel_tool_calls", "reasoning",
    }
)  # fmt: skip
GA_AUDIO_INPUT = frozenset({"format", "noise_reduction", "transcription", "turn_detection"})
GA_AUDIO_OUTPUT = frozenset({"format", "voice", "speed"})
PREVIEW_SESSION = frozenset(
    {
        "modalities", "instructions", "voice", "input_audio_format", "output_audio_format",
        "input_audio_transcription", "turn_detection", "tools", "tool_choice", "temperature",
        "max_response_output_tokens", "model", "input_audio_noise_reduction", "speed", "tracing",
    }
)  # fmt: skip
TURN_DETECTION = frozenset(
    {
        "type", "threshold", "prefix_padding_ms", "silence_duration_ms", "create_response", "interrupt_response",
        "idle_timeout_ms", "eagerness",
    }
)  # fmt: skip
GA_RESPONSE = frozenset(
    {
        "output_modalities", "instructions", "audio", "tools", "tool_choice", "max_output_tokens", "metadata",
        "conversation", "input", "prompt", "parallel_tool_calls", "reasoning",
    }
)  # fmt: skip
GA_TRANSCRIPTION_SESSION = frozenset({"type", "audio", "include"})
GA_TRANSCRIPTION_AUDIO_INPUT = frozenset({"format", "noise_reduction", "transcription", "turn_detection"})
PREVIEW_TRANSCRIPTION_SESSION = frozenset(
    {
        "input_audio_format", "input_audio_transcription", "turn_detection", "input_audio_noise_reduction",
        "include", "modalities", "client_secret",
    }
)  # fmt: skip
TOOL_CHOICES = ("auto", "none", "required")
PREVIEW_RESPONSE = frozenset(
    {
        "modalities", "instructions", "voice", "output_audio_format", "tools", "tool_choice", "temperature",
        "max_response_output_tokens", "metadata", "conversation", "input",
    }
)  # fmt: skip


def reject_unknown(obj: dict[str, Any], allowed: frozenset[str], prefix: str) -> None:
    for key in obj:
        if key not in allowed:
            raise Invalid("unknown_parameter", f"Unknown parameter: '{prefix}{key}'.", f"{prefix}{key}")


def require_object(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid("invalid_type", f"Invalid type for '{param}': expected an object.", param)
    return value


def check_event(event: Any, dialect: Dialect) -> str:
    """The event's type if it is a known client event of ``dialect`` with known fields, else Invalid."""
    if not isinstance(event, dict):
        raise Invalid("invalid_event", "The event must be a JSON object.")
    kind = event.get("type")
    if kind is None:
        raise Invalid("invalid_event", "The 'type' field is missing.", "type")
    if not isinstance(kind, str) or kind not in dialect.client_events:
        accepted = ", ".join(f"'{name}'" for name in sorted(dialect.client_events))
        raise Invalid(
            "invalid_value",
            f"Invalid value: '{kind}'. Supported values are: {accepted}.",
            "type",
        )
    reject_unknown(event, _EVENT_FIELDS.get(kind, frozenset()) | {"type", "event_id"}, "")
    return kind


def _turn_detection(value: Any, param: str) -> dict[str, Any] | None:
    if value is None:
        return None
    td = require_object(value, param)
    reject_unknown(td, TURN_DETECTION, param + ".")
    kind = td.get("type", "server_vad")
    if kind not in ("server_vad", "semantic_vad"):
        raise Invalid(
            "invalid_value",
            f"Invalid value: '{kind}'. Supported values are: 'server_vad' and 'semantic_vad'.",
            param + ".type",
        )
    threshold = td.get("threshold", 0.5)
    if not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise Invalid(
            "decimal_above_max_value", "Invalid 'threshold': expected a number between 0 and 1.", param + ".threshold"
        )
    return td


def modalities_value(value: Any, param: str, ga: bool) -> list[str]:
    if not isinstance(value, list) or not value or any(m not in ("text", "audio") for m in value):
        raise Invalid("invalid_value", f"Invalid value for '{param}': use ['audio'] or ['text'].", param)
    return ["audio"] if "audio" in value else ["text"]


def _ga_format(value: Any, param: str) -> str:
    fmt = require_object(value, param)
    reject_unknown(fmt, frozenset({"type", "rate"}), param + ".")
    name = audio_format_name(fmt)
    if name is None:
        raise Invalid(
            "invalid_value",
            f"Invalid value: '{fmt.get('type')}'. Supported values are: 'audio/pcm', 'audio/pcmu' and 'audio/pcma'.",
            param + ".type",
        )
    if name == "pcm16" and "rate" in fmt:
        rate = fmt["rate"]
        if not isinstance(rate, int) or rate < 24000:
            raise Invalid(
                "integer_below_min_value",
                f"Invalid '{param}.rate': integer below minimum value. Expected >= 24000, got {rate}.",
                param + ".rate",
            )
        if rate != 24000:
            raise Invalid(
                "integer_above_max_value",
                f"Invalid '{param}.rate': expected 24000, but got {rate} instead.",
                param + ".rate",
            )
    return name


def _preview_format(value: Any, param: str) -> str:
    if value not in AUDIO_FORMATS or value in VOICE_LIVE_ONLY_FORMATS:
        raise Invalid(
            "invalid_value",
            f"Invalid value: '{value}'. Supported values are: 'pcm16', 'g711_ulaw', and 'g711_alaw'.",
            param,
        )
    return str(value)


def max_tokens_value(value: Any, param: str) -> int | str:
    if value == "inf":
        return "inf"
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise Invalid("integer_below_min_value", f"Invalid '{param}': expected an integer >= 1 or 'inf'.", param)
    if value > 4096:
        raise Invalid(
            "integer_above_max_value", f"Invalid '{param}': expected a value <= 4096, but got {value} instead.", param
        )
    return value


def session_update(session: Any, dialect: Dialect, voices: list[str]) -> dict[str, Any]:
    """The validated changes of a ``session.update`` as harness-vocabulary settings.

    Keys (each present only when set): session_type (GA), output_modalities, instructions, voice,
    speed, temperature (preview), input_format, output_format, turn_detection (dict or None),
    transcription (dict or None), noise_reduction (dict or None), max_output_tokens, tools,
    tool_choice, parallel_tool_calls, and the GA fields echoed as sent (tracing, truncation, prompt,
    include, reasoning).
    """
    s = require_object(session, "session")
    out: dict[str, Any] = {}
    if dialect.is_ga:
        if "type" not in s:
            raise Invalid("missing_required_parameter", "Missing required parameter: 'session.type'.", "session.type")
        reject_unknown(s, GA_SESSION, "session.")
        if s["type"] not in ("realtime", "transcription"):
            raise Invalid(
                "invalid_value",
                f"Invalid value: '{s['type']}'. Supported values are: 'realtime' and 'transcription'.",
                "session.type",
            )
        out["session_type"] = s["type"]
        if s["type"] == "transcription":
            reject_unknown(s, GA_TRANSCRIPTION_SESSION, "session.")
        _tools_fields(s, out, "session.", ga=True)
        for key in ("tracing", "truncation", "prompt", "include", "reasoning"):
            if key in s:
                out[key] = s[key]
        if "output_modalities" in s:
            out["output_modalities"] = modalities_value(s["output_modalities"], "session.output_modalities", True)
        if "max_output_tokens" in s:
            out["max_output_tokens"] = max_tokens_value(s["max_output_tokens"], "session.max_output_tokens")
        audio = require_object(s.get("audio", {}), "session.audio")
        reject_unknown(audio, frozenset({"input", "output"}), "session.audio.")
        inp = require_object(audio.get("input", {}), "session.audio.input")
        reject_unknown(inp, GA_AUDIO_INPUT, "session.audio.input.")
        if "format" in inp:
            out["input_format"] = _ga_format(inp["format"], "session.audio.input.format")
        if "turn_detection" in inp:
            out["turn_detection"] = _turn_detection(inp["turn_detection"], "session.audio.input.turn_detection")
        if "transcription" in inp:
            out["transcription"] = _transcription(inp["transcription"], "session.audio.input.transcription")
        if "noise_reduction" in inp:
            out["noise_reduction"] = _noise_reduction(inp["noise_reduction"], "session.audio.input.noise_reduction")
        outp = require_object(audio.get("output", {}), "session.audio.output")
        reject_unknown(outp, GA_AUDIO_OUTPUT, "session.audio.output.")
        if "format" in outp:
            out["output_format"] = _ga_format(outp["format"], "session.audio.output.format")
        if "voice" in outp:
            out["voice"] = outp["voice"]
        if "speed" in outp:
            out["speed"] = _speed(outp["speed"], "session.audio.output.speed")
    else:
        reject_unknown(s, PREVIEW_SESSION, "session.")
        if "modalities" in s:
            out["output_modalities"] = modalities_value(s["modalities"], "session.modalities", False)
        if "max_response_output_tokens" in s:
            out["max_output_tokens"] = max_tokens_value(
                s["max_response_output_tokens"], "session.max_response_output_tokens"
            )
        if "input_audio_format" in s:
            out["input_format"] = _preview_format(s["input_audio_format"], "session.input_audio_format")
        if "output_audio_format" in s:
            out["output_format"] = _preview_format(s["output_audio_format"], "session.output_audio_format")
        if "turn_detection" in s:
            out["turn_detection"] = _turn_detection(s["turn_detection"], "session.turn_detection")
        if "input_audio_transcription" in s:
            out["transcription"] = _transcription(s["input_audio_transcription"], "session.input_audio_transcription")
        if "input_audio_noise_reduction" in s:
            out["noise_reduction"] = _noise_reduction(
                s["input_audio_noise_reduction"], "session.input_audio_noise_reduction"
            )
        if "voice" in s:
            out["voice"] = s["voice"]
        if "speed" in s:
            out["speed"] = _speed(s["speed"], "session.speed")
        if "temperature" in s:
            out["temperature"] = _temperature(s["temperature"], "session.temperature")
        if "tracing" in s:
            out["tracing"] = s["tracing"]
        _tools_fields(s, out, "session.", ga=False)
    if "voice" in out:
        voice = out["voice"]
        name = voice.get("id") if isinstance(voice, dict) else voice
        if name not in voices:
            raise Invalid(
                "invalid_value", f"Invalid value: '{name}'. Supported values are: {', '.join(voices)}.", "session.voice"
            )
    if "instructions" in s:
        if not isinstance(s["instructions"], str):
            raise Invalid(
                "invalid_type", "Invalid type for 'session.instructions': expected a string.", "session.instructions"
            )
        out["instructions"] = s["instructions"]
    return out


def response_create(response: Any, dialect: Dialect) -> dict[str, Any]:
    """The validated ``response`` of a ``response.create``: output_modalities, output_format, voice,
    temperature, out_of_band, max_output_tokens, instructions, metadata, tools, tool_choice,
    parallel_tool_calls (each present only when set)."""
    if response is None:
        return {}
    r = require_object(response, "response")
    out: dict[str, Any] = {}
    if dialect.is_ga:
        reject_unknown(r, GA_RESPONSE, "response.")
        if "output_modalities" in r:
            out["output_modalities"] = modalities_value(r["output_modalities"], "response.output_modalities", True)
        audio = require_object(r.get("audio", {}), "response.audio")
        reject_unknown(audio, frozenset({"output"}), "response.audio.")
        outp = require_object(audio.get("output", {}), "response.audio.output")
        reject_unknown(outp, frozenset({"format", "voice"}), "response.audio.output.")
        if "format" in outp:
            out["output_format"] = _ga_format(outp["format"], "response.audio.output.format")
        if "voice" in outp:
            out["voice"] = outp["voice"]
        if "max_output_tokens" in r:
            out["max_output_tokens"] = max_tokens_value(r["max_output_tokens"], "response.max_output_tokens")
        _tools_fields(r, out, "response.", ga=True)
    else:
        reject_unknown(r, PREVIEW_RESPONSE, "response.")
        if "modalities" in r:
            out["output_modalities"] = modalities_value(r["modalities"], "response.modalities", False)
        if "output_audio_format" in r:
            out["output_format"] = _preview_format(r["output_audio_format"], "response.output_audio_format")
        if "max_response_output_tokens" in r:
            out["max_output_tokens"] = max_tokens_value(
                r["max_response_output_tokens"], "response.max_response_output_tokens"
            )
        if "voice" in r:
            out["voice"] = r["voice"]
        if "temperature" in r:
            out["temperature"] = _temperature(r["temperature"], "response.temperature")
        _tools_fields(r, out, "response.", ga=False)
    conversation = r.get("conversation", "auto")
    if conversation not in ("auto", "none"):
        raise Invalid(
            "invalid_value",
            f"Invalid value: '{conversation}'. Supported values are: 'auto' and 'none'.",
            "response.conversation",
        )
    out["out_of_band"] = conversation == "none"
    if "metadata" in r:
        out["metadata"] = r["metadata"]
    if "instructions" in r:
        out["instructions"] = r["instructions"]
    return out


def user_item(item: Any, dialect: Dialect) -> dict[str, Any]:
    """A validated item of ``conversation.item.create`` (a message or function output)."""
    it = require_object(item, "item")
    kind = it.get("type")
    if kind not in ("message", "function_call", "function_call_output"):
        raise Invalid(
            "invalid_value",
            f"Invalid value: '{kind}'. Supported values are: 'message', 'function_call', and 'function_call_output'.",
            "item.type",
        )
    if kind == "function_call_output":
        for key in ("call_id", "output"):
            if not isinstance(it.get(key), str):
                raise Invalid("missing_required_parameter", f"Missing required parameter: 'item.{key}'.", f"item.{key}")
    if kind == "message":
        if it.get("role") not in ("user", "assistant", "system"):
            raise Invalid(
                "invalid_value",
                f"Invalid value: '{it.get('role')}'. Supported values are: 'user', 'assistant', and 'system'.",
                "item.role",
            )
        content = it.get("content")
        if not isinstance(content, list):
            raise Invalid("missing_required_parameter", "Missing required parameter: 'item.content'.", "item.content")
        allowed = {"input_text", "input_audio", "input_image", "output_text", "output_audio"} if dialect.is_ga else {
            "input_text", "input_audio", "text", "audio", "item_reference"}  # fmt: skip
        for index, part in enumerate(content):
            ptype = part.get("type") if isinstance(part, dict) else None
            if ptype not in allowed:
                raise Invalid(
                    "invalid_value",
                    f"Invalid value: '{ptype}'. Supported values are: {', '.join(sorted(allowed))}.",
                    f"item.content[{index}].type",
                )
    return it


def _tools_fields(obj: dict[str, Any], out: dict[str, Any], prefix: str, *, ga: bool) -> None:
    """``tools``, ``tool_choice`` and (GA) ``parallel_tool_calls`` of a session or a response."""
    if "tools" in obj:
        out["tools"] = _tools(obj["tools"], prefix + "tools")
    if "tool_choice" in obj:
        out["tool_choice"] = _tool_choice(obj["tool_choice"], prefix + "tool_choice", ga)
    if "parallel_tool_calls" in obj:
        if not isinstance(obj["parallel_tool_calls"], bool):
            raise Invalid("invalid_type", f"Invalid type for '{prefix}parallel_tool_calls': expected a boolean.",
                          prefix + "parallel_tool_calls")  # fmt: skip
        out["parallel_tool_calls"] = obj["parallel_tool_calls"]


def _tools(value: Any, param: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise Invalid("invalid_type", f"Invalid type for '{param}': expected an array.", param)
    for index, tool in enumerate(value):
        where = f"{param}[{index}]"
        tool = require_object(tool, where)
        reject_unknown(tool, frozenset({"type", "name", "description", "parameters"}), where + ".")
        if tool.get("type", "function") != "function":
            raise Invalid("invalid_value", f"Invalid value: '{tool.get('type')}'. Supported values are: 'function'.",
                          where + ".type")  # fmt: skip
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise Invalid("missing_required_parameter", f"Missing required parameter: '{where}.name'.", where + ".name")
        if "parameters" in tool and not isinstance(tool["parameters"], dict):
            raise Invalid("invalid_type", f"Invalid type for '{where}.parameters': expected an object.",
                          where + ".parameters")  # fmt: skip
    return value


def _tool_choice(value: Any, param: str, ga: bool) -> str | dict[str, Any]:
    """GA: "auto" | "none" | "required" | {type: "function", name}. Preview: a string, the three
    options or a function's name (the preview types declare ``tool_choice: str``)."""
    if isinstance(value, str) and (value in TOOL_CHOICES or not ga):
        return value
    if ga and isinstance(value, dict):
        reject_unknown(value, frozenset({"type", "name"}), param + ".")
        if value.get("type") == "function" and isinstance(value.get("name"), str):
            return value
    raise Invalid(
        "invalid_value",
        f"Invalid value for '{param}': use 'auto', 'none', 'required' or "
        + ("{'type': 'function', 'name': ...}." if ga else "a function name."),
        param,
    )


def _transcription(value: Any, param: str) -> dict[str, Any] | None:
    if value is None:
        return None
    t = require_object(value, param)
    model = t.get("model")
    if model is not None and not isinstance(model, str):
        raise Invalid("invalid_type", f"Invalid type for '{param}.model': expected a string.", param + ".model")
    return t


def _noise_reduction(value: Any, param: str) -> dict[str, Any] | None:
    if value is None:
        return None
    nr = require_object(value, param)
    if nr.get("type") not in ("near_field", "far_field"):
        raise Invalid(
            "invalid_value",
            f"Invalid value: '{nr.get('type')}'. Supported values are: 'near_field' and 'far_field'.",
            param + ".type",
        )
    return nr


def _speed(value: Any, param: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0.25 <= value <= 1.5:
        raise Invalid("invalid_value", f"Invalid '{param}': expected a number between 0.25 and 1.5.", param)
    return float(value)


def _temperature(value: Any, param: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0.6 <= value <= 1.2:
        raise Invalid("invalid_value", f"Invalid '{param}': expected a number between 0.6 and 1.2.", param)
    return float(value)


def transcription_session_update(session: Any) -> dict[str, Any]:
    """The validated changes of a preview ``transcription_session.update`` (same keys as
    :func:`session_update`: input_format, transcription, turn_detection, noise_reduction, include)."""
    s = require_object(session, "session")
    reject_unknown(s, PREVIEW_TRANSCRIPTION_SESSION, "session.")
    out: dict[str, Any] = {"session_type": "transcription"}
    if "input_audio_format" in s:
        out["input_format"] = _preview_format(s["input_audio_format"], "session.input_audio_format")
    if "input_audio_transcription" in s:
        out["transcription"] = _transcription(s["input_audio_transcription"], "session.input_audio_transcription")
    if "turn_detection" in s:
        out["turn_detection"] = _turn_detection(s["turn_detection"], "session.turn_detection")
    if "input_audio_noise_reduction" in s:
        out["noise_reduction"] = _noise_reduction(
            s["input_audio_noise_reduction"], "session.input_audio_noise_reduction"
        )
    if "include" in s:
        out["include"] = s["include"]
    return out
