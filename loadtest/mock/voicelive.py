"""The mock's Azure Voice Live endpoint: its URL, its session fields, its limits, its model classes.

``/voice-live/realtime?api-version=V&model=M`` (or ``agent-name`` + ``agent-project-name``, and
``profile=byom-*``) speaks the ``voicelive`` dialect: the preview event names and flat session, plus
Voice Live's own session fields (voice as an object, ``input_audio_sampling_rate``, the extra output
formats, Azure noise suppression and echo cancellation, ``azure_semantic_vad*`` with end-of-utterance
detection, Azure transcription models, word timestamps). Its own limits: new connections per minute
(429 at the upgrade with ``Retry-After``), the 60-minute session cap, one token budget per resource;
and a latency per model class (a cascade answers later than a native model). Everything here comes
from ``../shared/voice-live.md``; what it marks unverified (refusal statuses, the expiry wording)
is a guess the README names.
"""

from __future__ import annotations

import collections
import random
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from loadtest.mock.limits import Bucket
from loadtest.mock.routing import Refusal, Route, bearer_token
from loadtest.mock.validate import (
    Invalid,
    max_tokens_value,
    modalities_value,
    reject_unknown,
    require_object,
    session_update,
)
from loadtest.protocol.dialects import (
    PREVIEW,
    VOICE_LIVE_INPUT_RATES,
    VOICE_LIVE_OUTPUT_FORMATS,
    voice_live_input_format,
    voice_live_voice,
)
from loadtest.protocol.targets import BYOM_PROFILES, VOICE_LIVE_PATH

PATH = VOICE_LIVE_PATH
BUDGET_KEY = "voicelive"  # every Voice Live session spends from the one resource budget

# Session fields Voice Live adds to the preview ones ([R0410], [HOW]).
EXTRA_SESSION = frozenset(
    {
        "input_audio_sampling_rate",
        "input_audio_echo_cancellation",
        "output_audio_timestamp_types",
        "animation",
        "avatar",
        "interim_response",
        "filler_response",
        "reasoning_effort",
        "metadata",
    }
)
TURN_TYPES = (
    "server_vad",
    "semantic_vad",
    "azure_semantic_vad",
    "azure_semantic_vad_en",
    "azure_semantic_vad_multilingual",
)
TURN_FIELDS = frozenset(
    {
        "type",
        "threshold",
        "prefix_padding_ms",
        "speech_duration_ms",
        "silence_duration_ms",
        "create_response",
        "interrupt_response",
        "auto_truncate",
        "eagerness",
        "remove_filler_words",
        "languages",
        "end_of_utterance_detection",
        "speech_duration_assistant_speaking_ms",
    }
)
EOU_FIELDS = frozenset({"model", "threshold_level", "timeout_ms", "threshold", "timeout"})
EOU_MODELS = ("semantic_detection_v1", "semantic_detection_v1_multilingual", "semantic_detection_v1_en")
VOICE_TYPES = ("openai", "azure-standard", "azure-custom", "azure-personal", "azure-realtime-native")
NOISE_TYPES = ("azure_deep_noise_suppression", "near_field", "far_field")
OPENAI_TRANSCRIBE = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-4o-transcribe-diarize")
AZURE_TRANSCRIBE = ("azure-speech", "mai-transcribe")
SEMANTIC_VAD_MODELS = ("gpt-realtime", "gpt-realtime-mini")


