"""The session client's receive hot path: cost per audio delta, with and without the socket.

1. ``router``: parse (orjson) + dispatch + base64 decode (pybase64) + AudioAnalyzer, per 100 ms delta,
   pcm16 and g711_ulaw, no I/O.
2. ``socket``: the same through a real loopback WebSocket (the session's transport over a plain
   socket): a local peer blasts N deltas as fast as it can; deltas/s the client absorbs.
3. ``frames``: cutting the same delta frames out of 64 KiB reads, in one run: the wire layer's own
   cutter (:class:`loadtest.session.wire.ClientWire`: whole unmasked data frames sliced directly)
   against websockets' Sans-I/O ``ClientProtocol.receive_data`` + ``events_received`` (what the
   transport used before, and the wire layer still uses for control frames and fragments). The
   ratio is what justifies the hand-written path.
4. ``keep_audio_ab``: the router path with the session's default ``keep_audio="failed"`` (a
   reference to each decoded delta kept while its response is open) against ``"none"``, interleaved
   in one process on CPU time: what keeping audio evidence costs per delta.

Writes bench/results/session.json. Loopback only; bounded in count.
"""

from __future__ import annotations

import base64
import hashlib
import json
import platform
import socket
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import pybase64

from loadtest.audio.convert import to_wire
from loadtest.protocol.dialects import GA
from loadtest.session.router import EventRouter
from loadtest.session.tracker import ResponseTracker
from loadtest.session.transport import WebSocketTransport
from loadtest.session.wire import ClientWire

RESULTS = Path(__file__).parent / "results" / "session.json"
N_ROUTER = 20_000
N_SOCKET = 20_000


def _delta_message(i: int, b64: str) -> bytes:
    return orjson.dumps(
        {"type": "response.output_audio.delta", "response_id": "resp_1", "item_id": "item_1", "output_index": 0,
         "content_index": 0, "event_id": f"event_{i}", "delta": b64}
    )  # fmt: skip


def _speech_like(ms: int) -> np.ndarray:
    t = np.arange(24 * ms) / 24000
    return (6000 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.int16)


def _router(audio_format: str) -> float:
    wire = to_wire(_speech_like(100), audio_format)
    b64 = pybase64.b64encode(wire).decode()
    messages = [_delta_message(i, b64) for i in range(N_ROUTER)]
    router = EventRouter(GA, on_finished=lambda tr: None)
    tracker = ResponseTracker(audio_format=audio_format)
    tracker.t_trigger = 0.0
    router.expect(tracker)
    router.feed({"type": "response.created", "response": {"id": "resp_1"}}, 0.0)
    loads, feed = orjson.loads, router.feed
    t0 = time.perf_counter()
    for i, message in enumerate(messages):
        feed(loads(message), i * 0.1)
    elapsed = time.perf_counter() - t0
    assert tracker.audio_deltas == N_ROUTER
    return elapsed / N_ROUTER * 1e6


