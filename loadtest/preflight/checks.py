"""Static preflight checks: URL shape, headers, auth, retired models, audio, session shape, client code.

Each check returns findings; none touches the network. The ids are stable (the README lists them).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from loadtest.preflight import retirements, voicelive
from loadtest.preflight.config import (
    SHAPE_AZURE_GA,
    SHAPE_AZURE_PREVIEW,
    SHAPE_BASE,
    SHAPE_OPENAI,
    SHAPE_OTHER,
    SHAPE_VOICE_LIVE,
    PreflightConfig,
)
from loadtest.preflight.findings import Finding, Severity
from loadtest.protocol.dialects import GA, PREVIEW, RENAMED_EVENTS, DialectName, get_dialect
from loadtest.protocol.targets import model_query_key, redact_url, url_problem

E, W, INFO, OK = Severity.ERROR, Severity.WARNING, Severity.INFO, Severity.OK

GA_URL_FIX = "use wss://<resource>.openai.azure.com/openai/v1/realtime?model=<deployment> (no api-version)"
PREVIEW_URL_FIX = "use /openai/realtime?api-version=2025-04-01-preview&deployment=<deployment>"


def check_url(cfg: PreflightConfig) -> list[Finding]:
    out: list[Finding] = []
    parts = cfg.parts
    problem = url_problem(cfg.target)
    if problem and not problem.startswith("is not a URL"):  # a character no URL can hold, a bad escape or port
        return [
            Finding(
                "url.invalid",
                E,
                f"the URL {problem}",  # not quoted back: a re-encoded copy would hide the character
                "fix the URL; nothing was sent",
            )
        ]
    if parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname:
        return [
            Finding(
                "url.invalid",
                E,
                f"{redact_url(cfg.target)!r} is not a WebSocket URL",
                "give a URL such as wss://<resource>.openai.azure.com/openai/v1/realtime?model=<deployment>",
            )
        ]
    if parts.scheme in ("http", "https"):
        out.append(
            Finding(
                "url.scheme",
                W,
                f"scheme {parts.scheme}:// is not a WebSocket scheme",
                "use wss:// (ws:// only on loopback)",
            )
        )
    elif parts.scheme == "ws" and not cfg.is_loopback:
        out.append(Finding("url.scheme", W, "ws:// sends the key unencrypted to a remote host", "use wss://"))

    provider, dialect, shape = cfg.inferred_provider, cfg.inferred_dialect, cfg.shape
    query = {k.lower(): v for k, v in cfg.query.items()}
    has_api_version = "api-version" in query
    if shape == SHAPE_AZURE_GA:
        if dialect == DialectName.PREVIEW:
            out.append(
                Finding(
                    "url.shape_vs_dialect",
                    E,
                    "/openai/v1/realtime speaks the GA dialect only, but the client is configured for preview",
                    f"switch the client to GA events, or {PREVIEW_URL_FIX}",
                )
            )
        if has_api_version:
            out.append(
                Finding(
                    "url.api_version_on_ga",
                    E,
                    "api-version in a GA (/openai/v1/realtime) URL: Azure refuses the upgrade (401)",
                    "remove api-version from the URL; pass the deployment as ?model=<deployment>",
                )
            )
        if "deployment" in query and "model" not in query:
            out.append(
                Finding("url.missing_model", E, "GA URLs name the deployment as ?model=, not ?deployment=", GA_URL_FIX)
            )
    elif shape == SHAPE_AZURE_PREVIEW:
        if dialect == DialectName.GA:
            out.append(
                Finding(
                    "url.shape_vs_dialect",
                    E,
                    "/openai/realtime?api-version=... is the preview URL shape, but the client is configured for GA",
                    GA_URL_FIX,
                )
            )
        if not has_api_version:
            out.append(Finding("url.missing_api_version", E, "the preview URL has no api-version", PREVIEW_URL_FIX))
        else:
            version = query["api-version"][0]
            row = retirements.lookup(version, "azure", "api-version")
            if version not in retirements.KNOWN_PREVIEW_API_VERSIONS:
                out.append(
                    Finding(
                        "url.unknown_api_version",
                        W,
                        f"api-version {version!r} is not a known realtime preview version",
                        f"use one of {', '.join(retirements.KNOWN_PREVIEW_API_VERSIONS)}, or move to GA",
                    )
                )
            elif row is not None:
                out.append(
                    Finding(
                        "api.preview_deprecated",
                        W,
                        f"the Azure realtime preview API (api-version {version}) is deprecated from {row.date}",
                        f"migrate to GA: {GA_URL_FIX}",
                    )
                )
        if "deployment" not in query and not cfg.deployment:
            out.append(
                Finding(
                    "url.missing_deployment",
                    E,
                    "the preview URL has no deployment=",
                    f"{PREVIEW_URL_FIX}, or pass --deployment <deployment>",
                )
            )
    elif shape == SHAPE_OPENAI:
        if provider == "azure":
            out.append(
                Finding(
                    "url.shape_vs_provider",
                    E,
                    "an Azure host with the OpenAI path /v1/realtime: Azure serves /openai/v1/realtime",
                    GA_URL_FIX,
                )
            )
        if has_api_version:
            out.append(Finding("url.api_version_on_ga", E, "api-version has no place in an OpenAI URL", "remove it"))
    elif shape == SHAPE_VOICE_LIVE:
        out.extend(voicelive.check_url(cfg))
    elif shape == SHAPE_OTHER:
        out.append(
            Finding(
                "url.unknown_path",
                INFO if cfg.is_gateway else W,
                f"path {parts.path!r} is none of the Realtime URL shapes"
                + (" (a gateway's own path: the live session judges it)" if cfg.is_gateway else " (a gateway?)"),
                "make sure the gateway forwards to /v1/realtime, /openai/v1/realtime or /openai/realtime",
            )
        )

    if shape != SHAPE_BASE and not cfg.url_deployment and cfg.deployment:
        added = f"{model_query_key(cfg.target)}={cfg.deployment}"
        out.append(Finding("url.model_added", INFO, f"the URL names no model; --deployment adds {added}"))
    elif shape not in (SHAPE_BASE, SHAPE_OTHER, SHAPE_VOICE_LIVE, SHAPE_AZURE_PREVIEW) and not cfg.url_deployment:
        # (Voice Live's own check says what its URL lacks: a model or an agent)
        out.append(
            Finding(
                "url.missing_model",
                E,
                "the URL names no model/deployment",
                "add ?model=<model or deployment> to the URL, or pass --deployment <name>",
            )
        )
    if cfg.deployment and cfg.url_deployment and cfg.deployment != cfg.url_deployment:
        out.append(
            Finding(
                "url.deployment_mismatch",
                E,
                f"--deployment {cfg.deployment!r} differs from the {cfg.url_deployment!r} the URL names",
                "drop --deployment or make the two the same (`rtload run` refuses the pair)",
            )
        )
    secret_keys = [k for k in query if k in ("api-key", "api_key", "key")]
    if secret_keys:
        out.append(
            Finding(
                "auth.key_in_url",
                W,
                "the API key travels in the URL query, where proxies and logs keep it",
                "send it in the api-key header (servers) instead",
            )
        )
    if provider == "openai" and dialect == DialectName.PREVIEW:
        live_openai = cfg.is_openai_host
        out.append(
            Finding(
                "dialect.beta_retired",
                E if live_openai else W,
                "the beta (preview) Realtime shape is retired on OpenAI (beta_api_shape_disabled, close 4000)",
                "drop the OpenAI-Beta header and move to the GA events and session shape",
            )
        )
    return out


def check_headers(cfg: PreflightConfig) -> list[Finding]:
    out: list[Finding] = []
    names = {k.lower(): v for k, v in cfg.headers.items()}
    dialect = cfg.inferred_dialect
    if "openai-beta" in names and (cfg.dialect == DialectName.GA or cfg.shape == SHAPE_AZURE_GA):
        out.append(
            Finding(
                "header.openai_beta_on_ga",
                E,
                f"OpenAI-Beta: {names['openai-beta']} on a GA session (OpenAI ends it: beta_api_shape_disabled)",
                "remove the OpenAI-Beta header",
            )
        )
    if "authorization" in names or "api-key" in names:
        out.append(
            Finding(
                "header.secret_in_flags",
                W,
                "an auth header was given on the command line, where shell history keeps it",
                "pass the key through --api-key-env VAR instead",
            )
        )
    if dialect == DialectName.GA and cfg.inferred_provider == "azure" and "api-version" in names:
        out.append(Finding("header.api_version", W, "an api-version header on a GA session", "remove it"))
    return out


LIVE_JUDGES = "a gateway may take it; the live session judges"


def check_auth(cfg: PreflightConfig) -> list[Finding]:
    out: list[Finding] = []
    provider = cfg.inferred_provider
    if cfg.auth == "entra":
        try:
            import azure.identity  # noqa: F401
        except ImportError:
            out.append(
                Finding(
                    "auth.entra_unavailable",
                    E,
                    "--auth entra needs the azure-identity package",
                    "pip install 'realtime-loadtest[azure]'",
                )
            )
        if provider not in ("azure", "voicelive"):
            if cfg.is_gateway:  # API Management, for one, passes an Entra token on to Azure
                out.append(Finding("auth.kind", INFO, f"an Entra ID token to a gateway ({LIVE_JUDGES})"))
            else:
                out.append(
                    Finding("auth.kind", E, "Entra ID tokens work only with Azure", "use --auth bearer with an API key")
                )
        return out
    key = cfg.api_key
    if key is None and not cfg.api_key_literal and (cfg.api_key_env or not cfg.credentials_elsewhere):
        out.append(
            Finding(
                "auth.missing",
                E,
                f"environment variable {cfg.key_env} is not set or empty",
                f"export {cfg.key_env}=<your key> before the run (or name another one with --api-key-env)",
            )
        )
    elif key is not None and not cfg.api_key_literal:
        # key shapes are the providers' own: a gateway's keys (LiteLLM's sk-..., say) look like anything
        own_host = not cfg.is_gateway
        if own_host and cfg.is_azure_host and provider in ("azure", "voicelive") and key.startswith("sk-"):
            out.append(
                Finding(
                    "auth.key_kind",
                    W,
                    "the Azure key looks like an OpenAI key (sk-...)",
                    "use the Azure resource key",
                )
            )
        if own_host and cfg.is_openai_host and provider == "openai" and not key.startswith("sk-"):
            out.append(Finding("auth.key_kind", W, "the OpenAI key does not start with sk-", "check the key"))
    if provider == "openai" and cfg.auth == "api-key":
        if cfg.is_gateway:
            out.append(Finding("auth.kind", INFO, f"an api-key header on the OpenAI URL shape ({LIVE_JUDGES})"))
        else:
            out.append(
                Finding(
                    "auth.kind",
                    E,
                    "OpenAI takes the key as Authorization: Bearer, not an api-key header",
                    "use --auth bearer (the default for OpenAI)",
                )
            )
    return out


def check_model(cfg: PreflightConfig, today: dt.date | None = None) -> list[Finding]:
    name = cfg.effective_deployment
    if not name:
        if cfg.shape == SHAPE_BASE:
            return [Finding("model.missing", E, "no model/deployment given", "pass --deployment <name>")]
        return []
    today = today or dt.date.today()
    provider = cfg.inferred_provider
    if provider == "voicelive":
        return voicelive.check_model(name)
    row = retirements.lookup(name, provider)
    if row is None:
        return []
    azure_note = " (Azure deployment names are yours: this applies if the deployment runs that model)"
    note = azure_note if provider == "azure" else ""
    if row.date <= today:
        severity = E if provider == "openai" else W
        return [
            Finding(
                "model.retired",
                severity,
                f"{name} was retired on {row.date}{note}",
                f"move to {row.replacement} (source: {row.source})",
            )
        ]
    if (row.date - today).days <= retirements.NEAR_DAYS:
        return [
            Finding(
                "model.near_retirement",
                W,
                f"{name} retires on {row.date}, in {(row.date - today).days} days{note}",
                f"plan the move to {row.replacement}",
            )
        ]
    return []


def check_audio(cfg: PreflightConfig) -> list[Finding]:
    out: list[Finding] = []
    voice_live = cfg.shape == SHAPE_VOICE_LIVE
    if cfg.audio_format == "pcm16":
        allowed = (16000, 24000) if voice_live else (24000,)
        if cfg.sample_rate is not None and cfg.sample_rate not in allowed:
            out.append(
                Finding(
                    "audio.sample_rate",
                    E,
                    f"pcm16 audio at {cfg.sample_rate} Hz: the service expects {' or '.join(map(str, allowed))} Hz",
                    "resample to 24 kHz (rtload fixtures import does it)",
                )
            )
    elif cfg.audio_format in ("g711_ulaw", "g711_alaw"):
        if cfg.sample_rate is not None and cfg.sample_rate != 8000:
            out.append(
                Finding(
                    "audio.sample_rate",
                    E,
                    f"{cfg.audio_format} is 8 kHz, not {cfg.sample_rate} Hz",
                    "resample to 8 kHz",
                )
            )
    else:
        out.append(
            Finding(
                "audio.format", E, f"unknown audio format {cfg.audio_format!r}", "use pcm16, g711_ulaw or g711_alaw"
            )
        )
    if cfg.channels is not None and cfg.channels != 1:
        out.append(Finding("audio.channels", E, f"{cfg.channels} channels: the service takes mono", "downmix to mono"))
    if cfg.sample_width_bits is not None and cfg.audio_format == "pcm16" and cfg.sample_width_bits != 16:
        out.append(
            Finding(
                "audio.sample_width", E, f"{cfg.sample_width_bits}-bit samples: pcm16 is 16-bit", "convert to 16-bit"
            )
        )
    if cfg.audio_file:
        out.extend(_check_audio_file(Path(cfg.audio_file), voice_live))
    return out


def _check_audio_file(path: Path, voice_live: bool) -> list[Finding]:
    import soundfile

    try:
        info = soundfile.info(str(path))
    except Exception as exc:  # soundfile raises several types for unreadable files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [Finding("audio.file", E, f"{path}: not a readable audio file ({reason})", "give a WAV/FLAC/OGG file")]
    problems: list[str] = []
    rates = (16000, 24000) if voice_live else (24000,)
    if info.samplerate not in rates:
        problems.append(f"{info.samplerate} Hz")
    if info.channels != 1:
        problems.append(f"{info.channels} channels")
    if info.subtype != "PCM_16":
        problems.append(info.subtype)
    if problems:
        return [
            Finding(
                "audio.file",
                E,
                f"{path.name}: {', '.join(problems)}; the service takes 24 kHz 16-bit mono PCM",
                f"convert it: rtload fixtures import {path}",
            )
        ]
    return [Finding("audio.file", OK, f"{path.name}: {info.samplerate} Hz, mono, 16-bit", "")]


# session.update fields by dialect: what the other dialect calls them
_PREVIEW_ONLY_SESSION = {
    "modalities": "output_modalities",
    "voice": "audio.output.voice",
    "speed": "audio.output.speed",
    "input_audio_format": "audio.input.format",
    "output_audio_format": "audio.output.format",
    "input_audio_transcription": "audio.input.transcription",
    "input_audio_noise_reduction": "audio.input.noise_reduction",
    "turn_detection": "audio.input.turn_detection",
    "max_response_output_tokens": "max_output_tokens",
    "temperature": "(removed in GA)",
}
_GA_ONLY_SESSION = {"type", "output_modalities", "audio", "max_output_tokens", "include", "truncation", "prompt"}


def check_session(cfg: PreflightConfig) -> list[Finding]:
    if not cfg.session_file:
        return []
    path = Path(cfg.session_file)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return [
            Finding("session.file", E, f"{path}: not readable JSON ({exc})", "give the session.update event as JSON")
        ]
    session = doc.get("session", doc) if isinstance(doc, dict) else None
    if not isinstance(session, dict):
        return [
            Finding("session.file", E, f"{path}: no session object", 'give {"type":"session.update","session":{...}}')
        ]
    out: list[Finding] = []
    legacy = PREVIEW.client_transcription_session_update
    if isinstance(doc, dict) and legacy and doc.get("type") == legacy:
        out.append(
            Finding(
                "session.legacy_event",
                E if cfg.inferred_dialect == DialectName.GA else W,
                f"{legacy} is the preview event",
                f'GA uses {GA.client_session_update} with session.type "transcription"',
            )
        )
    if cfg.inferred_dialect == DialectName.VOICE_LIVE:
        out.extend(voicelive.check_session(session, cfg.effective_deployment, path.name))
    elif cfg.inferred_dialect == DialectName.GA:
        if "type" not in session:
            out.append(
                Finding(
                    "session.missing_type",
                    E,
                    "session.update without session.type: GA rejects it",
                    'add "type": "realtime" (or "transcription") to the session',
                )
            )
        for name, ga_name in _PREVIEW_ONLY_SESSION.items():
            if name in session:
                out.append(
                    Finding(
                        "session.preview_field",
                        E,
                        f"session.{name} is a preview field; GA rejects it",
                        f"use {ga_name}",
                    )
                )
        modalities = session.get("output_modalities")
        if isinstance(modalities, list) and len(modalities) > 1:
            out.append(
                Finding(
                    "session.output_modalities",
                    E,
                    f'output_modalities {modalities}: GA takes one, ["audio"] (with transcript) or ["text"]',
                    'use ["audio"]',
                )
            )
    else:
        for name in sorted(_GA_ONLY_SESSION & set(session)):
            out.append(
                Finding(
                    "session.ga_field", E, f"session.{name} is a GA field; the preview dialect rejects it", "remove it"
                )
            )
    if not out:
        out.append(Finding("session.shape", OK, f"{path.name}: session shape fits the {cfg.inferred_dialect} dialect"))
    return out


_EVENT_LITERAL = re.compile(
    r"""["']((?:response|conversation|input_audio_buffer|session|transcription_session)\.[a-z_.]+)["']"""
)
_SOURCE_SUFFIXES = {".py", ".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx", ".go", ".cs", ".java", ".kt", ".swift", ".rb"}


