"""``rtload run --config run.toml``: every ``rtload run`` option in a file, and ``--print-config``.

The file is a flat TOML table whose keys are the option names without the leading dashes
(``users = 20``, ``spawn-rate = 5``, ``session-file = "agent.json"``; ``spawn_rate`` is accepted
too). Options given on the command line override the file. ``session-file`` and a ``scenario``
that is a path are relative to the file's directory. :func:`to_toml` writes the resolved
configuration back (absolute paths), so ``--print-config`` output run again resolves the same.

For plain Locust (``locust -f loadtest/locustfile.py --config run.toml``) Locust reads only the
file's ``[tool.locust]`` table (its own options: ``users``, ``spawn-rate``, ``run-time``...), and
the harness applies the top-level keys as its ``--rt-*`` options (:func:`locust_overrides`).
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

from loadtest.workload.errors import WorkloadError, read_toml, type_name, unknown_key

# the options that shape the session and may conflict with a session file
SESSION_SHAPING = ("modalities", "audio_format")
PATH_KEYS = ("session_file",)
LOCUST_TABLE = "tool"  # [tool.locust]: Locust's own reading of the same file


def _fields() -> dict[str, Any]:
    from loadtest.locust.launcher import RunRequest

    hints = typing.get_type_hints(RunRequest)
    return {f.name: hints[f.name] for f in dataclasses.fields(RunRequest)}


def key_name(field_name: str) -> str:
    return field_name.replace("_", "-")


def _check_type(key: str, value: Any, kind: Any, path: Path) -> Any:
    where = f"{path}: {key}"
    if kind is bool:
        if not isinstance(value, bool):
            raise WorkloadError(f"{where}: expected true or false, got {type_name(value)} {value!r}")
    elif kind is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise WorkloadError(f"{where}: expected an integer, got {type_name(value)} {value!r}")
    elif kind is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise WorkloadError(f"{where}: expected a number, got {type_name(value)} {value!r}")
        value = float(value)
    elif kind is str:
        if not isinstance(value, str):
            hint = f' (durations are strings: "{value}s")' if isinstance(value, int | float) else ""
            raise WorkloadError(f"{where}: expected a string, got {type_name(value)} {value!r}{hint}")
    elif typing.get_origin(kind) is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise WorkloadError(f"{where}: expected an array of strings, got {type_name(value)} {value!r}")
        value = list(value)
    return value


def load_run_config(path: str | Path) -> dict[str, Any]:
    """The file's options by field name (types checked, paths resolved); one line per problem."""
    path = Path(path).expanduser().resolve()
    doc = read_toml(path)
    fields = _fields()
    known = {key_name(n) for n in fields} | {LOCUST_TABLE}
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = key.replace("-", "_")
        if key == LOCUST_TABLE:
            if not isinstance(value, dict) or set(value) - {"locust"}:
                raise WorkloadError(f"{path}: [tool] holds only [tool.locust] (Locust's own options)")
            continue
        if name not in fields:
            raise unknown_key(str(path), key, known)
        if name in out:
            raise WorkloadError(f"{path}: {key} is given twice (as {key_name(name)} and {name}); keep one")
        value = _check_type(key, value, fields[name], path)
        if name in PATH_KEYS and value:
            value = str(_relative(path.parent, value))
        if name == "scenario" and value:
            from loadtest.workload.scenario_file import is_path

            if is_path(value):
                value = str(_relative(path.parent, value))
        out[name] = value
    return out


def _relative(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def resolve(defaults: dict[str, Any], from_file: dict[str, Any], from_cli: dict[str, Any]) -> dict[str, Any]:
    """Defaults, overridden by the file, overridden by the options given on the command line."""
    out = dict(defaults)
    out.update(from_file)
    out.update(from_cli)
    for name in PATH_KEYS:
        if out.get(name):
            out[name] = str(Path(out[name]).expanduser().resolve())
    if out.get("scenario"):
        from loadtest.workload.scenario_file import is_path

        if is_path(out["scenario"]):
            out["scenario"] = str(Path(out["scenario"]).expanduser().resolve())
    return out


def redacted(resolved: dict[str, Any]) -> dict[str, Any]:
    """The resolved configuration with secrets blanked (a key in the target URL's query, a token in
    Voice Live's ``--query``, e.g. ``agent-access-token``, the mock's keys in ``--mock-set auth.*``,
    a proxy URL's credentials)."""
    from loadtest.mock.profile import redact_override
    from loadtest.protocol.network import shown_proxy
    from loadtest.protocol.targets import REDACTED, SECRET_QUERY_KEYS, redact_url

    out = dict(resolved)
    if out.get("target") and out["target"] != "mock":
        out["target"] = redact_url(out["target"])
    if out.get("query"):
        pairs = [str(q).partition("=") for q in out["query"]]
        out["query"] = [f"{k}={REDACTED}" if k.strip().lower() in SECRET_QUERY_KEYS else f"{k}{sep}{v}"
                        for k, sep, v in pairs]  # fmt: skip
    if out.get("mock_set"):
        out["mock_set"] = [redact_override(str(item)) for item in out["mock_set"]]
    if out.get("proxy"):
        out["proxy"] = shown_proxy(str(out["proxy"]))
    return out


def to_toml(resolved: dict[str, Any]) -> str:
    """The resolved configuration as a run config file (dashed keys, the fields' order)."""
    import tomli_w

    fields = _fields()
    doc = {key_name(n): resolved[n] for n in fields if n in resolved and resolved[n] is not None}
    head = "# rtload run --config FILE (resolved configuration; command-line options override it)\n"
    return head + tomli_w.dumps(doc)


def locust_overrides(path: str | Path) -> dict[str, Any]:
    """For plain Locust: the file's options as ``rt_*`` attribute names of Locust's parsed options."""
    out: dict[str, Any] = {}
    for name, value in load_run_config(path).items():
        if name in ("users", "spawn_rate", "duration"):
            out[{"users": "num_users", "spawn_rate": "spawn_rate", "duration": "run_time"}[name]] = value
        elif name == "mock_set":
            out["rt_mock_set"] = ";".join(value)
        elif name == "no_check":
            out["rt_no_check"] = "1" if value else ""
        else:
            out[f"rt_{name}"] = value if isinstance(value, str) else str(value)
    return out


def apply_to_locust(parsed: Any, rt_defaults: dict[str, str]) -> dict[str, Any]:
    """Plain Locust with ``--config run.toml``: set the file's top-level options on Locust's parsed
    options where the command line left them at their defaults. Returns what was applied."""
    path = getattr(parsed, "config", None)
    if not path or not str(path).endswith(".toml"):
        return {}
    from loadtest.locust.shapes import parse_duration

    applied: dict[str, Any] = {}
    for name, value in locust_overrides(path).items():
        current = getattr(parsed, name, None)
        if name.startswith("rt_"):
            if current not in (None, "", rt_defaults.get(name)):
                continue
        elif name == "run_time":
            if current:
                continue
            value = int(parse_duration(value) or 0) or None
        elif name == "num_users":
            if current is not None:
                continue
        elif name == "spawn_rate" and current not in (None, 1, 1.0):
            continue
        setattr(parsed, name, value)
        applied[name] = value
    return applied
