"""Run in a subprocess by test_priority.py: the shared receiver under gevent with a backlog.

``count`` connections to the mock each have ``session.created`` and ``session.updated`` waiting
before the shared receiver starts; the last one registered is marked urgent (``urgent=1``) or not.
Prints one JSON line: the order in which connections were first read, and the receiver's counters.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
import orjson  # noqa: E402

from loadtest.protocol.targets import Target  # noqa: E402
from loadtest.session.reactor import BATCH  # noqa: E402
from loadtest.session.runtime import SessionRuntime  # noqa: E402


def main() -> None:
    url, count, urgent = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
    target = Target(base_url=url, api_key="mock-key", label="mock")
    runtime = SessionRuntime(shared_receiver=True)
    reactor = runtime.reactor
    assert reactor is not None
    transports = []
    for _ in range(count):
        transport = runtime.new_transport()
        assert transport.connect(target.url(), target.headers(), timeout=5).ok
        transport.send(orjson.dumps({"type": "session.update", "session": {"type": "realtime"}}))
        transports.append(transport)
    gevent.sleep(0.5)  # every connection has its answers waiting (nothing reads them yet)
    first_read: list[int] = []
    seen: set[int] = set()

    def on_message(index: int):  # type: ignore[no-untyped-def]
        def deliver(data: bytes, t: float) -> None:
            if index not in seen:
                seen.add(index)
                first_read.append(index)
                if index == count - 1:
                    transports[index].set_awaiting_output(False)  # its first output came: back in line

        return deliver

    last = transports[-1]
    last.set_awaiting_output(urgent)  # before the receiver reads it: applied when it is registered
    readers = [gevent.spawn(reactor.serve, tr, on_message(i)) for i, tr in enumerate(transports)]
    deadline = 10.0
    while len(seen) < count and deadline > 0:
        gevent.sleep(0.05)
        deadline -= 0.05
    hot_while_open = reactor.awaiting_fds()
    for transport in transports:
        transport.abort()
    gevent.joinall(readers, timeout=5)
    print(
        json.dumps(
            {
                "batch": BATCH,
                "first_read": first_read,
                "hot_reads": reactor.awaiting_reads,
                "hot_left_after_first_output": hot_while_open,
                "hot_left_after_close": reactor.awaiting_fds(),
                "watching": reactor.watching,
            }
        )
    )


if __name__ == "__main__":
    main()
