"""Scenario files: what each user's sessions say, turn by turn, and the weighted mix they pick from.

A file holds one or more scenarios, each a table under ``scenarios``::

    [scenarios.booking]
    weight = 3                          # share of new sessions (default 1)
    description = "caller books a table"
    session_file = "agent_session.json" # optional: this scenario's own session object
    repeat = false                      # loop the turns until the run ends
    think_time_s = [0.5, 2.0]           # default pause before each turn (s; a number or [min, max])
    tool_chain_limit = 4                # follow-ups answering function calls per turn, at most

    [[scenarios.booking.turns]]
    audio = "support_call_1"            # a fixture name, or a path to your own recording
    trigger = "server_vad"              # server_vad | manual | text (default: text for text turns)

    [[scenarios.booking.turns]]
    text = "And for two people, please."
    instructions = "Answer in one sentence."
    modalities = ["text"]
    max_output_tokens = 200

    [scenarios.booking.tools.lookup_table]
    output = '{"free": true}'           # the function's answer (a string, or a table sent as JSON)
    latency_ms = 300                    # how long the function takes

    [scenarios.dictation]
    transcription_model = "gpt-4o-mini-transcribe"  # input transcription on (rows get its columns)
    session_type = "transcription"      # transcription-only: no responses, one row per utterance

The functions themselves (names, ``parameters`` schemas, ``tool_choice``) are the session's: put
them in the ``session_file``; a call of a function the table does not name is answered
``{"ok": true}`` at once.

Paths (``session_file``, recordings) are relative to the scenario file. Recordings in any format
the fixture importer reads (WAV, FLAC, OGG, any rate and channel count) are converted to 24 kHz
mono PCM16 once, when the file is loaded. The built-in scenarios are files of this format shipped
in ``loadtest/workload/scenarios/`` (``rtload scenarios list|show``).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from loadtest.session.scenario import SESSION_TYPES, TRIGGERS, Scenario, ToolReply, Turn
from loadtest.workload.errors import WorkloadError, read_toml, type_name, unknown_key

SCENARIO_KEYS = (
    "weight", "description", "session_file", "repeat", "think_time_s", "turns", "tools", "tool_chain_limit",
    "transcription_model", "session_type",
)  # fmt: skip
TURN_KEYS = (
    "audio", "text", "trigger", "instructions", "modalities", "max_output_tokens", "out_of_band", "barge_in",
    "barge_in_after_ms", "think_time_s", "transcript",
)  # fmt: skip
TOOL_KEYS = ("output", "latency_ms")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".aiff", ".aif", ".au", ".mp3", ".caf", ".w64", ".rf64")


@dataclass(slots=True)
class ScenarioMix:
    """The scenarios a run's sessions pick from, each new session by weight."""

    scenarios: list[Scenario]
    source: str = ""  # the built-in name or the file's path
    session_files: dict[str, str] = field(default_factory=dict)  # scenario name -> its session file path

    @property
    def weights(self) -> list[float]:
        return [s.weight for s in self.scenarios]

    def pick(self, rng: random.Random | None = None) -> Scenario:
        if len(self.scenarios) == 1:
            return self.scenarios[0]
        return (rng or random).choices(self.scenarios, weights=self.weights, k=1)[0]


# ---- built-ins ----------------------------------------------------------------------------------
def _builtin_dir() -> Any:
    return resources.files("loadtest.workload") / "scenarios"


def builtin_names() -> list[str]:
    return sorted(p.name[: -len(".toml")] for p in _builtin_dir().iterdir() if p.name.endswith(".toml"))


def builtin_text(name: str) -> str:
    """The shipped TOML of built-in scenario ``name``; one line naming the known ones otherwise."""
    path = _builtin_dir() / f"{name}.toml"
    if not path.is_file():
        raise WorkloadError(f"unknown scenario {name!r}: use one of {', '.join(builtin_names())} or a .toml file")
    return path.read_text(encoding="utf-8")


