"""Server event bodies in either dialect (GA or preview), built from the mock's state.

Shapes follow the official openai-python types (``types/realtime``, ``types/beta/realtime``);
the tests validate every event the mock sends against them.
"""

from __future__ import annotations

from typing import Any

from loadtest.protocol.dialects import AUDIO_FORMATS, Dialect


def _ga_format(name: str) -> dict[str, Any]:
    return dict(AUDIO_FORMATS[name][0])


_TRANSCRIPTION_TURN = ("type", "threshold", "prefix_padding_ms", "silence_duration_ms")


def session_object(
    dialect: Dialect, session_id: str, model: str, cfg: dict[str, Any], expires_at: int
) -> dict[str, Any]:
    """The session as ``session.created`` / ``session.updated`` carry it."""
    td = cfg["turn_detection"]
    transcription = cfg.get("transcription")
    if dialect.is_ga:
        turn = None
        if td is not None:
            turn = {"type": td.get("type", "server_vad")}
            if turn["type"] == "server_vad":
                for key in ("threshold", "prefix_padding_ms", "silence_duration_ms", "idle_timeout_ms"):
                    turn[key] = td.get(key)
            else:
                turn["eagerness"] = td.get("eagerness", "auto")
            turn["create_response"] = td.get("create_response", True)
            turn["interrupt_response"] = td.get("interrupt_response", True)
        audio_input = {
            "format": _ga_format(cfg["input_format"]),
            "transcription": transcription,
            "noise_reduction": cfg.get("noise_reduction"),
            "turn_detection": turn,
        }
        if cfg.get("session_type") == "transcription":
            return {
                "type": "transcription",
                "object": "realtime.transcription_session",
                "id": session_id,
                "expires_at": expires_at,
                "audio": {"input": audio_input},
                "include": cfg.get("include"),
            }
        body = {
            "type": "realtime",
            "object": "realtime.session",
            "id": session_id,
            "model": model,
            "output_modalities": list(cfg["output_modalities"]),
            "instructions": cfg["instructions"],
            "tools": list(cfg.get("tools") or []),
            "tool_choice": cfg.get("tool_choice", "auto"),
            "max_output_tokens": cfg["max_output_tokens"],
            "tracing": cfg.get("tracing"),
            "truncation": cfg.get("truncation", "auto"),
            "prompt": cfg.get("prompt"),
            "expires_at": expires_at,
            "audio": {
                "input": audio_input,
                "output": {
                    "format": _ga_format(cfg["output_format"]),
                    "voice": cfg["voice"],
                    "speed": cfg.get("speed", 1.0),
                },
            },
            "include": cfg.get("include"),
        }
        for key in ("parallel_tool_calls", "reasoning"):  # echoed only once a client sets them
            if cfg.get(key) is not None:
                body[key] = cfg[key]
        return body
    turn = None
    if td is not None:
        turn = {
            "type": td.get("type", "server_vad"),
            "threshold": td.get("threshold"),
            "prefix_padding_ms": td.get("prefix_padding_ms"),
            "silence_duration_ms": td.get("silence_duration_ms"),
            "create_response": td.get("create_response", True),
            "interrupt_response": td.get("interrupt_response", True),
        }
        if turn["type"] == "semantic_vad":
            turn = {k: v for k, v in turn.items() if k in ("type", "create_response", "interrupt_response")}
            turn["eagerness"] = td.get("eagerness", "auto")
    if cfg.get("session_type") == "transcription":
        # the WebSocket event carries no client_secret (openai/openai-openapi#568), though the SDK
        # type declares it
        return {
            "id": session_id,
            "object": "realtime.transcription_session",
            "modalities": ["text"],
            "input_audio_format": cfg["input_format"],
            "input_audio_transcription": transcription,
            "input_audio_noise_reduction": cfg.get("noise_reduction"),
            "turn_detection": None if turn is None else {k: v for k, v in turn.items() if k in _TRANSCRIPTION_TURN},
        }
    return {
        "id": session_id,
        "object": "realtime.session",
        "model": model,
        "expires_at": expires_at,
        "modalities": ["text"] if cfg["output_modalities"] == ["text"] else ["audio", "text"],
        "instructions": cfg["instructions"],
        "voice": cfg["voice"],
        "input_audio_format": cfg["input_format"],
        "output_audio_format": cfg["output_format"],
        "input_audio_transcription": transcription,
        "input_audio_noise_reduction": cfg.get("noise_reduction"),
        "turn_detection": turn,
        "tools": list(cfg.get("tools") or []),
        "tool_choice": cfg.get("tool_choice", "auto"),
        "temperature": cfg.get("temperature", 0.8),
        "max_response_output_tokens": cfg["max_output_tokens"],
        "speed": cfg.get("speed", 1.0),
        "tracing": cfg.get("tracing"),
    }


