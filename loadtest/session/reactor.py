"""One receive loop per process: a single greenlet reads every connection that is ready.

With a receiver greenlet blocked on each socket, every incoming message costs an event-loop
wake-up, two greenlet switches and gevent's socket wrapper; at hundreds of sessions that
machinery, not the audio, is what the process spends its time on. The :class:`Reactor` keeps
the process's connections (``ws://``, and ``wss://``, whose TLS is a layer over the same plain
socket) in one ``epoll`` set; its greenlet waits for that
set to become readable (one gevent watcher), then reads, parses and delivers the messages of
every ready connection in turn, at most ``BATCH`` connections before it yields again. Between
connections it sends whatever audio has fallen due on the shared audio clock
(:mod:`loadtest.session.pacer`), so a burst of work (hundreds of responses finishing at once)
does not hold the clock's frames back.

Reads that time a response come first: while a connection's response waits for its first output
(its first audio delta; its first text delta if it asked for text only;
:meth:`Reactor.set_awaiting_output`, driven by the session's router), the connection is also in a
second, small epoll set that is polled between every two connections served. Near saturation the
bulk of reads can fall behind by a delta period or more; the kernel then merges the queued deltas
and stamps them with the newest arrival, so a first delta read late would get the next delta's
time. Reading the waiting connections first keeps time to first audio exact.

The receiver knows connections only as :class:`~loadtest.session.link.ReadSource` objects (a
descriptor and a non-blocking read) and the audio clock only as a :class:`DueClock`; the
transports are handed the receiver (:mod:`loadtest.session.runtime` wires them), so neither
module imports the other.

Each connection's receiver greenlet still exists, parked in :meth:`Reactor.serve` until its
connection ends, so a session owns and kills its receiver exactly as before. Arrival times are
unchanged (the kernel's SO_TIMESTAMP where available). Used only under gevent on Linux; a TLS
connection's read decrypts everything it completes, so no plaintext waits where epoll cannot see
it; ``RTLOAD_SHARED_RECEIVER=0`` turns it off (for A/B comparisons; read when the process's
runtime is made).
"""

from __future__ import annotations

import contextlib
import logging
import select
import sys
import time
from typing import Any, Protocol

from loadtest.session.link import CLOSE_ABNORMAL, CloseInfo, OnMessage, ReadSource

log = logging.getLogger("loadtest.session")

BATCH = 32  # connections served per wake-up before yielding to the audio clock and the sessions


_EPOLLIN = 0x001


class DueClock(Protocol):
    """The shared audio clock as the receiver sees it (see :class:`loadtest.session.pacer.Pacer`)."""

    def next_due(self) -> float: ...
    def send_due(self) -> None: ...


def epoll_class() -> Any:
    """The OS's epoll (gevent's monkey-patching hides ``select.epoll``; polling it with a zero
    timeout never blocks, so the original is safe to use). None where there is none."""
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
    __slots__ = ("done", "fd", "info", "on_message", "source")

    def __init__(self, source: ReadSource, fd: int, on_message: OnMessage, done: Any) -> None:
        self.source = source
        self.fd = fd
        self.on_message = on_message
        self.done = done
        self.info: CloseInfo | None = None


