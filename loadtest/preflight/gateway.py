"""Failures on a gateway's side: what a smoke session through LiteLLM, API Management or a reverse
proxy shows when the gateway, not the user's setup, is what fails.

A gateway typically accepts the client's upgrade (101) before it dials its backend, so a backend
refusal arrives as an ``error`` event (LiteLLM: "Upstream realtime handshake rejected with HTTP 401")
and a close; a backend it cannot reach as an error or close naming the connection failure, or an
HTTP 502/503/504 from the gateway itself; a model the gateway does not list as its own error. Each
gets one finding whose fix says it is the gateway's side. :func:`diagnose` returns it, or None when
the timeline shows none of these (the ordinary verdicts then stand).
"""

from __future__ import annotations

import re
from typing import Any

from loadtest.preflight.findings import Finding, Severity
from loadtest.session.classifier import UPSTREAM_STATUS  # the load test's rule reads the same shape

E = Severity.ERROR
GATEWAY_SIDE = "the gateway's side, not your client's"

_UNREACHABLE = re.compile(
    r"(?i)connect(?:ion)?\s+(?:call\s+)?(?:failed|refused|reset|error|timed?\s*out)|errno\s*(?:111|110|113|-2|-3)"
    r"|name or service not known|getaddrinfo|no route to host|could not connect|cannot connect|unreachable"
    r"|upstream connect error|no healthy upstream|upstream request timeout|(?:close|code)\D{0,12}1006|abnormal closure"
)
_UNKNOWN_MODEL = re.compile(
    r"(?i)invalid model name|no deployments? available|model group|unknown model|model[^\n]{0,60}?not (?:found|"
    r"supported|configured|in (?:the )?(?:model[_ ]list|router))"
)
_BACKEND_KEY = re.compile(r"(?i)platform\.openai\.com/account/api-keys|invalid subscription key")


def _texts(run: Any) -> list[str]:
    """The error messages, error codes and close reasons the gateway sent, in order."""
    out: list[str] = []
    for row in run.timeline:
        if row.get("dir") != "in":
            continue
        if row.get("type") == "handshake" and row.get("status") not in (101, None):
            out.append(str(row.get("error") or ""))
        for key in ("error_message", "error_code", "reason"):
            if row.get(key):
                out.append(str(row[key]))
    return out


def _finding(check: str, message: str, fix: str) -> Finding:
    return Finding(check, E, message, f"{GATEWAY_SIDE}: {fix}")


def diagnose(run: Any, model: str | None) -> Finding | None:
    """The gateway-side failure the smoke session shows, if any (``run`` is a smoke.SmokeRun)."""
    hs = run.handshake or {}
    status = hs.get("status")
    if status is None:
        return None  # the gateway itself did not answer: the ordinary handshake verdict says so
    texts = _texts(run)
    blob = "\n".join(texts)
    name = repr(model) if model else "the model in the URL"
    found = UPSTREAM_STATUS.search(blob)
    if found:
        upstream = int(found.group(1))
        said = f"(it said: {next(t for t in texts if found.group(0) in t)[:160]})"
        if upstream in (401, 403):
            return _finding(
                "gateway.backend_auth",
                f"the gateway accepted the session, but its backend refused the gateway's own credentials "
                f"(upstream HTTP {upstream}) {said}",
                "fix the backend key in the gateway's configuration (LiteLLM: litellm_params.api_key of the "
                "model; API Management: the backend's credentials or managed identity)",
            )
        if upstream == 404:
            return _finding(
                "gateway.backend_model",
                f"the gateway's backend has no deployment/model for {name} as the gateway maps it "
                f"(upstream HTTP 404) {said}",
                "fix the backend model/deployment the gateway maps this name to (LiteLLM: litellm_params.model "
                "and api_base)",
            )
        if upstream == 429:
            return _finding(
                "gateway.backend_throttled",
                f"the gateway's backend is at its limit (upstream HTTP 429) {said}",
                "the backend's quota: retry later or raise it (the load test records these as the gateway "
                "passes them on)",
            )
        return _finding(
            "gateway.backend_failed",
            f"the gateway's backend failed the upgrade (upstream HTTP {upstream}) {said}",
            "check the backend service and the gateway's logs; report the request id if it persists",
        )
    if _UNKNOWN_MODEL.search(blob):
        return _finding(
            "gateway.unknown_model",
            f"the gateway does not know {name} (it is not in the gateway's own model list)",
            "pass a name the gateway exposes (LiteLLM: a model_name of config.yaml; GET /v1/models lists them), "
            "or add this one to the gateway",
        )
    if _UNREACHABLE.search(blob) or status in (502, 503, 504):
        what = f"HTTP {status} from the gateway" if status in (502, 503, 504) else "a connection failure"
        return _finding(
            "gateway.backend_unreachable",
            f"the gateway answered but could not reach its backend ({what})",
            "check the gateway's backend URL (LiteLLM: api_base; nginx/Envoy: the upstream) and the network "
            "from the gateway to the service",
        )
    if _BACKEND_KEY.search(blob) and status == 101:
        return _finding(
            "gateway.backend_auth",
            "the service behind the gateway refused a key (its own invalid-key message, passed through)",
            "if the gateway uses its own key for the backend, fix that key in the gateway's configuration; a "
            "plain reverse proxy passes yours on: then check --api-key-env",
        )
    return None
