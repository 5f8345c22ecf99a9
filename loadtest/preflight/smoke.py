"""The live part of preflight: one smoke session through the real session client, its event
timeline, a verdict per step, and a dialect probe when the configured dialect fails.

The session is the harness's own :class:`~loadtest.session.client.RealtimeSession` (one manual
audio turn from a short fixture, then one text turn), so preflight tests exactly what a load test
will do. The timeline comes from the session's observer hook: key fields only, payloads elided.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

from loadtest.preflight import retirements
from loadtest.preflight.config import PreflightConfig
from loadtest.preflight.findings import Finding, Severity
from loadtest.preflight.gateway import diagnose
from loadtest.protocol.dialects import DIALECTS, DialectName, get_dialect, other_dialect_hint
from loadtest.protocol.targets import redact_text
from loadtest.records.schema import COMPLETED, ResponseRecord, SessionRecord

E, W, OK = Severity.ERROR, Severity.WARNING, Severity.OK

# session fields one dialect has and the other rejects (a server refusing a dialect names one of them)
_DIALECT_FIELDS = {
    DialectName.GA: ("session.type", "output_modalities", "session.audio", "max_output_tokens"),
    DialectName.PREVIEW: ("session.modalities", "session.voice", "turn_detection", "input_audio_format"),
}
_AUTH_WORDS = re.compile(r"(?i)api[ _-]?key|authenticat|unauthori[sz]ed|bearer|credential")

DEFAULT_FIXTURE = "short_hello"
TEXT_PROMPT = "Say hello in five words."
_COLLAPSE = {d.client_audio_append for d in DIALECTS.values()}  # repeated lines folded into one
_ERROR_EVENTS = {d.error for d in DIALECTS.values()}
_HANDSHAKE_FIX = {
    401: "check the key and the URL shape (Azure answers 401 to api-version on a GA URL)",
    403: "the key has no access to this model/deployment",
    404: "check the deployment/model name: it does not exist here or is retired",
    429: "the service is at its limit: retry after the retry-after time, or raise the quota",
}


@dataclass(slots=True)
class SmokeRun:
    """What one smoke session did."""

    dialect: str
    timeline: list[dict[str, Any]] = field(default_factory=list)
    responses: list[ResponseRecord] = field(default_factory=list)
    session: SessionRecord | None = None

    def received(self, event_type: str) -> list[dict[str, Any]]:
        return [r for r in self.timeline if r.get("dir") == "in" and r.get("type") == event_type]

    @property
    def handshake(self) -> dict[str, Any] | None:
        rows = self.received("handshake")
        return rows[0] if rows else None

    @property
    def works(self) -> bool:
        return bool(self.responses) and all(r.outcome == COMPLETED for r in self.responses)


@dataclass(slots=True)
class LiveResult:
    findings: list[Finding]
    timeline_text: list[str]
    timeline_rows: list[dict[str, Any]]
    probe: dict[str, Any] | None


class _Sink:
    """Keeps the smoke session's records in memory."""

    def __init__(self, run: SmokeRun) -> None:
        self.run = run

    def response(self, record: ResponseRecord) -> None:
        self.run.responses.append(record)

    def session(self, record: SessionRecord) -> None:
        self.run.session = record

    def rate_limit(self, record: Any) -> None:
        return None

    def trace(self, name: str, events: list[dict[str, Any]]) -> str | None:
        return None


def smoke_session(cfg: PreflightConfig, dialect: str, fixture: str | None, timeout: float) -> SmokeRun:
    """Run one smoke session in ``dialect`` and return what it saw."""
    from loadtest.session.client import RealtimeSession
    from loadtest.session.config import SessionConfig
    from loadtest.session.scenario import Scenario, Turn

    run = SmokeRun(dialect=dialect)
    target = cfg.to_target(dialect)
    scenario = Scenario(
        "preflight",
        [Turn("manual", fixture=fixture or DEFAULT_FIXTURE), Turn("text", text=TEXT_PROMPT)],
        description="preflight smoke: one spoken turn, one text turn",
    )
    per_step = max(2.0, min(timeout / 2, 30.0))
    config = SessionConfig(
        audio_format=cfg.audio_format,
        pacing="fast",
        connect_timeout_s=per_step,
        setup_timeout_s=per_step,
        response_deadline_s=per_step,
        response_idle_s=per_step,
        trace_events=0,
    )
    session = RealtimeSession(target, scenario, config, _Sink(run), observer=run.timeline.append)
    session.run(deadline=time.time() + timeout)
    return run


