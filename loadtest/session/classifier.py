"""The outcome classifier: what happened to one response attempt, as one ``outcome`` and ``reason``.

Pure: :func:`classify` reads a :class:`ResponseFacts` (built by the tracker from the events) and
the :class:`~loadtest.session.config.Thresholds`; it does no I/O and keeps no state. Reasons come
only from :data:`loadtest.records.schema.REASONS`. First, a gateway's translation of its backend's
failure is undone (:data:`GATEWAY_RULES`: an upstream HTTP status or close code named in an error
or close reason, close 1013; :class:`Verdict` says ``via_gateway``). Then the rules, first match
wins:

1. the upgrade failed: ``handshake_401/403/404/429/5xx/other`` or ``connect_error``;
2. ``response.done`` arrived: ``failed`` -> by error code/type (``server_error``,
   ``rate_limit_exceeded``, ``insufficient_quota``, ``session_expired``, else ``response_failed``);
   ``cancelled`` -> ``turn_detected``/``client_cancelled``; ``incomplete`` -> a function call's
   arguments cut off (``function_arguments_cut``), else ``incomplete_*``; ``completed`` -> a call
   cut off (``function_arguments_cut``) or with arguments that are not JSON matching the tool's
   parameters (``function_arguments_invalid``), else the audio checks (3);
3. audio requested: text part only -> ``text_only``; no audio at all -> ``missing_audio``; audio but
   no ``output_audio.done`` -> ``no_audio_done``; a playback underrun over the stall threshold ->
   ``audio_stall``; a silent stretch over its threshold -> ``inner_silence``; audio much shorter
   than its transcript -> ``audio_too_short``; else ``completed``;
4. an ``error`` event belongs to the response (it echoed the trigger's event id, or it is fatal):
   by code/type as in 2, plus ``auth_rejected``/``invalid_model``, else ``followup_rejected`` for
   the follow-up answering function calls (e.g. ``conversation_already_has_active_response``), else
   ``error_event``;
5. the socket closed first: this client failed it with 1007 (a text frame that is not UTF-8) ->
   ``invalid_utf8``; close 1001 or ``session_expired`` -> ``session_expired``; before anything
   started, close 3000 -> ``auth_rejected``, close 4000 -> ``invalid_model`` (reason names the
   model) or ``protocol_rejected``; else ``connection_dropped``;
6. no ``session.created``/``session.updated`` within the setup wait (the upgrade succeeded, then
   silence) -> ``session_not_ready``; the deadline passed with the socket open: nothing started ->
   ``response_timeout``; audio started -> ``no_audio_done``; a function call began ->
   ``function_call_timeout``; else ``done_timeout``;
7. the client stopped the session while the response was open -> ``client_cancelled``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from loadtest.records.schema import REASONS, outcome_of
from loadtest.session.config import Thresholds

AUDIO_PART_TYPES = frozenset({"audio", "output_audio"})
TEXT_PART_TYPES = frozenset({"text", "output_text"})

# how a tracker stopped listening
ENDED_DONE = "done"  # response.done arrived
ENDED_ERROR = "error"  # a request-level error event ended it before response.created
ENDED_CLOSED = "closed"  # the socket closed
ENDED_TIMEOUT = "timeout"  # the deadline passed with the socket open
ENDED_STOPPED = "stopped"  # the client stopped the session
ENDED_HANDSHAKE = "handshake"  # the upgrade failed; the turn never started
ENDED_NOT_READY = "not_ready"  # upgraded, but no session.created/updated within the setup wait

CLOSE_GOING_AWAY = 1001
CLOSE_INVALID_DATA = 1007  # this client failed the connection: a text frame that is not UTF-8
CLOSE_AUTH = 3000  # OpenAI: invalid_request_error.invalid_api_key
CLOSE_REJECTED = 4000  # OpenAI: invalid_model, missing_model, beta_api_shape_disabled

_THROTTLE_CODES = {"rate_limit_exceeded": "rate_limit_exceeded", "insufficient_quota": "insufficient_quota"}
_AUTH_CODES = frozenset({"invalid_api_key", "invalid_authentication", "unauthorized"})
_MODEL_CODES = frozenset({"invalid_model", "missing_model", "model_not_found", "DeploymentNotFound"})
_SHAPE_CODES = frozenset({"beta_api_shape_disabled"})  # the service refuses this protocol shape


@dataclass(slots=True)
class ResponseFacts:
    """Everything the classifier looks at. The tracker fills it; tests may write it by hand."""

    wants_audio: bool = True
    ended: str = ENDED_DONE
    # the upgrade
    handshake_status: int | None = None  # set only when the upgrade did not give 101
    handshake_failure: str | None = None  # the transport's own reason (a WebRTC call's SDP, ICE, DTLS)
    # response.done
    done: bool = False
    status: str | None = None
    status_reason: str | None = None
    error_type: str | None = None
    error_code: str | None = None
    # an error event attributed to the response
    error_event_type: str | None = None
    error_event_code: str | None = None
    error_event_message: str | None = None
    # progress
    created: bool = False
    started: bool = False  # response.created or any event of the response arrived
    client_cancelled: bool = False  # this client sent response.cancel for it
    function_calls: int = 0
    calls_cut: bool = False  # a call's arguments stopped before complete (item incomplete, or no .done)
    calls_invalid: bool = False  # a complete call's arguments are not JSON matching the tool's parameters
    follow_up: bool = False  # the response answers function calls (the client's follow-up response.create)
    content_types: list[str] = field(default_factory=list)
    audio_deltas: int = 0
    audio_ms: float = 0.0
    audio_done: bool = False
    transcript: str = ""
    text_chars: int = 0
    longest_underrun_ms: float = 0.0
    longest_silence_ms: float = 0.0
    # the socket
    close_code: int | None = None
    close_reason: str = ""
    # the session: session.created or session.updated had arrived when the response ended
    session_ready: bool = True


@dataclass(frozen=True, slots=True)
class Verdict:
    """What :func:`verdict` decided for one response attempt."""

    outcome: str
    reason: str  # "" for completed
    via_gateway: bool = False  # a gateway's translation of its backend's failure (GATEWAY_RULES)
    retry_after: float | None = None  # seconds, where the gateway passed one on


def classify(facts: ResponseFacts, thresholds: Thresholds | None = None) -> tuple[str, str]:
    """``(outcome, reason)`` for one response attempt; reason is ``""`` for completed."""
    v = verdict(facts, thresholds)
    return v.outcome, v.reason


def verdict(facts: ResponseFacts, thresholds: Thresholds | None = None) -> Verdict:
    """The outcome and reason of one response attempt, the gateway's translation undone first."""
    th = thresholds or Thresholds()
    via = False
    retry_after = None
    translated = through_gateway(facts)
    if translated is not None:
        facts, retry_after = translated
        via = True
    reason = _reason(facts, th)
    assert reason == "" or reason in REASONS, reason
    return Verdict(outcome_of(reason), reason, via, retry_after)


