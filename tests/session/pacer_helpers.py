"""Run in a subprocess by test_pacer.py: one scenario of the shared audio clock (:class:`Pacer`) under
gevent's monkey-patching, as Locust runs it. Prints one JSON line with what happened (send times on
``time.monotonic``, the same clock as the streams' deadlines); the test asserts on it.

Usage: ``python -m tests.session.pacer_helpers <scenario>``. Never import this module from a test:
it monkey-patches the importing process.
"""

from gevent import monkey

monkey.patch_all()

import itertools  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402

from loadtest.session.pacer import PacedStream, Pacer  # noqa: E402

SCENARIO_TIMEOUT_S = 15.0
ORDER = itertools.count()  # the order of every send() call in the process, across streams


class Rec:
    """One stream on fake callables, recording every call the clock makes."""

    def __init__(
        self,
        name: str,
        durations_ms: list[float],
        t0: float,
        *,
        send_false_at: int | None = None,
        raise_at: int | None = None,
        alive_for: int | None = None,
        after_send: Callable[[int], None] | None = None,
        alive_raises_at: int | None = None,
    ) -> None:
        self.name = name
        self.durations_ms = durations_ms
        self.t0 = t0
        # distinct lengths so on_sent's byte count can be checked frame by frame
        self.messages = [f"{name}:{i}:".encode() + b"x" * (7 * i + len(name)) for i in range(len(durations_ms))]
        self.sends: list[tuple[float, float, int, int]] = []  # (monotonic, wall, frame index, ORDER) per send()
        self.lags: list[float] = []
        self.on_sent: list[tuple[float, int]] = []
        self.send_false_at = send_false_at
        self.raise_at = raise_at
        self.alive_for = alive_for  # alive() turns False once this many frames were sent
        self.after_send = after_send
        self.alive_raises_at = alive_raises_at  # alive() raises once this many frames were sent
        self.result: bool | None = None
        self.ended: float | None = None  # monotonic time run_stream returned
        self.exit: str | None = None  # how the waiting greenlet ended when it did not return
        self.stream = PacedStream(
            self.messages, durations_ms, t0, self.send, self.alive, self.record_on_sent, self.lags.append, Event()
        )

    def send(self, message: bytes) -> bool:
        index = self.messages.index(message)
        self.sends.append((time.monotonic(), time.time(), index, next(ORDER)))
        if index == self.raise_at:
            raise RuntimeError(f"{self.name}: the socket blew up")
        if self.after_send is not None:
            self.after_send(index)
        return index != self.send_false_at

    def alive(self) -> bool:
        if self.alive_raises_at is not None and len(self.on_sent) >= self.alive_raises_at:
            raise RuntimeError(f"{self.name}: alive() blew up")
        return self.alive_for is None or len(self.on_sent) < self.alive_for

    def record_on_sent(self, t: float, nbytes: int) -> None:
        self.on_sent.append((t, nbytes))

    def run(self, pacer: Pacer) -> None:
        try:
            self.result = pacer.run_stream(self.stream)
        except BaseException as exc:  # GreenletExit when killed
            self.exit = type(exc).__name__
            raise
        finally:
            self.ended = time.monotonic()

    def as_dict(self) -> dict[str, Any]:
        return {
            "t0": self.t0,
            "durations_ms": self.durations_ms,
            "sizes": [len(m) for m in self.messages],
            "sends": self.sends,
            "lags": self.lags,
            "on_sent": self.on_sent,
            "result": self.result,
            "ended": self.ended,
            "exit": self.exit,
            "done": self.stream.done.is_set(),
            "cancelled": self.stream.cancelled,
        }


def run_all(pacer: Pacer, recs: list[Rec]) -> list[gevent.Greenlet]:
    return [gevent.spawn(r.run, pacer) for r in recs]


def out(recs: list[Rec], **extra: Any) -> dict[str, Any]:
    return {"streams": {r.name: r.as_dict() for r in recs}, **extra}


# -- scenarios (each uses its own Pacer) ----------------------------------------------------------
def order() -> dict[str, Any]:
    pacer = Pacer()
    rec = Rec("a", [10, 60, 10, 40, 5, 60, 20, 10, 50, 15], time.monotonic() + 0.02)  # uneven on purpose
    started = time.monotonic()
    gevent.joinall(run_all(pacer, [rec]), raise_error=True)
    return out([rec], started=started, frames=pacer.frames)


