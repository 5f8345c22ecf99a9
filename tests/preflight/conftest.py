"""Fixtures of the preflight tests: a fast mock on loopback that takes the test's key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from loadtest.mock.process import MockProcess, start_mock
from tests.preflight.support import FAST, SECRET


@pytest.fixture(scope="module")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockProcess]:
    log = tmp_path_factory.mktemp("mock") / "mock.log"
    proc = start_mock(api_key=SECRET, overrides=FAST, log_path=log)
    yield proc
    proc.stop()
