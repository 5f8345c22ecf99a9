"""Targets: where a session connects, with which URL shape, headers and auth.

Three shapes (``../shared/realtime-protocol.md`` §1):

- ``openai``: ``<base>/v1/realtime?model=M``, ``Authorization: Bearer``; GA (or, where allowed,
  preview with ``OpenAI-Beta: realtime=v1``).
- ``azure`` GA: ``<base>/openai/v1/realtime?model=<deployment>``, ``api-key`` or Bearer, no
  ``api-version``.
- ``azure`` preview: ``<base>/openai/realtime?api-version=V&deployment=D``.
- ``voicelive`` (Azure Voice Live, ``../shared/voice-live.md`` §1):
  ``<base>/voice-live/realtime?api-version=V&model=M`` on ``<res>.services.ai.azure.com`` (or the
  legacy ``<res>.cognitiveservices.azure.com``); ``api-key`` header or Entra Bearer (scope
  ``https://ai.azure.com/.default``); agent mode replaces ``model`` by ``agent-name`` and
  ``agent-project-name`` (older: ``agent-id``, ``agent-access-token``); ``profile=byom-*`` brings your
  own Azure OpenAI deployment. Extra query parameters come from ``Target.query``.

``url_override`` takes any full URL (a gateway) as it is; :func:`with_model` fills the model or
deployment it lacks. :func:`infer_provider` says which provider a URL belongs to (its host, then its
path), :func:`is_provider_host` whether the host is the provider's own (else: a gateway, a proxy, the
mock), and :func:`url_problem` refuses what is not a URL at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from loadtest.protocol.dialects import DialectName

if TYPE_CHECKING:
    from loadtest.protocol.network import NetworkPath

DEFAULT_AZURE_PREVIEW_API_VERSION = "2025-04-01-preview"
OPENAI_BASE = "wss://api.openai.com"
SECRET_QUERY_KEYS = frozenset(
    {"api-key", "api_key", "key", "token", "access_token", "sig", "agent-access-token", "authorization"}
)

# gateway: any service in front of one, its URL used as it is
PROVIDERS = ("openai", "azure", "voicelive", "gateway")
AZURE_HOST_SUFFIXES = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")
OPENAI_HOSTS = ("api.openai.com",)
DEFAULT_KEY_ENV = {
    "openai": "OPENAI_API_KEY",
    "azure": "AZURE_OPENAI_API_KEY",
    "voicelive": "AZURE_VOICELIVE_API_KEY",
    "gateway": "OPENAI_API_KEY",
}
DEFAULT_DEPLOYMENT = "gpt-realtime"
VOICE_LIVE_PATH = "/voice-live/realtime"
VOICE_LIVE_HOST_SUFFIXES = (".services.ai.azure.com", ".cognitiveservices.azure.com")
# the api-versions the documentation names (2025-05-01-preview was the first preview; 2025-10-01 the
# first GA; 2026-01-01-preview is needed by azure-realtime; 2026-07-15 adds session.expires_at)
VOICE_LIVE_API_VERSIONS = (
    "2025-05-01-preview", "2025-10-01", "2026-01-01-preview", "2026-04-10", "2026-06-01-preview", "2026-07-15",
)  # fmt: skip
DEFAULT_VOICE_LIVE_API_VERSION = "2026-04-10"
VOICE_LIVE_SCOPE = "https://ai.azure.com/.default"
# query parameters that name an agent instead of a model (2026-04-10 and later; then the classic ones)
VOICE_LIVE_AGENT_KEYS = ("agent-name", "agent-project-name", "agent-id", "agent-access-token")
BYOM_PROFILES = ("byom-azure-openai-realtime", "byom-azure-openai-chat-completion")

# Voice Live model classes ([OVW]): native audio models; cascades (Azure speech-to-text, a text model,
# Azure text-to-speech); phi4-mm-realtime hears natively and speaks through Azure TTS (cascade out).
VOICE_LIVE_NATIVE_PREFIXES = ("gpt-realtime", "gpt-4o-realtime", "gpt-4o-mini-realtime", "azure-realtime")
VOICE_LIVE_CASCADE_MODELS = frozenset(
    {
        "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-5", "gpt-5-mini", "gpt-5-nano",
        "gpt-5.1", "gpt-5.2", "gpt-5.4", "gpt-5.6-terra", "gpt-5.6-luna", "phi4-mini", "phi4-mm-realtime",
    }
)  # fmt: skip


def voice_live_model_class(model: str, profile: str | None = None, agent: bool = False) -> str:
    """``native``, ``cascade``, ``byom`` or ``agent`` for a Voice Live session (``""`` when unknown)."""
    if profile and profile.startswith("byom-"):
        return "byom"
    if agent:
        return "agent"
    name = model.lower()
    if name in VOICE_LIVE_CASCADE_MODELS:
        return "cascade"
    if name.startswith(VOICE_LIVE_NATIVE_PREFIXES):
        return "native"
    return ""


def is_voice_live_host(host: str | None) -> bool:
    return bool(host) and str(host).lower().endswith(VOICE_LIVE_HOST_SUFFIXES)


REDACTED = "***"


@dataclass(slots=True)
class Target:
    """A Realtime endpoint and how to authenticate against it (the key itself is not kept in records)."""

    base_url: str  # ws(s)://host[:port] (a path prefix is allowed)
    provider: str = "openai"  # openai | azure | voicelive | gateway (built and authenticated as openai)
    dialect: str = DialectName.GA
    deployment: str = "gpt-realtime"  # the model (OpenAI) or the deployment (Azure)
    api_key: str | None = field(default=None, repr=False)
    auth: str = "auto"  # auto | bearer | api-key | entra (an Entra ID token from azure-identity)
    api_version: str | None = None  # Azure preview and Voice Live
    query: dict[str, str] = field(default_factory=dict)  # extra query parameters (Voice Live agent, profile)
    extra_headers: dict[str, str] = field(default_factory=dict, repr=False)
    url_override: str | None = None  # a full URL used as it is
    label: str = ""
    network: NetworkPath | None = field(default=None, repr=False)  # proxy and trusted CAs (None: direct, system CAs)

    def __post_init__(self) -> None:
        if self.provider == "voicelive":  # Voice Live speaks one dialect: the preview names plus its own
            self.dialect = DialectName.VOICE_LIVE

    def url(self) -> str:
        """The full WebSocket URL to connect to."""
        if self.url_override:
            return self.url_override
        base = self.base_url.rstrip("/")
        if base.startswith("https://"):
            base = "wss://" + base[len("https://") :]
        elif base.startswith("http://"):
            base = "ws://" + base[len("http://") :]
        if self.provider == "azure":
            if self.dialect == DialectName.PREVIEW:
                query = {
                    "api-version": self.api_version or DEFAULT_AZURE_PREVIEW_API_VERSION,
                    "deployment": self.deployment,
                }
                return f"{base}/openai/realtime?{urlencode(query)}"
            return f"{base}/openai/v1/realtime?{urlencode({'model': self.deployment})}"
        if self.provider == "voicelive":
            params = {"api-version": self.api_version or DEFAULT_VOICE_LIVE_API_VERSION}
            if not self.is_agent:
                params["model"] = self.deployment
            params.update(self.query)
            return f"{base}{VOICE_LIVE_PATH}?{urlencode(params)}"
        return f"{base}/v1/realtime?{urlencode({'model': self.deployment})}"

    @property
    def is_agent(self) -> bool:
        """Voice Live agent mode: the query names an agent instead of a model."""
        return any(key in self.dialled_query for key in ("agent-name", "agent-id"))

    @property
    def dialled_query(self) -> dict[str, str]:
        """The query parameters the connection carries: a full URL's own, then ``query``'s."""
        own = dict(parse_qsl(urlsplit(self.url_override).query)) if self.url_override else {}
        return {**own, **self.query}

    @property
    def model_class(self) -> str:
        """Voice Live's model class (native, cascade, byom, agent); ``""`` for the other providers."""
        if self.provider != "voicelive":
            return ""
        return voice_live_model_class(self.deployment, self.dialled_query.get("profile"), self.is_agent)

    @property
    def token_scope(self) -> str:
        """The Entra ID scope of this target's tokens."""
        from loadtest.protocol.auth import COGNITIVE_SERVICES_SCOPE

        return VOICE_LIVE_SCOPE if self.provider == "voicelive" else COGNITIVE_SERVICES_SCOPE

    def headers(self, token: str | None = None) -> list[tuple[str, str]]:
        """The upgrade request headers (auth included). ``token`` is an Entra ID token."""
        out: list[tuple[str, str]] = []
        mode = self.auth
        if mode == "auto":
            mode = "api-key" if self.provider in ("azure", "voicelive") else "bearer"  # a gateway: OpenAI's Bearer
        if mode == "entra":
            if token:
                out.append(("Authorization", f"Bearer {token}"))
        elif self.api_key:
            if mode == "api-key":
                out.append(("api-key", self.api_key))
            else:
                out.append(("Authorization", f"Bearer {self.api_key}"))
        if self.provider != "azure" and self.dialect == DialectName.PREVIEW:
            out.append(("OpenAI-Beta", "realtime=v1"))  # a gateway forwards it to OpenAI
        out.extend(self.extra_headers.items())
        return out

    def redacted_url(self) -> str:
        return redact_url(self.url())

    def describe(self) -> dict[str, str]:
        """What ran, with no secret: for run.json and reports."""
        return {
            "label": self.label or self.provider,
            "provider": self.provider,
            "dialect": str(self.dialect),
            "deployment": self.deployment,
            "model_class": self.model_class,
            "url": self.redacted_url(),
            "auth": self.auth,
        }


