"""The WebRTC call set-up as the providers document it, without I/O: URLs, request bodies, answers.

A WebRTC session starts with HTTP, not an upgrade. The WebSocket URL a target dials names the
forms (this module derives them from it, so the session core keeps one URL per target):

- OpenAI (``/v1/realtime?model=M``): one ``POST /v1/realtime/calls`` with the API key
  (``Authorization: Bearer``), ``multipart/form-data`` with the SDP offer (``sdp``) and the
  session configuration (``session``, JSON: ``{"type": "realtime", "model": M}``); the answer is
  the SDP (``application/sdp``, 201) and ``Location: /v1/realtime/calls/{call_id}``.
- Azure OpenAI (``/openai/v1/realtime?model=D``): an ephemeral key first,
  ``POST /openai/v1/realtime/client_secrets`` with the resource's auth (``api-key`` or an Entra
  token) and ``{"session": {"type": "realtime", "model": D}}``, answered ``{"value": "ek_..."}``;
  then ``POST /openai/v1/realtime/calls`` with ``Authorization: Bearer ek_...`` and the bare
  offer (``Content-Type: application/sdp``).

What failed is said as a reason of its own (:data:`SDP_REJECTED`...) beside the HTTP status;
the statuses that mean the same as a refused upgrade (401, 403, 404, 429, 5xx) keep the
``handshake_*`` reasons, so a WebSocket and a WebRTC run of one deployment compare.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import orjson

SDP_REJECTED = "webrtc_sdp_rejected"  # the calls/client_secrets exchange refused the offer, or no usable answer
ICE_FAILED = "webrtc_ice_failed"  # no ICE pair connected within the connect timeout
DTLS_FAILED = "webrtc_dtls_failed"  # ICE connected, the DTLS handshake failed
CHANNEL_FAILED = "webrtc_channel_failed"  # connected, the oai-events data channel never opened
REASONS = (SDP_REJECTED, ICE_FAILED, DTLS_FAILED, CHANNEL_FAILED)
EVENTS_CHANNEL = "oai-events"
SAME_AS_UPGRADE = frozenset({401, 403, 404, 429})  # and 5xx: the handshake_* reasons


@dataclass(frozen=True, slots=True)
class CallForm:
    """Where and how one target sets up a WebRTC call."""

    provider: str  # openai | azure
    calls_url: str
    client_secrets_url: str | None  # Azure: the ephemeral key first
    model: str


def call_form(ws_url: str) -> CallForm:
    """The call set-up for the target whose WebSocket URL is ``ws_url`` (ValueError for one that has none)."""
    parts = urlsplit(ws_url)
    scheme = {"ws": "http", "wss": "https", "http": "http", "https": "https"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(f"bad URL for WebRTC: {ws_url!r}")
    query = dict(parse_qsl(parts.query))
    model = query.get("model") or query.get("deployment") or ""
    path = parts.path.rstrip("/")
    if not path.endswith("/realtime"):
        raise ValueError(f"no WebRTC calls endpoint for the path {parts.path!r}: use a /v1/realtime URL")
    if path.endswith("/openai/realtime"):  # Azure's preview path: the GA calls endpoint serves WebRTC
        path = path[: -len("/openai/realtime")] + "/openai/v1/realtime"
    azure = "/openai/" in path + "/"
    keep = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("model", "deployment", "api-version")]
    rest = "&".join(f"{k}={v}" for k, v in keep)

    def at(suffix: str, query_text: str = "") -> str:
        return urlunsplit((scheme, parts.netloc, f"{path}/{suffix}", query_text, ""))

    if azure:
        return CallForm("azure", at("calls", rest), at("client_secrets", rest), model)
    return CallForm("openai", at("calls", rest), None, model)


def session_config(model: str) -> dict[str, object]:
    """The session configuration sent with the call (the session core's session.update follows on
    the data channel, as over a WebSocket)."""
    return {"type": "realtime", "model": model} if model else {"type": "realtime"}


def client_secret_body(model: str) -> bytes:
    return orjson.dumps({"session": session_config(model)})


def client_secret_value(body: bytes) -> str | None:
    """The ephemeral key in a client_secrets answer (``value``; the older ``client_secret.value``)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    value = doc.get("value")
    if not isinstance(value, str):
        nested = doc.get("client_secret")
        value = nested.get("value") if isinstance(nested, dict) else None
    return value if isinstance(value, str) and value else None


def multipart_offer(sdp: str, model: str) -> tuple[bytes, str]:
    """OpenAI's unified form: (body, content type) with the ``sdp`` and ``session`` parts."""
    boundary = "rtload" + secrets.token_hex(12)
    session = orjson.dumps(session_config(model)).decode()
    lines = [
        f"--{boundary}",
        'Content-Disposition: form-data; name="sdp"',
        "Content-Type: application/sdp",
        "",
        sdp,
        f"--{boundary}",
        'Content-Disposition: form-data; name="session"',
        "Content-Type: application/json",
        "",
        session,
        f"--{boundary}--",
        "",
    ]
    return "\r\n".join(lines).encode(), f"multipart/form-data; boundary={boundary}"


def is_answer(body: bytes) -> bool:
    """An SDP answer (starts ``v=0``) rather than an error document."""
    return body.lstrip()[:4] == b"v=0\r" or body.lstrip()[:4] == b"v=0\n"


def error_line(status: int, body: bytes, where: str) -> str:
    """One line for a refused exchange: the status and the service's own message when it sent one."""
    message = ""
    try:
        doc = orjson.loads(body)
        err = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(err, dict):
            message = str(err.get("message") or err.get("code") or "")
    except orjson.JSONDecodeError:
        message = body[:160].decode("utf-8", "replace").strip()
    return f"{where} answered HTTP {status}" + (f": {message}" if message else "")


def refusal_reason(status: int | None) -> str | None:
    """The reason of a refused exchange: None where the handshake_* reason of the status applies."""
    if status is None:
        return None  # no HTTP answer: connect_error
    if status in SAME_AS_UPGRADE or 500 <= status <= 599:
        return None
    return SDP_REJECTED