def interleave() -> dict[str, Any]:
    pacer = Pacer()
    base = time.monotonic() + 0.02
    recs = [Rec("a", [20] * 10, base), Rec("b", [15] * 10, base + 0.005), Rec("c", [30] * 10, base + 0.010)]
    started = time.monotonic()
    gevent.joinall(run_all(pacer, recs), raise_error=True)
    return out(recs, started=started, finished=time.monotonic(), frames=pacer.frames)


def alive() -> dict[str, Any]:
    pacer = Pacer()
    base = time.monotonic() + 0.02
    recs = [Rec("a", [20] * 10, base), Rec("b", [20] * 10, base + 0.003, alive_for=4), Rec("c", [20] * 10, base)]
    gevent.joinall(run_all(pacer, recs), raise_error=True)
    return out(recs)


def send_fail() -> dict[str, Any]:
    logged: list[dict[str, Any]] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            exc = record.exc_info[1] if record.exc_info else None
            logged.append({"level": record.levelname, "msg": record.getMessage(), "exc": repr(exc)})

    logger = logging.getLogger("loadtest.session")
    logger.addHandler(Catch())
    logger.propagate = False
    pacer = Pacer()
    base = time.monotonic() + 0.02
    recs = [
        Rec("a", [20] * 10, base),
        Rec("b", [20] * 10, base + 0.002, send_false_at=3),
        Rec("c", [20] * 10, base + 0.004, raise_at=2),
    ]
    gevent.joinall(run_all(pacer, recs), raise_error=True)
    return out(recs, logged=logged)


def odd_streams() -> dict[str, Any]:
    """alive() raising, and a stream with nothing to send, next to a normal stream."""
    logger = logging.getLogger("loadtest.session")
    logger.propagate = False
    logger.addHandler(logging.NullHandler())
    pacer = Pacer()
    base = time.monotonic() + 0.02
    recs = [Rec("a", [20] * 10, base), Rec("b", [20] * 10, base + 0.002, alive_raises_at=2), Rec("c", [], base)]
    gevent.joinall(run_all(pacer, recs), raise_error=True)
    return out(recs, frames=pacer.frames)


def kill() -> dict[str, Any]:
    pacer = Pacer()
    base = time.monotonic() + 0.02
    third_sent = Event()
    b = Rec("b", [20] * 10, base + 0.005, after_send=lambda i: third_sent.set() if i == 2 else None)
    recs = [Rec("a", [20] * 14, base), b, Rec("c", [20] * 14, base + 0.01)]
    greenlets = run_all(pacer, recs)
    third_sent.wait()
    greenlets[1].kill(block=True)
    killed_at, sends_at_kill = time.monotonic(), len(b.sends)
    gevent.joinall([greenlets[0], greenlets[2]], raise_error=True)
    gevent.sleep(0.05)  # past b's last deadline (base + 0.185 s) too
    return out(recs, killed_at=killed_at, sends_at_kill=sends_at_kill, killed_dead=greenlets[1].dead)


def wake_earlier() -> dict[str, Any]:
    pacer = Pacer()
    far = Rec("far", [20], time.monotonic() + 1.5)
    g_far = gevent.spawn(far.run, pacer)
    gevent.sleep(0.1)  # the clock is now asleep until far's deadline
    near = Rec("near", [20] * 3, time.monotonic())
    gevent.spawn(near.run, pacer).join()
    far_sends_before_kill = len(far.sends)
    g_far.kill(block=True)
    return out([far, near], far_sends_before_kill=far_sends_before_kill)


def idle() -> dict[str, Any]:
    pacer = Pacer()
    first = Rec("first", [20] * 3, time.monotonic() + 0.01)
    gevent.spawn(first.run, pacer).join()
    gevent.sleep(0.2)  # the heap is empty: the clock waits for work
    second = Rec("second", [20] * 3, time.monotonic())
    gevent.spawn(second.run, pacer).join()
    return out([first, second])


def lag() -> dict[str, Any]:
    pacer = Pacer()
    busy: list[float] = []

    def hog() -> None:  # the whole process stalls: no yield for 70 ms
        start = time.monotonic()
        while time.monotonic() - start < 0.07:
            pass
        busy.extend([start, time.monotonic()])

    rec = Rec("a", [20] * 10, time.monotonic() + 0.02, after_send=lambda i: gevent.spawn(hog) if i == 2 else None)
    gevent.joinall(run_all(pacer, [rec]), raise_error=True)
    return out([rec], busy=busy)


