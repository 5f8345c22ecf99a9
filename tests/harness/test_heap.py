"""The health sampler hands the C allocator's free memory back to the system at its interval."""

from __future__ import annotations

import time

import pytest

from loadtest.locust import health, heap


def test_release_free_memory_calls_malloc_trim_where_glibc_has_it() -> None:
    took = heap.release_free_memory()
    assert took is None or 0.0 <= took < 1000.0


def test_the_sampler_trims_once_per_interval_and_not_when_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []
    monkeypatch.setattr(health, "release_free_memory", lambda: calls.append(time.monotonic()) or 0.1)
    rows: list[dict] = []
    monkeypatch.setenv("RTLOAD_TRIM_EVERY_S", "0.2")
    sampler = health.HealthSampler("w0", rows.append, users=lambda: 1, interval_s=0.05)
    sampler.start()
    time.sleep(1.1)
    sampler.stop()
    assert rows and 3 <= len(calls) <= 6, (len(rows), calls)
    monkeypatch.setenv("RTLOAD_TRIM_EVERY_S", "0")
    calls.clear()
    quiet = health.HealthSampler("w0", rows.append, users=lambda: 1, interval_s=0.05)
    quiet.start()
    time.sleep(0.4)
    quiet.stop()
    assert calls == []


def test_a_bad_trim_interval_falls_back_to_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RTLOAD_TRIM_EVERY_S", "often")
    assert heap.trim_every_s() == heap.DEFAULT_EVERY_S