class Reactor:
    """The process's shared receiver (see the module docstring)."""

    def __init__(self, clock: DueClock | None = None) -> None:
        self._clock = clock
        self._epoll: Any = None
        self._watches: dict[int, _Watch] = {}  # by file descriptor
        self._by_source: dict[int, _Watch] = {}  # by id(source)
        self._greenlet: Any = None
        self._awaiting: Any = None  # the connections whose response waits for a first output (polled first)
        self._awaiting_fds: set[int] = set()
        self.wakeups = 0
        self.reads = 0
        self.awaiting_reads = 0  # reads of a connection whose response waited for its first output

    @property
    def watching(self) -> int:
        """How many connections this receiver reads now."""
        return len(self._watches)

    def awaiting_fds(self) -> list[int]:
        """The descriptors read first now (their response waits for its first output)."""
        return sorted(self._awaiting_fds)

    def serve(self, source: ReadSource, on_message: OnMessage) -> CloseInfo:
        """Read ``source`` in the shared loop until its connection ends (blocks this greenlet)."""
        import gevent
        from gevent.event import Event

        fd = source.fileno()
        if fd < 0:
            return CloseInfo(code=CLOSE_ABNORMAL, reason="not connected", t=time.time())
        if self._epoll is None:
            self._epoll = epoll_class()()
        watch = _Watch(source, fd, on_message, Event())
        self._watches[fd] = watch
        self._by_source[id(source)] = watch
        self._epoll.register(fd, _EPOLLIN)
        if source.awaiting_output:
            self.set_awaiting_output(source, True)
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)
        try:
            watch.done.wait()
        finally:
            self._forget(watch)
        assert watch.info is not None
        return watch.info

    def set_awaiting_output(self, source: ReadSource, awaiting: bool) -> None:
        """Read ``source`` before the others while ``awaiting`` (its response waits for a first
        output delta); the connection stays in the main set too."""
        watch = self._by_source.get(id(source))
        if watch is None or watch.source is not source:
            return
        fd = watch.fd
        if awaiting and fd not in self._awaiting_fds:
            if self._awaiting is None:
                self._awaiting = epoll_class()()
            try:
                self._awaiting.register(fd, _EPOLLIN)
            except FileExistsError:  # a registration the kernel kept (the fd's file is shared): reuse it
                pass
            except OSError:
                return
            self._awaiting_fds.add(fd)
        elif not awaiting and fd in self._awaiting_fds:
            self._not_awaiting(fd)

    def _not_awaiting(self, fd: int) -> None:
        self._awaiting_fds.discard(fd)
        with contextlib.suppress(OSError, ValueError):  # closed: the kernel dropped it already
            self._awaiting.unregister(fd)

    def _forget(self, watch: _Watch) -> None:
        fd = watch.fd
        if self._watches.get(fd) is watch:
            del self._watches[fd]
            if self._by_source.get(id(watch.source)) is watch:
                del self._by_source[id(watch.source)]
            if fd in self._awaiting_fds:
                self._not_awaiting(fd)
            with contextlib.suppress(OSError, ValueError):  # closed: the kernel dropped it already
                self._epoll.unregister(fd)

    def _end(self, watch: _Watch, info: CloseInfo) -> None:
        watch.info = info
        self._forget(watch)
        watch.done.set()

    def dropped(self, source: ReadSource) -> None:
        """``source`` is dropping its connection: end its watch as a failed read would have."""
        watch = self._by_source.get(id(source))
        if watch is None or watch.source is not source:
            return
        try:
            info = source.read_ended(watch.on_message)
        except Exception:
            info = None
        if info is None:
            info = _dropped()
        self._end(watch, info)

    def _run(self) -> None:
        from gevent import get_hub

        hub = get_hub()
        epoll = self._epoll
        # unref'd: an idle shared receiver never keeps the process's event loop alive by itself
        watcher = hub.loop.io(epoll.fileno(), 1, ref=False)
        watches = self._watches
        clock = self._clock
        next_due = clock.next_due if clock is not None else (lambda: float("inf"))
        send_due = clock.send_due if clock is not None else (lambda: None)
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
            awaiting = self._awaiting_fds
            if awaiting:
                self._serve_awaiting()
            for fd, _mask in ready:
                watch = watches.get(fd)
                if watch is None:
                    continue
                self._read(watch)
                if next_due() <= monotonic():  # audio due while we read: send it now
                    send_due()
                if awaiting:
                    self._serve_awaiting()

    def _read(self, watch: _Watch) -> None:
        self.reads += 1
        try:
            info = watch.source.read_ready(watch.on_message)
        except Exception:  # one connection's trouble must never stop the others' reading
            log.exception("receiving failed")
            info = _dropped()
        if info is not None:
            self._end(watch, info)

    def _serve_awaiting(self) -> None:
        """Read the connections waiting for a first output delta that have something to read."""
        try:
            ready = self._awaiting.poll(0, BATCH)
        except InterruptedError:
            return
        watches = self._watches
        for fd, _mask in ready:
            watch = watches.get(fd)
            if watch is not None:
                self.awaiting_reads += 1
                self._read(watch)
