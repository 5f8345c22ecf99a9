"""Entra ID (Azure AD) bearer tokens for ``Target(auth="entra")``, from the optional ``azure-identity``.

Install with ``pip install 'realtime-loadtest[azure]'``. One provider per scope is shared by every
session of the process; the token is cached until five minutes before it expires, so hundreds of
sessions cost one token request. Tokens never reach records, traces or logs (the session passes
them to the redactor).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"
REFRESH_MARGIN_S = 300.0


class AuthError(Exception):
    """A token could not be obtained (one line, safe to print)."""


class TokenProvider(Protocol):
    def token(self) -> str: ...


class EntraTokenProvider:
    """Bearer tokens from ``azure.identity.DefaultAzureCredential`` (or a credential you pass)."""

    def __init__(self, scope: str = COGNITIVE_SERVICES_SCOPE, credential: Any = None) -> None:
        self.scope = scope
        self._credential = credential
        self._token: str | None = None
        self._expires_on = 0.0
        self._lock = threading.Lock()

    def _get_credential(self) -> Any:
        if self._credential is None:
            try:
                from azure.identity import DefaultAzureCredential
            except ImportError:
                raise AuthError("auth 'entra' needs azure-identity: pip install 'realtime-loadtest[azure]'") from None
            self._credential = DefaultAzureCredential()
        return self._credential

    def token(self) -> str:
        if self._token is not None and time.time() < self._expires_on - REFRESH_MARGIN_S:
            return self._token
        with self._lock:
            if self._token is not None and time.time() < self._expires_on - REFRESH_MARGIN_S:
                return self._token
            try:
                access = self._get_credential().get_token(self.scope)
            except AuthError:
                raise
            except Exception as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise AuthError(f"Entra ID token for {self.scope} failed: {first[:200]}") from None
            self._token = str(access.token)
            self._expires_on = float(access.expires_on)
            return self._token


_PROVIDERS: dict[str, EntraTokenProvider] = {}
_PROVIDERS_LOCK = threading.Lock()


def entra_provider(scope: str = COGNITIVE_SERVICES_SCOPE) -> EntraTokenProvider:
    """The process's shared provider for ``scope``."""
    with _PROVIDERS_LOCK:
        provider = _PROVIDERS.get(scope)
        if provider is None:
            provider = _PROVIDERS[scope] = EntraTokenProvider(scope)
        return provider