def is_path(value: str) -> bool:
    """A ``--scenario`` value that names a file rather than a built-in."""
    return value.endswith(".toml") or "/" in value or "\\" in value


def load_mix(value: str, *, manifest: Any = None) -> ScenarioMix:
    """``--scenario``'s value: a built-in name or a scenario file's path."""
    if is_path(value):
        path = Path(value).expanduser().resolve()
        return parse_scenarios(read_toml(path), path, manifest=manifest)
    import tomllib

    text = builtin_text(value)
    with resources.as_file(_builtin_dir() / f"{value}.toml") as path:
        return parse_scenarios(tomllib.loads(text), Path(path), manifest=manifest, source=value)


# ---- parsing --------------------------------------------------------------------------------------
def parse_scenarios(doc: dict[str, Any], path: Path, *, manifest: Any = None, source: str = "") -> ScenarioMix:
    """Every scenario of a parsed file; :class:`WorkloadError` (one line) for the first problem."""
    for key in doc:
        if key != "scenarios":
            raise unknown_key(str(path), key, ["scenarios"])
    tables = doc.get("scenarios")
    if not isinstance(tables, dict) or not tables:
        raise WorkloadError(f"{path}: no scenarios; add a [scenarios.NAME] table with [[scenarios.NAME.turns]]")
    if manifest is None:
        from loadtest.audio.fixtures import FixtureError, Manifest

        try:
            manifest = Manifest.load()
        except FixtureError as exc:
            raise WorkloadError(f"{path}: {exc}") from None
    mix = ScenarioMix([], source or str(path))
    for name, table in tables.items():
        where = f"{path}: scenarios.{name}"
        if not isinstance(table, dict):
            raise WorkloadError(f"{where}: expected a table, got {type_name(table)}")
        scenario = _scenario(name, table, where, path.parent, manifest)
        if isinstance(table.get("session_file"), str):
            mix.session_files[name] = str(_relative(path.parent, table["session_file"]))
        mix.scenarios.append(scenario)
    return mix


