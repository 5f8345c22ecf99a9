"""What preflight checks: the configuration a client would use, parsed from the command line."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from loadtest.protocol.dialects import DialectName
from loadtest.protocol.targets import Target

AZURE_HOST_SUFFIXES = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")
OPENAI_HOSTS = ("api.openai.com",)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

# URL shapes by path
SHAPE_OPENAI = "openai"  # /v1/realtime?model=
SHAPE_AZURE_GA = "azure-ga"  # /openai/v1/realtime?model=
SHAPE_AZURE_PREVIEW = "azure-preview"  # /openai/realtime?api-version=&deployment=
SHAPE_VOICE_LIVE = "voice-live"  # /voice-live/realtime?api-version=&model=
SHAPE_BASE = "base"  # no path: the harness builds the path from provider and dialect
SHAPE_OTHER = "other"  # a gateway's own path


@dataclass(slots=True)
class PreflightConfig:
    target: str  # the URL as the client uses it (a full realtime URL or a base)
    provider: str | None = None  # openai | azure | voicelive (inferred from the URL when None)
    dialect: str | None = None  # ga | preview | voicelive (inferred from the URL shape when None)
    deployment: str | None = None  # model (OpenAI) or deployment (Azure)
    api_key_env: str | None = None  # the NAME of the environment variable holding the key
    auth: str = "auto"  # auto | bearer | api-key | entra
    headers: dict[str, str] = field(default_factory=dict)
    audio_format: str = "pcm16"
    sample_rate: int | None = None
    channels: int | None = None
    sample_width_bits: int | None = None
    audio_file: str | None = None  # a WAV/FLAC the client will stream
    session_file: str | None = None  # the client's session.update (JSON)
    client_source: list[str] = field(default_factory=list)  # files/dirs of the client's code
    api_key_literal: str | None = field(default=None, repr=False)  # only for the embedded mock

    # --- derived ------------------------------------------------------------------------
    @property
    def parts(self):  # type: ignore[no-untyped-def]
        return urlsplit(self.target)

    @property
    def host(self) -> str:
        return (self.parts.hostname or "").lower()

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.parts.query, keep_blank_values=True)

    @property
    def shape(self) -> str:
        path = self.parts.path.rstrip("/")
        if path in ("",):
            return SHAPE_BASE
        if path.endswith("/openai/v1/realtime"):
            return SHAPE_AZURE_GA
        if path.endswith("/openai/realtime"):
            return SHAPE_AZURE_PREVIEW
        if path.endswith("/voice-live/realtime"):
            return SHAPE_VOICE_LIVE
        if path.endswith("/v1/realtime"):
            return SHAPE_OPENAI
        return SHAPE_OTHER

    @property
    def inferred_provider(self) -> str:
        if self.provider:
            return self.provider
        if self.shape == SHAPE_VOICE_LIVE or self.dialect == DialectName.VOICE_LIVE:
            return "voicelive"
        if self.host.endswith(AZURE_HOST_SUFFIXES):
            return "azure"
        if self.shape in (SHAPE_AZURE_GA, SHAPE_AZURE_PREVIEW, SHAPE_VOICE_LIVE):
            return "azure"
        return "openai"

    @property
    def inferred_dialect(self) -> str:
        if self.provider == "voicelive" or self.shape == SHAPE_VOICE_LIVE:
            return DialectName.VOICE_LIVE
        if self.dialect:
            return self.dialect
        if self.shape == SHAPE_AZURE_PREVIEW:
            return DialectName.PREVIEW
        if any(k.lower() == "openai-beta" for k in self.headers):
            return DialectName.PREVIEW
        return DialectName.GA

    @property
    def url_deployment(self) -> str | None:
        q = self.query
        for key in ("deployment", "model"):
            if q.get(key) and q[key][0]:
                return q[key][0]
        return None

    @property
    def effective_deployment(self) -> str | None:
        return self.deployment or self.url_deployment

    @property
    def api_key(self) -> str | None:
        if self.api_key_literal:
            return self.api_key_literal
        if self.api_key_env:
            value = os.environ.get(self.api_key_env)
            return value.strip() if value else None
        return None

    @property
    def is_loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS

    def to_target(self, dialect: str | None = None) -> Target:
        """A :class:`Target` for the live smoke session (``dialect`` overrides, for the probe)."""
        provider = self.inferred_provider
        dialect = dialect or self.inferred_dialect
        deployment = self.effective_deployment or "gpt-realtime"
        parts = self.parts
        base = f"{parts.scheme}://{parts.netloc}"
        override: str | None = None
        if self.shape in (SHAPE_OTHER, SHAPE_VOICE_LIVE) or (
            dialect == self.inferred_dialect and self.shape != SHAPE_BASE
        ):
            override = self.target  # test exactly what the client uses
        api_version = (self.query.get("api-version") or [None])[0]
        headers = dict(self.headers)
        if dialect != self.inferred_dialect or (provider == "openai" and dialect == DialectName.PREVIEW):
            # the probe tests the other dialect cleanly; Target adds the beta header itself
            headers = {k: v for k, v in headers.items() if k.lower() != "openai-beta"}
        return Target(
            base_url=base,
            provider=provider,
            dialect=dialect,
            deployment=deployment,
            api_key=self.api_key,
            auth=self.auth,
            api_version=api_version,
            extra_headers=headers,
            url_override=override,
            label="preflight",
        )
