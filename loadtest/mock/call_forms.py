"""The bodies of the WebRTC routes: the SDP offer (and session) of ``POST .../realtime/calls`` and
the JSON of ``POST .../realtime/client_secrets``.

A call's body is one of the forms the services take: ``application/sdp`` (the offer alone; the
session comes from the ephemeral key), ``multipart/form-data`` with an ``sdp`` field and an
optional ``session`` field of JSON (OpenAI's and Azure's "Create a Realtime call" reference), or
``application/json`` ``{"sdp": ..., "session": {...}}`` (what openai-python's
``realtime.calls.create`` sends).
"""

from __future__ import annotations

from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

import orjson


@dataclass(slots=True)
class FormError(Exception):
    status: int
    code: str
    message: str
    param: str | None = None


@dataclass(slots=True)
class CallOffer:
    sdp: str
    session: dict[str, Any] | None


def _session_field(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise FormError(400, "invalid_value", "The 'session' field is not valid JSON.", "session") from None
    if not isinstance(value, dict):
        raise FormError(400, "invalid_type", "The 'session' field must be a JSON object.", "session")
    return value


def _multipart(content_type: str, body: bytes) -> dict[str, bytes]:
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
                                                  + body)  # fmt: skip
    if not message.is_multipart():
        raise FormError(400, "invalid_request_error", "The multipart/form-data body could not be read (boundary?).")
    fields: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            payload = part.get_payload(decode=True)
            fields[name] = payload if isinstance(payload, bytes) else b""
    return fields


def parse_call(content_type: str, body: bytes) -> CallOffer:
    """The offer and session of a call request; raises :class:`FormError` (400/415)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/sdp":
        sdp, session = body.decode("utf-8", "replace"), None
    elif kind == "multipart/form-data":
        fields = _multipart(content_type, body)
        if "sdp" not in fields:
            raise FormError(400, "missing_required_parameter", "Missing required parameter: 'sdp'.", "sdp")
        sdp = fields["sdp"].decode("utf-8", "replace")
        session = _session_field(fields.get("session"))
    elif kind == "application/json":
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise FormError(400, "invalid_json", "The request body is not valid JSON.") from None
        if not isinstance(data, dict) or not isinstance(data.get("sdp"), str):
            raise FormError(400, "missing_required_parameter", "Missing required parameter: 'sdp'.", "sdp")
        sdp, session = data["sdp"], _session_field(data.get("session"))
    else:
        raise FormError(415, "unsupported_content_type", f"Unsupported Content-Type {content_type or '(none)'!r}: "
                        "send the SDP offer as application/sdp, or multipart/form-data with 'sdp' and 'session' "
                        "fields.")  # fmt: skip
    check_offer(sdp)
    return CallOffer(sdp, session)


def check_offer(sdp: str) -> None:
    """An SDP offer's shape: ``v=0`` first and an audio or data channel media section."""
    lines = [line.strip() for line in sdp.strip().splitlines()]
    if not lines or lines[0] != "v=0":
        raise FormError(400, "invalid_offer", "The SDP offer is not valid SDP: it must start with 'v=0'.", "sdp")
    if not any(line.startswith(("m=audio ", "m=application ")) for line in lines):
        raise FormError(400, "invalid_offer", "The SDP offer has no audio or data channel media section "
                        "('m=audio' / 'm=application').", "sdp")  # fmt: skip


def parse_secret_request(body: bytes) -> tuple[dict[str, Any] | None, int]:
    """The session and lifetime (seconds) of a ``client_secrets`` request."""
    try:
        data = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError:
        raise FormError(400, "invalid_json", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise FormError(400, "invalid_type", "The request body must be a JSON object.")
    seconds = 600
    expires = data.get("expires_after")
    if expires is not None:
        if not isinstance(expires, dict) or expires.get("anchor", "created_at") != "created_at":
            raise FormError(400, "invalid_value", "expires_after.anchor must be 'created_at'.", "expires_after.anchor")
        raw = expires.get("seconds", 600)
        if not isinstance(raw, int) or isinstance(raw, bool) or not 10 <= raw <= 7200:
            raise FormError(400, "invalid_value", "expires_after.seconds must be an integer from 10 to 7200.",
                            "expires_after.seconds")  # fmt: skip
        seconds = raw
    return _session_field(data.get("session")), seconds
