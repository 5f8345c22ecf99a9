"""From the run's options to what each new session runs: (scenario, session settings) by weight.

:func:`bind` loads the scenario mix (``--scenario``: a built-in or a file), swaps fixtures for
``--fixture``, attaches each scenario's session object (its own ``session_file``, else
``--session-file``) after preflight's static session checks, and derives per scenario the
settings the session file implies (output modalities, audio format), refusing a command-line
option that says otherwise. Every problem is a :class:`WorkloadError` (one line, or preflight's
FAIL lines for a session file that fails its checks).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtest.protocol.dialects import get_dialect
from loadtest.session.scenario import Scenario
from loadtest.workload.errors import WorkloadError
from loadtest.workload.scenario_file import ScenarioMix, is_path, load_mix
from loadtest.workload.session_file import SessionFile, conflicts, load_session_file, session_settings, static_check

DEFAULT_SCENARIO = "single_turn"


@dataclass(slots=True)
class Workload:
    mix: ScenarioMix
    settings: dict[str, dict[str, Any]]  # scenario name -> what its session file implies
    session_files: dict[str, SessionFile] = field(default_factory=dict)  # scenario name -> its file
    warnings: list[str] = field(default_factory=list)  # preflight's WARN lines, printed before the run


def bind(
    scenario: str,
    *,
    dialect: str,
    session_file: str = "",
    fixture: str = "",
    given: dict[str, Any] | None = None,
    check: bool = True,
    deployment: str = "",
) -> Workload:
    """See the module docstring. ``given``: the session-shaping options the user set, with values."""
    mix = load_mix(scenario or DEFAULT_SCENARIO)
    if fixture:
        names = [f.strip() for f in fixture.split(",") if f.strip()]
        mix.scenarios = [s.with_fixtures(names) for s in mix.scenarios]
    loaded: dict[str, SessionFile] = {}
    work = Workload(mix=mix, settings={})
    bound: list[Scenario] = []
    for sc in mix.scenarios:
        d = get_dialect(dialect)
        if sc.transcription_only and not (d.is_ga or d.client_transcription_session_update):
            raise WorkloadError(f"scenario {sc.name!r} is transcription-only, which the {dialect} dialect has not")
        path = mix.session_files.get(sc.name) or session_file
        if not path:
            work.settings[sc.name] = {}
            bound.append(sc)
            continue
        key = str(Path(path).expanduser().resolve())
        if key not in loaded:
            sf = load_session_file(key)
            if check:
                work.warnings.extend(_check(sf, dialect, deployment))
            loaded[key] = sf
        sf = loaded[key]
        settings = session_settings(sf, dialect)
        problem = conflicts(sf, settings, given or {})
        if problem:
            raise WorkloadError(problem)
        _check_turn_detection(sc, sf, dialect)
        work.settings[sc.name] = settings
        work.session_files[sc.name] = sf
        bound.append(dataclasses.replace(sc, session=sf.session))
    mix.scenarios = bound
    return work


def _check(sf: SessionFile, dialect: str, deployment: str = "") -> list[str]:
    """Preflight's static session checks: FAIL stops (preflight's lines), WARN lines are returned."""
    from loadtest.preflight import render
    from loadtest.preflight.findings import Severity

    findings = static_check(sf, dialect, deployment)
    fails = [f for f in findings if f.severity is Severity.ERROR]
    warns = [f for f in findings if f.severity is Severity.WARNING]
    if fails:
        raise WorkloadError(
            f"session file {sf.path} fails preflight's static checks for the {dialect} dialect "
            f"(fix it, or pass --no-check to skip them):\n" + render.table(fails + warns)
        )
    return render.table(warns).splitlines() if warns else []


def _check_turn_detection(sc: Scenario, sf: SessionFile, dialect: str) -> None:
    present, value = get_dialect(dialect).turn_detection_of(sf.session)
    if present and value is None and any(t.trigger == "server_vad" for t in sc.turns):
        raise WorkloadError(
            f"scenario {sc.name!r} has server_vad turns but the session file {sf.path.name} turns turn "
            'detection off: use trigger = "manual" for those turns, or set turn_detection in the file'
        )


def describe(work: Workload, scenario: str) -> dict[str, Any]:
    """For run.json: the scenarios (name, weight), the scenario file and each session file (content, hash)."""
    out: dict[str, Any] = {
        "scenarios": [{"name": s.name, "weight": s.weight} for s in work.mix.scenarios],
    }
    if scenario and is_path(scenario):
        path = Path(scenario).expanduser().resolve()
        raw = path.read_bytes()
        out["scenario_file"] = {
            "path": str(path),
            "sha256": hashlib.sha256(raw).hexdigest(),
            "content": raw.decode("utf-8", "replace"),
        }
    files: dict[str, Any] = {}
    for name, sf in work.session_files.items():
        files.setdefault(str(sf.path), {**sf.describe(), "scenarios": []})["scenarios"].append(name)
    if files:
        out["session_files"] = list(files.values())
    return out
