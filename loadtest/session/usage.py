"""The usage of one response by kind, from ``response.done``'s ``usage`` (both dialects).

GA and preview both give ``input_token_details`` (``text_tokens``, ``audio_tokens``,
``cached_tokens``) and ``output_token_details`` (``text_tokens``, ``audio_tokens``); GA adds
``cached_tokens_details`` (text / audio / image). Cached tokens are part of the input tokens.
"""

from __future__ import annotations

from typing import Any

_EMPTY: dict[str, Any] = {}


def _int(value: Any) -> int | None:
    kind = type(value)  # exact types first: this runs for every response that ends
    if kind is int:
        return value
    if kind is float:
        return int(value)
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if type(value) is dict else _EMPTY


def usage_fields(usage: dict[str, Any]) -> dict[str, int | None]:
    """The ResponseRecord usage columns of a ``usage`` object (None where it says nothing)."""
    inp, out = _dict(usage.get("input_token_details")), _dict(usage.get("output_token_details"))
    cached = _dict(inp.get("cached_tokens_details"))
    return {
        "input_tokens": _int(usage.get("input_tokens")),
        "output_tokens": _int(usage.get("output_tokens")),
        "total_tokens": _int(usage.get("total_tokens")),
        "input_text_tokens": _int(inp.get("text_tokens")),
        "input_audio_tokens": _int(inp.get("audio_tokens")),
        "input_cached_tokens": _int(inp.get("cached_tokens")),
        "input_cached_audio_tokens": _int(cached.get("audio_tokens")),
        "output_text_tokens": _int(out.get("text_tokens")),
        "output_audio_tokens": _int(out.get("audio_tokens")),
    }