# --- through a gateway -------------------------------------------------------------------------
# A gateway (LiteLLM's realtime proxy, API Management, a reverse proxy) accepts the client's upgrade
# before it dials its backend, so its backend's refusal or drop reaches the client translated into
# an error event and a close. Each rule below is keyed by what the gateway sends and gives the facts
# the direct failure would have shown; rules are tried in order, the first that matches wins, and a
# shape none matches is classified as what it says.

CLOSE_TRY_AGAIN_LATER = 1013  # RFC 6455 / IANA: the server is overloaded, try again later

# an upstream HTTP status in an error message or close reason ("Upstream realtime handshake rejected
# with HTTP 429"); shared with preflight's gateway findings
UPSTREAM_STATUS = re.compile(r"(?i)\b(?:upstream|backend)\b[^\n]{0,80}?\b(?:http|status)\b\D{0,3}([1-5]\d\d)\b")
# an upstream close code ("upstream ... closed ... 1006")
UPSTREAM_CLOSE = re.compile(
    r"(?i)\b(?:upstream|backend)\b[^\n]{0,80}?\b(?:clos\w*|disconnect\w*|code)\b\D{0,16}\b(1\d{3}|[34]\d{3})\b"
)
RETRY_AFTER = re.compile(r"(?i)\bretry[-_ ]?after\b\D{0,4}(\d+(?:\.\d+)?)")


