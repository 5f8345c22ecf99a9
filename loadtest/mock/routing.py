"""Upgrade requests: which URL shape, which dialect, and whether the key and deployment are good.

OpenAI accepts every upgrade on ``/v1/realtime`` and reports a bad key or model afterwards
(an ``error`` event, then close 3000/4000); Azure refuses at the HTTP upgrade (401/404).
See ``../shared/realtime-protocol.md`` §1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(slots=True)
class Refusal:
    """The upgrade is refused with an HTTP status (Azure style)."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Rejection:
    """The upgrade is accepted (101), then an ``error`` event and a close (OpenAI style)."""

    error: dict[str, Any]
    close_code: int
    close_reason: str


@dataclass(slots=True)
class Route:
    provider: str  # openai | azure | voicelive
    dialect: str  # ga | preview | voicelive
    deployment: str
    api_version: str | None = None
    rejection: Rejection | None = None
    intent: str | None = None  # "transcription": OpenAI's ?intent=transcription (no model needed)
    model_class: str = ""  # Voice Live: native | cascade | byom | agent
    budget_key: str = ""  # the token budget spent (default: the deployment's own)
    byom_cascade: bool = False  # Voice Live BYOM chat-completion: a cascade around your deployment

    @property
    def limits_key(self) -> str:
        return self.budget_key or self.deployment


def _reject(code: str | None, message: str, close_code: int, error_type: str = "invalid_request_error") -> Rejection:
    reason = f"{error_type}.{code}" if code else error_type
    return Rejection(
        {"type": error_type, "code": code, "message": message, "param": None, "event_id": None}, close_code, reason
    )


def bearer_token(headers: Any) -> str | None:
    value = headers.get("Authorization") or headers.get("authorization")
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip()
    return None


def resolve(path_and_query: str, headers: Any, profile: dict[str, Any], keys: frozenset[str]) -> Route | Refusal:
    """The route of one upgrade request, or the HTTP refusal for it."""
    parts = urlsplit(path_and_query)
    path = parts.path.rstrip("/")
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    deployments = profile["deployments"]
    names = set(deployments["names"])
    retired = set(deployments["retired"])

    if path == "/v1/realtime":
        key = bearer_token(headers)
        model = query.get("model", "")
        beta = (headers.get("OpenAI-Beta") or "").replace(" ", "").lower() == "realtime=v1"
        route = Route("openai", "preview" if beta else "ga", model)
        if query.get("intent") == "transcription" and not beta:
            route.intent = "transcription"
        if key is None:
            route.rejection = _reject(
                None,
                "Missing bearer or basic authentication in header. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                3000,
            )
        elif key not in keys:
            route.rejection = _reject(
                "invalid_api_key",
                "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
                3000,
            )
        elif beta and not profile["api"]["allow_beta"]:
            route.rejection = _reject(
                "beta_api_shape_disabled",
                "The Realtime API beta shape is no longer supported. Remove the 'OpenAI-Beta: realtime=v1' "
                "header and use the GA interface.",
                4000,
            )
        elif not model and route.intent is None:
            route.rejection = _reject("missing_model", "Missing required parameter: 'model'.", 4000)
        elif model and model not in names:
            what = "has been retired" if model in retired else "does not exist or you do not have access to it"
            route.rejection = _reject("invalid_model", f"The model '{model}' {what}.", 4000)
        return route

    if path in ("/openai/v1/realtime", "/openai/realtime"):
        key = headers.get("api-key") or bearer_token(headers) or query.get("api-key")
        if path == "/openai/v1/realtime":
            if "api-version" in query:
                return Refusal(401, "invalid_url", "The v1 Realtime API does not take an api-version query parameter.")
            dialect = "ga"
            deployment = query.get("model", "")
            api_version = None
        else:
            api_version = query.get("api-version")
            if not api_version:
                return Refusal(404, "MissingApiVersion", "The api-version query parameter (?api-version=) is required.")
            if api_version in profile["api"]["preview_api_versions"]:
                dialect = "preview"
            elif api_version in profile["api"]["ga_api_versions"]:
                dialect = "ga"
            else:
                return Refusal(404, "NotFound", f"Resource not found: api-version {api_version!r} is not supported.")
            deployment = query.get("deployment", "")
        if not key or key not in keys:
            return Refusal(
                401,
                "401",
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid "
                "key for an active subscription and use a correct regional API endpoint for your resource.",
            )
        if deployment in retired:
            return Refusal(
                int(deployments["retired_status"]),
                "DeploymentNotFound",
                f"The API deployment for this resource does not exist or its model {deployment!r} has been retired.",
            )
        if deployment not in names:
            return Refusal(
                404,
                "DeploymentNotFound",
                "The API deployment for this resource does not exist. If you created the deployment within the "
                "last 5 minutes, please wait a moment and try again.",
            )
        return Route("azure", dialect, deployment, api_version)

    return Refusal(404, "NotFound", f"No Realtime endpoint at {path or '/'}.")