def verdicts(run: SmokeRun) -> list[Finding]:
    """One finding per step of the smoke session."""
    out: list[Finding] = []
    hs = run.handshake
    status = hs.get("status") if hs else None
    if status != 101:
        error = (hs or {}).get("error") or "no HTTP response"
        fix = _HANDSHAKE_FIX.get(status or 0, "check the host, port and network path to the service")
        if status is not None and status >= 500:
            fix = "the service failed the upgrade: retry, and report the request id if it persists"
        out.append(Finding("live.handshake", E, f"upgrade refused: {status or '-'} ({error})", fix))
        return out
    notes = ", ".join(f"{k}={v}" for k, v in sorted((hs.get("headers") or {}).items()))
    out.append(Finding("live.handshake", OK, f"101 in {hs.get('ms') or 0:.0f} ms" + (f" ({notes})" if notes else "")))

    d = get_dialect(run.dialect)
    errors = run.received(d.error)
    closes = run.received("close")
    close = closes[0] if closes else {}
    if run.received(d.session_updated):
        out.append(Finding("live.session", OK, f"{d.client_session_update} accepted ({d.session_updated})"))
    else:
        first = errors[0] if errors else {}
        why = first.get("error_code") or first.get("error_type") or f"no {d.session_updated}"
        msg = first.get("error_message") or close.get("reason") or ""
        extra = f", then close {close.get('code')}" if close.get("code") not in (None, 1000) else ""
        out.append(
            Finding(
                "live.session",
                E,
                f"session rejected: {why}{extra}" + (f": {msg}" if msg else ""),
                "fix the findings above (URL shape, headers, session shape), or try the other dialect",
            )
        )

    if run.received(d.input_audio_committed):
        out.append(Finding("live.audio", OK, f"audio accepted ({d.input_audio_committed})"))
    elif run.received(d.session_updated):
        codes = [e.get("error_code") for e in errors if e.get("error_code")]
        why = ", ".join(dict.fromkeys(str(c) for c in codes)) or f"no {d.input_audio_committed}"
        out.append(Finding("live.audio", E, f"audio not accepted: {why}", "send 24 kHz PCM16 mono (or G.711 at 8 kHz)"))

    by_turn = {r.turn_index: r for r in run.responses}
    for index, check, what in ((0, "live.audio_response", "spoken turn"), (1, "live.text_response", "text turn")):
        rec = by_turn.get(index)
        if rec is None:
            if run.received(d.session_updated):
                out.append(Finding(check, E, f"{what}: no response recorded", "see the timeline above"))
            continue
        if rec.outcome == COMPLETED:
            detail = f"{rec.audio_ms:.0f} ms audio" if rec.audio_bytes else f"{rec.transcript_chars} chars"
            ttfa = f", first audio {rec.ttfa_ms:.0f} ms" if rec.ttfa_ms is not None else ""
            out.append(Finding(check, OK, f"{what}: completed ({detail}{ttfa}) {rec.response_id or ''}".rstrip()))
        else:
            err = " ".join(x for x in (rec.error_code, rec.error_message) if x)
            out.append(
                Finding(
                    check,
                    E,
                    f"{what}: {rec.outcome}/{rec.reason}" + (f" ({err})" if err else ""),
                    "see the timeline; `rtload report failures` explains each reason",
                )
            )

    if run.received(d.session_updated):
        if run.received(d.rate_limits_updated):
            out.append(Finding("live.rate_limits", OK, f"{d.rate_limits_updated} reported"))
        else:
            out.append(Finding("live.rate_limits", W, f"no {d.rate_limits_updated} after the responses", ""))

    seen: set[str] = set()
    for row in run.timeline:
        kind = str(row.get("type"))
        if row.get("dir") != "in" or kind in seen or kind in ("handshake", "close", "garbage"):
            continue
        seen.add(kind)
        if kind in d.server_events:
            continue
        hint = other_dialect_hint(kind, d)
        if hint:
            out.append(Finding("live.event_dialect", E, f"received {hint}", "the server speaks the other dialect"))
        else:
            out.append(Finding("live.unknown_event", W, f"received `{kind}`, which neither dialect defines", ""))
    garbage = run.received("garbage")
    if garbage:
        out.append(Finding("live.garbage", W, f"{len(garbage)} frame(s) were not JSON events", ""))

    code = close.get("code") if close else (run.session.close_code if run.session else None)
    if code in (1000, None) and (run.session is None or run.session.ended_by == "client_closed"):
        out.append(Finding("live.close", OK, f"closed cleanly ({code or 1000})"))
    else:
        reason = close.get("reason") or (run.session.close_reason if run.session else "") or ""
        ended = run.session.ended_by if run.session else "?"
        why = f"session ended by {ended}, close {code}" + (f": {reason}" if reason else "")
        out.append(Finding("live.close", E, why))
    return out