@dataclass(frozen=True, slots=True)
class GatewayRule:
    """One thing a gateway sends, and the failure it stands for."""

    sends: str  # what the gateway sends (the README's table)
    direct: str  # the direct failure it stands for
    translate: Callable[[ResponseFacts, str], ResponseFacts | None]  # (facts, its texts) -> direct facts


def _upstream_status(f: ResponseFacts, text: str) -> ResponseFacts | None:
    if f.session_ready or f.started:
        return None
    found = UPSTREAM_STATUS.search(text)
    if found is None:
        return None
    return replace(f, ended=ENDED_HANDSHAKE, handshake_status=int(found.group(1)))


def _upstream_close(f: ResponseFacts, text: str) -> ResponseFacts | None:
    found = UPSTREAM_CLOSE.search(text)
    if found is None:
        return None
    return replace(
        f,
        ended=ENDED_CLOSED,
        close_code=int(found.group(1)),
        close_reason="",
        error_event_type=None,
        error_event_code=None,
        error_event_message=None,
    )


def _try_again_later(f: ResponseFacts, text: str) -> ResponseFacts | None:
    if f.ended != ENDED_CLOSED or f.close_code != CLOSE_TRY_AGAIN_LATER or f.started:
        return None
    return replace(f, ended=ENDED_HANDSHAKE, handshake_status=429)


GATEWAY_RULES: tuple[GatewayRule, ...] = (
    GatewayRule(
        "an error (or close reason) naming an upstream HTTP status, before session.created",
        "the upgrade refused with that status: handshake_429 / handshake_5xx / handshake_401...",
        _upstream_status,
    ),
    GatewayRule(
        "an error (or close reason) naming an upstream close code (e.g. 1006, then close 1011)",
        "the connection closed with that code: connection_dropped for 1006",
        _upstream_close,
    ),
    GatewayRule(
        "close 1013 (try again later) before the response started",
        "the upgrade refused 429: handshake_429",
        _try_again_later,
    ),
)


def through_gateway(f: ResponseFacts) -> tuple[ResponseFacts, float | None] | None:
    """The direct failure a gateway's translation stands for, and the retry-after it passed on
    (None when no rule of :data:`GATEWAY_RULES` matches)."""
    if f.done or f.ended == ENDED_HANDSHAKE:
        return None
    text = "\n".join(t for t in (f.error_event_message, f.close_reason) if t)
    if not text and f.close_code != CLOSE_TRY_AGAIN_LATER:
        return None
    for rule in GATEWAY_RULES:
        direct = rule.translate(f, text)
        if direct is not None:
            found = RETRY_AFTER.search(text)
            return direct, float(found.group(1)) if found else None
    return None


def handshake_reason(status: int | None) -> str:
    """The reason for an upgrade refused with HTTP ``status`` (None: no HTTP response at all)."""
    if status is None:
        return "connect_error"
    if status in (401, 403, 404, 429):
        return f"handshake_{status}"
    if 500 <= status <= 599:
        return "handshake_5xx"
    return "handshake_other"


def failure_reason(error_type: str | None, error_code: str | None, *, default: str) -> str:
    """The reason for a failure reported with an error type/code (response.done or an error event)."""
    code = (error_code or "").strip()
    etype = (error_type or "").strip()
    for key in (code, etype):
        if key in _THROTTLE_CODES:
            return _THROTTLE_CODES[key]
    if code == "session_expired" or etype == "session_expired":
        return "session_expired"
    if code == "server_error" or etype == "server_error":
        return "server_error"
    if default == "error_event":
        if code in _AUTH_CODES or etype in ("authentication_error",):
            return "auth_rejected"
        if code in _MODEL_CODES:
            return "invalid_model"
        if code in _SHAPE_CODES:
            return "protocol_rejected"
    return default


