"""Support for the workload tests: sample session files of both dialects, scenario files, recordings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from loadtest.records.writer import read_rows

TOOLS = [
    {
        "type": "function",
        "name": "find_table",
        "description": "Free tables for a party size",
        "parameters": {"type": "object", "properties": {"people": {"type": "integer"}}, "required": ["people"]},
    },
    {
        "type": "function",
        "name": "book_table",
        "description": "Book a table",
        "parameters": {"type": "object", "properties": {"time": {"type": "string"}}, "required": ["time"]},
    },
]

# an agent's session in each dialect: instructions, a voice, semantic VAD with eagerness, noise
# reduction, input transcription, two tools
GA_SESSION: dict[str, Any] = {
    "type": "realtime",
    "instructions": "You are Ava, the booking assistant of Chez Nous. Answer in one short sentence.",
    "output_modalities": ["audio"],
    "audio": {
        "input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "noise_reduction": {"type": "near_field"},
            "transcription": {"model": "gpt-4o-mini-transcribe", "language": "en"},
            "turn_detection": {"type": "semantic_vad", "eagerness": "low"},
        },
        "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"},
    },
    "tools": TOOLS,
    "tool_choice": "auto",
    "max_output_tokens": 800,
}

PREVIEW_SESSION: dict[str, Any] = {
    "modalities": ["text", "audio"],
    "instructions": "You are Ava, the booking assistant of Chez Nous. Answer in one short sentence.",
    "voice": "sage",
    "input_audio_format": "pcm16",
    "output_audio_format": "pcm16",
    "input_audio_noise_reduction": {"type": "far_field"},
    "input_audio_transcription": {"model": "whisper-1", "language": "en"},
    "turn_detection": {"type": "semantic_vad", "eagerness": "high"},
    "tools": TOOLS,
    "tool_choice": "auto",
    "temperature": 0.7,
}

SESSIONS = {"ga": GA_SESSION, "preview": PREVIEW_SESSION}


def write_json(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return path


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def leaves(doc: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf of a JSON document by its dotted path (lists by index): for field-by-field checks."""
    if isinstance(doc, dict):
        out: dict[str, Any] = {}
        for key, value in doc.items():
            out.update(leaves(value, f"{prefix}.{key}" if prefix else key))
        return out or {prefix: {}}
    if isinstance(doc, list):
        out = {}
        for i, value in enumerate(doc):
            out.update(leaves(value, f"{prefix}[{i}]"))
        return out or {prefix: []}
    return {prefix: doc}


def truth_rows(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    return [r for r in read_rows(run_dir / "mock_truth.jsonl") if r.get("kind") == kind]


def stereo_44k1_recording(path: Path, pcm24k: np.ndarray) -> Path:
    """``pcm24k`` (int16 mono 24 kHz) as a 44.1 kHz stereo 16-bit WAV, the right channel at half level."""
    import soundfile as sf
    import soxr

    mono = soxr.resample(pcm24k.astype(np.float32) / 32768.0, 24000, 44100, quality="HQ")
    stereo = np.stack([mono, mono * 0.5], axis=1)
    sf.write(str(path), stereo, 44100, subtype="PCM_16", format="WAV")
    return path
