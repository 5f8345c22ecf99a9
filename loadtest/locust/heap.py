"""Hand the C allocator's free memory back to the system now and then (glibc's ``malloc_trim``).

A soak's sessions come and go by the thousand: each leaves freed blocks in the C heap (socket and
TLS buffers, the resolver's threads, pyzmq's message buffers, numpy's arrays), and glibc keeps
freed memory at the top of its heaps and in its per-thread arenas instead of returning it, so a
process's RSS can creep up although nothing it keeps grows. The health sampler calls
:func:`release_free_memory` once a minute (``RTLOAD_TRIM_EVERY_S``, 0 turns it off). Under gevent
the call runs in the hub's thread pool (ctypes releases the GIL), so the audio clock never waits for
it; elsewhere (and on a C library without ``malloc_trim``) it is a plain call or nothing.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Callable
from typing import Any

from loadtest.session.concurrency import gevent_active

DEFAULT_EVERY_S = 60.0

_TRIM: Callable[[int], int] | bool | None = False  # False: not looked up yet


def _trim_function() -> Callable[[int], int] | None:
    global _TRIM
    if _TRIM is False:
        try:
            _TRIM = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to call
            _TRIM = None
    return _TRIM  # type: ignore[return-value]


def trim_every_s() -> float:
    """How often the health sampler trims (seconds; 0: never), from ``RTLOAD_TRIM_EVERY_S``."""
    try:
        return max(0.0, float(os.environ.get("RTLOAD_TRIM_EVERY_S", DEFAULT_EVERY_S)))
    except ValueError:
        return DEFAULT_EVERY_S


def release_free_memory() -> float | None:
    """Return the allocator's free pages to the system; the ms it took (None: not available)."""
    trim = _trim_function()
    if trim is None:
        return None
    started = time.perf_counter()
    if gevent_active():
        from gevent import get_hub

        pool: Any = get_hub().threadpool
        pool.apply(trim, (0,))  # this greenlet waits; the others (the audio clock) run meanwhile
    else:
        trim(0)
    return (time.perf_counter() - started) * 1000.0
