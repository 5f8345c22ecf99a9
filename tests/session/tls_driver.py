"""Run in a subprocess by test_tls.py: one wss:// connection under gevent, as Locust runs it.

Sends ``session.update``, then ``frames`` 100 ms appends back to back (large writes through TLS
without blocking: what the socket cannot take goes to the connection's backlog helper, as TLS
records), then connects to ``release_port`` (the TLS front holds its reads until then, so the
burst must queue), then a text turn; every event is read by the process's shared receiver (TLS
is a layer over the plain socket, so it reads and stamps TLS connections too). Prints one JSON line.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import socket  # noqa: E402
import ssl  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import orjson  # noqa: E402
import pybase64  # noqa: E402

from loadtest.protocol.dialects import GA  # noqa: E402
from loadtest.protocol.targets import Target  # noqa: E402
from loadtest.session.runtime import process_runtime  # noqa: E402


def main() -> None:
    url, cafile, frames, release_port = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    target = Target(base_url=url, api_key="mock-key", label="mock")
    runtime = process_runtime()
    transport = runtime.new_transport(ssl_context=ssl.create_default_context(cafile=cafile))
    hs = transport.connect(target.url(), target.headers(), timeout=10)
    types: list[str] = []
    done = gevent.event.Event()

    def on_message(data: bytes, t: float) -> None:
        kind = orjson.loads(data).get("type")
        types.append(kind)
        if kind == "response.done":
            done.set()

    receiver = gevent.spawn(transport.receive_loop, on_message)
    ok = transport.send(orjson.dumps(GA.session_update(output_modalities=["text"], turn_detection=None)))
    chunk = pybase64.b64encode(bytes(4800)).decode()
    t0 = time.time()
    for _ in range(frames):  # as fast as the socket takes them: never blocks the sender
        ok &= transport.send(orjson.dumps({"type": GA.client_audio_append, "audio": chunk}))
    send_s = time.time() - t0
    queued = transport.backlog_writes
    socket.create_connection(("127.0.0.1", release_port), timeout=5).close()  # the front reads again
    ok &= transport.send(orjson.dumps(GA.user_text_item("Hello over TLS")))
    ok &= transport.send(orjson.dumps(GA.response_create(output_modalities=["text"])))
    answered = done.wait(15)
    shared = transport.shared_receiver_ok()
    reactor = runtime.reactor
    watched = reactor.watching if reactor is not None else 0
    transport.close()
    receiver.join(timeout=5)
    info = receiver.value
    lag = runtime.figures.receive_lag.take()
    print(
        json.dumps(
            {
                "handshake": hs.ok,
                "status": hs.status,
                "sends_ok": bool(ok),
                "send_s": send_s,
                "bytes_sent": transport.bytes_sent,
                "answered": answered,
                "backlog_helpers": queued,
                "types": types,
                "shared_receiver": shared,
                "watched": watched,
                "reads": reactor.reads if reactor is not None else 0,
                "stamped_reads": lag["frames"],
                "close_code": info.code if info is not None else None,
            }
        )
    )


if __name__ == "__main__":
    main()