def format_timeline(rows: list[dict[str, Any]], secrets: tuple[str, ...] = ()) -> list[str]:
    """Human lines: ms since the first row, direction, type, key fields.

    Deltas are folded into one line per (type, response) with their count, and repeated appends
    into one line, so a whole session fits on a screen; the JSON timeline keeps every event.
    """
    if not rows:
        return []
    t0 = rows[0]["t"]
    out: list[str] = []
    folded: dict[tuple[str, Any], tuple[int, int]] = {}  # (type, response) -> (line index, count)
    skip = {"t", "dir", "type", "headers", "delta_chars"}
    previous = ""
    for row in rows:
        kind = str(row.get("type"))
        if kind.endswith(".delta") or (kind in _COLLAPSE and kind == previous):
            key = (kind, row.get("response_id"))
            if key in folded:
                index, count = folded[key]
                folded[key] = (index, count + 1)
                out[index] = out[index].split("  x", 1)[0] + f"  x{count + 1}"
                continue
            folded[key] = (len(out), 1)
        previous = kind
        fields = []
        for k, v in row.items():
            if k in skip or v in ("", None) or (k == "event_id" and kind not in _ERROR_EVENTS):
                continue
            fields.append(f"{k}={round(v, 1) if isinstance(v, float) else v}")
        if row.get("headers"):
            fields.extend(f"{k}={v}" for k, v in sorted(row["headers"].items()))
        arrow = {"in": "<-", "out": "->"}.get(str(row.get("dir")), "  ")
        line = f"{(row['t'] - t0) * 1000:9.1f} ms {arrow} {kind:<40} {' '.join(fields)}".rstrip()
        out.append(redact_text(line, secrets))
    return out


