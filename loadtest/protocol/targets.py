"""Targets: where a session connects, with which URL shape, headers and auth.

Three shapes (``../shared/realtime-protocol.md`` §1):

- ``openai``: ``<base>/v1/realtime?model=M``, ``Authorization: Bearer``; GA (or, where allowed,
  preview with ``OpenAI-Beta: realtime=v1``).
- ``azure`` GA: ``<base>/openai/v1/realtime?model=<deployment>``, ``api-key`` or Bearer, no
  ``api-version``.
- ``azure`` preview: ``<base>/openai/realtime?api-version=V&deployment=D``.

``url_override`` takes any full URL (a gateway) as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from loadtest.protocol.dialects import DialectName

DEFAULT_AZURE_PREVIEW_API_VERSION = "2025-04-01-preview"
OPENAI_BASE = "wss://api.openai.com"
SECRET_QUERY_KEYS = frozenset({"api-key", "api_key", "key", "token", "access_token", "sig"})
REDACTED = "***"


@dataclass(slots=True)
class Target:
    """A Realtime endpoint and how to authenticate against it (the key itself is not kept in records)."""

    base_url: str  # ws(s)://host[:port] (a path prefix is allowed)
    provider: str = "openai"  # openai | azure
    dialect: str = DialectName.GA
    deployment: str = "gpt-realtime"  # the model (OpenAI) or the deployment (Azure)
    api_key: str | None = field(default=None, repr=False)
    auth: str = "auto"  # auto | bearer | api-key | entra (an Entra ID token from azure-identity)
    api_version: str | None = None  # Azure preview only
    extra_headers: dict[str, str] = field(default_factory=dict, repr=False)
    url_override: str | None = None  # a full URL used as it is
    label: str = ""

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
            mode = "api-key" if self.provider == "azure" else "bearer"
        if mode == "entra":
            if token:
                out.append(("Authorization", f"Bearer {token}"))
        elif self.api_key:
            if mode == "api-key":
                out.append(("api-key", self.api_key))
            else:
                out.append(("Authorization", f"Bearer {self.api_key}"))
        if self.provider == "openai" and self.dialect == DialectName.PREVIEW:
            out.append(("OpenAI-Beta", "realtime=v1"))
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
