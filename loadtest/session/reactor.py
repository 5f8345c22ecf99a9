"""One receive loop per process: a single greenlet reads every plain connection that is ready.

With a receiver greenlet blocked on each socket, every incoming message costs an event-loop
wake-up, two greenlet switches and gevent's socket wrapper; at hundreds of sessions that
machinery, not the audio, is what the process spends its time on. The :class:`Reactor` keeps
the process's plain (``ws://``) connections in one ``epoll`` set; its greenlet waits for that
set to become readable (one gevent watcher), then reads, parses and delivers the messages of
every ready connection in turn, at most ``BATCH`` connections before it yields again. Between
connections it sends whatever audio has fallen due on the shared audio clock
(:mod:`loadtest.session.pacer`), so a burst of work (hundreds of responses finishing at once)
does not hold the clock's frames back.

Reads that time a response come first: while a connection's response waits for its first
audio delta (text delta, if it asked for text only; :meth:`Reactor.prioritise`, driven by the
session's router), the connection is also in a second, small epoll set that is polled between
every two connections served. Near saturation the bulk of reads can fall behind by a delta
period or more; the kernel then merges the queued deltas and stamps them with the newest
arrival, so a first delta read late would get the next delta's time. Reading the waiting
connections first keeps time to first audio exact.

Each connection's receiver greenlet still exists, parked in :meth:`Reactor.serve` until its
connection ends, so a session owns and kills its receiver exactly as before. Arrival times are
unchanged (the kernel's SO_TIMESTAMP where available). Used only under gevent on Linux for
sockets without TLS (a TLS object may hold decrypted bytes its socket no longer shows);
``RTLOAD_SHARED_RECEIVER=0`` turns it off (for A/B comparisons).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loadtest.session.transport import CLOSE_ABNORMAL, CloseInfo

if TYPE_CHECKING:
    from loadtest.session.transport import WebSocketTransport

log = logging.getLogger("loadtest.session")

BATCH = 32  # connections served per wake-up before yielding to the audio clock and the sessions


_EPOLLIN = 0x001


def _epoll_class() -> Any:
    """The OS's epoll (gevent's monkey-patching hides ``select.epoll``; polling it with a zero
    timeout never blocks, so the original is safe to use)."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None:
        try:
            return monkey.get_original("select", "epoll")
        except AttributeError:
            return None
    return getattr(select, "epoll", None)


def _dropped() -> CloseInfo:
    """How a connection ended when reading it failed on our side."""
    return CloseInfo(code=CLOSE_ABNORMAL, by_server=False, t=time.time())


class _Watch:
    __slots__ = ("done", "info", "on_message", "transport")

    def __init__(self, transport: WebSocketTransport, on_message: Callable[[bytes, float], None], done: Any) -> None:
        self.transport = transport
        self.on_message = on_message
        self.done = done
        self.info: CloseInfo | None = None


