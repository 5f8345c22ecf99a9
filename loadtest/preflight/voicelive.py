"""Preflight's Azure Voice Live checks: its URL (``/voice-live/realtime``) and its session.

Sources: ``../shared/voice-live.md`` §1-2. Same one-line findings as the other checks.
"""

from __future__ import annotations

from typing import Any

from loadtest.preflight.findings import Finding, Severity
from loadtest.protocol.dialects import VOICE_LIVE_INPUT_RATES, VOICE_LIVE_OUTPUT_FORMATS
from loadtest.protocol.targets import (
    BYOM_PROFILES,
    VOICE_LIVE_API_VERSIONS,
    VOICE_LIVE_PATH,
    is_voice_live_host,
    voice_live_model_class,
)

E, W, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO
URL_FIX = f"use wss://<resource>.services.ai.azure.com{VOICE_LIVE_PATH}?api-version=2026-04-10&model=<model>"
# gpt-4o-realtime-preview fails at the upgrade ("Invalid response status", learn.microsoft.com/answers/
# questions/5863943); no retirement date was published for Voice Live.
RETIRED_MODELS = {"gpt-4o-realtime-preview": "gpt-realtime"}
SEMANTIC_VAD_MODELS = ("gpt-realtime", "gpt-realtime-mini")
OPENAI_TRANSCRIBE = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-4o-transcribe-diarize")
TURN_TYPES = (
    "server_vad",
    "semantic_vad",
    "azure_semantic_vad",
    "azure_semantic_vad_en",
    "azure_semantic_vad_multilingual",
)
VOICE_TYPES = ("openai", "azure-standard", "azure-custom", "azure-personal", "azure-realtime-native")
GA_SHAPE_FIELDS = {
    "type": "remove it (Voice Live sessions have no type)",
    "audio": "use the flat fields: input_audio_format, output_audio_format, voice, turn_detection, "
    "input_audio_transcription",
    "output_modalities": 'use modalities: ["text", "audio"]',
    "max_output_tokens": "use max_response_output_tokens",
}


def check_url(cfg: Any) -> list[Finding]:
    """A ``/voice-live/realtime`` URL: its host, api-version, model or agent, profile."""
    out: list[Finding] = [
        Finding(
            "url.voice_live",
            INFO,
            "Azure Voice Live: the preview event names with its own session fields",
            "the harness uses its voicelive dialect (--provider voicelive)",
        )
    ]
    query = {k.lower(): v[0] for k, v in cfg.query.items() if v}
    if not cfg.is_loopback and not is_voice_live_host(cfg.host):
        out.append(
            Finding(
                "url.voice_live_host",
                W,
                f"{cfg.host} is no Voice Live host (*.services.ai.azure.com or *.cognitiveservices.azure.com)",
                URL_FIX,
            )
        )
    version = query.get("api-version")
    if not version:
        out.append(Finding("url.missing_api_version", E, "the Voice Live URL has no api-version", URL_FIX))
    elif version not in VOICE_LIVE_API_VERSIONS:
        out.append(
            Finding(
                "url.unknown_api_version",
                W,
                f"api-version {version!r} is no known Voice Live version",
                f"use one of {', '.join(VOICE_LIVE_API_VERSIONS)}",
            )
        )
    agent = query.get("agent-name") or query.get("agent-id")
    if agent and not query.get("agent-project-name"):
        out.append(
            Finding(
                "url.voice_live_agent",
                E,
                "agent mode needs agent-project-name beside the agent",
                "add &agent-project-name=<your Foundry project>",
            )
        )
    if not agent and not query.get("model") and not cfg.deployment:  # (--deployment adds it)
        out.append(
            Finding(
                "url.missing_model",
                E,
                "the Voice Live URL names no model and no agent",
                "add &model=<model> (or &agent-name=...&agent-project-name=...)",
            )
        )
    profile = query.get("profile")
    if profile is not None and profile not in BYOM_PROFILES:
        out.append(
            Finding(
                "url.voice_live_profile",
                E,
                f"profile={profile!r} is no Voice Live profile",
                f"use profile={' or profile='.join(BYOM_PROFILES)}",
            )
        )
    if "deployment" in query:
        out.append(Finding("url.missing_model", E, "Voice Live names the model as ?model=, not ?deployment=", URL_FIX))
    return out