def resolve(path_and_query: str, headers: Any, profile: dict[str, Any], keys: frozenset[str]) -> Route | Refusal:
    """The route of a ``/voice-live/realtime`` upgrade, or its refusal (statuses unverified but 401).

    The server sends the upgrades of this path here and every other to
    :func:`loadtest.mock.routing.resolve` (so that module needs nothing of this one)."""
    query = {k: v[-1] for k, v in parse_qs(urlsplit(path_and_query).query, keep_blank_values=True).items()}
    vl = profile["voicelive"]
    key = headers.get("api-key") or bearer_token(headers) or query.get("api-key")
    if not key or key not in keys:
        return Refusal(401, "Unauthorized", "Access denied due to invalid subscription key or wrong API endpoint.")
    version = query.get("api-version")
    if not version:
        return Refusal(400, "MissingApiVersion", "The api-version query parameter (?api-version=) is required.")
    if version not in vl["api_versions"]:
        return Refusal(400, "UnsupportedApiVersion", f"The api-version {version!r} is not supported.")
    profile_name = query.get("profile")
    if profile_name is not None and profile_name not in BYOM_PROFILES:
        return Refusal(400, "InvalidProfile", f"Unknown profile {profile_name!r}; use {' or '.join(BYOM_PROFILES)}.")
    agent = query.get("agent-name") or query.get("agent-id")
    if agent:
        if not query.get("agent-project-name"):
            return Refusal(400, "MissingParameter", "Agent mode needs agent-project-name with agent-name.")
        return Route("voicelive", "voicelive", agent, version, model_class="agent", budget_key=BUDGET_KEY)
    model = query.get("model", "")
    if not model:
        return Refusal(400, "MissingModel", "Either model or agent-name and agent-project-name are required.")
    if model in vl["retired"]:
        return Refusal(int(vl["retired_status"]), "ModelRetired", f"The model {model!r} has been retired.")
    if profile_name:
        cls = "byom"
    elif model in vl["native_models"]:
        cls = "native"
    elif model in vl["cascade_models"]:
        cls = "cascade"
    else:
        return Refusal(400, "UnsupportedModel", f"The model {model!r} is not supported by Voice Live.")
    return Route(
        "voicelive",
        "voicelive",
        model,
        version,
        model_class=cls,
        budget_key=BUDGET_KEY,
        byom_cascade=profile_name == "byom-azure-openai-chat-completion",
    )


class ConnectionRate:
    """New connections per minute for the resource: a sliding one-minute window."""

    def __init__(self, per_minute: int, window_s: float = 60.0) -> None:
        self.per_minute = int(per_minute)
        self.window_s = float(window_s)  # one minute; shorter in tests
        self.opened: collections.deque[float] = collections.deque()

    def admit(self, now: float | None = None) -> Refusal | None:
        """None (and the connection counted), or a 429 whose ``Retry-After`` is the seconds until
        the oldest connection of the last minute ages out."""
        if self.per_minute <= 0:
            return None
        now = time.monotonic() if now is None else now
        while self.opened and now - self.opened[0] >= self.window_s:
            self.opened.popleft()
        if len(self.opened) >= self.per_minute:
            retry = max(1, int(self.window_s - (now - self.opened[0]) + 0.999))
            return Refusal(
                429,
                "TooManyRequests",
                f"Too many new connections: the limit is {self.per_minute} per minute. Retry later.",
                {"Retry-After": str(retry), "retry-after-ms": str(retry * 1000)},
            )
        self.opened.append(now)
        return None


class VoiceLiveState:
    """The mock server's Voice Live state: the connection window and the token budget."""

    def __init__(self, profile: dict[str, Any], limits: Any) -> None:
        vl = profile["voicelive"]
        self.knobs = vl
        self.rate = ConnectionRate(int(vl["new_connections_per_minute"]), float(vl["connection_window_s"]))
        limits.tokens[BUDGET_KEY] = Bucket(int(vl["tokens_per_minute"]))
        limits.requests[BUDGET_KEY] = Bucket(int(profile["rate_limits"]["requests_per_minute"]))


def is_cascade(route: Route) -> bool:
    return route.model_class in ("cascade", "agent") or route.byom_cascade


def class_latency_s(rng: random.Random, route: Route, profile: dict[str, Any]) -> float:
    """The model class's extra time to ``response.created`` (s): later for a cascade."""
    vl = profile["voicelive"]
    lo, hi = vl["cascade_extra_ms"] if is_cascade(route) else vl["native_extra_ms"]
    return rng.uniform(float(lo), float(hi)) / 1000.0


def session_defaults(cfg: dict[str, Any], api_version: str | None) -> None:
    """Voice Live's defaults in a new session: server VAD's prefix padding is 400 ms from 2026-04-10
    (300 before) ([R0410])."""
    td = cfg.get("turn_detection")
    if td is not None:
        td["prefix_padding_ms"] = 400 if (api_version or "") >= "2026-04-10" else 300


