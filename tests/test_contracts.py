"""The record contract and the dialect tables that every layer relies on."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from loadtest.protocol.dialects import GA, PREVIEW, RENAMED_EVENTS, Dialect, get_dialect, other_dialect_hint
from loadtest.protocol.targets import (
    Target,
    infer_provider,
    redact_text,
    redact_url,
    url_model,
    url_problem,
    with_model,
)
from loadtest.records.schema import (
    FAULT_EXPECTATIONS,
    OUTCOMES,
    REASONS,
    ResponseRecord,
    columns,
    outcome_of,
    to_row,
)


def test_every_reason_belongs_to_a_known_outcome() -> None:
    assert set(REASONS.values()) <= set(OUTCOMES) - {"completed"}
    assert outcome_of("") == "completed"
    assert outcome_of("audio_stall") == "truncated"
    assert outcome_of("handshake_429") == "throttled"


def test_fault_expectations_use_the_vocabulary() -> None:
    for outcome, reason in FAULT_EXPECTATIONS.values():
        assert outcome_of(reason) == outcome


def test_response_row_has_the_columns_other_tools_rely_on() -> None:
    row = to_row(ResponseRecord(run_id="r", session_id="sess_1", response_id="resp_1", outcome="completed"))
    for name in ("run_id", "session_id", "response_id", "outcome", "reason", "ttfa_ms", "schema_version"):
        assert name in row
    assert list(row) == columns(ResponseRecord)


def test_renamed_events_belong_to_their_dialects() -> None:
    for old, new in RENAMED_EVENTS.items():
        assert old in PREVIEW.server_events | PREVIEW.client_events
        assert new in GA.server_events | GA.client_events
        assert old not in GA.server_events | GA.client_events


def test_other_dialect_hint_names_the_right_event() -> None:
    hint = other_dialect_hint("response.audio.delta", GA)
    assert hint is not None and "response.output_audio.delta" in hint
    assert other_dialect_hint("response.output_audio.delta", GA) is None
    hint = other_dialect_hint("response.output_audio.delta", PREVIEW)
    assert hint is not None and "response.audio.delta" in hint
    with pytest.raises(ValueError, match="unknown dialect"):
        get_dialect("beta2")


def test_session_update_shapes() -> None:
    ga = GA.session_update(output_modalities=["audio"], voice="alloy", audio_format="g711_ulaw", turn_detection=None)
    assert ga["session"]["type"] == "realtime"
    assert ga["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert ga["session"]["audio"]["input"]["turn_detection"] is None
    pv = PREVIEW.session_update(output_modalities=["audio"], voice="alloy")
    assert "type" not in pv["session"]
    assert pv["session"]["modalities"] == ["text", "audio"]
    assert pv["session"]["turn_detection"] == {"type": "server_vad"}


def test_transcription_session_shapes_and_what_a_session_says_about_transcription() -> None:
    ga = GA.transcription_session_update(transcription_model="whisper-1", audio_format="g711_ulaw")
    assert ga == {"type": "session.update", "session": {"type": "transcription", "audio": {"input": {
        "format": {"type": "audio/pcmu"}, "transcription": {"model": "whisper-1"},
        "turn_detection": {"type": "server_vad"}}}}}  # fmt: skip
    pv = PREVIEW.transcription_session_update(transcription_model="whisper-1", turn_detection=None)
    assert pv == {"type": "transcription_session.update", "session": {"input_audio_format": "pcm16",
                  "input_audio_transcription": {"model": "whisper-1"}, "turn_detection": None}}  # fmt: skip
    with pytest.raises(ValueError, match="no transcription-only sessions"):
        get_dialect("voicelive").transcription_session_update(transcription_model="whisper-1")
    assert GA.is_transcription_session(ga["session"]) and not PREVIEW.is_transcription_session(pv["session"])
    on = GA.session_update(transcription_model="gpt-4o-transcribe")["session"]
    assert GA.transcription_of(on) == {"model": "gpt-4o-transcribe"}
    assert PREVIEW.transcription_of(PREVIEW.session_update(transcription_model="m")["session"]) == {"model": "m"}
    assert GA.transcription_of(GA.session_update()["session"]) is None and PREVIEW.transcription_of({}) is None


@pytest.mark.parametrize(
    ("provider", "dialect", "expected"),
    [
        ("openai", "ga", "ws://127.0.0.1:8765/v1/realtime?model=gpt-realtime"),
        ("azure", "ga", "ws://127.0.0.1:8765/openai/v1/realtime?model=gpt-realtime"),
        (
            "azure",
            "preview",
            "ws://127.0.0.1:8765/openai/realtime?api-version=2025-04-01-preview&deployment=gpt-realtime",
        ),
    ],
)
def test_target_urls(provider: str, dialect: str, expected: str) -> None:
    target = Target(base_url="http://127.0.0.1:8765", provider=provider, dialect=dialect, api_key="sk-x")
    assert target.url() == expected


def test_auth_headers_and_redaction() -> None:
    azure = Target(base_url="wss://res.openai.azure.com", provider="azure", api_key="SECRET123")
    assert ("api-key", "SECRET123") in azure.headers()
    openai = Target(base_url="wss://api.openai.com", provider="openai", dialect="preview", api_key="SECRET123")
    assert ("Authorization", "Bearer SECRET123") in openai.headers()
    assert ("OpenAI-Beta", "realtime=v1") in openai.headers()
    assert "SECRET123" not in redact_url("wss://h/openai/v1/realtime?model=m&api-key=SECRET123")
    assert "SECRET123" not in redact_text("Authorization: Bearer SECRET123 and key SECRET123", ["SECRET123"])
    assert "SECRET123" not in repr(azure)
    assert "SECRET123" not in str(azure.describe())


@pytest.mark.parametrize(
    ("url", "filled"),
    [
        ("wss://h/v1/realtime", "wss://h/v1/realtime?model=D"),
        ("wss://h/openai/v1/realtime?model=", "wss://h/openai/v1/realtime?model=D"),
        ("wss://h/openai/realtime?api-version=2025-04-01-preview", "wss://h/openai/realtime?api-version=2025-04-01-preview&deployment=D"),
        ("wss://h/gw/voice?sig=a%2Fb", "wss://h/gw/voice?sig=a%2Fb&model=D"),  # the user's bytes kept
        ("wss://h/v1/realtime?model=M", "wss://h/v1/realtime?model=M"),  # a URL's own name is never replaced
    ],
)  # fmt: skip
def test_with_model_fills_the_name_a_url_lacks(url: str, filled: str) -> None:
    assert with_model(url, "D") == filled
    assert url_model(filled) == ("M" if "model=M" in url else "D")


def test_url_problem_and_provider_inference() -> None:
    assert url_problem("wss://res.openai.azure.com/openai/v1/realtime?model=a%20b") is None
    assert "a space at character 8" in (url_problem("wss://a b") or "")
    assert "percent-encode it (%22)" in (url_problem('wss://h/v1/realtime?model="m"') or "")
    assert "port" in (url_problem("wss://h:12ab/v1/realtime") or "")
    assert url_problem("h/v1/realtime") is not None
    for host in ("r.openai.azure.com", "r.cognitiveservices.azure.com", "r.services.ai.azure.com"):
        assert infer_provider(f"wss://{host}") == "azure"
    assert infer_provider("ws://127.0.0.1:4000/openai/v1/realtime") == "azure"
    assert infer_provider("ws://127.0.0.1:4000/v1/realtime") == infer_provider("wss://api.openai.com") == "openai"


def test_a_voice_live_path_means_voicelive_on_its_azure_hosts_and_any_other() -> None:
    """Voice Live shares its hosts with Azure OpenAI: its path decides, the bare host stays azure."""
    for host in ("r.services.ai.azure.com", "r.cognitiveservices.azure.com", "127.0.0.1:4000"):
        assert infer_provider(f"wss://{host}/voice-live/realtime?api-version=2026-04-10&model=gpt-4.1") == "voicelive"
        assert infer_provider(f"wss://{host}/openai/v1/realtime?model=gpt-realtime") == "azure"


# Dialect fields that are not event names
_NOT_EVENT_FIELDS = {"name", "content_audio", "content_text", "client_events", "server_events"}


def _name_fields(dialect: Dialect) -> dict[str, tuple[str, ...]]:
    """Every event-name attribute of ``dialect``: field -> its name(s) (``client_*`` go client -> server)."""
    out: dict[str, tuple[str, ...]] = {}
    for f in dataclasses.fields(Dialect):
        if f.name in _NOT_EVENT_FIELDS:
            continue
        value = getattr(dialect, f.name)
        out[f.name] = tuple(value) if isinstance(value, tuple) else ((value,) if value is not None else ())
    return out


@pytest.mark.parametrize("dialect", [GA, PREVIEW], ids=["ga", "preview"])
def test_every_dialect_name_attribute_is_an_event_of_that_dialect(dialect: Dialect) -> None:
    for attr, names in _name_fields(dialect).items():
        side = "client" if attr.startswith("client_") else "server"
        table = dialect.client_events if side == "client" else dialect.server_events
        for name in names:
            assert name in table, f"{dialect.name}.{attr} = {name!r} is not one of its {side} events"


def test_dialect_names_differ_only_where_ga_renamed_them() -> None:
    ga, pv = _name_fields(GA), _name_fields(PREVIEW)
    assert ga.keys() == pv.keys()
    for attr in ga:
        if ga[attr] == pv[attr] or not pv[attr] or not ga[attr]:  # equal, or an event one dialect lacks
            continue
        assert {RENAMED_EVENTS.get(name, name) for name in pv[attr]} <= set(ga[attr]), attr


# Packages that still spell wire names themselves (the protocol is where they live; the mock server and
# the report's labels are not moved yet). Everything else must ask a Dialect.
_OWN_WIRE_NAMES = ("protocol", "mock", "report")
_DICT_ACCESS = {"get", "pop", "setdefault"}


def _type_like(node: ast.expr) -> bool:
    """``x.get("type")``, ``x["type"]``, ``kind``, ``event_type``, ``row.type``: an event type value."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
        return bool(node.args) and isinstance(node.args[0], ast.Constant) and node.args[0].value == "type"
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "type"
    ident = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return ident in ("kind", "type") or ident.endswith("_type")


