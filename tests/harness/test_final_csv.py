"""The Locust internals :mod:`loadtest.locust.final_csv` relies on, checked against the installed
Locust: the supported range is pinned in pyproject.toml, and this fails the day a Locust release
renames or reshapes what the final CSV snapshot reads (then fix final_csv.py and widen the pin).
The probe runs in a child process (importing Locust monkey-patches gevent into it)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from tests.support import run_child

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_locust_is_in_the_pinned_range_and_has_what_the_final_snapshot_reads() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (req,) = [Requirement(d) for d in deps if Requirement(d).name == "locust"]
    assert any(spec.operator == "<" for spec in req.specifier), "pin an upper bound: final_csv reads internals"
    out = run_child("tests.harness.final_csv_probe")
    assert req.specifier.contains(out["version"]), (out["version"], str(req.specifier))
    for kind in ("requests", "failures", "exceptions"):
        shape = out[kind]
        assert shape["handle"] and shape["writer"] and shape["columns"], (kind, shape)
        assert shape["rows"] is not None, f"StatsCSVFileWriter._{kind}_data_rows(writer) is gone"
    assert "turn" in out["requests"]["rows"] and "turn" in out["failures"]["rows"]