def error_body(code: str | None, message: str, param: str | None = None, event_id: str | None = None,
               error_type: str = "invalid_request_error") -> dict[str, Any]:  # fmt: skip
    return {"type": error_type, "code": code, "message": message, "param": param, "event_id": event_id}


def user_item(dialect: Dialect, item_id: str, content: list[dict[str, Any]], role: str = "user") -> dict[str, Any]:
    return {"id": item_id, "object": "realtime.item", "type": "message", "status": "completed", "role": role,
            "content": content}  # fmt: skip


def audio_user_content(dialect: Dialect) -> list[dict[str, Any]]:
    return [{"type": "input_audio", "transcript": None}]


def assistant_item(dialect: Dialect, item_id: str, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": item_id, "object": "realtime.item", "type": "message", "status": status, "role": "assistant",
            "content": content}  # fmt: skip


def assistant_content(dialect: Dialect, kind: str, text: str) -> dict[str, Any]:
    """Content of an assistant item: kind is "audio" or "text"."""
    if kind == "audio":
        return {"type": dialect.content_audio, "transcript": text}
    return {"type": dialect.content_text, "text": text}


def part(kind: str, text: str) -> dict[str, Any]:
    """A content part (same names in both dialects)."""
    return {"type": "audio", "transcript": text} if kind == "audio" else {"type": "text", "text": text}


def response_object(
    dialect: Dialect,
    response_id: str,
    *,
    status: str,
    conversation_id: str | None,
    modalities: list[str],
    output_format: str,
    voice: str,
    max_output_tokens: int | str,
    metadata: dict[str, Any] | None,
    output: list[dict[str, Any]] | None = None,
    status_details: dict[str, Any] | None = None,
    usage: dict[str, Any] | None = None,
    temperature: float = 0.8,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "object": "realtime.response",
        "id": response_id,
        "status": status,
        "status_details": status_details,
        "output": output or [],
        "conversation_id": conversation_id,
        "max_output_tokens": max_output_tokens,
        "metadata": metadata,
        "usage": usage,
    }
    if dialect.is_ga:
        body["output_modalities"] = list(modalities)
        body["audio"] = {"output": {"format": _ga_format(output_format), "voice": voice}}
    else:
        body["modalities"] = ["text"] if modalities == ["text"] else ["audio", "text"]
        body["output_audio_format"] = output_format
        body["voice"] = voice
        body["temperature"] = temperature
    return body


def usage(dialect: Dialect, input_text: int, input_audio: int, output_text: int, output_audio: int) -> dict[str, Any]:
    input_tokens = input_text + input_audio
    output_tokens = output_text + output_audio
    body: dict[str, Any] = {
        "total_tokens": input_tokens + output_tokens,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "input_token_details": {"text_tokens": input_text, "audio_tokens": input_audio, "cached_tokens": 0},
        "output_token_details": {"text_tokens": output_text, "audio_tokens": output_audio},
    }
    if dialect.is_ga or dialect.is_voice_live:  # Voice Live's usage has them too (azure-ai-voicelive)
        body["input_token_details"]["image_tokens"] = 0
        body["input_token_details"]["cached_tokens_details"] = {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0}
    return body


def function_call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    """A ``function_call`` item (same shape in both dialects)."""
    return {"id": item_id, "object": "realtime.item", "type": "function_call", "status": status, "name": name,
            "call_id": call_id, "arguments": arguments}  # fmt: skip


def transcription_usage(model: str | None, seconds: float, transcript: str) -> dict[str, Any]:
    """Usage of one input transcription in the configured model's shape: ``duration`` for
    whisper-1, ``tokens`` (audio in, text out) for the gpt-4o transcribe models and the rest."""
    if (model or "").startswith("whisper"):
        return {"type": "duration", "seconds": round(seconds, 3)}
    audio_tokens = max(1, round(seconds * 10))
    output_tokens = max(1, round(len(transcript) / 4))
    return {
        "type": "tokens",
        "input_tokens": audio_tokens,
        "output_tokens": output_tokens,
        "total_tokens": audio_tokens + output_tokens,
        "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens},
    }