# -- the backlog path: real sockets on 127.0.0.1 ---------------------------------------------------
class Peer:
    """A WebSocket server for one connection on 127.0.0.1 (websockets' Sans-I/O protocol). A paused
    peer does not read until :meth:`resume`; received messages are kept in order."""

    def __init__(self, paused: bool) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.url = f"ws://127.0.0.1:{self.listener.getsockname()[1]}/"
        self.reading = Event()
        if not paused:
            self.reading.set()
        self.messages: list[bytes] = []
        self.first_read: float | None = None
        self.greenlet = gevent.spawn(self._serve)

    def resume(self) -> None:
        self.reading.set()

    def _serve(self) -> None:
        from websockets.frames import Opcode
        from websockets.http11 import Request
        from websockets.server import ServerProtocol

        conn, _ = self.listener.accept()
        proto = ServerProtocol(max_size=None)
        request = None
        while request is None:
            proto.receive_data(conn.recv(65536))
            request = next((e for e in proto.events_received() if isinstance(e, Request)), None)
        proto.send_response(proto.accept(request))
        for chunk in proto.data_to_send():
            conn.sendall(chunk)
        self.reading.wait()
        self.first_read = time.monotonic()
        while True:
            data = conn.recv(1 << 20)
            if not data:
                break
            gevent.sleep(0)  # a reader with data always waiting would otherwise never yield
            proto.receive_data(data)
            for frame in proto.events_received():
                if frame.opcode is Opcode.TEXT:
                    self.messages.append(frame.data)
        conn.close()


def backlog() -> dict[str, Any]:
    from loadtest.session.transport import WebSocketTransport

    slow_peer, fast_peer = Peer(paused=True), Peer(paused=False)
    slow_tr, fast_tr = WebSocketTransport(), WebSocketTransport()
    handshakes = [slow_tr.connect(slow_peer.url, [], 5.0).ok, fast_tr.connect(fast_peer.url, [], 5.0).ok]
    pacer = Pacer()
    n = 40
    base = time.monotonic() + 0.02
    slow = Rec("slow", [20] * n, base)
    fast = Rec("fast", [20] * n, base + 0.007)
    # the slow stream: 256 KiB frames (10 MiB in all, more than the ~4 MiB loopback buffers hold)
    slow.messages[:] = [b'{"seq":%d,"pad":"' % i + b"%c" % (97 + i % 26) * (256 * 1024) + b'"}' for i in range(n)]
    fast.messages[:] = [b'{"seq":%d,"pad":"' % i + b"f" * 200 + b'"}' for i in range(n)]

    def through(rec: Rec, transport: WebSocketTransport) -> Callable[[bytes], bool]:
        def send(message: bytes) -> bool:
            rec.sends.append((time.monotonic(), time.time(), len(rec.sends), next(ORDER)))
            return transport.send_paced(message)

        return send

    slow.stream.send = through(slow, slow_tr)
    fast.stream.send = through(fast, fast_tr)
    greenlets = run_all(pacer, [slow, fast])
    gevent.sleep(max(0.0, base + 0.45 - time.monotonic()))
    queued = sum(nbytes for _, nbytes in slow.on_sent)
    written_while_paused = slow_tr.bytes_sent
    slow_peer.resume()
    gevent.joinall(greenlets, raise_error=True)
    deadline = time.monotonic() + 8.0
    while len(slow_peer.messages) < n and time.monotonic() < deadline:
        gevent.sleep(0.01)
    while len(fast_peer.messages) < n and time.monotonic() < deadline:
        gevent.sleep(0.01)
    slow_tr.abort()
    fast_tr.abort()
    return out(
        [slow, fast],
        handshakes=handshakes,
        queued_while_paused=queued,
        written_while_paused=written_while_paused,
        resumed=slow_peer.first_read,
        slow_in_order=slow_peer.messages == slow.messages,
        slow_received=len(slow_peer.messages),
        fast_in_order=fast_peer.messages == fast.messages,
        fast_received=len(fast_peer.messages),
    )


SCENARIOS: dict[str, Callable[[], dict[str, Any]]] = {
    f.__name__: f for f in (order, interleave, alive, send_fail, odd_streams, kill, wake_earlier, idle, lag, backlog)
}


def main() -> None:
    scenario = SCENARIOS[sys.argv[1]]
    with gevent.Timeout(SCENARIO_TIMEOUT_S):
        result = scenario()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