def max_duration_s(profile: dict[str, Any]) -> float:
    return float(profile["voicelive"]["max_duration_s"])


# ---- session.update -------------------------------------------------------------------------------
def _turn_detection(value: Any, model: str) -> dict[str, Any] | None:
    if value is None:
        return None
    td = require_object(value, "session.turn_detection")
    reject_unknown(td, TURN_FIELDS, "session.turn_detection.")
    kind = td.get("type", "server_vad")
    if kind not in TURN_TYPES:
        raise Invalid(
            "invalid_value",
            f"Invalid value: '{kind}'. Supported values are: {', '.join(repr(t) for t in TURN_TYPES)}.",
            "session.turn_detection.type",
        )
    if kind == "semantic_vad" and model not in SEMANTIC_VAD_MODELS:
        raise Invalid(
            "invalid_value",
            f"semantic_vad is supported only with {' and '.join(SEMANTIC_VAD_MODELS)}; use azure_semantic_vad.",
            "session.turn_detection.type",
        )
    threshold = td.get("threshold", 0.5)
    if not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise Invalid(
            "invalid_value",
            "Invalid 'threshold': expected a number between 0 and 1.",
            "session.turn_detection.threshold",
        )
    eou = td.get("end_of_utterance_detection")
    if eou is not None:
        eou = require_object(eou, "session.turn_detection.end_of_utterance_detection")
        reject_unknown(eou, EOU_FIELDS, "session.turn_detection.end_of_utterance_detection.")
        if eou.get("model") not in EOU_MODELS:
            raise Invalid(
                "invalid_value",
                f"Invalid value: '{eou.get('model')}'. Supported values are: {', '.join(EOU_MODELS)}.",
                "session.turn_detection.end_of_utterance_detection.model",
            )
    # the documented defaults (2026-04-10); speech_duration_ms only on the azure types, as the SDK has it
    azure = kind.startswith("azure_")
    out = {"prefix_padding_ms": 420 if azure else 400, "silence_duration_ms": 500, **td, "type": kind}
    if azure:
        out.setdefault("speech_duration_ms", 80)
    else:
        out.pop("speech_duration_ms", None)
    return out


def _voice(value: Any, voices: list[str]) -> tuple[str, dict[str, Any]]:
    # a plain string, as in the preview protocol (whether Voice Live still takes one is unverified)
    voice = voice_live_voice(value) if isinstance(value, str) else require_object(value, "session.voice")
    kind, name = voice.get("type"), voice.get("name")
    if kind not in VOICE_TYPES:
        raise Invalid(
            "invalid_value",
            f"Invalid value: '{kind}'. Supported values are: {', '.join(VOICE_TYPES)}.",
            "session.voice.type",
        )
    if not isinstance(name, str) or not name:
        raise Invalid(
            "missing_required_parameter", "Missing required parameter: 'session.voice.name'.", "session.voice.name"
        )
    if kind == "openai" and name not in voices:
        raise Invalid(
            "invalid_value",
            f"Invalid value: '{name}'. Supported values are: {', '.join(voices)}.",
            "session.voice.name",
        )
    if kind == "azure-custom" and not voice.get("endpoint_id"):
        raise Invalid(
            "missing_required_parameter",
            "Missing required parameter: 'session.voice.endpoint_id'.",
            "session.voice.endpoint_id",
        )
    return name, dict(voice)


def _input_format(s: dict[str, Any]) -> str:
    fmt = s.get("input_audio_format", "pcm16")
    rate = s.get("input_audio_sampling_rate")
    if fmt not in ("pcm16", "g711_ulaw", "g711_alaw"):
        raise Invalid(
            "invalid_value",
            f"Invalid value: '{fmt}'. Supported values are: 'pcm16', 'g711_ulaw', and 'g711_alaw'.",
            "session.input_audio_format",
        )
    if rate is not None and fmt == "pcm16" and rate not in VOICE_LIVE_INPUT_RATES:
        raise Invalid(
            "invalid_value",
            f"Invalid 'input_audio_sampling_rate': {rate}; use 16000 or 24000.",
            "session.input_audio_sampling_rate",
        )
    return str(voice_live_input_format({**s, "input_audio_format": fmt}))


