"""Shared fixtures. ``mock_server``: start real mock Realtime server processes on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from loadtest.mock.process import MockProcess, start_mock


@pytest.fixture
def mock_server(tmp_path: Path) -> Iterator[Callable[..., MockProcess]]:
    """A factory ``(**start_mock kwargs) -> MockProcess``; every mock it starts is stopped at teardown.

    ``truth_path`` defaults to ``tmp_path / "truth.jsonl"`` (a second mock gets ``truth-2.jsonl``).
    """
    started: list[MockProcess] = []

    def factory(**kwargs: Any) -> MockProcess:
        if "truth_path" not in kwargs:
            name = "truth.jsonl" if not started else f"truth-{len(started) + 1}.jsonl"
            kwargs["truth_path"] = tmp_path / name
        kwargs.setdefault("log_path", tmp_path / f"mock-{len(started) + 1}.log")
        proc = start_mock(**kwargs)
        started.append(proc)
        return proc

    yield factory
    for proc in started:
        proc.stop()