def json_timeline(rows: list[dict[str, Any]], secrets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    if not rows:
        return []
    t0 = rows[0]["t"]
    out = []
    for row in rows:
        clean = {k: (redact_text(v, secrets) if isinstance(v, str) else v) for k, v in row.items() if k != "t"}
        clean["ms"] = round((row["t"] - t0) * 1000, 1)
        out.append(clean)
    return out


def dialect_refusal(run: SmokeRun) -> str | None:
    """What shows the server refused the session's dialect itself (not its key, model or path), or None."""
    d = get_dialect(run.dialect)
    hs = run.handshake or {}
    if hs.get("status") == 404 and d.is_ga and not re.search(r"(?i)deployment|model", str(hs.get("error") or "")):
        return "the GA path is not served here (404)"
    for row in run.timeline:
        if row.get("dir") != "in":
            continue
        kind = str(row.get("type"))
        hint = other_dialect_hint(kind, d) if kind not in d.server_events else None
        if hint:
            return f"the server sends {hint}"
        code, message = str(row.get("error_code") or ""), str(row.get("error_message") or "")
        if code == "beta_api_shape_disabled":
            return code
        if code in ("unknown_parameter", "invalid_value") and any(f in message for f in _DIALECT_FIELDS[run.dialect]):
            return f"{code}: {message}"
    return None


def preview_retirement(cfg: PreflightConfig, api_version: str | None, today: dt.date | None = None) -> str:
    """The preview API's retirement, from the dated table: "retired on D" / "retires on D" (source)."""
    today = today or dt.date.today()
    if cfg.inferred_provider == "azure":
        row = retirements.lookup(api_version or "", "azure", "api-version") or retirements.lookup(
            retirements.KNOWN_PREVIEW_API_VERSIONS[-1], "azure", "api-version"
        )
    else:
        row = retirements.lookup("realtime=v1", "openai", "beta-interface")
    if row is None:  # the table always has both; a trimmed table must not break the advice
        return "the preview API is being retired"
    when = "was retired on" if row.date <= today else "retires on"
    return f"the preview API {when} {row.date} ({row.source})"


def _first_failure(findings: list[Finding]) -> str:
    return next((f.message for f in findings if f.severity is E), "it did not complete")


def _probe_finding(
    cfg: PreflightConfig, configured: str, other: str, run: SmokeRun, findings: list[Finding]
) -> Finding:
    """The dialect advice once the other dialect worked where the configured one failed."""
    target = cfg.to_target(other)
    url = target.redacted_url()
    retirement = preview_retirement(cfg, target.api_version)
    if other == DialectName.GA:
        return Finding(
            "probe.dialect",
            E,
            f"the {configured} dialect fails here but the ga dialect works ({url})",
            f"configure the client for GA: --dialect ga ({retirement})",
        )
    why = dialect_refusal(run)
    if why:
        return Finding(
            "probe.dialect",
            E,
            f"the ga dialect is refused here ({why}); the preview dialect works ({url})",
            f"move the service or the URL to GA; --dialect preview works only until it is gone: {retirement}",
        )
    return Finding(
        "probe.dialect",
        E,
        f"the ga dialect fails here, but not for the dialect ({_first_failure(findings)}); preview happened to work "
        f"({url})",
        f"fix that failure on GA; moving to preview is no way round it: {retirement}",
    )


def _auth_verdict(cfg: PreflightConfig, run: SmokeRun) -> Finding | None:
    """On a gateway, whether it took an auth kind the provider itself would not (judged live, not statically)."""
    provider = cfg.inferred_provider
    unusual = (cfg.auth == "api-key" and provider == "openai") or (cfg.auth == "entra" and provider != "azure")
    if not (cfg.is_gateway and unusual):
        return None
    d = get_dialect(run.dialect)
    if run.received(d.session_created) or run.received(d.session_updated):
        return Finding("auth.kind", OK, f"the gateway accepted --auth {cfg.auth} (the live session opened)")
    hs = run.handshake or {}
    texts = [str(r.get("error_message") or r.get("error_code") or "") for r in run.received(d.error)]
    texts.append(str(hs.get("error") or ""))
    if hs.get("status") in (401, 403) or any(_AUTH_WORDS.search(t) for t in texts):
        return Finding(
            "auth.kind",
            E,
            f"the gateway refused --auth {cfg.auth} (the live session's credentials were rejected)",
            "use --auth bearer (what the OpenAI URL shape takes), or the header the gateway documents",
        )
    return None


def _on_the_gateways_side(finding: Finding, gateway: Finding) -> Finding:
    """A failed live step's fix pointed at the gateway (it pointed at the user's setup)."""
    if finding.severity is not E or not finding.check.startswith("live."):
        return finding
    return replace(finding, fix=f"the gateway's side: see {gateway.check} below")


def run_live(cfg: PreflightConfig, *, fixture: str | None, timeout: float, probe: bool) -> LiveResult:
    """The smoke session in the configured dialect, then (if it failed) the probe of the other one.

    The probe dials the same host, path prefix, model, key and headers in the other dialect, so the
    two differ in the dialect only; it is skipped when a gateway's own failure explains the first.
    """
    secrets = tuple(s for s in (cfg.api_key,) if s and len(s) >= 4)  # a one-letter "key" would blank the timeline
    configured = str(cfg.inferred_dialect)
    run = smoke_session(cfg, configured, fixture, timeout)
    findings = verdicts(run)
    gateway = diagnose(run, cfg.effective_deployment) if cfg.is_gateway and not run.works else None
    if gateway is not None:
        findings = [_on_the_gateways_side(f, gateway) for f in findings]
        findings.append(gateway)
    auth = _auth_verdict(cfg, run)
    if auth is not None:
        findings.append(auth)
    probe_result: dict[str, Any] | None = None
    if probe and not run.works and gateway is None and configured != DialectName.VOICE_LIVE:  # VL: one dialect
        other = DialectName.PREVIEW if configured == DialectName.GA else DialectName.GA
        other_run = smoke_session(cfg, str(other), fixture, timeout)
        verdict = "works" if other_run.works else "fails"
        probe_result = {"configured": configured, configured: "fails", str(other): verdict}
        if other_run.works:
            findings.append(_probe_finding(cfg, configured, str(other), run, findings))
        else:
            findings.append(
                Finding(
                    "probe.dialect",
                    W,
                    f"neither dialect works with this configuration ({configured} and {other} both fail)",
                    "fix the handshake/auth findings first",
                )
            )
    return LiveResult(
        findings=findings,
        timeline_text=format_timeline(run.timeline, secrets),
        timeline_rows=json_timeline(run.timeline, secrets),
        probe=probe_result,
    )