def check_client_source(cfg: PreflightConfig) -> list[Finding]:
    """Event names in the client's code that belong to the other dialect (stale handlers)."""
    if not cfg.client_source:
        return []
    dialect = get_dialect(cfg.inferred_dialect)
    known = dialect.server_events | dialect.client_events
    out: list[Finding] = []
    for path in _source_files(cfg.client_source):
        try:
            text = path.read_text(errors="replace")
        except OSError as exc:
            out.append(Finding("client.source", E, f"{path}: cannot read ({exc.strerror})", "check the path"))
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            for name in _EVENT_LITERAL.findall(line):
                if name in known:
                    continue
                if dialect.is_ga and name in RENAMED_EVENTS:
                    out.append(
                        Finding(
                            "client.preview_event",
                            E,
                            f"{path}:{lineno} handles `{name}`, the preview name; GA sends `{RENAMED_EVENTS[name]}`",
                            f"rename the handler to {RENAMED_EVENTS[name]}",
                        )
                    )
                elif not dialect.is_ga and name in RENAMED_EVENTS.values():
                    old = next(k for k, v in RENAMED_EVENTS.items() if v == name)
                    out.append(
                        Finding(
                            "client.ga_event",
                            E,
                            f"{path}:{lineno} handles `{name}`, the GA name; preview sends `{old}`",
                            f"rename the handler to {old}, or move the client to GA",
                        )
                    )
    if not out:
        out.append(
            Finding("client.source", OK, f"no event names of the other dialect in {', '.join(cfg.client_source)}")
        )
    return out


def _source_files(roots: Iterable[str]) -> Iterable[Path]:
    for root in roots:
        path = Path(root)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                parts = set(child.parts)
                if child.suffix in _SOURCE_SUFFIXES and not parts & {"node_modules", ".venv", ".git", "__pycache__"}:
                    yield child
        else:
            yield path


STATIC_CHECKS: tuple[Callable[[PreflightConfig], list[Finding]], ...] = (
    check_url,
    check_headers,
    check_auth,
    check_model,
    check_audio,
    check_session,
    check_client_source,
)


def run_static(cfg: PreflightConfig) -> list[Finding]:
    findings: list[Finding] = []
    for check in STATIC_CHECKS:
        findings.extend(check(cfg))
        if check is check_url and any(f.check == "url.invalid" for f in findings):
            break
    if not any(f.severity in (E, W) for f in findings):
        findings.insert(0, Finding("config", OK, "configuration shape fits the target's provider and dialect"))
    return findings


__all__ = ["SHAPE_AZURE_PREVIEW", "STATIC_CHECKS", "run_static"]