def _relative(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _scenario(name: str, table: dict[str, Any], where: str, base: Path, manifest: Any) -> Scenario:
    for key in table:
        if key not in SCENARIO_KEYS:
            raise unknown_key(where, key, SCENARIO_KEYS)
    weight = _get(table, "weight", (int, float), where, 1)
    if weight <= 0:
        raise WorkloadError(f"{where}.weight: {weight} must be above 0")
    description = _get(table, "description", str, where, "")
    _get(table, "session_file", str, where, "")
    repeat = _get(table, "repeat", bool, where, False)
    default_think = _think(table.get("think_time_s"), f"{where}.think_time_s")
    turns_raw = table.get("turns")
    if not isinstance(turns_raw, list) or not turns_raw:
        raise WorkloadError(f"{where}: no turns; add [[scenarios.{name}.turns]] with audio = ... or text = ...")
    turns = []
    for i, raw in enumerate(turns_raw, 1):
        turn_where = f"{where}.turns[{i}]"
        if not isinstance(raw, dict):
            raise WorkloadError(f"{turn_where}: expected a table, got {type_name(raw)}")
        turns.append(_turn(raw, turn_where, base, manifest, default_think, first=i == 1))
    tools = _tools(table.get("tools"), f"{where}.tools")
    model, session_type = _transcription(table, where, turns)
    chain_limit = _get(table, "tool_chain_limit", int, where, None)
    if chain_limit is not None and chain_limit < 0:
        raise WorkloadError(f"{where}.tool_chain_limit: {chain_limit} must be 0 or more (0: calls are not answered)")
    return Scenario(
        name, turns, repeat=repeat, description=description, tools=tools, weight=float(weight),
        transcription_model=model, session_type=session_type, tool_chain_limit=chain_limit,
    )  # fmt: skip


def _transcription(table: dict[str, Any], where: str, turns: list[Turn]) -> tuple[str | None, str]:
    """(input transcription model, session type) of a scenario; one line for what cannot work."""
    model = _get(table, "transcription_model", str, where, None)
    session_type = _get(table, "session_type", str, where, "realtime")
    if model is not None and not model.strip():
        raise WorkloadError(f'{where}.transcription_model: empty; name a model ("gpt-4o-mini-transcribe")')
    if session_type not in SESSION_TYPES:
        raise WorkloadError(f"{where}.session_type: {session_type!r}; use one of {', '.join(SESSION_TYPES)}")
    if (model is not None or session_type != "realtime") and "session_file" in table:
        raise WorkloadError(
            f"{where}: transcription_model and session_type shape the built session; with a session_file, "
            "set the transcription in that file instead"
        )
    if session_type == "transcription":
        if model is None:
            raise WorkloadError(f'{where}: session_type "transcription" needs transcription_model = ...')
        for i, turn in enumerate(turns, 1):
            if turn.trigger == "text" or turn.barge_in or turn.out_of_band:
                raise WorkloadError(
                    f"{where}.turns[{i}]: a transcription session has no responses: its turns are audio "
                    "(server_vad or manual), without barge_in or out_of_band"
                )
            if turn.instructions is not None or turn.modalities is not None or turn.max_output_tokens is not None:
                raise WorkloadError(
                    f"{where}.turns[{i}]: instructions, modalities and max_output_tokens shape a response, "
                    "which a transcription session never makes; remove them"
                )
    return model, session_type


def _get(table: dict[str, Any], key: str, kind: Any, where: str, default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok:
        want = " or ".join(type_name(k()) for k in kinds)
        raise WorkloadError(f"{where}.{key}: expected {want}, got {type_name(value)} {value!r}")
    return value


def _think(value: Any, where: str) -> tuple[float, float] | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        lo = hi = float(value)
    elif (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        lo, hi = float(value[0]), float(value[1])
    else:
        raise WorkloadError(f"{where}: expected seconds as a number or [min, max], got {value!r}")
    if lo < 0 or hi < lo:
        raise WorkloadError(f"{where}: {value!r} needs 0 <= min <= max")
    return (lo, hi)


def _turn(
    raw: dict[str, Any], where: str, base: Path, manifest: Any, default_think: tuple[float, float] | None, first: bool
) -> Turn:
    for key in raw:
        if key not in TURN_KEYS:
            raise unknown_key(where, key, TURN_KEYS)
    audio = _get(raw, "audio", str, where, None)
    text = _get(raw, "text", str, where, None)
    if audio is not None and text is not None:
        raise WorkloadError(f"{where}: a turn is audio or text, not both; split it into two turns")
    if audio is None and text is None:
        raise WorkloadError(f"{where}: a turn needs audio = (fixture or recording) or text = ...")
    trigger = _get(raw, "trigger", str, where, "text" if text is not None else "server_vad")
    if trigger not in TRIGGERS:
        raise WorkloadError(f"{where}.trigger: {trigger!r} is not a trigger; use one of {', '.join(TRIGGERS)}")
    if trigger == "text" and text is None:
        raise WorkloadError(f"{where}: trigger 'text' needs text = ...; an audio turn uses server_vad or manual")
    if trigger != "text" and audio is None:
        raise WorkloadError(f"{where}: trigger {trigger!r} needs audio = ...; a text turn uses trigger 'text'")
    modalities = _get(raw, "modalities", list, where, None)
    if modalities is not None and modalities not in (["audio"], ["text"], ["text", "audio"], ["audio", "text"]):
        raise WorkloadError(f'{where}.modalities: {modalities!r}; use ["audio"] or ["text"]')
    max_tokens = _get(raw, "max_output_tokens", (int, str), where, None)
    if (isinstance(max_tokens, str) and max_tokens != "inf") or (isinstance(max_tokens, int) and max_tokens < 1):
        raise WorkloadError(f'{where}.max_output_tokens: {max_tokens!r}; use an integer >= 1 or "inf"')
    instructions = _get(raw, "instructions", str, where, None)
    if trigger == "server_vad" and (instructions is not None or modalities is not None or max_tokens is not None):
        raise WorkloadError(
            f"{where}: instructions, modalities and max_output_tokens go in response.create, which a "
            'server_vad turn does not send; use trigger = "manual" or put them in the session file'
        )
    out_of_band = _get(raw, "out_of_band", bool, where, False)
    if out_of_band and trigger == "server_vad":
        raise WorkloadError(
            f"{where}: an out-of-band turn needs trigger 'text' or 'manual' (server VAD answers in-band)"
        )
    barge_in = _get(raw, "barge_in", bool, where, False)
    after = _get(raw, "barge_in_after_ms", (int, float), where, None)
    if barge_in and first:
        raise WorkloadError(f"{where}.barge_in: the first turn has no answer to interrupt; set it on a later turn")
    if after is not None and not barge_in:
        raise WorkloadError(f"{where}.barge_in_after_ms: only a barge_in = true turn interrupts; set barge_in too")
    if after is not None and after < 0:
        raise WorkloadError(f"{where}.barge_in_after_ms: {after} must be 0 or more")
    think = _think(raw.get("think_time_s"), f"{where}.think_time_s") or default_think
    transcript = _get(raw, "transcript", str, where, None)
    fixture = None
    if audio is not None:
        fixture, known_transcript = _audio(audio, f"{where}.audio", base, manifest)
        transcript = transcript if transcript is not None else known_transcript
    return Turn(
        trigger=trigger,  # type: ignore[arg-type]
        fixture=fixture,
        text=text,
        barge_in=barge_in,
        out_of_band=out_of_band,
        instructions=instructions,
        modalities=["audio"] if modalities and "audio" in modalities else modalities,
        max_output_tokens=max_tokens,
        barge_in_after_ms=None if after is None else float(after),
        think_time_s=think,
        transcript=transcript,
    )


def _audio(value: str, where: str, base: Path, manifest: Any) -> tuple[str, str | None]:
    """(what the client streams, the transcript the manifest knows) for a fixture name or a recording."""
    from loadtest.audio.fixtures import FixtureError, load_pcm

    if value.lower().endswith(AUDIO_SUFFIXES) or "/" in value or "\\" in value:
        path = _relative(base, value)
        if not path.suffix:
            raise WorkloadError(f"{where}: {value!r}: give the recording's file name with its extension")
        if not path.is_file():
            raise WorkloadError(f"{where}: {path}: file not found (paths are relative to the scenario file)")
        try:
            load_pcm(path)  # converted to 24 kHz mono PCM16 once, here (cached for every session)
        except FixtureError as exc:
            raise WorkloadError(f"{where}: {exc}") from None
        return str(path), None
    try:
        fixture = manifest.get(value)
    except FixtureError:
        known = ", ".join(manifest.names()[:8])
        raise WorkloadError(
            f"{where}: no fixture named {value!r} (known: {known}, ...; `rtload fixtures list`), "
            "or give a recording's path"
        ) from None
    return value, fixture.transcript or None


def _tools(value: Any, where: str) -> dict[str, ToolReply]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WorkloadError(f"{where}: expected a table of function names, got {type_name(value)}")
    out: dict[str, ToolReply] = {}
    for fn, spec in value.items():
        fw = f"{where}.{fn}"
        if not isinstance(spec, dict):
            raise WorkloadError(f"{fw}: expected a table with output = ... and latency_ms = ...")
        for key in spec:
            if key not in TOOL_KEYS:
                raise unknown_key(fw, key, TOOL_KEYS)
        if "output" not in spec:
            raise WorkloadError(f"{fw}: missing output = ... (the function's answer)")
        output = spec["output"]
        if isinstance(output, dict | list):
            output = json.dumps(output)
        elif not isinstance(output, str):
            raise WorkloadError(f"{fw}.output: expected a string or a table, got {type_name(output)}")
        latency = _get(spec, "latency_ms", (int, float), fw, 0)
        if latency < 0:
            raise WorkloadError(f"{fw}.latency_ms: {latency} must be 0 or more")
        out[fn] = ToolReply(output=output, latency_ms=float(latency))
    return out