def check_model(name: str) -> list[Finding]:
    replacement = RETIRED_MODELS.get(name.lower())
    if replacement is None:
        return []
    return [
        Finding(
            "model.retired",
            E,
            f'{name} is retired on Voice Live: the upgrade fails ("Invalid response status" in aiohttp clients)',
            f"use model={replacement}",
        )
    ]


def check_session(session: dict[str, Any], model: str | None, path_name: str) -> list[Finding]:
    """A session sent to Voice Live: GA fields, settings the model does not support, bad values."""
    out: list[Finding] = []
    for name, fix in GA_SHAPE_FIELDS.items():
        if name in session:
            out.append(
                Finding(
                    "session.ga_shape",
                    E,
                    f"session.{name} is the GA shape; Voice Live takes the flat preview-style session",
                    fix,
                )
            )
    model_class = voice_live_model_class(model or "")
    td = session.get("turn_detection")
    if isinstance(td, dict):
        kind = td.get("type", "server_vad")
        if kind not in TURN_TYPES:
            out.append(
                Finding(
                    "session.turn_detection",
                    E,
                    f"turn_detection.type {kind!r} is unknown to Voice Live",
                    f"use one of {', '.join(TURN_TYPES)}",
                )
            )
        elif kind == "semantic_vad" and model and model not in SEMANTIC_VAD_MODELS:
            out.append(
                Finding(
                    "session.semantic_vad_model",
                    E,
                    f"semantic_vad works only with {' and '.join(SEMANTIC_VAD_MODELS)}, not {model}",
                    "use azure_semantic_vad (every model)",
                )
            )
    transcription = session.get("input_audio_transcription")
    if isinstance(transcription, dict):
        tmodel = transcription.get("model")
        if tmodel in OPENAI_TRANSCRIBE and model and model not in SEMANTIC_VAD_MODELS:
            kind = "a cascade model" if model_class == "cascade" else "this model"
            out.append(
                Finding(
                    "session.transcription_model",
                    E,
                    f"{tmodel} works only with gpt-realtime(-mini), {model} is {kind}",
                    "use input_audio_transcription.model azure-speech (or mai-transcribe)",
                )
            )
    rate = session.get("input_audio_sampling_rate")
    if rate is not None and rate not in VOICE_LIVE_INPUT_RATES:
        out.append(
            Finding(
                "session.sampling_rate",
                E,
                f"input_audio_sampling_rate {rate}: Voice Live takes 16000 or 24000",
                "resample the input to 16 or 24 kHz",
            )
        )
    fmt = session.get("output_audio_format")
    if fmt is not None and fmt not in VOICE_LIVE_OUTPUT_FORMATS:
        out.append(
            Finding(
                "session.output_format",
                E,
                f"output_audio_format {fmt!r} is unknown to Voice Live",
                f"use one of {', '.join(VOICE_LIVE_OUTPUT_FORMATS)}",
            )
        )
    voice = session.get("voice")
    if isinstance(voice, str):
        out.append(
            Finding(
                "session.voice_string",
                W,
                f"voice {voice!r} as a string: Voice Live documents a voice object",
                f'use {{"type": "openai" or "azure-standard", "name": "{voice}"}}',
            )
        )
    elif isinstance(voice, dict) and voice.get("type") not in VOICE_TYPES:
        out.append(
            Finding(
                "session.voice",
                E,
                f"voice.type {voice.get('type')!r} is unknown to Voice Live",
                f"use one of {', '.join(VOICE_TYPES)}",
            )
        )
    temperature = session.get("temperature")
    if isinstance(temperature, int | float) and not 0.6 <= temperature <= 1.2:
        out.append(
            Finding(
                "session.temperature",
                E,
                f"temperature {temperature} is outside Voice Live's [0.6, 1.2]",
                "use a value in [0.6, 1.2]",
            )
        )
    return out
