"""Start the embedded mock for ``--rt-target mock`` (its own process; truth log in the run directory)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from loadtest.locust.options import HarnessOptions
from loadtest.records.schema import MOCK_TRUTH_FILE


def parse_overrides(items: list[str]) -> dict[str, object]:
    """``["a.b=1.5", "c=x", "d=[1,2]"]`` -> ``{"a.b": 1.5, "c": "x", "d": [1, 2]}`` (TOML values, else text)."""
    out: dict[str, object] = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value.strip()
    return out


def start_embedded_mock(options: HarnessOptions, run_dir: Path, log_path: Path | None = None) -> Any:
    from loadtest.mock.process import start_mock

    return start_mock(
        profile=options.mock_profile,
        truth_path=Path(run_dir) / MOCK_TRUTH_FILE,
        overrides=parse_overrides(options.mock_set) or None,
        log_path=log_path or Path(run_dir) / "mock.log",
    )