class Reactor:
    """The process's shared receiver (see the module docstring)."""

    def __init__(self) -> None:
        self.enabled = os.environ.get("RTLOAD_SHARED_RECEIVER", "1") != "0" and _epoll_class() is not None
        self._epoll: Any = None
        self._watches: dict[int, _Watch] = {}
        self._greenlet: Any = None
        self._hot: Any = None  # the connections waiting for a first output delta (polled first)
        self._hot_fds: set[int] = set()
        self.wakeups = 0
        self.reads = 0
        self.hot_reads = 0

    def serve(self, transport: WebSocketTransport, on_message: Callable[[bytes, float], None]) -> CloseInfo:
        """Read ``transport`` in the shared loop until its connection ends (blocks this greenlet)."""
        import gevent
        from gevent.event import Event

        sock = transport._sock
        if sock is None:
            return CloseInfo(code=CLOSE_ABNORMAL, reason="not connected", t=time.time())
        fd = sock.fileno()
        if self._epoll is None:
            self._epoll = _epoll_class()()
        watch = _Watch(transport, on_message, Event())
        self._watches[fd] = watch
        transport._reactor_fd = fd
        self._epoll.register(fd, _EPOLLIN)
        if transport._urgent:
            self.prioritise(transport, True)
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)
        try:
            watch.done.wait()
        finally:
            self._forget(fd, watch)
        assert watch.info is not None
        return watch.info

    def prioritise(self, transport: WebSocketTransport, urgent: bool) -> None:
        """Read ``transport`` before the others while ``urgent`` (its response waits for a first
        output delta); the connection stays in the main set too."""
        fd = transport._reactor_fd
        watch = self._watches.get(fd) if fd is not None else None
        if watch is None or watch.transport is not transport:
            return
        if urgent and fd not in self._hot_fds:
            if self._hot is None:
                self._hot = _epoll_class()()
            try:
                self._hot.register(fd, _EPOLLIN)
            except FileExistsError:  # a registration the kernel kept (the fd's file is shared): reuse it
                pass
            except OSError:
                return
            self._hot_fds.add(fd)
        elif not urgent and fd in self._hot_fds:
            self._unhot(fd)

    def _unhot(self, fd: int) -> None:
        self._hot_fds.discard(fd)
        with contextlib.suppress(OSError, ValueError):  # closed: the kernel dropped it already
            self._hot.unregister(fd)

    def _forget(self, fd: int, watch: _Watch) -> None:
        if self._watches.get(fd) is watch:
            del self._watches[fd]
            watch.transport._reactor_fd = None
            if fd in self._hot_fds:
                self._unhot(fd)
            with contextlib.suppress(OSError, ValueError):  # closed: the kernel dropped it already
                self._epoll.unregister(fd)

    def _end(self, fd: int, watch: _Watch, info: CloseInfo) -> None:
        watch.info = info
        self._forget(fd, watch)
        watch.done.set()

    def aborted(self, transport: WebSocketTransport) -> None:
        """``transport`` is dropping its socket: end its watch as a failed read would have."""
        fd = transport._reactor_fd
        watch = self._watches.get(fd) if fd is not None else None
        if fd is None or watch is None or watch.transport is not transport:
            return
        try:
            info = transport.data_received(b"", time.time(), watch.on_message)
        except Exception:
            info = None
        if info is None:
            info = _dropped()
        self._end(fd, watch, info)

    def _run(self) -> None:
        from gevent import get_hub

        hub = get_hub()
        epoll = self._epoll
        # unref'd: an idle shared receiver never keeps the process's event loop alive by itself
        watcher = hub.loop.io(epoll.fileno(), 1, ref=False)
        watches = self._watches
        from loadtest.session.pacer import PACER

        clock = PACER._heap  # the shared audio clock's deadlines (read-only here)
        send_due = PACER.send_due
        monotonic = time.monotonic
        while True:
            # a full turn of the event loop (the audio clock's and the sessions' timers run too);
            # the epoll set stays readable while connections are left over from the last batch
            hub.wait(watcher)
            try:
                ready = epoll.poll(0, BATCH)
            except InterruptedError:
                continue
            self.wakeups += 1
            hot = self._hot_fds
            if hot:
                self._serve_hot()
            for fd, _mask in ready:
                watch = watches.get(fd)
                if watch is None:
                    continue
                self._read(fd, watch)
                if clock and clock[0][0] <= monotonic():  # audio due while we read: send it now
                    send_due()
                if hot:
                    self._serve_hot()

    def _read(self, fd: int, watch: _Watch) -> None:
        self.reads += 1
        try:
            info = watch.transport.read_ready(watch.on_message)
        except Exception:  # one connection's trouble must never stop the others' reading
            log.exception("receiving failed")
            info = _dropped()
        if info is not None:
            self._end(fd, watch, info)

    def _serve_hot(self) -> None:
        """Read the connections waiting for a first output delta that have something to read."""
        try:
            ready = self._hot.poll(0, BATCH)
        except InterruptedError:
            return
        watches = self._watches
        for fd, _mask in ready:
            watch = watches.get(fd)
            if watch is not None:
                self.hot_reads += 1
                self._read(fd, watch)


REACTOR = Reactor()
