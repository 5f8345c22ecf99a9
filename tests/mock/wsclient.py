"""A tiny synchronous Realtime client for the mock tests (websockets' sync client, loopback only)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from websockets.sync.client import ClientConnection, connect

KEY = "mock-key"


def openai_url(base: str, model: str = "gpt-realtime") -> str:
    return f"{base}/v1/realtime?model={model}"


def azure_ga_url(base: str, deployment: str = "gpt-realtime") -> str:
    return f"{base}/openai/v1/realtime?model={deployment}"


def azure_preview_url(
    base: str, deployment: str = "gpt-4o-realtime-preview", version: str = "2025-04-01-preview"
) -> str:
    return f"{base}/openai/realtime?api-version={version}&deployment={deployment}"


def voicelive_url(
    base: str, model: str | None = "gpt-realtime", version: str | None = "2026-04-10", **query: str
) -> str:
    """The mock's Azure Voice Live endpoint (``query``: agent-name, profile...; ``_`` becomes ``-``)."""
    from urllib.parse import urlencode

    params = {"api-version": version, "model": model, **{k.replace("_", "-"): v for k, v in query.items()}}
    return f"{base}/voice-live/realtime?{urlencode({k: v for k, v in params.items() if v is not None})}"


class Client:
    """Connect, send events, collect every server event with its arrival time."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        if headers is None:
            headers = {"Authorization": f"Bearer {KEY}"}
        self._cm = connect(url, additional_headers=headers, max_size=None, open_timeout=10)
        self.ws: ClientConnection = self._cm.__enter__()
        self.events: list[dict[str, Any]] = []
        self.arrivals: list[float] = []

    def send(self, event: dict[str, Any]) -> None:
        self.ws.send(json.dumps(event))

    def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        raw = self.ws.recv(timeout=timeout)
        event = json.loads(raw)
        self.events.append(event)
        self.arrivals.append(time.monotonic())
        return event

    def until(self, pred: Callable[[dict[str, Any]], bool] | str, timeout: float = 20.0) -> dict[str, Any]:
        """Receive until an event matches (a type name or a predicate); returns it."""
        test = (lambda e: e["type"] == pred) if isinstance(pred, str) else pred
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"no matching event within {timeout} s; last: {[e['type'] for e in self.events[-5:]]}"
                )
            event = self.recv(left)
            if test(event):
                return event

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    def close(self) -> None:
        self._cm.__exit__(None, None, None)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def speechlike(seconds: float, rate: int = 24000, seed: int = 1) -> np.ndarray:
    """Loud voiced noise (well above the VAD level) as int16."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n) / rate
    sig = 0.3 * np.sin(2 * np.pi * 150 * t) + 0.1 * rng.standard_normal(n)
    return (sig * 32767 * 0.5).astype(np.int16)


def append_events(pcm: np.ndarray, frame_ms: int = 100, rate: int = 24000) -> list[dict[str, Any]]:
    step = rate * frame_ms // 1000
    return [
        {
            "type": "input_audio_buffer.append",
            "audio": base64.b64encode(pcm[i : i + step].astype("<i2").tobytes()).decode(),
        }
        for i in range(0, len(pcm), step)
    ]


def audio_bytes(events: list[dict[str, Any]], delta_type: str) -> bytes:
    return b"".join(base64.b64decode(e["delta"]) for e in events if e["type"] == delta_type)


def assert_vad_turn(events: list[dict[str, Any]], start_ms: float = 200, end_ms: float = 2000) -> None:
    """Server VAD on 0.5 s of silence, 1 s of speech, then silence: speech_started at ``start_ms``
    (speech at 500 ms less the 300 ms prefix padding) and speech_stopped at ``end_ms`` (speech end
    plus the 500 ms silence duration), one item id for start, stop and commit."""
    started = next(e for e in events if e["type"] == "input_audio_buffer.speech_started")
    stopped = next(e for e in events if e["type"] == "input_audio_buffer.speech_stopped")
    committed = next(e for e in events if e["type"] == "input_audio_buffer.committed")
    assert abs(started["audio_start_ms"] - start_ms) <= 20, started
    assert abs(stopped["audio_end_ms"] - end_ms) <= 40, stopped
    assert started["item_id"] == stopped["item_id"] == committed["item_id"]


def dialect_client(base: str, dialect: str) -> Client:
    """A client of ``dialect``: GA on the OpenAI path, preview on the Azure legacy path."""
    if dialect == "ga":
        return Client(openai_url(base), {"Authorization": f"Bearer {KEY}"})
    return Client(azure_preview_url(base), {"api-key": KEY})


def response_events(c: Client, timeout: float = 20.0) -> list[dict[str, Any]]:
    """Events from now to the next ``response.done`` (inclusive)."""
    start = len(c.events)
    c.until("response.done", timeout)
    return c.events[start:]
