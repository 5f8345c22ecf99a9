"""Mock profiles: TOML files of knobs (``profiles/healthy.toml`` documents every one).

A profile is ``healthy.toml`` overlaid with the named profile (or a file), then with the
``--set key=value`` overrides. The result is a plain nested dict.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

PROFILES_DIR = Path(__file__).parent / "profiles"
BASE_PROFILE = "healthy"
SECRET_SECTIONS = ("auth",)  # knobs under these tables hold keys: never echoed, kept or written
REDACTED = "***"
# What a knob's value may be, past its type (healthy.toml's value gives the type). A number is
# >= 0 unless listed as signed; a count is a whole number; a list of numbers is a [low, high] span
# to draw from unless it is a set of HTTP statuses.
PROBABILITIES = frozenset(
    {"rate", "after_output", "call_probability", "chain_probability", "substitution_rate", "warning_rate",
     "server_error_per_session", "server_error_max"}
)  # fmt: skip
FRACTIONS = frozenset({"at"})  # where in a response: spans within [0, 1]
POSITIVE = frozenset(
    {"audio.speed", "audio.chars_per_second", "audio.delta_ms", "vad.frame_ms", "vad.span_db",
     "voicelive.connection_window_s"}
)  # fmt: skip
SIGNED = frozenset({"vad.floor_db"})
COUNTS = frozenset(
    {"capacity.max_sessions", "capacity.knee_sessions", "capacity.retry_after_s", "webrtc.garbage_every_packets",
     "rate_limits.tokens_per_minute", "rate_limits.requests_per_minute", "vad.frame_ms", "tools.calls_per_response",
     "voicelive.new_connections_per_minute", "voicelive.tokens_per_minute"}
)  # fmt: skip
STATUSES = frozenset({"retired_status", "statuses"})  # HTTP statuses (a list of them is a set, not a span)


class ProfileError(ValueError):
    """A profile or override the mock cannot use (one line, says what to fix)."""


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read ({exc.strerror})") from None


def _merge(base: dict[str, Any], extra: dict[str, Any], where: str, prefix: str = "") -> None:
    for key, value in extra.items():
        dotted = f"{prefix}{key}"
        if key not in base:
            raise ProfileError(f"{where}: unknown knob {dotted!r} (see loadtest/mock/profiles/healthy.toml)")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ProfileError(f"{where}: {dotted!r} must be a table")
            _merge(base[key], value, where, dotted + ".")
        elif _family(base[key]) != _family(value):
            raise ProfileError(f"{where}: {dotted!r} = {value!r}: expected a value like {base[key]!r}")
        else:
            reason, checked = _checked(dotted, base[key], value)
            if reason:
                raise ProfileError(f"{where}: {dotted!r} = {value!r}: {reason}")
            base[key] = checked


def parse_override(text: str, flag: str = "--set") -> tuple[str, Any]:
    """``"faults.stall.rate=1.0"`` -> ``("faults.stall.rate", 1.0)``; the value is read as TOML.
    ``flag`` names the option in messages (``--mock-set`` under ``rtload run``)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ProfileError(f"{flag} {text!r}: expected key=value, e.g. {flag} faults.stall.rate=1.0")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def _family(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list | tuple):
        return "list"
    return type(value).__name__


def apply_override(profile: dict[str, Any], key: str, value: Any, flag: str = "--set") -> None:
    node: Any = profile
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node, dict) or part not in node or not isinstance(node[part], dict):
            raise ProfileError(f"{flag} {key}: unknown knob (see loadtest/mock/profiles/healthy.toml)")
        node = node[part]
    leaf = parts[-1]
    if leaf not in node or isinstance(node[leaf], dict):
        raise ProfileError(f"{flag} {key}: unknown knob (see loadtest/mock/profiles/healthy.toml)")
    old = node[leaf]
    if _family(old) != _family(value):
        shown = REDACTED if is_secret_knob(key) else repr(value)
        raise ProfileError(f"{flag} {key}={shown}: expected a value like {old!r}")
    reason, value = _checked(key, old, value)
    if reason:
        shown = REDACTED if is_secret_knob(key) else repr(value)
        raise ProfileError(f"{flag} {key}={shown}: {reason}")
    node[leaf] = value


