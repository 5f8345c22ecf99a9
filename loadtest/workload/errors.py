"""The one error type of the workload files: its message is one line (file, line or key, the fix)."""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any


class WorkloadError(ValueError):
    """A bad session, scenario or run config file; ``str()`` is one line fit for the terminal."""


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict; a missing file or a syntax error is one line (TOML's own line number)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise WorkloadError(f"{path}: file not found") from None
    except OSError as exc:
        raise WorkloadError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise WorkloadError(f"{path}: not UTF-8 text; save it as UTF-8 TOML") from None
    except tomllib.TOMLDecodeError as exc:
        raise WorkloadError(f"{path}: TOML syntax error: {exc}") from None


def unknown_key(where: str, key: str, known: list[str] | tuple[str, ...] | set[str]) -> WorkloadError:
    """``where: unknown key 'x' (did you mean 'y'?)`` or the list of known keys."""
    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(sorted(known))}"
    return WorkloadError(f"{where}: unknown key {key!r} ({hint})")


def type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)