# ---- what a URL says -----------------------------------------------------------------------
# RFC 3986: unreserved, reserved and the percent sign; anything else makes a malformed request line
_NOT_URL_CHAR = re.compile(r"[^A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
MODEL_QUERY_KEYS = ("model", "deployment")  # GA (both providers) / Azure preview


def url_problem(url: str) -> str | None:
    """What makes ``url`` unusable as a WebSocket URL (one clause), or None when it is usable."""
    found = _NOT_URL_CHAR.search(url)
    if found is not None:
        bad, at = found.group(), found.start() + 1
        what = {" ": "a space", "\t": "a tab", "\n": "a line break", "\r": "a line break"}.get(bad, repr(bad))
        code = "".join(f"%{b:02X}" for b in bad.encode())
        return f"has {what} at character {at}, which a URL cannot hold: percent-encode it ({code})"
    if _BAD_ESCAPE.search(url):
        return "has a % not followed by two hex digits: write a literal % as %25"
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname:
        return "is not a URL: use mock or e.g. wss://my-resource.openai.azure.com"
    try:
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        return "has a port that is not a number"
    return None


def is_provider_host(host: str) -> bool:
    """True for OpenAI's and Azure's own hosts; anything else (a gateway, a proxy, the mock) is not."""
    host = (host or "").lower().rstrip(".")
    return host in OPENAI_HOSTS or host.endswith(AZURE_HOST_SUFFIXES)


def infer_provider(url: str) -> str:
    """The provider a URL belongs to: a Voice Live path means voicelive (on any host: Voice Live shares
    its ``services.ai.azure.com`` / ``cognitiveservices.azure.com`` hosts with Azure OpenAI), else an
    Azure or OpenAI host, else the path's shape, else openai."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    path = parts.path.rstrip("/")
    if path.endswith(VOICE_LIVE_PATH):
        return "voicelive"
    if host.endswith(AZURE_HOST_SUFFIXES):
        return "azure"
    if host in OPENAI_HOSTS:
        return "openai"
    if path.endswith(("/openai/v1/realtime", "/openai/realtime")):
        return "azure"
    return "openai"


def is_full_url(url: str) -> bool:
    """A URL with a path is used as it is; a bare host (or ``/``) gets the provider's path built on it."""
    return urlsplit(url).path not in ("", "/")


def url_model(url: str) -> str | None:
    """The model or deployment the URL names (``?model=`` or ``?deployment=``), if any."""
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    for key in MODEL_QUERY_KEYS:
        if query.get(key):
            return query[key]
    return None


def model_query_key(url: str) -> str:
    """The query key that names the model on this URL's path: ``deployment`` on Azure's preview path."""
    return "deployment" if urlsplit(url).path.rstrip("/").endswith("/openai/realtime") else "model"


def with_model(url: str, name: str) -> str:
    """``url`` with the model or deployment it lacks: ``&deployment=`` on the Azure preview path
    (``/openai/realtime``), ``?model=`` on every other (OpenAI GA, Azure GA, Voice Live, a gateway)."""
    if url_model(url) or not name:
        return url
    parts = urlsplit(url)
    key = model_query_key(url)
    kept = [q for q in parts.query.split("&") if q and q.split("=", 1)[0] not in MODEL_QUERY_KEYS]  # as typed
    query = "&".join([*kept, urlencode({key: name})])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def redact_url(url: str) -> str:
    """``url`` with secret query parameters and userinfo replaced by ``***``."""
    parts = urlsplit(url)
    query = [(k, REDACTED if k.lower() in SECRET_QUERY_KEYS else v) for k, v in parse_qsl(parts.query, True)]
    netloc = parts.netloc
    if "@" in netloc:
        netloc = REDACTED + "@" + netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="*"), parts.fragment))


SECRET_HEADERS = frozenset({"api-key", "authorization", "ocp-apim-subscription-key", "x-api-key"})


def secrets_of(url: str, headers: dict[str, str] | None = None, keys: tuple[str | None, ...] = ()) -> list[str]:
    """The secret values a configuration holds (keys, secret query parameters, auth header values),
    for :func:`redact_text` over anything printed from it."""
    found = [k for k in keys if k]
    found += [v for k, v in parse_qsl(urlsplit(url).query, True) if k.lower() in SECRET_QUERY_KEYS and v]
    for name, value in (headers or {}).items():
        if name.lower() in SECRET_HEADERS and value:
            found.append(value)
            found.append(value.split(None, 1)[-1])  # the token of "Bearer <token>"
    return [s for s in found if len(s) >= 4]  # a one-letter "secret" would blank the output


_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")


def redact_text(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """``text`` with every known secret and any Bearer token replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
