"""Run in a subprocess by test_gevent.py: the session client under gevent's monkey-patching, as Locust
runs it. Prints one JSON line with what happened."""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402

from loadtest.protocol.targets import Target  # noqa: E402
from loadtest.session import concurrency  # noqa: E402
from loadtest.session.client import RealtimeSession  # noqa: E402
from loadtest.session.config import SessionConfig  # noqa: E402
from loadtest.session.runtime import process_runtime  # noqa: E402
from loadtest.session.scenario import SCENARIOS, Scenario, Turn  # noqa: E402
from loadtest.session.sink import MemorySink  # noqa: E402


def main() -> None:
    url = sys.argv[1]
    users = int(sys.argv[2])
    target = Target(base_url=url, api_key="mock-key", label="mock")
    config = SessionConfig(pacing="realtime", response_deadline_s=12, response_idle_s=3, trailing_silence_ms=600)
    sink = MemorySink()
    scenario = Scenario("g", [Turn("server_vad", "short_yes"), Turn("text")])
    sessions = [RealtimeSession(target, scenario, config, sink, user_id=i) for i in range(users)]
    receivers: list[str] = []

    def watch() -> None:  # what kind of receiver each session spawned
        gevent.sleep(0.3)
        for s in sessions:
            if s.receiver is not None:
                receivers.append(s.receiver.kind)

    t0 = time.time()
    greenlets = [gevent.spawn(s.run) for s in sessions] + [gevent.spawn(watch)]
    gevent.joinall(greenlets, timeout=40)
    elapsed = time.time() - t0

    # stop() from another greenlet while a looping session is mid-answer
    stop_sink = MemorySink()
    looping = RealtimeSession(target, SCENARIOS["text_loop"], SessionConfig(pacing="fast"), stop_sink)
    runner = gevent.spawn(looping.run)
    gevent.sleep(0.6)
    receiver = looping.receiver
    t1 = time.time()
    gevent.spawn(looping.stop).join()
    runner.join(timeout=5)
    reactor = process_runtime().reactor
    shared = {
        "enabled": reactor is not None,
        "reads": reactor.reads if reactor else 0,
        "hot_reads": reactor.awaiting_reads if reactor else 0,
        "watching": reactor.watching if reactor else 0,
        "hot": len(reactor.awaiting_fds()) if reactor else 0,
    }
    abort = _abort_wakes_the_receiver(url)
    print(
        json.dumps(
            {
                "gevent_active": concurrency.gevent_active(),
                "elapsed": elapsed,
                "outcomes": sorted((r.user_id, r.turn_index, r.outcome, r.reason) for r in sink.responses),
                "sessions": [s.ended_by for s in sink.sessions],
                "receivers": receivers,
                "clock": sessions[0].runtime.figures.frame_lag.take(),
                "stop_s": time.time() - t1,
                "runner_dead": runner.dead,
                "receiver_dead": receiver is not None and not receiver.alive,
                "stop_outcomes": [(r.outcome, r.reason) for r in stop_sink.responses],
                "stop_sessions": [s.ended_by for s in stop_sink.sessions],
                "threads": [t.name for t in threading.enumerate() if t.name.startswith("rtload")],
                "shared_receiver": shared,
                "abort": abort,
            }
        )
    )


def _abort_wakes_the_receiver(url: str) -> dict:
    """A receiver parked on an open, quiet connection ends by itself when the transport is aborted."""
    from loadtest.protocol.targets import Target as _Target

    target = _Target(base_url=url, api_key="mock-key", label="mock")
    transport = process_runtime().new_transport()  # read by the shared receiver (when it is on)
    hs = transport.connect(target.url(), target.headers(), timeout=5)
    got: list = []
    receiver = gevent.spawn(transport.receive_loop, lambda data, t: got.append(len(data)))
    gevent.sleep(0.5)  # session.created arrives, then the connection goes quiet
    t0 = time.time()
    transport.abort()
    receiver.join(timeout=3)
    info = receiver.value
    return {
        "handshake": hs.ok,
        "messages": len(got),
        "ended": receiver.dead,
        "s": time.time() - t0,
        "code": info.code if info is not None else None,
    }


if __name__ == "__main__":
    main()