def _wire_literals(tree: ast.AST, names: frozenset[str]) -> list[tuple[int, str]]:
    """String constants of ``tree`` that are event names. A dotted name counts anywhere; a plain word
    (``error``, which is also a field name) only where it stands for an event type."""
    found: list[tuple[int, str]] = []

    def hit(node: ast.AST | None) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
            found.append((node.lineno, node.value))

    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "." in node.value:
            hit(node)
        elif isinstance(node, ast.Dict):
            dispatch = any(k is not None and not isinstance(k, ast.Constant) for k in node.keys)
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "type":
                    hit(value)  # {"type": "error"}
                elif dispatch:
                    hit(key)  # {d.session_created: ..., "error": ...}
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(_type_like(o) for o in operands):
                for o in operands:
                    for item in o.elts if isinstance(o, ast.Tuple | ast.List | ast.Set) else (o,):
                        hit(item)  # kind == "error", kind in ("error", ...)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name not in _DICT_ACCESS:
                for arg in node.args:
                    hit(arg)  # run.received("error")
    return found


def test_no_wire_name_literals_outside_the_protocol() -> None:
    root = Path(__file__).resolve().parents[1] / "loadtest"
    names = frozenset().union(*(d.server_events | d.client_events for d in (GA, PREVIEW)))
    offenders = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in _OWN_WIRE_NAMES:
            continue
        tree = ast.parse(path.read_text(), str(path))
        offenders += [f"loadtest/{rel}:{line}: {name!r}" for line, name in sorted(set(_wire_literals(tree, names)))]
    assert not offenders, "wire names belong to the Dialect (loadtest/protocol/dialects.py):\n" + "\n".join(offenders)


def test_the_wire_name_scan_sees_the_literal_forms() -> None:
    names = frozenset({"error", "response.done"})
    code = """
handlers = {d.session_created: h, "error": h}
ev = {"type": "error"}
if event.get("type") == "error" or kind != "error" or ev["type"] in ("error",):
    pass
run.received("error")
label = "response.done"
fine = (event.get("error"), {"error": 1}, ENDED_ERROR == "error", "error")
"""
    found = _wire_literals(ast.parse(code), names)
    assert sorted(line for line, _ in found) == [2, 3, 4, 4, 4, 6, 7], found