def validate_session(session: Any, voices: list[str], cfg: dict[str, Any], model: str) -> dict[str, Any]:
    """The validated changes of a Voice Live ``session.update`` (the keys of
    :func:`loadtest.mock.validate.session_update`, plus ``voicelive``: the Voice Live fields, merged
    with the session's)."""
    s = require_object(session, "session")
    if "type" in s or "audio" in s or "output_modalities" in s:
        bad = next(k for k in ("type", "audio", "output_modalities") if k in s)
        raise Invalid(
            "unknown_parameter",
            f"Unknown parameter: 'session.{bad}'. Voice Live takes the flat "
            "session (modalities, input_audio_format, turn_detection...).",
            f"session.{bad}",
        )
    common = {
        k: v
        for k, v in s.items()
        if k not in EXTRA_SESSION
        and k
        not in (
            "voice",
            "turn_detection",
            "input_audio_format",
            "output_audio_format",
            "input_audio_noise_reduction",
            "input_audio_transcription",
            "modalities",
            "temperature",
            "max_response_output_tokens",
        )
    }
    out = session_update(common, PREVIEW, voices)  # instructions, tools...: the preview's own checks
    extras = dict(cfg.get("voicelive") or {})
    if "modalities" in s:
        mods = s["modalities"]
        if not isinstance(mods, list) or not set(mods) <= {"text", "audio", "animation", "avatar"} or mods == ["audio"]:
            raise Invalid(
                "invalid_value",
                "Invalid 'session.modalities': use ['text'] or ['text', 'audio'] "
                "(plus 'animation', 'avatar'; audio alone is not allowed).",
                "session.modalities",
            )
        out["output_modalities"] = modalities_value(
            [m for m in mods if m in ("text", "audio")], "session.modalities", False
        )
    if "max_response_output_tokens" in s:
        out["max_output_tokens"] = max_tokens_value(
            s["max_response_output_tokens"], "session.max_response_output_tokens"
        )
    if "temperature" in s:
        t = s["temperature"]
        if not isinstance(t, int | float) or not 0.6 <= t <= 1.2:
            raise Invalid(
                "invalid_value",
                "Invalid 'session.temperature': expected a number in [0.6, 1.2].",
                "session.temperature",
            )
    if "voice" in s:
        out["voice"], extras["voice"] = _voice(s["voice"], voices)
    if "input_audio_format" in s or "input_audio_sampling_rate" in s:
        out["input_format"] = _input_format(s)
        extras["input_audio_sampling_rate"] = {"pcm16_16000hz": 16000}.get(out["input_format"], 24000)
    if "output_audio_format" in s:
        if s["output_audio_format"] not in VOICE_LIVE_OUTPUT_FORMATS:
            raise Invalid(
                "invalid_value",
                f"Invalid value: '{s['output_audio_format']}'. Supported values are: "
                f"{', '.join(VOICE_LIVE_OUTPUT_FORMATS)}.",
                "session.output_audio_format",
            )
        out["output_format"] = s["output_audio_format"]
    if "turn_detection" in s:
        out["turn_detection"] = _turn_detection(s["turn_detection"], model)
    if "input_audio_noise_reduction" in s:
        noise = s["input_audio_noise_reduction"]
        if (
            noise is not None
            and require_object(noise, "session.input_audio_noise_reduction").get("type") not in NOISE_TYPES
        ):
            raise Invalid(
                "invalid_value",
                f"Invalid value: '{noise.get('type')}'. Supported values are: {', '.join(NOISE_TYPES)}.",
                "session.input_audio_noise_reduction.type",
            )
        extras["input_audio_noise_reduction"] = noise
    if "input_audio_echo_cancellation" in s:
        echo = s["input_audio_echo_cancellation"]
        if echo is not None and require_object(echo, "session.input_audio_echo_cancellation").get("type") != (
            "server_echo_cancellation"
        ):
            raise Invalid(
                "invalid_value",
                "Invalid value: use {'type': 'server_echo_cancellation'}.",
                "session.input_audio_echo_cancellation.type",
            )
        extras["input_audio_echo_cancellation"] = echo
    if "input_audio_transcription" in s:
        tr = s["input_audio_transcription"]
        if tr is not None:
            name = require_object(tr, "session.input_audio_transcription").get("model")
            if name not in OPENAI_TRANSCRIBE + AZURE_TRANSCRIBE:
                raise Invalid(
                    "invalid_value",
                    f"Invalid value: '{name}'. Supported values are: "
                    f"{', '.join(OPENAI_TRANSCRIBE + AZURE_TRANSCRIBE)}.",
                    "session.input_audio_transcription.model",
                )
            if name in OPENAI_TRANSCRIBE and model not in SEMANTIC_VAD_MODELS:
                raise Invalid(
                    "invalid_value",
                    f"{name} works only with {' and '.join(SEMANTIC_VAD_MODELS)}; use azure-speech.",
                    "session.input_audio_transcription.model",
                )
        out["transcription"] = tr
    for key in (
        "output_audio_timestamp_types",
        "animation",
        "avatar",
        "interim_response",
        "filler_response",
        "reasoning_effort",
        "metadata",
    ):
        if key in s:
            extras[key] = s[key]
    out["voicelive"] = extras
    return out


