"""A WebRTC caller for tests: a real aiortc peer on 127.0.0.1 that calls the mock (or anything
speaking the services' ``/realtime/calls``).

- :func:`post` / :func:`client_secret` / :func:`multipart`: the HTTP side (urllib in a thread).
- :class:`Microphone`: the caller's Opus track; :meth:`Microphone.play` queues 24 kHz PCM16, it
  sends silence otherwise, paced in real time like a microphone.
- :class:`RtcPeer`: the peer connection, the ``oai-events`` channel (every event kept with its
  arrival time: :meth:`RtcPeer.until`), and the answer's track decoded frame by frame
  (:class:`HeardFrame`: arrival time, RTP timestamp, samples, loudness).

aiortc and PyAV are imported when a peer is made (the ``webrtc`` extra), not with this module.
Use it from an asyncio test (``asyncio.run``)::

    peer = RtcPeer()
    answer = await peer.call(http_base, provider="openai", session={"type": "realtime", "model": "gpt-realtime"})
    await peer.opened()
    peer.send({"type": "response.create"})
    done = await peer.until("response.done")
    await peer.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

KEY = "mock-key"
RATE = 24000
FRAME = 480  # 20 ms at 24 kHz


def wait_truth(mock: Any, test: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The mock's truth rows that pass ``test`` once there are some (they are written as the mock's
    side ends, a little after the caller's)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in mock.truth() if test(r)]
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


async def post(url: str, body: bytes, headers: dict[str, str], timeout: float = 10.0) -> HttpAnswer:
    """POST ``body``; any status comes back as an :class:`HttpAnswer` (no exception for 4xx/5xx)."""

    def run() -> HttpAnswer:
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                return HttpAnswer(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
        except urllib.error.HTTPError as exc:
            return HttpAnswer(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())

    return await asyncio.to_thread(run)


def multipart(fields: dict[str, tuple[str, str]]) -> tuple[str, bytes]:
    """``(content_type, body)`` of a multipart/form-data body; ``fields``: name -> (content type, text)."""
    boundary = "rtload" + uuid.uuid4().hex
    out = b""
    for name, (kind, text) in fields.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\nContent-Type: {kind}\r\n\r\n"
                ).encode() + text.encode() + b"\r\n"  # fmt: skip
    out += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", out


def auth_headers(provider: str, key: str | None) -> dict[str, str]:
    if key is None:
        return {}
    return {"api-key": key} if provider == "azure" and not key.startswith("ek_") else {"Authorization": f"Bearer {key}"}


def route(provider: str, what: str) -> str:
    """``/v1/realtime/<what>`` (OpenAI) or ``/openai/v1/realtime/<what>`` (Azure)."""
    return ("/openai" if provider == "azure" else "") + f"/v1/realtime/{what}"


async def client_secret(http_base: str, provider: str = "openai", key: str = KEY,
                        session: dict[str, Any] | None = None, seconds: int | None = None) -> HttpAnswer:  # fmt: skip
    body: dict[str, Any] = {"session": session or {"type": "realtime", "model": "gpt-realtime"}}
    if seconds is not None:
        body["expires_after"] = {"anchor": "created_at", "seconds": seconds}
    headers = {"Content-Type": "application/json", **auth_headers(provider, key)}
    return await post(http_base + route(provider, "client_secrets"), json.dumps(body).encode(), headers)


def _make_microphone() -> Any:
    import av
    from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

    class Microphone(MediaStreamTrack):
        """The caller's track: queued PCM, else silence, 20 ms frames in real time."""

        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self._queue: deque[np.ndarray] = deque()
            self._start: float | None = None
            self._sent = 0
            self.played = asyncio.Event()
            self.played.set()

        def play(self, pcm: np.ndarray) -> None:
            """Queue 24 kHz int16 samples (sent after what is already queued)."""
            pcm = np.asarray(pcm, dtype=np.int16)
            for i in range(0, pcm.size, FRAME):
                chunk = pcm[i : i + FRAME]
                if chunk.size < FRAME:
                    chunk = np.concatenate([chunk, np.zeros(FRAME - chunk.size, np.int16)])
                self._queue.append(chunk)
            self.played.clear()

        async def recv(self) -> Any:
            if self.readyState != "live":
                raise MediaStreamError
            loop = asyncio.get_running_loop()
            if self._start is None:
                self._start = loop.time()
            wait = self._start + self._sent / RATE - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            chunk = self._queue.popleft() if self._queue else np.zeros(FRAME, np.int16)
            if not self._queue:
                self.played.set()
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = RATE
            frame.pts = self._sent
            frame.time_base = fractions.Fraction(1, RATE)
            self._sent += FRAME
            return frame

    return Microphone()


