"""The README's record contract names every column the schema defines (the docs stay true)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from loadtest.records.schema import SESSION_ENDINGS, HealthRecord, RateLimitRecord, ResponseRecord, SessionRecord

README = Path(__file__).resolve().parents[1] / "README.md"


def _rows_section() -> str:
    text = README.read_text()
    start = text.index("### The rows")
    return text[start : text.index("\n## ", start)]


@pytest.mark.parametrize("record", [ResponseRecord, SessionRecord, RateLimitRecord, HealthRecord])
def test_every_column_is_documented(record: type) -> None:
    section = _rows_section()
    names = [f.name for f in dataclasses.fields(record) if f.name != "schema_version"]
    missing = [name for name in names if f"`{name}`" not in section]
    assert missing == [], f"{record.__name__} columns missing from README 'The rows': {missing}"


def test_every_session_ending_is_documented() -> None:
    section = _rows_section()
    assert [e for e in SESSION_ENDINGS if f"`{e}`" not in section] == []
