"""The mock's own memory, for soak checks: RSS, and what ``tracemalloc`` sees when it is on.

``RTLOAD_MOCK_TRACEMALLOC=1`` starts ``tracemalloc`` when the mock starts (it slows the mock a
little: for diagnosis and the retention test only); ``GET /_mock/memory`` then returns the RSS and
the traced total (``?top=N`` adds the N biggest allocation sites by line) after a full collection,
and how often the mock handed freed memory back to the system (``malloc_trim``, once a minute as
the harness's workers do: ``RTLOAD_TRIM_EVERY_S``, 0 turns it off).
"""

from __future__ import annotations

import gc
import os
import tracemalloc
from typing import Any

ENV = "RTLOAD_MOCK_TRACEMALLOC"

TRIMS = {"count": 0, "last_ms": 0.0, "max_ms": 0.0}  # the mock's malloc_trim calls (server.py)


def trimmed(ms: float | None) -> None:
    """Count one ``malloc_trim`` that took ``ms`` (None: the C library has none)."""
    if ms is None:
        return
    TRIMS["count"] += 1
    TRIMS["last_ms"] = round(ms, 3)
    TRIMS["max_ms"] = round(max(float(TRIMS["max_ms"]), ms), 3)


def start_tracing_if_asked() -> bool:
    """Start ``tracemalloc`` when ``RTLOAD_MOCK_TRACEMALLOC`` is set (not "0"); True when tracing."""
    if os.environ.get(ENV, "0") not in ("", "0") and not tracemalloc.is_tracing():
        tracemalloc.start(8)
    return tracemalloc.is_tracing()


def rss_mb() -> float:
    """This process's resident set (MB; 0.0 where /proc is not there)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        return 0.0


def snapshot(top: int = 0) -> dict[str, Any]:
    """RSS and (when tracing) the traced total after ``gc.collect()``; ``top`` biggest sites."""
    gc.collect()
    out: dict[str, Any] = {"rss_mb": round(rss_mb(), 3), "tracing": tracemalloc.is_tracing(), "trims": dict(TRIMS)}
    if tracemalloc.is_tracing():
        current, peak = tracemalloc.get_traced_memory()
        out["traced_mb"] = round(current / 1e6, 3)
        out["traced_peak_mb"] = round(peak / 1e6, 3)
        if top > 0:
            stats = tracemalloc.take_snapshot().statistics("lineno")[:top]
            out["top"] = [{"where": str(s.traceback[0]), "kb": round(s.size / 1e3, 1), "count": s.count}
                          for s in stats]  # fmt: skip
    return out