def _reason(f: ResponseFacts, th: Thresholds) -> str:
    # 1. the turn never reached the service
    if f.ended == ENDED_HANDSHAKE:
        return f.handshake_failure or handshake_reason(f.handshake_status)
    # 2. the service said how it ended
    if f.done:
        status = (f.status or "").lower()
        if status == "failed":
            return failure_reason(f.error_type, f.error_code, default="response_failed")
        if status == "cancelled":
            if f.status_reason in ("turn_detected", "client_cancelled"):
                return f.status_reason
            return "client_cancelled" if f.client_cancelled else "turn_detected"
        if status == "incomplete":
            if f.calls_cut:
                return "function_arguments_cut"
            if f.status_reason == "max_output_tokens":
                return "incomplete_max_output_tokens"
            if f.status_reason == "content_filter":
                return "incomplete_content_filter"
            return "incomplete_other"
        if f.function_calls:
            if f.calls_cut:
                return "function_arguments_cut"
            if f.calls_invalid:
                return "function_arguments_invalid"
        return _audio_reason(f, th)
    # 4. an error event took the place of the response
    if f.error_event_type or f.error_event_code:
        reason = failure_reason(f.error_event_type, f.error_event_code, default="error_event")
        if reason == "error_event" and f.ended == ENDED_CLOSED and not f.started:
            return _rejected(f) or reason
        if reason == "error_event" and f.follow_up and not f.created:
            return "followup_rejected"
        return reason
    # 5. the socket closed first
    if f.ended == ENDED_CLOSED:
        if f.close_code == CLOSE_INVALID_DATA:
            return "invalid_utf8"
        if (
            f.close_code == CLOSE_GOING_AWAY
            or "session_expired" in f.close_reason
            or "maximum duration" in (f.close_reason)
        ):
            return "session_expired"
        if not f.started:
            rejected = _rejected(f)
            if rejected:
                return rejected
        return "connection_dropped"
    # 6. the session never became ready, or the deadline passed with the socket open
    if f.ended == ENDED_NOT_READY:
        return "session_not_ready"
    if f.ended == ENDED_TIMEOUT:
        if not f.started:
            return "response_timeout"
        if f.audio_deltas > 0:
            return "no_audio_done"
        return "function_call_timeout" if f.function_calls else "done_timeout"
    # 7. stopped on purpose
    if f.ended == ENDED_STOPPED:
        return "client_cancelled"
    return "connection_dropped"


def _rejected(f: ResponseFacts) -> str | None:
    """A post-101 rejection (OpenAI closes 3000/4000 with ``<type>.<code>`` as the reason)."""
    reason = f.close_reason or ""
    if f.close_code == CLOSE_AUTH or "invalid_api_key" in reason:
        return "auth_rejected"
    if f.close_code == CLOSE_REJECTED:
        if "model" in reason:
            return "invalid_model"
        return "protocol_rejected"
    return None


def _audio_reason(f: ResponseFacts, th: Thresholds) -> str:
    if not f.wants_audio:
        return ""
    kinds = set(f.content_types)
    has_audio_part = bool(kinds & AUDIO_PART_TYPES)
    has_text_part = bool(kinds & TEXT_PART_TYPES)
    if f.audio_deltas == 0:
        if has_text_part and not has_audio_part:
            return "text_only"
        if not has_audio_part and not f.transcript and f.text_chars and not f.function_calls:
            return "text_only"
        if f.function_calls and not has_audio_part and not f.transcript:
            return ""  # a tool call answers without audio by design
        return "missing_audio"
    if not f.audio_done:
        return "no_audio_done"
    if f.longest_underrun_ms > th.stall_ms:
        return "audio_stall"
    if f.longest_silence_ms > th.inner_silence_ms:
        return "inner_silence"
    if th.check_audio_length and f.transcript and _too_short(f.audio_ms, f.transcript):
        return "audio_too_short"
    return ""


def _too_short(audio_ms: float, transcript: str) -> bool:
    from loadtest.audio.heuristics import audio_too_short

    return bool(audio_too_short(audio_ms, transcript))