@dataclass
class HeardFrame:
    """One decoded frame of the answer's track."""

    t: float  # wall clock when decoded
    rtp: int  # RTP timestamp (48 kHz)
    samples: int  # per channel, 48 kHz
    rms: float

    @property
    def ms(self) -> float:
        return self.samples / 48.0


@dataclass
class RtcPeer:
    """One WebRTC call (see the module's docstring)."""

    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    heard: list[HeardFrame] = field(default_factory=list)
    pc: Any = None
    channel: Any = None
    microphone: Any = None
    closed_at: float | None = None  # when the peer connection went failed/closed
    _changed: asyncio.Event | None = None
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def call(self, http_base: str, *, provider: str = "openai", key: str | None = KEY,
                   session: dict[str, Any] | None = None, form: str = "sdp", query: str = "",
                   sdp: str | None = None) -> HttpAnswer:  # fmt: skip
        """Offer a call; ``form``: ``sdp`` (the body is the offer), ``multipart`` (``sdp`` and
        ``session`` fields) or ``json``. ``sdp`` replaces the offer (a bad one, say). On 201 the
        answer is applied."""
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        from loadtest.mock import ice

        ice.use_host_addresses(["127.0.0.1"])
        self._changed = asyncio.Event()
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.channel = self.pc.createDataChannel("oai-events")
        self.channel.on("message", self._on_message)
        self.microphone = _make_microphone()
        self.pc.addTrack(self.microphone)
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = sdp if sdp is not None else self.pc.localDescription.sdp
        headers = auth_headers(provider, key)
        if form == "sdp":
            content_type, body = "application/sdp", offer.encode()
        elif form == "multipart":
            fields = {"sdp": ("application/sdp", offer)}
            if session is not None:
                fields["session"] = ("application/json", json.dumps(session))
            content_type, body = multipart(fields)
        else:
            content_type, body = "application/json", json.dumps({"sdp": offer, "session": session}).encode()
        url = http_base + route(provider, "calls") + (f"?{query}" if query else "")
        answer = await post(url, body, {**headers, "Content-Type": content_type})
        if answer.status == 201:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer.text, type="answer"))
        else:
            await self.close()
        return answer

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def _on_message(self, message: str | bytes) -> None:
        self.events.append((time.time(), json.loads(message)))
        self._notify()

    def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed") and self.closed_at is None:
            self.closed_at = time.time()
        self._notify()

    def _on_track(self, track: Any) -> None:
        if track.kind == "audio":
            self._tasks.append(asyncio.get_running_loop().create_task(self._listen(track)))

    async def _listen(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            pcm = frame.to_ndarray().astype(np.float64)
            self.heard.append(HeardFrame(time.time(), int(frame.pts), frame.samples, float(np.sqrt(np.mean(pcm**2)))))

    async def wait_for(self, test: Any, timeout: float = 10.0) -> Any:
        """Wait until ``test()`` is truthy (re-checked on every event and state change); returns it."""
        assert self._changed is not None
        deadline = time.monotonic() + timeout
        while True:
            value = test()
            if value:
                return value
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"still waiting after {timeout} s; events: {self.types()[-12:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.2))

    async def opened(self, timeout: float = 10.0) -> dict[str, Any]:
        """The data channel is open and ``session.created`` arrived; returns it."""
        return await self.until("session.created", timeout)  # type: ignore[no-any-return]

    async def until(self, kind: str, timeout: float = 10.0, after: int = 0) -> dict[str, Any]:
        """The first event of type ``kind`` from index ``after`` on."""

        def found() -> dict[str, Any] | None:
            return next((e for _, e in self.events[after:] if e.get("type") == kind), None)

        return await self.wait_for(found, timeout)  # type: ignore[no-any-return]

    def send(self, event: dict[str, Any]) -> None:
        self.channel.send(json.dumps(event))

    def types(self) -> list[str]:
        return [e.get("type", "?") for _, e in self.events]

    def event_time(self, kind: str, **match: Any) -> float | None:
        return next((t for t, e in self.events if e.get("type") == kind and all(e.get(k) == v for k, v in
                                                                                    match.items())), None)  # fmt: skip

    async def settle(self, quiet_s: float = 0.3, timeout: float = 5.0) -> None:
        """Wait until no frame has been heard for ``quiet_s`` (the answer's last packets can trail
        ``output_audio_buffer.stopped`` through the jitter buffer by more on a loaded machine)."""
        deadline = time.monotonic() + timeout
        count = -1
        while len(self.heard) != count and time.monotonic() < deadline:
            count = len(self.heard)
            await asyncio.sleep(quiet_s)

    def speech(self, threshold: float = 30.0) -> list[HeardFrame]:
        """The decoded frames that are not silence."""
        return [f for f in self.heard if f.rms > threshold]

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()
        for task in self._tasks:
            task.cancel()
