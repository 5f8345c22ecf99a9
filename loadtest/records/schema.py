"""The record contract: the columns of every file in a run directory, defined once.

A run directory ``reports/<run_id>/`` holds ``run.json``, ``responses.jsonl``,
``sessions.jsonl``, ``rate_limits.jsonl`` and ``traces/``. Each JSONL row is one JSON
object whose keys are the field names below (a writer may leave a field out when it has
no value; readers fill it with null). Every row carries ``schema_version``.

Times are wall-clock Unix seconds (float, ``time.time()``) in ``t_*`` fields; durations
are milliseconds in ``*_ms`` fields. Latencies are measured from ``t_trigger`` (the moment
the client finished the act that asks for a response: the last audio append before the
server's VAD commit, the ``input_audio_buffer.commit``/``response.create`` pair, or the
text item's ``response.create``).

Secrets never appear in any row: URLs are stored with their ``api-key`` query parameter
redacted and no header values are stored except the request ids listed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

SCHEMA_VERSION = 1

RUN_FILE = "run.json"
RESPONSES_FILE = "responses.jsonl"
SESSIONS_FILE = "sessions.jsonl"
RATE_LIMITS_FILE = "rate_limits.jsonl"
TRACES_DIR = "traces"
MOCK_TRUTH_FILE = "mock_truth.jsonl"
HEALTH_FILE = "health.jsonl"  # the load generator's own health samples (HealthRecord rows)


@dataclass(slots=True)
class ResponseRecord:
    """One response attempt: the unit of every statistic."""

    # identity
    run_id: str = ""
    worker_id: str = ""
    user_id: int = 0
    session_id: str | None = None  # sess_... (None when the handshake failed)
    response_id: str | None = None  # resp_... (None when no response.created arrived)
    item_id: str | None = None  # the assistant item
    turn_index: int = 0
    # what was asked
    target: str = ""  # a short label for the target (e.g. "mock", "azure-eastus")
    provider: str = ""  # openai | azure | voicelive
    model_class: str = ""  # Voice Live: native | cascade | byom | agent ("" on the other providers)
    dialect: str = ""  # ga | preview | voicelive
    deployment: str = ""
    scenario: str = ""
    fixture: str = ""
    trigger: str = ""  # server_vad | manual | text | idle_timeout | server (a response no turn asked for)
    modalities: list[str] = field(default_factory=list)  # requested output modalities
    audio_format: str = ""  # pcm16 | g711_ulaw | g711_alaw | pcm16_16000hz (Voice Live)
    out_of_band: bool = False
    transport: str = ""  # websocket | webrtc ("" in rows written before the column existed: websocket)
    # load context
    step: int | None = None  # load-shape step index
    users: int | None = None  # target user count of the shape when the response started
    concurrency: int | None = None  # sessions open in this process when the response started
    # timestamps (Unix seconds)
    t_trigger: float | None = None
    t_created: float | None = None
    t_first_audio: float | None = None
    t_first_text: float | None = None  # first transcript or text delta
    t_audio_done: float | None = None
    t_done: float | None = None
    # latencies from t_trigger (ms)
    created_ms: float | None = None
    ttfa_ms: float | None = None  # time to first audio delta
    ttft_ms: float | None = None  # time to first transcript/text delta
    done_ms: float | None = None
    # classification
    outcome: str = ""  # see OUTCOMES
    reason: str = ""  # see REASONS ("" for completed)
    via_gateway: bool = False  # a gateway's translation of its backend's failure, classified as the direct one
    # what response.done / error said
    status: str | None = None  # completed | cancelled | failed | incomplete (response.done)
    status_reason: str | None = None  # status_details.reason
    error_type: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    error_event_id: str | None = None  # the server event id that carried the failure
    done_event_id: str | None = None  # event_id of response.done
    close_code: int | None = None  # when the socket closed during this response
    handshake_status: int | None = None  # for handshake failures
    request_id: str | None = None  # x-request-id / apim-request-id of the session's upgrade
    # audio received
    audio_bytes: int = 0
    audio_ms: float = 0.0
    audio_deltas: int = 0
    max_delta_gap_ms: float = 0.0  # largest raw gap between audio deltas
    underrun_ms: float = 0.0  # time a real-time player would have starved (playback clock)
    longest_underrun_ms: float = 0.0  # the longest single starvation
    longest_silence_ms: float = 0.0  # longest silent stretch inside the received audio
    silence_ms: float = 0.0  # total silence inside the received audio
    content_types: list[str] = field(default_factory=list)  # content part types seen
    transcript_chars: int = 0
    text_chars: int = 0
    # usage
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    # usage by kind (response.done usage.*_token_details, both dialects); cached tokens are a
    # subset of the input tokens, cached audio a subset of the cached (GA's cached_tokens_details)
    input_text_tokens: int | None = None
    input_audio_tokens: int | None = None
    input_cached_tokens: int | None = None
    input_cached_audio_tokens: int | None = None
    output_text_tokens: int | None = None
    output_audio_tokens: int | None = None
    # function calling: a response whose output holds function calls, and the follow-ups answering them
    function_calls: int = 0  # function_call items in this response's output
    function_names: list[str] = field(default_factory=list)  # one per call, in output order
    function_args_ms: list[float] = field(default_factory=list)  # per call: t_trigger to its arguments .done
    function_args_valid: list[bool] = field(default_factory=list)  # per call: JSON matching the tool's parameters
    parent_response_id: str | None = None  # a follow-up: the calling response whose outputs it answers
    chain_depth: int = 0  # 0 for a turn's first response, n for the n-th follow-up of its chain
    tool_latency_ms: float | None = None  # a follow-up: the simulated tool latency (the scenario's tool table)
    tool_round_trip_ms: float | None = None  # a follow-up: last call's arguments .done to this one's first output
    final_answer_ms: float | None = None  # a turn's last response: the turn's trigger to this one's first output
    # input transcription of the turn's audio (on the row of the response that audio asked for)
    input_transcription: str | None = None  # completed | failed | missing (None: not configured, or no audio)
    input_transcript_first_ms: float | None = None  # from the commit to the first transcription delta
    input_transcript_done_ms: float | None = None  # from the commit to ...input_audio_transcription.completed
    input_transcription_error: str | None = None  # the .failed event's error code (or type)
    input_transcript_wer: float | None = None  # word error rate of the transcript against the turn's expected text
    # rate limits last seen on the session before this response ended
    rl_tokens_remaining: int | None = None
    rl_requests_remaining: int | None = None
    # evidence
    trace_file: str | None = None  # path relative to the run directory
    audio_file: str | None = None  # the WAV a caller heard (--keep-audio), relative to the run directory
    schema_version: int = SCHEMA_VERSION


@dataclass(slots=True)
class SessionRecord:
    """One WebSocket session, including failed handshakes."""

    run_id: str = ""
    worker_id: str = ""
    user_id: int = 0
    session_id: str | None = None
    target: str = ""
    provider: str = ""
    model_class: str = ""
    dialect: str = ""
    transport: str = ""  # websocket | webrtc ("" in rows written before the column existed: websocket)
    deployment: str = ""
    url: str = ""  # redacted
    scenario: str = ""
    t_start: float | None = None  # connect() called
    t_open: float | None = None  # upgrade completed (101)
    t_end: float | None = None
    handshake_ms: float | None = None
    handshake_status: int | None = None  # 101 on success, else the HTTP status
    handshake_error: str | None = None  # one line
    retry_after: float | None = None  # seconds, from a refused upgrade
    request_id: str | None = None  # x-request-id / apim-request-id
    region: str | None = None  # x-ms-region
    close_code: int | None = None
    close_reason: str | None = None
    ended_by: str = ""  # see SESSION_ENDINGS
    duration_s: float | None = None
    responses: int = 0
    # response-scoped events (a response.done, a delta) naming a response id the session never saw:
    # traced, counted here, no response row
    unknown_response_events: int = 0
    idle_timeouts: int = 0  # input_audio_buffer.timeout_triggered (server VAD idle_timeout_ms; GA)
    # WebRTC: the server's media packets dropped, not authentic SRTP or not RTP (garbage on the path)
    rtp_dropped: int = 0
    # WebRTC, from RTCP (None: not known, and over a WebSocket): the server's packets that never
    # arrived, the round-trip time from its receiver reports, our packets it reports lost
    rtp_lost: int | None = None
    rtt_ms: float | None = None
    peer_rtp_lost: int | None = None
    concurrency: int | None = None
    step: int | None = None
    schema_version: int = SCHEMA_VERSION


@dataclass(slots=True)
class RateLimitRecord:
    """One entry of one ``rate_limits.updated`` event."""

    run_id: str = ""
    worker_id: str = ""
    session_id: str | None = None
    response_id: str | None = None  # the response that ended just before, if any
    t: float = 0.0
    name: str = ""  # requests | tokens
    limit: int | None = None
    remaining: int | None = None
    reset_seconds: float | None = None
    schema_version: int = SCHEMA_VERSION


MASTER_WORKER_ID = "master"  # the worker_id of the master's own rows (it runs no sessions)


@dataclass(slots=True)
class HealthRecord:
    """One sample of a load-generator process's own health (``health.jsonl``).

    ``rtload report summary`` uses these to say whether the load generator itself was the
    bottleneck (CPU saturated, event-loop lag, audio frames sent late, reads behind).
    """

    t: float = 0.0
    worker_id: str = ""
    cpu_percent: float | None = None  # this process, 100 = one core
    rss_mb: float | None = None
    clock_lag_p99_ms: float | None = None  # p99 lateness of the event loop / greenlet scheduler
    frames_late_pct: float | None = None  # % of audio frames sent later than their real-time slot
    # p99 of how long the newest bytes of a read had waited in the socket (kernel stamps; ws:// and wss://)
    recv_lag_p99_ms: float | None = None
    users: int | None = None  # users running in this process
    schema_version: int = SCHEMA_VERSION


def columns(record_type: type) -> list[str]:
    """The column names of a record type, in contract order."""
    return [f.name for f in fields(record_type)]


def to_row(record: Any) -> dict[str, Any]:
    """A record as a plain dict (one JSONL row)."""
    return {f.name: getattr(record, f.name) for f in fields(record)}


# --- the outcome taxonomy -------------------------------------------------------------

COMPLETED = "completed"
FAILED = "failed"
TRUNCATED = "truncated"
THROTTLED = "throttled"
CANCELLED = "cancelled"
OUTCOMES: tuple[str, ...] = (COMPLETED, FAILED, TRUNCATED, THROTTLED, CANCELLED)

# Every reason belongs to exactly one outcome. A completed response has reason "".
REASONS: dict[str, str] = {
    # failed: the service reported or caused failure
    "server_error": FAILED,  # response.done failed / error event with type or code server_error
    "response_failed": FAILED,  # response.done failed with another code (see error_code)
    "error_event": FAILED,  # an `error` event rejected the request; no response started
    "connection_dropped": FAILED,  # socket closed mid-response (close_code says how)
    "session_expired": FAILED,  # session cap: error session_expired or close 1001 mid-response
    "response_timeout": FAILED,  # nothing (no response.created/done) within the deadline
    "session_not_ready": FAILED,  # upgraded, then no session.created/updated within the setup wait
    "invalid_utf8": FAILED,  # a text frame that is not UTF-8: this client closed 1007 (RFC 6455)
    "done_timeout": FAILED,  # response started, no response.done within the deadline, no audio
    # function calling: the service broke the chain (the call cannot be answered, or its answer not heard)
    "function_arguments_invalid": FAILED,  # a complete call's arguments: not JSON matching the tool's parameters
    "function_call_timeout": FAILED,  # a call began, then no arguments .done / response.done within the deadline
    "followup_rejected": FAILED,  # the follow-up answering the calls refused (e.g. already has active response)
    "handshake_401": FAILED,
    "handshake_403": FAILED,
    "handshake_404": FAILED,
    "handshake_5xx": FAILED,
    "handshake_other": FAILED,  # any other non-101 status
    "connect_error": FAILED,  # DNS, refused, TLS, timeout before any HTTP status
    # WebRTC calls (the handshake is an HTTP exchange, then ICE, DTLS and the data channel)
    "webrtc_sdp_rejected": FAILED,  # realtime/calls or client_secrets refused (400, 415...) or no usable SDP answer
    "webrtc_ice_failed": FAILED,  # the answer came, no ICE candidate pair connected in the connect timeout
    "webrtc_dtls_failed": FAILED,  # ICE connected, the DTLS handshake failed
    "webrtc_channel_failed": FAILED,  # connected, the oai-events data channel never opened
    "auth_rejected": FAILED,  # 101 then error invalid_api_key and close 3000 (OpenAI)
    "invalid_model": FAILED,  # 101 then error invalid_model/missing_model and close 4000
    "protocol_rejected": FAILED,  # 101 then close 4000 for another reason (beta shape, ...)
    # failed, transcription-only sessions (no response: the row is the utterance's transcription)
    "transcription_failed": FAILED,  # ...input_audio_transcription.failed
    "transcription_timeout": FAILED,  # no .completed/.failed within the wait after the commit (or no commit)
    # truncated: an answer started but its audio is cut short or missing
    "audio_stall": TRUNCATED,  # a listener would hear a gap over the stall threshold
    "inner_silence": TRUNCATED,  # silent audio inside the answer over the stall threshold
    "no_audio_done": TRUNCATED,  # audio started, no output_audio.done/response.done by deadline
    "missing_audio": TRUNCATED,  # completed with a transcript but no audio
    "audio_too_short": TRUNCATED,  # audio much shorter than its transcript needs
    "text_only": TRUNCATED,  # audio requested, content part of type text only
    "incomplete_max_output_tokens": TRUNCATED,
    "incomplete_content_filter": TRUNCATED,
    "incomplete_other": TRUNCATED,
    "function_arguments_cut": TRUNCATED,  # a call's arguments stopped mid-JSON (item or response incomplete)
    # throttled: rate or capacity limit
    "handshake_429": THROTTLED,
    "rate_limit_exceeded": THROTTLED,
    "insufficient_quota": THROTTLED,
    # cancelled: ended on purpose
    "turn_detected": CANCELLED,
    "client_cancelled": CANCELLED,
}

# How a session ended (SessionRecord.ended_by).
SESSION_ENDINGS: tuple[str, ...] = (
    "client_closed",  # the scenario finished or the user stopped
    "lifetime",  # the client recycled it at its configured lifetime
    "session_expired",  # the server ended it at its maximum duration
    "server_closed",  # the server closed it for another reason (close_code says)
    "dropped",  # the connection was lost without a close frame (1006)
    "handshake_failed",  # never opened
    "session_not_ready",  # opened, but no session.created/updated came within the setup wait
    "error",  # the client gave up after a protocol error
)

# The mock's ground-truth fault names (mock_truth.jsonl ``fault``) and the outcome and
# reason the harness must record for a response the mock treated that way. Faults of kind
# "session" (handshake_*, capacity_429) are checked against the session row and the
# response row of the turn that could not start.
FAULT_EXPECTATIONS: dict[str, tuple[str, str]] = {
    "none": (COMPLETED, ""),
    "server_error": (FAILED, "server_error"),
    "stall": (TRUNCATED, "audio_stall"),
    "silence": (TRUNCATED, "inner_silence"),
    "hang": (TRUNCATED, "no_audio_done"),
    "missing_audio": (TRUNCATED, "missing_audio"),
    "text_only": (TRUNCATED, "text_only"),
    "drop": (FAILED, "connection_dropped"),
    "incomplete": (TRUNCATED, "incomplete_max_output_tokens"),
    "rate_limited": (THROTTLED, "rate_limit_exceeded"),
    "session_expired": (FAILED, "session_expired"),
    "handshake_5xx": (FAILED, "handshake_5xx"),
    "handshake_429": (THROTTLED, "handshake_429"),
    "capacity_429": (THROTTLED, "handshake_429"),
    "connection_rate_429": (THROTTLED, "handshake_429"),  # Voice Live: new connections per minute
    "turn_detected": (CANCELLED, "turn_detected"),
    "client_cancelled": (CANCELLED, "client_cancelled"),
    # function calls (the mock's faults.tool_*, drawn once per response that calls tools)
    "tool_arguments_cut": (TRUNCATED, "function_arguments_cut"),
    "tool_server_error": (FAILED, "server_error"),
    "tool_call_hang": (FAILED, "function_call_timeout"),
    "tool_slow_arguments": (COMPLETED, ""),
}


# The mock's input transcription faults (truth rows of kind "transcription") and the value of the
# ``input_transcription`` column the harness must record for that item. A response's outcome does not
# depend on its input's transcription; a transcription-only row's outcome does (its reason is
# ``transcription_failed`` for a failed one).
TRANSCRIPTION_FAULT_EXPECTATIONS: dict[str, str] = {
    "none": "completed",
    "transcription_failed": "failed",
    "transcription_slow": "completed",  # completed, later than the profile's first_delta_ms by delay_ms
}


def outcome_of(reason: str) -> str:
    """The outcome a reason belongs to ("" means completed)."""
    if not reason:
        return COMPLETED
    return REASONS[reason]