def _keep_audio_ab(rounds: int = 30, n: int = 6000, per_response: int = 100) -> dict[str, float]:
    """The receive path per 100 ms pcm16 delta with the session's default ``keep_audio="failed"``
    (references to each decoded delta kept while the response is open) against ``"none"``:
    interleaved rounds in one process, CPU (thread) time, a new response every ``per_response``
    deltas (its kept audio dropped at its end, as a completed response's is)."""
    b64 = pybase64.b64encode(to_wire(_speech_like(100), "pcm16")).decode()
    messages = [_delta_message(i, b64) for i in range(n)]
    created = {"type": "response.created", "response": {"id": "resp_1"}}

    def one(keep: str) -> float:
        elapsed = 0.0
        for start in range(0, n, per_response):
            router = EventRouter(GA, on_finished=lambda tr: None)
            tracker = ResponseTracker(keep_audio=keep)
            tracker.t_trigger = 0.0
            router.expect(tracker)
            router.feed(created, 0.0)
            loads, feed = orjson.loads, router.feed
            t0 = time.thread_time()
            for i in range(start, start + per_response):
                feed(loads(messages[i]), i * 0.1)
            tracker.kept_audio = None  # the response ends: its audio is dropped
            elapsed += time.thread_time() - t0
        return elapsed / n * 1e6

    off, on = [], []
    for _ in range(rounds):
        off.append(one("none"))
        on.append(one("failed"))
    off.sort()
    on.sort()
    return {
        "rounds": rounds,
        "none_us_per_delta_best": round(off[0], 2),
        "failed_us_per_delta_best": round(on[0], 2),
        "none_us_per_delta_median": round(off[rounds // 2], 2),
        "failed_us_per_delta_median": round(on[rounds // 2], 2),
        "failed_over_none_best": round(on[0] / off[0], 3),
        "failed_over_none_median": round(on[rounds // 2] / off[rounds // 2], 3),
    }


def _frame(payload: bytes) -> bytes:
    n = len(payload)
    head = b"\x81" + (bytes([n]) if n < 126 else b"\x7e" + n.to_bytes(2, "big") if n < 65536 else
                      b"\x7f" + n.to_bytes(8, "big"))  # fmt: skip
    return head + payload


def _socket() -> dict[str, float]:
    b64 = pybase64.b64encode(to_wire(_speech_like(100), "pcm16")).decode()
    blob = b"".join(_frame(_delta_message(i, b64)) for i in range(N_SOCKET))
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        conn, _ = server.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        key = next(line.split(b":", 1)[1].strip() for line in data.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key"))  # fmt: skip
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")  # fmt: skip
        conn.sendall(blob)
        conn.sendall(b"\x88\x02\x03\xe8")  # close 1000
        time.sleep(0.2)
        conn.close()
        server.close()

    threading.Thread(target=serve, daemon=True).start()
    router = EventRouter(GA, on_finished=lambda tr: None)
    tracker = ResponseTracker()
    tracker.t_trigger = 0.0
    router.expect(tracker)
    transport = WebSocketTransport()
    assert transport.connect(f"ws://127.0.0.1:{port}", [], timeout=5).ok
    loads, feed = orjson.loads, router.feed
    t0 = time.perf_counter()
    transport.receive_loop(lambda data, t: feed(loads(data), t))
    elapsed = time.perf_counter() - t0
    transport.abort()
    assert tracker.audio_deltas == N_SOCKET, tracker.audio_deltas
    return {
        "deltas": N_SOCKET,
        "mb": round(len(blob) / 1e6, 1),
        "us_per_delta": round(elapsed / N_SOCKET * 1e6, 1),
        "deltas_per_s": round(N_SOCKET / elapsed),
        "realtime_streams_per_core": round(N_SOCKET / elapsed / 10),  # a stream = 10 deltas of 100 ms per s
    }


def _best_socket(rounds: int = 3) -> dict[str, float]:
    """The socket phase is bimodal run to run (the peer is a thread of this process, so the two
    contend for the GIL in varying rhythm): the best of ``rounds``, with every round's figure."""
    runs = [_socket() for _ in range(rounds)]
    best = min(runs, key=lambda r: r["us_per_delta"])
    return {**best, "us_per_delta_all_rounds": [r["us_per_delta"] for r in runs]}


def _open_wire() -> ClientWire:
    """The wire layer past its upgrade, driven with bytes (its request, the 101 back)."""
    wire = ClientWire("ws://127.0.0.1/v1/realtime", max_message_bytes=16 * 1024 * 1024)
    wire.start_handshake([])
    (request,) = wire.data_to_send()
    key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
               if line.lower().startswith(b"sec-websocket-key"))  # fmt: skip
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    wire.receive(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n", 0.0)  # fmt: skip
    assert wire.open
    return wire


def _frames(rounds: int = 5) -> dict[str, float]:
    """us per delta frame: the wire layer's cutter vs websockets' parser, best of ``rounds`` each."""
    from websockets.client import ClientProtocol
    from websockets.protocol import State
    from websockets.uri import parse_uri

    b64 = pybase64.b64encode(to_wire(_speech_like(100), "pcm16")).decode()
    blob = b"".join(_frame(_delta_message(i, b64)) for i in range(N_SOCKET))
    chunks = [blob[i : i + 65536] for i in range(0, len(blob), 65536)]
    uri = parse_uri("ws://127.0.0.1/v1/realtime")

    def ours() -> float:
        wire = _open_wire()
        got = [0]

        def on_message(data: bytes, t: float) -> None:
            got[0] += 1

        t0 = time.perf_counter()
        for chunk in chunks:
            wire.feed(chunk, 0.0, on_message)  # what the transport calls per read
        elapsed = time.perf_counter() - t0
        assert got[0] == N_SOCKET, got[0]
        return elapsed

    def websockets_parser() -> float:
        proto = ClientProtocol(uri, state=State.OPEN, max_size=16 * 1024 * 1024)
        got = 0
        t0 = time.perf_counter()
        for chunk in chunks:
            proto.receive_data(chunk)
            for event in proto.events_received():
                got += len(event.data) > 0
        elapsed = time.perf_counter() - t0
        assert got == N_SOCKET, got
        return elapsed

    best_ours = min(ours() for _ in range(rounds))
    best_ws = min(websockets_parser() for _ in range(rounds))
    return {
        "frames": N_SOCKET,
        "transport_us_per_frame": round(best_ours / N_SOCKET * 1e6, 2),
        "websockets_us_per_frame": round(best_ws / N_SOCKET * 1e6, 2),
        "websockets_over_transport": round(best_ws / best_ours, 1),
    }


def main() -> None:
    results = {
        "python": platform.python_version(),
        "router_us_per_100ms_delta": {fmt: round(_router(fmt), 1) for fmt in ("pcm16", "g711_ulaw")},
        "socket_pcm16": _best_socket(),
        "frames_pcm16": _frames(),
        "keep_audio_ab": _keep_audio_ab(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
