"""Run by bench_tls.py in a child process: the per-frame CPU cost of wss:// against ws:// through
the session's own transport, gevent-patched as Locust runs it.

``argv``: plain URL, TLS URL, CA file, sessions, rounds, batch, breakdown (0/1). Opens ``sessions``
ws:// and ``sessions`` wss:// connections to bench/harness_server.js (one plain peer, one TLS
peer), then runs ``rounds`` rounds per group, the two groups alternating: in each round every
connection sends one 100 ms PCM16 append (the bench stream's frame, 6.4 KB) and reads the one
audio delta (6.6 KB) the peer answers, ``batch`` connections at a time; reads go through
:meth:`WebSocketTransport.read_ready` (the shared receiver's non-blocking read, kernel stamps and
all), sends through :meth:`WebSocketTransport.send` (the cooperative write). CPU time of this
thread per append+delta pair, the waits for the peer excluded (a blocked epoll costs none).
With ``breakdown`` the TLS layer's two calls are timed too (a wrapper around each: a few tenths
of a microsecond of its own). Prints one JSON line. The ``loadtest`` imported is whichever is
first on the path (bench_tls.py points PYTHONPATH at an older tree for a before/after).
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import ssl  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import loadtest  # noqa: E402
from loadtest.audio.frames import encode_wire  # noqa: E402
from loadtest.session import tls as tls_module  # noqa: E402
from loadtest.session.reactor import epoll_class  # noqa: E402
from loadtest.session.transport import WebSocketTransport  # noqa: E402

DELTA = b'{"type":"response.output_audio.delta"'


class _Timed:
    """Wraps the TLS layer's encrypt and decrypt with thread-CPU timers (the breakdown pass)."""

    def __init__(self) -> None:
        self.ns = {"encrypt": 0, "decrypt": 0}
        self.calls = {"encrypt": 0, "decrypt": 0}

    def install(self) -> None:
        cls = tls_module.TLSLayer
        clock = time.thread_time_ns
        for name in ("encrypt", "decrypt"):
            inner = getattr(cls, name)

            def timed(layer: Any, data: Any, _inner: Any = inner, _name: str = name) -> Any:
                t0 = clock()
                out = _inner(layer, data)
                self.ns[_name] += clock() - t0
                self.calls[_name] += 1
                return out

            setattr(cls, name, timed)


class Group:
    def __init__(self, url: str, ctx: ssl.SSLContext, sessions: int) -> None:
        self.transports: list[WebSocketTransport] = []
        for _ in range(sessions):
            t = WebSocketTransport(ssl_context=ctx)
            hs = t.connect(url, [], 20.0)
            if not hs.ok:
                raise RuntimeError(f"connect {url}: {hs.error}")
            self.transports.append(t)
        self.epoll = epoll_class()()
        self.by_fd = {t.fileno(): t for t in self.transports}
        for fd in self.by_fd:
            self.epoll.register(fd, 1)
        self.deltas = 0
        self.reads = 0

    def on_message(self, data: bytes, t: float) -> None:
        if data.startswith(DELTA):
            self.deltas += 1

    def round(self, message: bytes, batch: int) -> float:
        """One append out and its delta back on every connection: CPU seconds of this thread."""
        on_message, poll, by_fd = self.on_message, self.epoll.poll, self.by_fd
        transports = self.transports
        t0 = time.thread_time()
        deadline = time.monotonic() + 30.0
        for start in range(0, len(transports), batch):
            part = transports[start : start + batch]
            want = self.deltas + len(part)
            for t in part:
                if not t.send(message):
                    raise RuntimeError("a send failed")
            while self.deltas < want:
                if time.monotonic() > deadline:
                    raise RuntimeError("the peer stopped answering")
                for fd, _ev in poll(1.0, 1024):
                    self.reads += 1
                    if by_fd[fd].read_ready(on_message) is not None:
                        raise RuntimeError("a connection ended")
        return time.thread_time() - t0

    def close(self) -> None:
        for t in self.transports:
            t.abort()


def main() -> None:
    plain_url, tls_url, cafile = sys.argv[1], sys.argv[2], sys.argv[3]
    sessions, rounds, batch, breakdown = (int(x) for x in sys.argv[4:8])
    ctx = ssl.create_default_context(cafile=cafile)
    timed = _Timed()
    groups = {"plain": Group(plain_url, ctx, sessions), "tls": Group(tls_url, ctx, sessions)}
    # one 100 ms PCM16 frame of the bench stream (a quiet signal: the bytes do not matter)
    message = encode_wire(bytes(4800 * 3), 100).messages[0]
    for group in groups.values():  # warm up: the peers' first responses open, caches fill
        group.round(message, batch)
        group.round(message, batch)
    if breakdown:
        timed.install()
    per_pair: dict[str, list[float]] = {"plain": [], "tls": []}
    reads0 = {name: g.reads for name, g in groups.items()}
    for i in range(rounds):
        order = ("plain", "tls") if i % 2 == 0 else ("tls", "plain")
        for name in order:
            per_pair[name].append(groups[name].round(message, batch) / sessions * 1e6)
    backlog = sum(t.backlog_writes for g in groups.values() for t in g.transports)
    for group in groups.values():
        group.close()
    diffs = [t - p for t, p in zip(per_pair["tls"], per_pair["plain"], strict=True)]
    out: dict[str, Any] = {
        "loadtest": loadtest.__file__,
        "sessions": sessions,
        "rounds": rounds,
        "batch": batch,
        "plain_us_per_pair": round(statistics.median(per_pair["plain"]), 2),
        "tls_us_per_pair": round(statistics.median(per_pair["tls"]), 2),
        "tls_minus_plain_us": round(statistics.median(diffs), 2),
        "tls_over_plain": round(statistics.median(per_pair["tls"]) / statistics.median(per_pair["plain"]), 3),
        "reads_per_pair": {n: round((g.reads - reads0[n]) / (rounds * sessions), 3) for n, g in groups.items()},
        "backlog_writes": backlog,
    }
    if breakdown:
        pairs = rounds * sessions
        out["tls_layer_us_per_pair"] = {k: round(v / pairs / 1000, 2) for k, v in timed.ns.items()}
        out["tls_layer_calls_per_pair"] = {k: round(v / pairs, 3) for k, v in timed.calls.items()}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
