"""Usage by kind from response.done's usage, in both dialects' shapes (the mock's and the service's)."""

from __future__ import annotations

from loadtest.mock import events
from loadtest.protocol.dialects import get_dialect
from loadtest.session.usage import usage_fields


def test_ga_usage_with_cached_details() -> None:
    # the GA service's shape (a usage block from a real session, as users post them)
    usage = {
        "total_tokens": 821,
        "input_tokens": 789,
        "output_tokens": 32,
        "input_token_details": {
            "text_tokens": 313,
            "audio_tokens": 476,
            "cached_tokens": 640,
            "cached_tokens_details": {"text_tokens": 256, "audio_tokens": 384},
        },
        "output_token_details": {"text_tokens": 9, "audio_tokens": 23},
    }
    assert usage_fields(usage) == {
        "input_tokens": 789,
        "output_tokens": 32,
        "total_tokens": 821,
        "input_text_tokens": 313,
        "input_audio_tokens": 476,
        "input_cached_tokens": 640,
        "input_cached_audio_tokens": 384,
        "output_text_tokens": 9,
        "output_audio_tokens": 23,
    }


def test_preview_usage_has_no_cached_split() -> None:
    got = usage_fields(events.usage(get_dialect("preview"), 12, 30, 7, 150))
    assert (got["input_text_tokens"], got["input_audio_tokens"], got["input_cached_tokens"]) == (12, 30, 0)
    assert got["input_cached_audio_tokens"] is None
    assert (got["output_text_tokens"], got["output_audio_tokens"], got["total_tokens"]) == (7, 150, 199)
    ga = usage_fields(events.usage(get_dialect("ga"), 12, 30, 7, 150))
    assert ga["input_cached_audio_tokens"] == 0 and ga["output_audio_tokens"] == 150


def test_missing_or_odd_usage_is_empty() -> None:
    assert set(usage_fields({}).values()) == {None}
    assert usage_fields({"input_token_details": "x", "input_tokens": True})["input_tokens"] is None