def session_object(base: dict[str, Any], cfg: dict[str, Any], api_version: str | None) -> dict[str, Any]:
    """The preview session object made Voice Live's: the voice object, the input rate, its fields."""
    extras = cfg.get("voicelive") or {}
    body = dict(base)
    body["voice"] = extras.get("voice") or voice_live_voice(cfg["voice"])
    body["input_audio_format"] = "pcm16" if cfg["input_format"].startswith("pcm16") else cfg["input_format"]
    body["input_audio_sampling_rate"] = {"pcm16_16000hz": 16000}.get(cfg["input_format"], 24000)
    body["input_audio_noise_reduction"] = extras.get("input_audio_noise_reduction")
    body["input_audio_echo_cancellation"] = extras.get("input_audio_echo_cancellation")
    for key in ("output_audio_timestamp_types", "animation", "avatar"):
        if key in extras:
            body[key] = extras[key]
    td = cfg.get("turn_detection")
    if td is not None and body.get("turn_detection") is not None:
        turn = dict(body["turn_detection"])
        azure = ("speech_duration_ms", "remove_filler_words", "languages") if td["type"].startswith("azure_") else ()
        for key in (*azure, "end_of_utterance_detection"):
            if td.get(key) is not None:
                turn[key] = td[key]
        body["turn_detection"] = turn
    for key in ("speed", "tracing", "expires_at"):
        body.pop(key, None)
    if api_version and api_version >= "2026-07-15":
        body["expires_at"] = base.get("expires_at")
    return body


def wants_transcription(route: Route, cfg: dict[str, Any]) -> bool:
    """A cascade always transcribes its input with azure-speech; others when asked."""
    return bool(cfg.get("transcription")) or is_cascade(route)


def timestamp_events(
    cfg: dict[str, Any], where: dict[str, Any], transcript: str, audio_ms: float
) -> list[dict[str, Any]]:
    """``response.audio_timestamp.delta`` per word and a ``done`` when the session asked for word
    timestamps (``output_audio_timestamp_types: ["word"]``); else nothing."""
    if "word" not in ((cfg.get("voicelive") or {}).get("output_audio_timestamp_types") or []):
        return []
    words = transcript.split()
    if not words:
        return []
    span = audio_ms / len(words)
    out = [
        {
            "type": "response.audio_timestamp.delta",
            **where,
            "audio_offset_ms": int(i * span),
            "audio_duration_ms": int(span),
            "text": word,
            "timestamp_type": "word",
        }
        for i, word in enumerate(words)
    ]
    out.append({"type": "response.audio_timestamp.done", **where})
    return out


def warning_event(rng: random.Random, profile: dict[str, Any]) -> dict[str, Any] | None:
    """A non-fatal ``warning`` now and then (``voicelive.warning_rate``)."""
    if rng.random() >= float(profile["voicelive"]["warning_rate"]):
        return None
    return {
        "type": "warning",
        "warning": {"code": "audio_buffer_low", "message": "Input audio arrived late.", "param": None},
    }
