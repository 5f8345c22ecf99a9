"""A shared healthy mock for the scenario tests (one process per module; truth rows are told apart
by session id)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from loadtest.mock.process import MockProcess, start_mock
from tests.session.helpers import FAST_MOCK


@pytest.fixture(scope="module")
def fast_mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockProcess]:
    root = tmp_path_factory.mktemp("fast_mock")
    mock = start_mock(overrides=FAST_MOCK, truth_path=root / "truth.jsonl", log_path=root / "mock.log")
    try:
        yield mock
    finally:
        mock.stop()
