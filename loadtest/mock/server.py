"""The mock Realtime server: an asyncio ``websockets`` server (uvloop where available).

Upgrades are routed and authenticated in ``process_request`` (Azure-style refusals, handshake
faults and the capacity limit answer there with an HTTP status); accepted connections become a
:class:`~loadtest.mock.session.MockSession`. ``GET /_mock/stats`` returns the mock's own
counters (sessions, deltas, schedule lag) as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import signal
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from loadtest.locust.heap import release_free_memory, trim_every_s
from loadtest.mock import memory, voicelive
from loadtest.mock.context import SessionContext
from loadtest.mock.faults import plan_handshake
from loadtest.mock.http_front import PLACEHOLDER_GET, HttpRequest, RequestReader
from loadtest.mock.limits import Limits
from loadtest.mock.routing import Refusal, Route, resolve
from loadtest.mock.session import MockSession
from loadtest.mock.speech import load_bank
from loadtest.mock.stats import Stats
from loadtest.mock.truth import TruthLog, session_row
from loadtest.mock.voicelive import VoiceLiveState
from loadtest.mock.webrtc import CallsEndpoint, is_webrtc_path
from loadtest.protocol.dialects import Dialect, get_dialect
from loadtest.protocol.targets import VOICE_LIVE_PATH

READY_PREFIX = "rtload mock: listening on "


class MockConnection(ServerConnection):
    """A server connection that writes all frames queued by one send as ONE transport write.

    ``send_many`` queues several text frames (a transcript delta and its audio delta) inside one
    ``send_context``; coalescing them halves the socket writes on the audio path.

    ``mock_route`` is where the upgrade was routed (set in ``process_request``); ``mock_counted``
    the deployment whose session capacity this connection holds (None once released).

    A request that is not a ``GET`` (the WebRTC routes' ``POST``) is read whole into ``mock_http``
    (loadtest/mock/http_front.py) and ``process_request`` answers it.
    """

    mock_route: Route | None = None
    mock_counted: str | None = None
    mock_http: HttpRequest | None = None
    mock_plain = False  # the connection is a WebSocket upgrade: bytes go straight to websockets
    mock_head = b""
    mock_reader: RequestReader | None = None

    def data_received(self, data: bytes) -> None:
        if self.mock_plain:
            super().data_received(data)
            return
        if self.mock_reader is None:
            head = self.mock_head + data
            if head[:4] == b"GET " or (len(head) < 4 and b"GET ".startswith(head) and head):
                if len(head) < 4:
                    self.mock_head = head
                    return
                self.mock_plain = True
                self.mock_head = b""
                super().data_received(head)
                return
            self.mock_head = b""
            self.mock_reader = RequestReader()
            data = head
        if self.mock_http is not None:
            return  # (bytes after the request: ignored, the answer closes the connection)
        request = self.mock_reader.feed(data)
        if request is not None:
            self.mock_http = request
            super().data_received(PLACEHOLDER_GET)

    def send_data(self) -> None:
        chunks = self.protocol.data_to_send()
        if len(chunks) > 1 and all(chunks):
            self.transport.write(b"".join(chunks))
            return
        for data in chunks:
            if data:
                self.transport.write(data)
            elif self.transport.can_write_eof():
                with contextlib.suppress(Exception):
                    self.transport.write_eof()
            else:
                self.transport.close()

    async def send_many(self, frames: list[bytes]) -> None:
        """Send UTF-8 JSON ``frames`` as text messages, in order, in one write."""
        async with self.send_context():
            for frame in frames:
                self.protocol.send_text(frame)


class MockServer:
    def __init__(self, profile: dict[str, Any], *, seed: int = 0, api_key: str = "mock-key",
                 truth_path: Path | None = None) -> None:  # fmt: skip
        self.profile = profile
        self.seed = seed
        audio = profile["audio"]
        self.bank = load_bank(float(audio["chars_per_second"]), tuple(audio["delta_ms"]), seed=seed)
        self.limits = Limits(profile)
        self.truth = TruthLog(truth_path)
        self.stats = Stats()
        self.keys = frozenset(profile["auth"]["keys"] or [api_key])
        self.handshake_rng = random.Random(f"{seed}:handshake")
        self.session_index = 0
        self._dialects = {name: get_dialect(name) for name in ("ga", "preview", "voicelive")}
        self.voicelive = VoiceLiveState(profile, self.limits)
        # what each MockSession needs of the server (and nothing more)
        self.context = SessionContext(
            profile=profile,
            seed=seed,
            bank=self.bank,
            limits=self.limits,
            truth=self.truth,
            stats=self.stats,
            dialects=self._dialects,
        )
        self.calls = CallsEndpoint(self)

    def dialect(self, name: str) -> Dialect:
        return self._dialects[name]

    # ---- the upgrade ---------------------------------------------------------------------
    def session_truth(self, route: Route | None, fault: str, status: int, params: dict[str, Any], **extra: Any) -> None:
        extra.setdefault("transport", "websocket")
        self.truth.write(session_row(route, fault, status, params, **extra))

    def next_session_index(self) -> int:
        self.session_index += 1
        return self.session_index

    @staticmethod
    def refuse(connection: ServerConnection, status: int, code: str, message: str, provider: str | None,
               headers: dict[str, str] | None = None) -> Response:  # fmt: skip
        body = orjson.dumps({"error": {"code": code, "message": message}}).decode()
        response = connection.respond(status, body)
        response.headers["Content-Type"] = "application/json"
        if provider in ("azure", "voicelive"):
            response.headers["apim-request-id"] = str(uuid.uuid4())
        for name, value in (headers or {}).items():
            response.headers[name] = value
        return response

    def process_request(self, connection: MockConnection, request: Request) -> Any:
        if connection.mock_http is not None:  # a plain HTTP request (the WebRTC routes): a coroutine
            return self.calls.respond(connection, connection.mock_http)
        if is_webrtc_path(request.path):
            return self.refuse(connection, 405, "method_not_allowed", f"Use POST for {request.path.split('?')[0]}.",
                               None, {"Allow": "POST"})  # fmt: skip
        if request.path.split("?", 1)[0] == "/_mock/stats":
            response = connection.respond(200, orjson.dumps(self.stats.snapshot()).decode())
            response.headers["Content-Type"] = "application/json"
            return response
        if request.path.split("?", 1)[0] == "/_mock/memory":
            top = parse_qs(urlsplit(request.path).query).get("top", ["0"])[0]
            body = orjson.dumps(memory.snapshot(int(top) if top.isdigit() else 0)).decode()
            response = connection.respond(200, body)
            response.headers["Content-Type"] = "application/json"
            return response
        if request.path.split("?", 1)[0].rstrip("/") == VOICE_LIVE_PATH:
            result = voicelive.resolve(request.path, request.headers, self.profile, self.keys)
        else:
            result = resolve(request.path, request.headers, self.profile, self.keys)
        if isinstance(result, Refusal):
            self.stats.refused += 1
            path = request.path.split("?")[0]
            provider = "azure" if path.startswith("/openai/") else None
            provider = "voicelive" if path.startswith("/voice-live/") else provider
            self.session_truth(None, "none", result.status, {}, rejected=result.code, path=request.path.split("?")[0])
            return self.refuse(connection, result.status, result.code, result.message, provider, result.headers)
        route = result
        connection.mock_route = route
        connection.mock_counted = None
        if route.rejection is not None:
            return None  # OpenAI: accepted, then an error event and a close
        refused = self.admit(connection, route)
        if refused is None:
            connection.mock_counted = route.deployment
        return refused

    def admit(self, connection: ServerConnection, route: Route, transport: str = "websocket") -> Response | None:
        """The handshake faults and the session capacity for a routed session: the refusal, or None
        when it may start (it then holds one unit of ``route.deployment``'s capacity: release it
        with ``limits.close``)."""
        fault, params = plan_handshake(self.handshake_rng, self.profile["faults"])
        if route.provider == "voicelive" and (refusal := self.voicelive.rate.admit()) is not None:
            self.stats.refused += 1
            self.stats.faults["connection_rate_429"] = self.stats.faults.get("connection_rate_429", 0) + 1
            retry_after = int(refusal.headers["Retry-After"])
            params = {"per_minute": self.voicelive.rate.per_minute, "retry_after_s": retry_after}
            self.session_truth(route, "connection_rate_429", 429, params, transport=transport)
            return self.refuse(connection, 429, refusal.code, refusal.message, route.provider, refusal.headers)
        if fault == "handshake_5xx":
            self.stats.refused += 1
            self.stats.faults[fault] = self.stats.faults.get(fault, 0) + 1
            self.session_truth(route, fault, params["status"], params, transport=transport)
            return self.refuse(connection, params["status"], "server_error",
                                "The server had an error while processing your request.", route.provider)  # fmt: skip
        if fault == "handshake_429":
            self.stats.refused += 1
            self.stats.faults[fault] = self.stats.faults.get(fault, 0) + 1
            self.session_truth(route, fault, 429, params, transport=transport)
            retry = str(params["retry_after_s"])
            headers = {"Retry-After": retry, "retry-after-ms": str(int(retry) * 1000)}
            return self.refuse(
                connection, 429, "rate_limit_exceeded", "Too many requests, retry later.", route.provider, headers
            )
        if not self.limits.has_room(route.deployment):
            self.stats.refused += 1
            self.stats.faults["capacity_429"] = self.stats.faults.get("capacity_429", 0) + 1
            cap = self.profile["capacity"]
            params = {"max_sessions": int(cap["max_sessions"]), "retry_after_s": int(cap["retry_after_s"])}
            self.session_truth(route, "capacity_429", 429, params, transport=transport)
            retry = str(int(cap["retry_after_s"]))
            return self.refuse(
                connection,
                429,
                "too_many_sessions",
                f"The deployment {route.deployment} is at its concurrent session capacity. Please retry later.",
                route.provider,
                {"Retry-After": retry, "retry-after-ms": str(int(retry) * 1000)},
            )
        self.limits.open(route.deployment)
        return None

    def process_response(self, connection: MockConnection, request: Request, response: Response) -> Response:
        counted = connection.mock_counted
        if response.status_code != 101 and counted:
            self.limits.close(counted)
            connection.mock_counted = None
        route = connection.mock_route
        if response.status_code == 101 and route is not None and route.provider in ("azure", "voicelive"):
            response.headers["apim-request-id"] = str(uuid.uuid4())
            response.headers["x-ms-region"] = "Mock Region"
        return response

    async def handler(self, ws: MockConnection) -> None:
        route = ws.mock_route
        assert route is not None  # (process_request routed every connection it let through)
        if route.rejection is not None:
            rej = route.rejection
            with contextlib.suppress(ConnectionClosed):
                event = {"type": "error", "event_id": "event_" + uuid.uuid4().hex[:20], "error": rej.error}
                await ws.send(orjson.dumps(event), text=True)
                await ws.close(rej.close_code, rej.close_reason)
            self.session_truth(route, "none", 101, {}, rejected=rej.error.get("code"), close_code=rej.close_code)
            return
        self.next_session_index()
        stats = self.stats
        stats.sessions_opened += 1
        stats.sessions_active += 1
        stats.sessions_max = max(stats.sessions_max, stats.sessions_active)
        try:
            await MockSession(self.context, ws, route, self.session_index).run()
        finally:
            stats.sessions_active -= 1
            if ws.mock_counted:
                self.limits.close(route.deployment)
                ws.mock_counted = None

    async def _monitor_loop(self) -> None:
        loop = asyncio.get_running_loop()
        every = trim_every_s()
        last_trim = loop.time()
        while True:
            before = loop.time()
            await asyncio.sleep(0.05)
            late = loop.time() - before - 0.05
            if late > self.stats.loop_lag_max:
                self.stats.loop_lag_max = late
            if every and before - last_trim >= every:
                # glibc keeps what finished sessions freed (their socket buffers, frames, numpy
                # input) in its heap: a soak's mock crept up ~28 MB/h with nothing kept (issue 22).
                # A plain call: it takes a few ms, once a minute, and the mock runs no threads
                # whose arenas a worker thread would have to trim.
                last_trim = before
                memory.trimmed(release_free_memory())

    async def serve_forever(self, host: str, port: int, ready: Any = None, exit_with_parent: bool = False) -> None:
        loop = asyncio.get_running_loop()
        stop = loop.create_future()

        def finish() -> None:
            if not stop.done():
                stop.set_result(None)

        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, finish)
        if exit_with_parent:
            # the parent holds our stdin open; EOF means it is gone (even killed): stop with it
            fd = sys.stdin.fileno()

            def on_stdin() -> None:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    data = b""
                if not data:
                    loop.remove_reader(fd)
                    finish()

            loop.add_reader(fd, on_stdin)
        monitor = loop.create_task(self._monitor_loop())
        async with serve(
            self.handler,
            host,
            port,
            process_request=self.process_request,
            process_response=self.process_response,
            create_connection=MockConnection,
            compression=None,
            max_size=16 * 1024 * 1024,
            max_queue=64,
            write_limit=1 << 20,  # a client reading a little late must not stall the mock's schedule
            ping_interval=None,
        ) as server:
            bound = next(iter(server.sockets)).getsockname()
            shown = host if ":" not in host else f"[{host}]"
            if ready is not None:
                ready(f"ws://{shown}:{bound[1]}")
            await stop
            server.close(close_connections=False)
            for connection in list(server.connections):
                connection.transport.abort()
        monitor.cancel()
        await self.calls.close()
        self.truth.close()


def run(profile: dict[str, Any], *, host: str, port: int, seed: int, api_key: str, truth_path: Path | None,
        exit_with_parent: bool = False) -> None:  # fmt: skip
    """Run the mock until SIGTERM/SIGINT; prints the ready line once listening."""
    memory.start_tracing_if_asked()
    server = MockServer(profile, seed=seed, api_key=api_key, truth_path=truth_path)
    # The pre-encoded audio and imported modules live forever: keep them out of every GC pass, and
    # collect the young generation less often (hundreds of sessions make many short-lived dicts).
    gc.collect()
    gc.freeze()
    gc.set_threshold(20000, 20, 50)

    def ready(url: str) -> None:
        print(READY_PREFIX + url, flush=True)

    coro = server.serve_forever(host, port, ready, exit_with_parent)
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        asyncio.run(coro)
    sys.stdout.flush()
