"""Targets: where a session connects, with which URL shape, headers and auth.

Three shapes (``../shared/realtime-protocol.md`` §1):

- ``openai``: ``<base>/v1/realtime?model=M``, ``Authorization: Bearer``; GA (or, where allowed,
  preview with ``OpenAI-Beta: realtime=v1``).
- ``azure`` GA: ``<base>/openai/v1/realtime?model=<deployment>``, ``api-key`` or Bearer, no
  ``api-version``.
- ``azure`` preview: ``<base>/openai/realtime?api-version=V&deployment=D``.

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
PROVIDERS = ("openai", "azure", "gateway")  # gateway: any service in front of one, its URL used as it is
AZURE_HOST_SUFFIXES = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")
OPENAI_HOSTS = ("api.openai.com",)
DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "azure": "AZURE_OPENAI_API_KEY", "gateway": "OPENAI_API_KEY"}
DEFAULT_DEPLOYMENT = "gpt-realtime"
SECRET_QUERY_KEYS = frozenset({"api-key", "api_key", "key", "token", "access_token", "sig"})
REDACTED = "***"


@dataclass(slots=True)
class Target:
    """A Realtime endpoint and how to authenticate against it (the key itself is not kept in records)."""

    base_url: str  # ws(s)://host[:port] (a path prefix is allowed)
    provider: str = "openai"  # openai | azure | gateway (built and authenticated as openai)
    dialect: str = DialectName.GA
    deployment: str = "gpt-realtime"  # the model (OpenAI) or the deployment (Azure)
    api_key: str | None = field(default=None, repr=False)
    auth: str = "auto"  # auto | bearer | api-key | entra (an Entra ID token from azure-identity)
    api_version: str | None = None  # Azure preview only
    extra_headers: dict[str, str] = field(default_factory=dict, repr=False)
    url_override: str | None = None  # a full URL used as it is
    label: str = ""
    network: NetworkPath | None = field(default=None, repr=False)  # proxy and trusted CAs (None: direct, system CAs)

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
        return f"{base}/v1/realtime?{urlencode({'model': self.deployment})}"

    def headers(self, token: str | None = None) -> list[tuple[str, str]]:
        """The upgrade request headers (auth included). ``token`` is an Entra ID token."""
        out: list[tuple[str, str]] = []
        mode = self.auth
        if mode == "auto":
            mode = "api-key" if self.provider == "azure" else "bearer"  # a gateway: OpenAI's Bearer
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
    """The provider a URL belongs to: an Azure or OpenAI host, else the path's shape, else openai."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    if host.endswith(AZURE_HOST_SUFFIXES):
        return "azure"
    if host in OPENAI_HOSTS:
        return "openai"
    path = parts.path.rstrip("/")
    if path.endswith(("/openai/v1/realtime", "/openai/realtime", "/voice-live/realtime")):
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
