"""The mock keeps nothing per finished session (issue 22): many short sessions, tracemalloc flat.

A soak recycles sessions by the thousand; anything the mock kept per session (the session object,
its input audio, its responses' transcripts, a dict entry keyed by session id) would grow its RSS
without bound. Here a subprocess mock traces its allocations (``RTLOAD_MOCK_TRACEMALLOC=1``) and
``GET /_mock/memory`` reads the traced total after a full collection, before and after a few
hundred sessions of one text turn each.
"""

from __future__ import annotations

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from loadtest.mock.process import start_mock
from tests.mock.wsclient import Client, openai_url
from tests.support import fast_mock

WARM = 40  # sessions before the first reading (imports, caches, the pools' high-water marks)
MEASURED = 200
PER_SESSION_BYTES = 1000  # a kept MockSession with its ids, rngs and response would be several KB


def _session(url: str) -> None:
    with Client(openai_url(url)) as c:
        c.recv()
        c.send({"type": "session.update",
                "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}}})  # fmt: skip
        item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hours?"}]}
        c.send({"type": "conversation.item.create", "item": item})
        c.send({"type": "response.create"})
        c.until("response.done")


def _memory(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url.replace("ws://", "http://") + "/_mock/memory?top=5", timeout=10) as resp:
        return json.loads(resp.read())


def test_finished_sessions_leave_nothing_behind_in_the_mock(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTLOAD_MOCK_TRACEMALLOC", "1")
    with (
        start_mock(
            truth_path=tmp_path / "truth.jsonl", log_path=tmp_path / "mock.log", overrides=fast_mock(400.0, (1, 2))
        ) as mock,  # fmt: skip
        ThreadPoolExecutor(8) as pool,
    ):
        list(pool.map(lambda _: _session(mock.url), range(WARM)))
        before = _memory(mock.url)
        assert before["tracing"] is True
        list(pool.map(lambda _: _session(mock.url), range(MEASURED)))
        after = _memory(mock.url)
        assert mock.stats()["sessions_opened"] == WARM + MEASURED
    grown = (after["traced_mb"] - before["traced_mb"]) * 1e6
    assert grown < MEASURED * PER_SESSION_BYTES, (grown / MEASURED, after["top"])
    assert mock.truth()[-1]["kind"] == "session"  # the truth log is on disk, not in memory


def test_memory_endpoint_reports_rss_without_tracing(shared_mock) -> None:
    reading = _memory(shared_mock.url)
    assert reading["tracing"] is False and "traced_mb" not in reading
    assert 20 < reading["rss_mb"] < 2000
    assert set(reading["trims"]) == {"count", "last_ms", "max_ms"}
