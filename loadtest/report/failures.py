"""`rtload report failures`: every response that did not complete, and a zip for a support case.

The bundle holds ``failures.csv`` and ``failures.jsonl`` (the full rows), the failed
handshakes (``failed_sessions.csv``), the traces those rows point to, ``run.json`` and a
``README.txt``. Every text member is scrubbed on the way in: first the run's exact secret
values (:func:`run_secrets`: the API key in the variable run.json names, the default key
variables, the keys of a mock profile file), then anything shaped like one: Bearer tokens,
``sk-...`` keys, ``api-key``/``key=`` values and long hex or base64-looking secrets after ``key``
words are replaced by ``***`` (``loadtest.protocol.targets.redact_text`` plus the patterns
below), even though run.json and the traces are already written redacted.
"""

from __future__ import annotations

import io
import os
import re
import tomllib
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from loadtest.protocol.targets import redact_text
from loadtest.records.reader import RunData
from loadtest.records.schema import COMPLETED, RUN_FILE, ResponseRecord, columns
from loadtest.report.render import Report, Table

MAX_TRACE_BYTES = 50 * 1024 * 1024  # traces beyond this total are listed, not copied
MAX_AUDIO_BYTES = 100 * 1024 * 1024  # WAVs (beside their traces) beyond this total are listed, not copied
_SECRET_PATTERNS = (
    re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}"),  # OpenAI keys (sk-..., sk-proj-...)
    re.compile(
        r"(?i)((?:api[-_]?key|subscription[-_]?key|access[-_]?token|password|secret)[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,}]+"
    ),
    re.compile(r"(?i)([?&](?:api-key|key|sig|token)=)[^&\s\"']+"),
    re.compile(r"\beyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]+"),  # JWTs (Entra ID tokens)
)


DEFAULT_KEY_VARIABLES = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY")
MIN_SECRET_LEN = 4  # shorter values would blank ordinary words


