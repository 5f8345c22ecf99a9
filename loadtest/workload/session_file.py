"""``--session-file``: the ``session`` object the user's agent sends in ``session.update``.

The file is JSON: the session object itself, or the whole event (``{"type": "session.update",
"session": {...}}``). It is sent as it is (see
:meth:`loadtest.protocol.dialects.Dialect.user_session_update` for the little the harness adds),
after preflight's static session checks (:func:`static_check`). What the file says about output
modalities and the audio format also sets how the harness sends and judges audio
(:func:`session_settings`); a command-line option saying otherwise is one line (:func:`conflicts`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest.protocol.dialects import audio_format_name, get_dialect
from loadtest.workload.errors import WorkloadError


@dataclass(frozen=True, slots=True)
class SessionFile:
    path: Path
    session: dict[str, Any]  # the session object, as the file gives it
    text: str  # the file's content (run.json keeps it: a session holds no secrets)
    sha256: str

    def describe(self) -> dict[str, Any]:
        """For run.json: where it came from, its hash and its content."""
        return {"path": str(self.path), "sha256": self.sha256, "session": self.session}


def load_session_file(path: str | Path) -> SessionFile:
    """Read and parse; one line (with JSON's line and column) when it is not a session object."""
    path = Path(path).expanduser().resolve()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise WorkloadError(f"{path}: session file not found") from None
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot read the session file ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
        doc = json.loads(text)
    except UnicodeDecodeError:
        raise WorkloadError(f"{path}: not UTF-8 text; save the session file as UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise WorkloadError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg})") from None
    session = doc.get("session", doc) if isinstance(doc, dict) and "session" in doc else doc
    if not isinstance(session, dict):
        raise WorkloadError(
            f'{path}: no session object; give {{"instructions": ...}} '
            f'or {{"type": "session.update", "session": {{...}}}}'
        )
    return SessionFile(path=path, session=session, text=text, sha256=hashlib.sha256(raw).hexdigest())


def static_check(sf: SessionFile, dialect: str, deployment: str = "") -> list[Any]:
    """Preflight's static session checks of ``sf`` for ``dialect`` (and the model, where a check
    depends on it: Voice Live's): a list of Findings."""
    from loadtest.preflight.checks import check_session
    from loadtest.preflight.config import PreflightConfig

    cfg = PreflightConfig(
        target="ws://127.0.0.1/", dialect=dialect, session_file=str(sf.path), deployment=deployment or None
    )
    return check_session(cfg)


def session_settings(sf: SessionFile, dialect: str) -> dict[str, Any]:
    """What the session implies for the harness: ``output_modalities`` and ``audio_format`` (each
    only when the file says it). One line when its formats are unknown or input and output differ."""
    d = get_dialect(dialect)
    out: dict[str, Any] = {}
    for key in ("audio", "audio.input", "audio.output") if d.is_ga else ():
        value: Any = sf.session
        for part in key.split("."):
            value = value.get(part, {}) if isinstance(value, dict) else value
        if not isinstance(value, dict):
            raise WorkloadError(f"{sf.path}: session.{key} must be an object, not {type(value).__name__}")
    modalities = d.output_modalities_of(sf.session)
    if modalities is not None:
        out["output_modalities"] = modalities
    names = []
    for side, value in zip(("input", "output"), d.formats_of(sf.session), strict=True):
        if value is None:
            continue
        name = audio_format_name(value)
        if name is None:
            raise WorkloadError(
                f"{sf.path}: {side} audio format {value!r} is not one the harness knows "
                "(pcm16, G.711; on Voice Live also pcm16_16000hz)"
            )
        names.append(name)
    if len(set(names)) > 1:
        raise WorkloadError(
            f"{sf.path}: input audio {names[0]} and output audio {names[1]} differ; "
            "the harness sends and judges one format: use the same for both"
        )
    if names:
        out["audio_format"] = names[0]
    return out


def conflicts(sf: SessionFile, settings: dict[str, Any], given: dict[str, Any]) -> str | None:
    """One line when an option the user gave says otherwise than the session file, else None.

    ``given`` maps the options set on the command line or in the run config (``modalities``,
    ``audio_format``) to their values.
    """
    if (
        "modalities" in given
        and "output_modalities" in settings
        and [given["modalities"]] != settings["output_modalities"]
    ):
        return (
            f"--modalities {given['modalities']} conflicts with the session file {sf.path.name} "
            f"(output modalities {settings['output_modalities']}): drop the option or change the file"
        )
    if "audio_format" in given and "audio_format" in settings and given["audio_format"] != settings["audio_format"]:
        return (
            f"--audio-format {given['audio_format']} conflicts with the session file {sf.path.name} "
            f"({settings['audio_format']}): drop the option or change the file"
        )
    return None