def _checked(key: str, old: Any, value: Any) -> tuple[str, Any]:
    """(why ``value`` cannot replace ``old`` for knob ``key``, or "" and the value to keep): the
    ranges above, on a value of the right type already (a float knob keeps a float)."""
    leaf = key.rsplit(".", 1)[-1]
    if _family(old) == "number":
        return _number(key, leaf, old, value)
    if _family(old) != "list" or not old or not all(_family(v) == "number" for v in old):
        return "", value
    if not all(_family(v) == "number" for v in value):
        return f"expected a list of numbers like {old!r}", value
    kept = []
    for item in value:
        reason, item = _number(key, leaf, old[0], item)
        if reason:
            return reason, value
        kept.append(item)
    if leaf not in STATUSES and (len(kept) != 2 or kept[0] > kept[1]):
        return f"expected [low, high] with low <= high, like {old!r}", value
    return "", kept


def _number(key: str, leaf: str, old: Any, value: Any) -> tuple[str, Any]:
    if leaf in STATUSES:
        if value != int(value) or not 100 <= value <= 599:
            return "expected an HTTP status (100 to 599)", value
        return "", int(value)
    if leaf in PROBABILITIES and not 0 <= value <= 1:
        return "expected a probability from 0 to 1", value
    if leaf in FRACTIONS and not 0 <= value <= 1:
        return "expected fractions of the response from 0 to 1", value
    if key in POSITIVE and not value > 0:
        return "expected a number above 0", value
    if key not in SIGNED and value < 0:
        return "expected a number of 0 or more", value
    if key in COUNTS:
        if value != int(value):
            return f"expected a whole number like {old!r}", value
        return "", int(value)
    return "", float(value) if isinstance(old, float) else value


def load_profile(
    name_or_path: str = BASE_PROFILE, overrides: dict[str, Any] | list[str] | None = None, flag: str = "--set"
) -> dict[str, Any]:
    """The merged profile: healthy.toml <- the named profile or file <- overrides (``flag`` names the
    override option in messages)."""
    base = _read(PROFILES_DIR / f"{BASE_PROFILE}.toml")
    if name_or_path and name_or_path != BASE_PROFILE:
        path = Path(name_or_path)
        if path.suffix != ".toml":
            path = PROFILES_DIR / f"{name_or_path}.toml"
            if not path.exists():
                raise ProfileError(
                    f"unknown mock profile {name_or_path!r}: use one of {', '.join(profile_names())} or a FILE.toml"
                )
        elif not path.exists():
            raise ProfileError(f"{path}: no such profile file")
        _merge(base, _read(path), str(path))
    items: list[tuple[str, Any]]
    if overrides is None:
        items = []
    elif isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        items = [parse_override(text, flag) for text in overrides]
    for key, value in items:
        apply_override(base, key, copy.deepcopy(value), flag)
    from loadtest.mock.tools import RuleError, parse_rules

    try:
        parse_rules(list(base["tools"]["rules"]))
    except RuleError as exc:
        raise ProfileError(str(exc)) from None
    return base


def is_secret_knob(key: str) -> bool:
    """``auth.keys`` and any other knob of the ``auth`` table: the mock's accepted keys."""
    return key.strip().split(".", 1)[0] in SECRET_SECTIONS


def redact_override(text: str) -> str:
    """``"auth.keys=['k1']"`` -> ``"auth.keys=***"``; other overrides unchanged (for run.json, logs)."""
    key, sep, _ = text.partition("=")
    return f"{key.strip()}={REDACTED}" if sep and is_secret_knob(key) else text


def format_override(key: str, value: Any) -> str:
    """The ``--set`` argument for one override (inverse of :func:`parse_override`)."""
    if isinstance(value, bool):
        return f"{key}={'true' if value else 'false'}"
    if isinstance(value, str):
        return f'{key}="{value}"'
    if isinstance(value, list | tuple):
        inner = ", ".join(format_override("x", v).split("=", 1)[1] for v in value)
        return f"{key}=[{inner}]"
    return f"{key}={value}"
