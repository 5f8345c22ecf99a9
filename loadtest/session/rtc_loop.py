"""aiortc's asyncio beside the gevent harness: one event loop in one real OS thread per process.

aiortc is asyncio; the harness's sessions are greenlets on gevent's hub (threads without gevent).
Every WebRTC connection of the process lives on one asyncio loop (uvloop where installed) run
by one OS thread that gevent's patching does not turn into a greenlet
(``gevent.monkey.get_original('_thread', 'start_new_thread')``). The two sides meet in two places:

- :meth:`RtcLoop.call`: a greenlet (or thread) runs a coroutine on the loop and waits for its result
  without blocking the hub: the loop thread signals completion through a gevent async watcher
  (``hub.loop.async_()``, libev's thread-safe wake-up), the only gevent call allowed from another
  thread.
- :class:`Inbox`: what a connection receives (data-channel events, decoded RTP audio, its end) is
  appended by the loop thread to the connection's deque (thread-safe appends); one process-wide
  async watcher (:class:`Doorbell`) wakes the hub (at most once per ``HANDOFF_TICK_S``), which
  sets the gevent event of every inbox that
  got something, and each connection's receive loop drains its deque in arrival order. Arrival
  times are stamped in the loop thread when the packet or message came in; how long an item waited
  for its receiver is measured (``handoff`` lag).

Sends go the other way with ``loop.call_soon_threadsafe`` (aiortc objects are only touched on the
loop thread).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor, Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from loadtest.audio.rtp_lane import PacketClock
from loadtest.session import concurrency
from loadtest.session.lagstats import LagStats

log = logging.getLogger("loadtest.session")
SWITCH_INTERVAL_S = 0.001
# the loop thread wakes the hub at most once per tick, for every inbox filled in it: a wake-up per
# RTP packet (50 a second per call) was a thread switch each, the GIL handed back and forth, and the
# harness's busiest line (bench/results/webrtc_profile.json); items keep the arrival time stamped
# when they came in, so a tick only adds to the measured hand-off lag, never to a record's times
# (RTLOAD_RTC_HANDOFF_TICK_S=0: a wake-up per ring, as before; the bench's A/B; read when the
# loop starts, like RTLOAD_RTC_SOON_BATCH)
HANDOFF_TICK_S = 0.005


def _handoff_tick_s() -> float:
    return float(os.environ.get("RTLOAD_RTC_HANDOFF_TICK_S", str(HANDOFF_TICK_S)))


def _os_thread_starter() -> Callable[..., Any]:
    """``_thread.start_new_thread`` as it was before gevent's patching (a real OS thread)."""
    if concurrency.gevent_active():
        from gevent import monkey

        return monkey.get_original("_thread", "start_new_thread")
    import _thread

    return _thread.start_new_thread


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop where installed: libuv does the loop's I/O, so gevent's patched selectors and sockets
    are never used from the loop thread."""
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # (Windows) asyncio's own loop over the unpatched selector
        import selectors

        if concurrency.gevent_active():
            from gevent import monkey

            selector = monkey.get_original("selectors", "DefaultSelector")()
            return asyncio.SelectorEventLoop(selector)
        return asyncio.SelectorEventLoop(selectors.DefaultSelector())


class Doorbell:
    """One gevent async watcher for the process: the loop thread rings it, the hub sets the events
    of the inboxes that were filled (threads without gevent: the inbox's event is set directly)."""

    def __init__(self, tick_s: float = HANDOFF_TICK_S) -> None:
        self._ready: collections.deque[Inbox] = collections.deque()
        self._watcher: Any = None
        self._tick_s = tick_s
        self._armed = False  # a wake-up is scheduled (touched on the loop thread only)
        self.rings = 0  # hub wake-ups
        if concurrency.gevent_active():
            import gevent

            self._watcher = gevent.get_hub().loop.async_()
            self._watcher.ref = False  # it never keeps the hub alive by itself
            self._watcher.start(self._on_ring)

    @property
    def tick_s(self) -> float:
        """The least time between two hub wake-ups (0: one per ring)."""
        return self._tick_s

    def ring(self, inbox: Inbox) -> None:
        """From the loop thread: ``inbox`` has items."""
        if self._watcher is None:
            inbox.event.set()  # a threading.Event: safe from any thread
            return
        self._ready.append(inbox)
        if not self._armed:
            self._armed = True
            try:
                if self._tick_s <= 0:
                    raise RuntimeError
                asyncio.get_running_loop().call_later(self._tick_s, self._send)
            except RuntimeError:  # (not on the loop thread, or no tick: at once)
                self._send()

    def _send(self) -> None:  # on the loop thread
        self._armed = False
        self._watcher.send()  # one hub wake-up for every ring since the last

    def _on_ring(self) -> None:  # in the hub
        self.rings += 1
        ready = self._ready
        while ready:
            ready.popleft().event.set()


class Inbox:
    """One connection's items from the loop thread, in arrival order (see the module docstring)."""

    __slots__ = ("_doorbell", "event", "items", "signalled")

    def __init__(self, doorbell: Doorbell) -> None:
        self._doorbell = doorbell
        self.items: collections.deque[tuple[Any, ...]] = collections.deque()
        self.event = concurrency.new_event()
        self.signalled = False

    def put(self, item: tuple[Any, ...]) -> None:
        """From the loop thread."""
        self.items.append(item)
        if not self.signalled:
            self.signalled = True
            self._doorbell.ring(self)

    def wait(self, timeout: float | None = None) -> None:
        """From the receiver: wait until something came (or ``timeout``), then re-arm the signal."""
        if not self.items:
            self.event.wait(timeout)
        self.event.clear()
        self.signalled = False  # (before draining: an item put from now on rings again)


class InlineExecutor(Executor):
    """The loop's default executor: runs the call at once on the loop thread. A thread pool made
    from the loop thread under gevent's patching would be greenlets of a hub that never runs
    (and the interpreter's exit would wait for them forever); what aiortc and asyncio hand an
    executor here is short (an address lookup of an IP literal)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


class RtcLoop:
    """The process's asyncio loop for WebRTC, in its own OS thread (started on first use)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = concurrency.new_lock()
        self.doorbell: Doorbell | None = None
        self._outbox: collections.deque[tuple[Callable[..., Any], tuple[Any, ...]]] = collections.deque()
        self._outbox_armed = False  # a drain is scheduled on the loop
        self.wakeups = 0  # the loop thread woken by soon()
        self.handoff_lag = LagStats()  # ms an item waited between the loop thread and its receiver
        self.packet_clock = PacketClock()  # every call's outgoing RTP (used on the loop thread only)
        self.calls = 0
        self._soon_batch = True  # (RTLOAD_RTC_SOON_BATCH, read when the loop starts)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._start()
            assert self._loop is not None
            return self._loop

    def _start(self) -> None:
        self.doorbell = Doorbell(_handoff_tick_s())  # (made here, in the hub's thread)
        self._soon_batch = os.environ.get("RTLOAD_RTC_SOON_BATCH", "1") != "0"
        # two threads share the GIL now: the harness's audio clock waits for it at most this long
        # for the loop thread to let go (Python's default is 5 ms: a frame's whole lateness budget)
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        made: list[asyncio.AbstractEventLoop] = []

        def run() -> None:  # the loop is made in the thread that runs it
            loop = _new_loop()
            loop.set_default_executor(InlineExecutor())
            asyncio.set_event_loop(loop)
            loop.call_soon(made.append, loop)
            try:
                loop.run_forever()
            except Exception:  # the loop must never die silently
                log.exception("the WebRTC event loop stopped")

        _os_thread_starter()(run, ())
        deadline = time.monotonic() + 10.0
        while not made:
            if time.monotonic() > deadline:
                raise RuntimeError("the WebRTC event loop thread did not start")
            concurrency.sleep(0.001)
        self._loop = made[0]

    def new_inbox(self) -> Inbox:
        self.loop  # noqa: B018 (starts the loop and its doorbell)
        assert self.doorbell is not None
        return Inbox(self.doorbell)

    def submit(self, coro: Coroutine[Any, Any, Any]) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop thread (fire and forget), in the order asked.

        Calls are queued and the loop thread is woken once for all that were queued before it ran
        (the audio clock sends every due session's append in one pass: one wake-up, not one each;
        ``RTLOAD_RTC_SOON_BATCH=0``: a wake-up per call, the bench's A/B)."""
        loop = self.loop
        if not self._soon_batch:
            self.wakeups += 1
            with contextlib.suppress(RuntimeError):  # the loop is closing (process exit)
                loop.call_soon_threadsafe(fn, *args)
            return
        self._outbox.append((fn, args))
        if not self._outbox_armed:
            self._outbox_armed = True
            self.wakeups += 1
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._drain_outbox)

    def _drain_outbox(self) -> None:  # on the loop thread
        self._outbox_armed = False  # (first: a call queued from now on wakes the loop again)
        outbox = self._outbox
        while outbox:
            fn, args = outbox.popleft()
            try:
                fn(*args)
            except Exception:  # one call's failure is its own (as call_soon's would be)
                log.exception("a WebRTC loop call failed")

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float) -> Any:
        """Run ``coro`` on the loop and wait for its result, cooperatively (raises its exception,
        or TimeoutError after ``timeout``; the coroutine is then cancelled)."""
        self.calls += 1
        future = self.submit(coro)
        if not concurrency.gevent_active():
            try:
                return future.result(timeout)
            except FutureTimeout:
                future.cancel()
                raise TimeoutError from None
        import gevent
        from gevent.event import Event

        done = Event()
        watcher = gevent.get_hub().loop.async_()
        watcher.start(done.set)
        waiting = [True]

        def wake(_future: Future[Any]) -> None:  # on the loop thread
            if waiting[0]:
                watcher.send()

        try:
            future.add_done_callback(wake)
            if not done.wait(timeout) and not future.done():
                future.cancel()
                raise TimeoutError
            return future.result(0)
        finally:
            waiting[0] = False
            watcher.stop()
            watcher.close()


_PROCESS_LOOP: RtcLoop | None = None


def process_loop() -> RtcLoop:
    """The process's one WebRTC loop (made on first call; its thread starts on first use)."""
    global _PROCESS_LOOP
    if _PROCESS_LOOP is None:
        _PROCESS_LOOP = RtcLoop()
    return _PROCESS_LOOP