def run_secrets(run: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> list[str]:
    """The exact secret values of a run that this process can know (run.json holds none of them):
    the key in the variable run.json names (``options.api_key_env``) and in the default key
    variables, and the keys (``auth.keys``) of a mock profile file the run used."""
    env = os.environ if environ is None else environ
    options = run.get("options") if isinstance(run.get("options"), dict) else {}
    names = [str(options.get("api_key_env") or ""), *DEFAULT_KEY_VARIABLES]
    found = [env[name] for name in dict.fromkeys(names) if name and env.get(name)]
    profile = str(options.get("mock_profile") or "")
    if profile.endswith(".toml"):
        try:
            with open(profile, "rb") as handle:
                keys = tomllib.load(handle).get("auth", {}).get("keys", [])
            found += [str(k) for k in keys if isinstance(k, str)]
        except (OSError, tomllib.TOMLDecodeError, AttributeError):
            pass
    # longest first, so a secret that contains another is replaced whole
    return sorted({s for s in found if len(s) >= MIN_SECRET_LEN}, key=len, reverse=True)


def scrub(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """``text`` with the exact ``secrets`` and anything that looks like a key or token replaced by ``***``."""
    text = redact_text(text, secrets)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "***", text)
    return text


def failed_responses() -> Any:
    """The rows `failures` reads: every response that did not complete."""
    import pyarrow.compute as pc

    return ~pc.field("outcome").isin([COMPLETED]) | pc.field("outcome").is_null()


def failed_sessions_filter() -> Any:
    """The sessions `failures` reads: refused or failed upgrades (see _failed_sessions)."""
    import pyarrow.compute as pc

    status = pc.field("handshake_status")
    return (status.is_valid() & (status != 101)) | (pc.field("ended_by") == "handshake_failed")


def select_failures(data: RunData) -> None:
    """``data.responses`` := every column of the responses that did not complete, selected in
    DuckDB over ``data.scan`` (as ``read_run(response_where=failed_responses())`` gives them)."""
    from loadtest.records.reader import scan_frame

    cols = [f.name for f in data.scan.schema]
    data.responses = scan_frame(data.scan, cols, where=f"coalesce(outcome, '') <> '{COMPLETED}'")
    data.scan.con.close()  # DuckDB's memory back before the rows become the listing
    data.scan = None


def _total(data: RunData) -> int:
    return data.response_total if data.response_total is not None else len(data.responses)


def failure_rows(data: RunData) -> pd.DataFrame:
    r = data.responses
    if r.empty:
        return r
    keep = np.flatnonzero((r["outcome"].fillna("") != COMPLETED).to_numpy())
    t = pd.to_numeric(r["t_trigger"], errors="coerce").fillna(pd.to_numeric(r["t_done"], errors="coerce"))
    order = np.argsort(t.to_numpy(dtype=float, na_value=np.nan)[keep], kind="stable")  # NaN last, as sort_values
    return r.iloc[keep[order]]  # one copy of the rows (170,000 of them at 10M), not four


def _when(t: Any) -> str:
    try:
        return datetime.fromtimestamp(float(t), tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"
    except (TypeError, ValueError, OverflowError, OSError):
        return "-"


def _s(v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v) or v is pd.NA:
        return "-"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    cols = [c for c in columns(ResponseRecord) if c in frame.columns]
    out = []
    for row in frame[cols].to_dict(orient="records"):
        clean = {}
        for k, v in row.items():
            if (isinstance(v, float) and v != v) or v is pd.NA:
                v = None
            elif hasattr(v, "tolist"):
                v = v.tolist()
            clean[k] = v
        out.append(clean)
    return out


def _scrubber(secrets: list[str]) -> Any:
    """:func:`scrub` remembering its answers: a listing repeats most strings (run, target, reason,
    message) on every row, and scrubbing is the listing's main cost at 170,000 rows."""
    seen: dict[str, str] = {}

    def clean(text: str) -> str:
        got = seen.get(text)
        if got is None:
            got = seen[text] = scrub(text, secrets)
        return got

    return clean


def build_failures(data: RunData, secrets: list[str] | None = None) -> Report:
    secrets = run_secrets(data.run) if secrets is None else secrets
    clean = _scrubber(secrets)
    bad = failure_rows(data)
    rows = _records(bad) if len(bad) else []
    del bad
    table_rows = []
    for r in rows:
        t = r.get("t_trigger") if r.get("t_trigger") is not None else r.get("t_done")
        error = " ".join(x for x in (_s(r.get("error_type")), _s(r.get("error_code"))) if x != "-") or "-"
        message = _s(r.get("error_message"))
        table_rows.append(
            [
                _when(t),
                _s(r.get("outcome")),
                _s(r.get("reason")),
                _s(r.get("session_id")),
                _s(r.get("response_id")),
                _s(r.get("error_event_id") or r.get("done_event_id")),
                error,
                clean(message)[:80],
                _s(r.get("request_id")),
                _s(r.get("close_code") if r.get("close_code") is not None else r.get("handshake_status")),
            ]
        )
    table = Table(
        f"Responses that did not complete ({len(rows)} of {_total(data)})",
        [
            "time (UTC)",
            "outcome",
            "reason",
            "session",
            "response",
            "event id",
            "error",
            "message",
            "request id",
            "close/status",
        ],
        table_rows,
    )
    for r in rows:  # scrubbed in place (the table above has what it needs): one copy of the rows, not two
        for k, v in r.items():
            if isinstance(v, str):
                r[k] = clean(v)
    d = {"run_id": data.run_id, "responses": _total(data), "failures": len(rows), "rows": rows}
    return Report(f"Failures in run {data.run_id}", d, [table], [], list(data.warnings))


def _failed_sessions(data: RunData) -> pd.DataFrame:
    s = data.sessions
    if s.empty or "handshake_status" not in s:
        return s.iloc[0:0]
    status = pd.to_numeric(s["handshake_status"], errors="coerce")
    return s[status.notna() & (status != 101) | (s["ended_by"].fillna("") == "handshake_failed")]


def _readme(data: RunData, n_rows: int, traces: list[str], missing: list[str], wavs: int = 0) -> str:
    lines = [
        "realtime-loadtest failure bundle",
        "================================",
        "",
        f"Run: {data.run_id}",
        f"Created: {datetime.now(tz=UTC).strftime('%Y-%m-%d %H:%M:%S UTC')}",
        f"Responses in the run: {_total(data)}; not completed: {n_rows}",
        "",
        "Files:",
        "  failures.csv / failures.jsonl  every response that did not complete: time (t_trigger, Unix seconds),",
        "                                 outcome and reason, session_id (sess_...), response_id (resp_...),",
        "                                 error_event_id / done_event_id, error type/code/message, request_id",
        "                                 (x-request-id or apim-request-id of the session's WebSocket upgrade)",
        "  failed_sessions.csv            WebSocket upgrades that were refused or failed",
        "                                 (status, retry-after, request id)",
        "  traces/                        the event trace of each failed response (audio payloads elided), and",
        "                                 beside it (same name, .wav) the audio a caller heard: 24 kHz PCM16,",
        "                                 underruns as silence; the trace's audio.playback note is its timeline",
        "  run.json                       what ran: target (secrets redacted), dialect, scenario, load shape",
        "",
        "Secrets: API keys and tokens never enter the records; this bundle was scrubbed again for the run's",
        "own key values and for anything that looks like a key or Bearer token.",
    ]
    if traces:
        lines.append(f"Traces included: {len(traces)}")
    if wavs:
        lines.append(f"Recordings (WAV) included: {wavs}")
    if missing:
        lines.append(f"Traces referenced but not found: {len(missing)}")
    return "\n".join(lines) + "\n"


def write_bundle(data: RunData, path: Path, secrets: list[str] | None = None) -> str:
    """Write the zip; returns a one-line summary of what went in. ``secrets``: the exact values to
    remove (default: :func:`run_secrets` of the run)."""
    secrets = run_secrets(data.run) if secrets is None else secrets

    def clean(text: str) -> str:
        return scrub(text, secrets)

    bad = failure_rows(data)
    rows = [
        {k: clean(v) if isinstance(v, str) else v for k, v in r.items()} for r in (_records(bad) if len(bad) else [])
    ]
    csv_buf = io.StringIO()
    pd.DataFrame(rows, columns=[c for c in columns(ResponseRecord)]).to_csv(csv_buf, index=False)
    jsonl = b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in rows)
    sess = _failed_sessions(data)
    sess_buf = io.StringIO()
    sess.to_csv(sess_buf, index=False)
    traces: list[str] = []
    missing: list[str] = []
    wavs: list[str] = []
    total = audio_total = 0
    root = data.path.resolve()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("failures.csv", clean(csv_buf.getvalue()))
        zf.writestr("failures.jsonl", clean(jsonl.decode()))
        zf.writestr("failed_sessions.csv", clean(sess_buf.getvalue()))
        run_file = data.path / RUN_FILE
        if run_file.exists():
            zf.writestr(RUN_FILE, clean(run_file.read_text(encoding="utf-8", errors="replace")))
        for ref in dict.fromkeys(r.get("trace_file") for r in rows if r.get("trace_file")):
            trace = (data.path / str(ref)).resolve()
            if not trace.is_relative_to(root) or not trace.is_file():
                missing.append(str(ref))
                continue
            size = trace.stat().st_size
            if total + size > MAX_TRACE_BYTES:
                missing.append(str(ref))
                continue
            total += size
            arcname = trace.relative_to(root).as_posix()
            zf.writestr(arcname, clean(trace.read_text(encoding="utf-8", errors="replace")))
            traces.append(arcname)
            wav = trace.with_suffix(".wav")
            if wav.is_file() and audio_total + wav.stat().st_size <= MAX_AUDIO_BYTES:
                audio_total += wav.stat().st_size
                zf.write(wav, wav.relative_to(root).as_posix())  # audio: nothing in it to scrub
                wavs.append(wav.name)
        for ref in dict.fromkeys(r.get("audio_file") for r in rows if r.get("audio_file")):
            wav = (data.path / str(ref)).resolve()  # a recording whose trace was not kept
            if wav.name in wavs or not wav.is_relative_to(root) or not wav.is_file():
                continue
            if audio_total + wav.stat().st_size <= MAX_AUDIO_BYTES:
                audio_total += wav.stat().st_size
                zf.write(wav, wav.relative_to(root).as_posix())
                wavs.append(wav.name)
        zf.writestr("README.txt", _readme(data, len(rows), traces, missing, len(wavs)))
    return (
        f"wrote {path}: {len(rows)} responses, {len(sess)} failed sessions, {len(traces)} traces, "
        f"{len(wavs)} recordings"
    ) + (f" ({len(missing)} referenced traces missing or over the size cap)" if missing else "")
