"""A healthy mock shared by the tests of one module (they do not depend on its state)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from loadtest.mock.process import MockProcess, start_mock
from tests.support import fast_mock


@pytest.fixture(scope="module")
def shared_mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockProcess]:
    root = tmp_path_factory.mktemp("shared_mock")
    with start_mock(truth_path=root / "truth.jsonl", log_path=root / "mock.log",
                    overrides=fast_mock(20.0, (5, 20))) as mock:  # fmt: skip
        yield mock
