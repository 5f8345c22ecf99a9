"""The tiny concurrency layer a session needs: spawn a receiver, events, a lock, sleep.

Under Locust the process is monkey-patched by gevent before anything else runs, so ``socket`` is
cooperative and a session's receiver must be a greenlet. Without gevent (unit and end-to-end
tests that do not import locust) the same code runs with a daemon thread. The choice is made per
call from whether gevent has patched ``socket`` (``gevent.monkey.is_module_patched``), so a
module imported before patching still does the right thing afterwards.

Only what the session uses is here: :func:`spawn` returns a :class:`Task` that can be joined and
killed; :func:`new_event` and :func:`new_lock` return objects with the ``threading`` API (gevent's
own under gevent); :func:`wait` waits for an event with a timeout (without gevent's garbage);
:func:`sleep` yields to other greenlets under gevent.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol


def gevent_active() -> bool:
    """True when gevent has monkey-patched ``socket`` in this process."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None:
        return False
    try:
        return bool(monkey.is_module_patched("socket"))
    except Exception:
        return False


class EventLike(Protocol):
    def set(self) -> None: ...
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = None) -> bool: ...
    def clear(self) -> None: ...


class Task:
    """A spawned receiver: a greenlet under gevent, a daemon thread otherwise."""

    __slots__ = ("_greenlet", "_thread")

    def __init__(self, target: Callable[[], Any], name: str) -> None:
        self._greenlet: Any = None
        self._thread: threading.Thread | None = None
        if gevent_active():
            import gevent

            self._greenlet = gevent.spawn(target)
        else:
            self._thread = threading.Thread(target=target, name=name, daemon=True)
            self._thread.start()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the task to end; True when it has."""
        if self._greenlet is not None:
            self._greenlet.join(timeout)
            return bool(self._greenlet.dead)
        assert self._thread is not None
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def kill(self, timeout: float = 1.0) -> None:
        """End the task. A greenlet is killed; a thread must be unblocked by its owner (closing the
        socket does that) and is joined here."""
        if self._greenlet is not None:
            if not self._greenlet.dead:
                self._greenlet.kill(block=True, timeout=timeout)
            return
        assert self._thread is not None
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def kind(self) -> str:
        """ "greenlet" or "thread"."""
        return "greenlet" if self._greenlet is not None else "thread"

    @property
    def alive(self) -> bool:
        if self._greenlet is not None:
            return not self._greenlet.dead
        return self._thread is not None and self._thread.is_alive()


def spawn(target: Callable[[], Any], name: str = "rtload-receiver") -> Task:
    return Task(target, name)


def new_event() -> EventLike:
    if gevent_active():
        from gevent.event import Event

        return Event()
    return threading.Event()


def new_lock() -> Any:
    if gevent_active():
        from gevent.lock import RLock

        return RLock()
    return threading.RLock()


_resume_hook: Callable[[], None] | None = None


def set_resume_hook(hook: Callable[[], None] | None) -> None:
    """Run ``hook`` whenever a greenlet resumes from :func:`wait` or :func:`sleep` (the shared audio
    clock catches up there: when many sessions wake at once, gevent runs them back to back
    without servicing timers in between, so each resuming session first sends the frames that
    fell due while the others ran)."""
    global _resume_hook
    _resume_hook = hook


def _resumed() -> None:
    hook = _resume_hook
    if hook is not None:
        with contextlib.suppress(Exception):  # the clock logs its own trouble; never fail a session for it
            hook()


def wait(event: EventLike, timeout: float) -> bool:
    """``event.wait(timeout)`` without gevent's thrown ``Timeout``; True when the event is set.

    gevent's own ``Event.wait(timeout)`` ends an expired wait by throwing a ``Timeout`` into the
    waiting greenlet: about 10 us per expired wait here (compiled gevent), and in pure-Python gevent
    a reference cycle of ~14 objects each time that only the cyclic garbage collector frees. Here a
    timer and the event's link both wake the waiter through a :class:`gevent.hub.Waiter`: nothing is
    thrown (~4.4 us). The timer counts from now, not from the loop's cached time, so a wait after
    busy work is not cut short.
    """
    if not gevent_active():
        return event.wait(timeout)
    if event.is_set():
        return True
    from gevent.hub import Waiter, get_hub

    hub = get_hub()
    waiter = Waiter(hub)
    woken = [False]

    def wake(value: bool) -> None:
        if not woken[0]:
            woken[0] = True
            waiter.switch(value)

    def on_set(_event: Any) -> None:
        wake(True)

    timer = hub.loop.timer(max(0.0, timeout))
    timer.start(wake, False, update=True)  # from now, not from the loop's cached time (busy greenlets)
    event.rawlink(on_set)  # type: ignore[attr-defined]
    try:
        result = bool(waiter.get())
    finally:
        woken[0] = True
        timer.stop()
        timer.close()
        event.unlink(on_set)  # type: ignore[attr-defined]
    _resumed()
    return result


def sleep(seconds: float) -> None:
    if gevent_active():
        import gevent

        gevent.sleep(max(0.0, seconds))
        _resumed()
    else:
        time.sleep(max(0.0, seconds))
