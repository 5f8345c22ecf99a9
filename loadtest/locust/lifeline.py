"""A child of ``rtload run`` ends within a second of its parent's death: no orphaned load.

``rtload run`` starts every Locust process (standalone, master, workers) with ``RTLOAD_PARENT_PID``
set to its own pid. :func:`arm`, called once in the child, then ties the child's life to it:

- on Linux, ``prctl(PR_SET_PDEATHSIG, sig)`` (through ctypes) when a ``death_signal`` is given:
  the kernel signals the child the moment its parent dies (nothing else runs in the child then);
- otherwise (no ``death_signal``, because the child has something to save first, or not Linux), a
  watchdog on a real OS thread (not a greenlet: it runs even while the gevent hub is busy) polls
  ``os.getppid()`` every ``poll_s``; once the parent is gone (the child was re-parented) it runs
  ``on_orphaned`` and ends the process ``grace_s`` later whatever that callback does.

A parent that died before :func:`arm` ran is caught by the same check (the parent pid differs).
Without ``RTLOAD_PARENT_PID`` (plain ``locust -f``) nothing is armed.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable

PARENT_ENV = "RTLOAD_PARENT_PID"
PR_SET_PDEATHSIG = 1
ORPHANED_EXIT_CODE = 1


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) plus ``RTLOAD_PARENT_PID``: for the children this process starts."""
    return {**(os.environ if env is None else env), PARENT_ENV: str(os.getpid())}


def expected_parent() -> int | None:
    try:
        return int(os.environ.get(PARENT_ENV, ""))
    except ValueError:
        return None


def set_death_signal(sig: int) -> bool:
    """Linux: have the kernel send ``sig`` to this process when its parent dies. False elsewhere."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _native_thread_tools() -> tuple[Callable[..., object], Callable[[float], None]]:
    """The unpatched thread start and sleep (gevent's monkey-patching turns threads into greenlets)."""
    import _thread
    import time

    try:
        from gevent import monkey

        return monkey.get_original("_thread", "start_new_thread"), monkey.get_original("time", "sleep")
    except ImportError:
        return _thread.start_new_thread, time.sleep


def arm(
    on_orphaned: Callable[[], None] | None = None,
    *,
    death_signal: int | None = None,
    poll_s: float = 0.2,
    grace_s: float = 1.0,
) -> bool:
    """Tie this process to the parent named by ``RTLOAD_PARENT_PID``; False when there is none.

    ``on_orphaned`` runs on the watchdog thread (keep it short; hand work to the main loop);
    the process exits ``grace_s`` after the parent's death is noticed, at the latest.
    """
    parent = expected_parent()
    if parent is None:
        return False
    if death_signal is not None and set_death_signal(death_signal):
        if os.getppid() != parent:  # it died before the kernel was told
            os._exit(ORPHANED_EXIT_CODE)
        return True
    start_thread, sleep = _native_thread_tools()

    def watch() -> None:
        while os.getppid() == parent:
            sleep(poll_s)
        if on_orphaned is not None:
            with contextlib.suppress(Exception):
                on_orphaned()
        sleep(grace_s)
        os._exit(ORPHANED_EXIT_CODE)

    start_thread(watch, ())
    return True
