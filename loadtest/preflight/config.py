"""What preflight checks: the configuration a client would use, parsed from the command line."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from loadtest.protocol.dialects import DialectName
from loadtest.protocol.network import NetworkPath
from loadtest.protocol.targets import (
    AZURE_HOST_SUFFIXES,
    DEFAULT_DEPLOYMENT,
    DEFAULT_KEY_ENV,
    OPENAI_HOSTS,
    Target,
    infer_provider,
    is_provider_host,
    with_model,
)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

# URL shapes by path
SHAPE_OPENAI = "openai"  # /v1/realtime?model=
SHAPE_AZURE_GA = "azure-ga"  # /openai/v1/realtime?model=
SHAPE_AZURE_PREVIEW = "azure-preview"  # /openai/realtime?api-version=&deployment=
SHAPE_VOICE_LIVE = "voice-live"  # /voice-live/realtime?api-version=&model=
SHAPE_BASE = "base"  # no path: the harness builds the path from provider and dialect
SHAPE_OTHER = "other"  # a gateway's own path


_SHAPE_SUFFIXES = {
    SHAPE_AZURE_GA: ("/openai/v1/realtime",),
    SHAPE_AZURE_PREVIEW: ("/openai/realtime",),
    SHAPE_OPENAI: ("/v1/realtime",),
}


@dataclass(slots=True)
class PreflightConfig:
    target: str  # the URL as the client uses it (a full realtime URL or a base)
    provider: str | None = None  # openai | azure | voicelive | gateway (inferred from the URL when None)
    dialect: str | None = None  # ga | preview | voicelive (inferred from the URL shape when None)
    deployment: str | None = None  # model (OpenAI) or deployment (Azure)
    api_key_env: str | None = None  # the NAME of the variable holding the key (None: the provider's default)
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
    network: NetworkPath | None = field(default=None, repr=False)  # --proxy / --ca-bundle and the environment's

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
        """The protocol the URL speaks (openai | azure | voicelive): as given, else by path and host
        (a ``/voice-live/realtime`` path means voicelive, see :func:`infer_provider`).

        ``--provider gateway`` says who answers, not which protocol: the URL's shape says that.
        """
        if self.provider and self.provider != "gateway":
            return self.provider
        if self.dialect == DialectName.VOICE_LIVE:
            return "voicelive"
        return infer_provider(self.target)

    @property
    def is_gateway(self) -> bool:
        """Something other than the provider answers: ``--provider gateway``, or any host that is not
        OpenAI's or Azure's own (LiteLLM, API Management on its own domain, a reverse proxy, the mock)."""
        return self.provider == "gateway" or not is_provider_host(self.host)

    @property
    def is_azure_host(self) -> bool:
        return self.host.endswith(AZURE_HOST_SUFFIXES)

    @property
    def is_openai_host(self) -> bool:
        return self.host in OPENAI_HOSTS

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
        """What the live session dials: the URL's own name, else ``--deployment`` (which fills it)."""
        return self.url_deployment or self.deployment

    @property
    def dial_url(self) -> str:
        """The URL as the live session dials it: a full URL with the model it lacks filled from --deployment."""
        if self.shape == SHAPE_BASE or not self.deployment:
            return self.target
        return with_model(self.target, self.deployment)

    @property
    def key_env(self) -> str:
        """The variable the key is read from: --api-key-env, else the provider's default (as `rtload run`)."""
        return self.api_key_env or DEFAULT_KEY_ENV.get(self.inferred_provider, "OPENAI_API_KEY")

    @property
    def credentials_elsewhere(self) -> bool:
        """An auth header flag or a key in the URL query carries the credentials."""
        header = any(k.lower() in ("authorization", "api-key") for k in self.headers)
        return header or any(k.lower() in ("api-key", "api_key") for k in self.query)

    @property
    def api_key(self) -> str | None:
        """The key: the literal (embedded mock), --api-key-env's variable, or the provider's default
        variable unless a header flag or the URL already carries credentials."""
        if self.api_key_literal:
            return self.api_key_literal
        if not self.api_key_env and self.credentials_elsewhere:
            return None
        value = os.environ.get(self.key_env)
        return value.strip() if value and value.strip() else None

    @property
    def is_loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS

    def to_target(self, dialect: str | None = None) -> Target:
        """A :class:`Target` for the live smoke session (``dialect`` overrides, for the probe)."""
        provider = self.inferred_provider
        dialect = dialect or self.inferred_dialect
        deployment = self.effective_deployment or DEFAULT_DEPLOYMENT
        parts = self.parts
        # the probe dials the same host and path prefix (an API Management API's own prefix included)
        path = parts.path.rstrip("/")
        prefix = next((path[: -len(s)] for s in _SHAPE_SUFFIXES.get(self.shape, ()) if path.endswith(s)), "")
        base = f"{parts.scheme}://{parts.netloc}{prefix}"
        override: str | None = None
        if self.shape in (SHAPE_OTHER, SHAPE_VOICE_LIVE) or (
            dialect == self.inferred_dialect and self.shape != SHAPE_BASE
        ):
            override = self.dial_url  # test exactly what the client uses (with the model --deployment fills)
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
            network=self.network,
        )
