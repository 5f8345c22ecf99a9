"""Drive responses against the mock with an asyncio client and say what each one looked like.

The classification here is deliberately independent of the mock's code: it only looks at the
events and the arrival times a client sees.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from loadtest.protocol.dialects import GA

KEY = "mock-key"


@dataclass
class Seen:
    response_id: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    close_code: int | None = None
    hung: bool = False

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    @property
    def done(self) -> dict[str, Any] | None:
        found = self.of("response.done")
        return found[0]["response"] if found else None

    def audio(self) -> np.ndarray:
        raw = b"".join(base64.b64decode(e["delta"]) for e in self.of("response.output_audio.delta"))
        return np.frombuffer(raw, "<i2")

    def max_gap_s(self) -> float:
        times = [
            t for e, t in zip(self.events, self.arrivals, strict=True) if e["type"] == "response.output_audio.delta"
        ]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def playback_underruns(self) -> list[float]:
        """Starvation stretches (s) of a real-time player starting at the first delta's arrival."""
        out = []
        end = None
        for e, t in zip(self.events, self.arrivals, strict=True):
            if e["type"] != "response.output_audio.delta":
                continue
            dur = len(base64.b64decode(e["delta"])) / 48000
            if end is None:
                end = t + dur
                continue
            if t > end:
                out.append(t - end)
                end = t
            end += dur
        return out

    def longest_zero_run_ms(self) -> float:
        pcm = self.audio()
        if not pcm.size:
            return 0.0
        zero = np.concatenate(([0], (pcm == 0).astype(np.int8), [0]))
        edges = np.flatnonzero(np.diff(zero))
        runs = edges[1::2] - edges[::2]
        return float(runs.max()) / 24 if runs.size else 0.0

    def looks_like(self) -> str:
        """The fault name a client would give this response."""
        if self.close_code == 1006:
            return "drop"
        if self.hung:
            return "hang"
        done = self.done
        if done is None:
            return "unknown"
        status = done["status"]
        if status == "failed":
            code = (done["status_details"] or {}).get("error", {}).get("code")
            return {"server_error": "server_error", "rate_limit_exceeded": "rate_limited"}.get(code, f"failed:{code}")
        if status == "incomplete":
            return "incomplete"
        if status == "cancelled":
            return "cancelled"
        parts = [e["part"]["type"] for e in self.of("response.content_part.added")]
        if parts == ["text"]:
            return "text_only"
        if not self.of("response.output_audio.delta"):
            return "missing_audio"
        if self.longest_zero_run_ms() >= 400:
            return "silence"
        if max(self.playback_underruns(), default=0.0) >= 0.4:
            return "stall"
        return "none"


async def run_responses(url: str, count: int, *, hang_after_s: float = 1.5, headers: dict[str, str] | None = None,
                        deadline_s: float = 60.0) -> list[Seen]:  # fmt: skip
    """One session (reconnecting after drops) asking for ``count`` text-triggered audio responses."""
    seen_all: list[Seen] = []
    stop_at = time.monotonic() + deadline_s
    headers = headers or {"Authorization": f"Bearer {KEY}"}
    while len(seen_all) < count and time.monotonic() < stop_at:
        async with connect(url, additional_headers=headers, max_size=None, compression=None) as ws:
            await ws.recv()
            await ws.send(json.dumps(GA.session_update(turn_detection=None)))
            try:
                while len(seen_all) < count and time.monotonic() < stop_at:
                    await ws.send(json.dumps(GA.user_text_item("Where is my order?")))
                    await ws.send(json.dumps(GA.response_create()))
                    seen = Seen()
                    seen_all.append(seen)
                    while True:
                        try:
                            raw = await asyncio.wait_for(ws.recv(), hang_after_s)
                        except TimeoutError:
                            seen.hung = True
                            await ws.send(json.dumps({"type": "response.cancel"}))
                            continue
                        event = json.loads(raw)
                        if event["type"] in ("session.updated", "conversation.item.added", "conversation.item.done") \
                                and seen.response_id is None:  # fmt: skip
                            continue
                        seen.events.append(event)
                        seen.arrivals.append(time.monotonic())
                        if event["type"] == "response.created":
                            seen.response_id = event["response"]["id"]
                        if event["type"] == "rate_limits.updated":
                            break
            except ConnectionClosed as exc:
                seen_all[-1].close_code = exc.rcvd.code if exc.rcvd else 1006
    return seen_all


def run_many(url: str, sessions: int, per_session: int, **kw: Any) -> list[Seen]:
    async def main() -> list[Seen]:
        results = await asyncio.gather(*(run_responses(url, per_session, **kw) for _ in range(sessions)))
        return [s for group in results for s in group]

    return asyncio.run(main())
