"""How many WebRTC calls one mock process serves: N aiortc callers (one process, tests/rtc_peer.py)
each call the mock, ask for one spoken answer and hear it to the end, all at once.

Recorded in bench/results/webrtc_mock.json: the mock's CPU (share of one core) while the answers
play, its schedule lag, and on the callers' side how late the answer's packets came (the largest
gap between consecutive speech frames: a real-time sender's is 20 ms) and whether every answer
was heard whole. ``python -m bench webrtc_mock [N ...]``; bounded (each round at most 60 s).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from loadtest.mock.process import start_mock
from tests.rtc_peer import RtcPeer

RESULTS = Path(__file__).parent / "results" / "webrtc_mock.json"
SESSION = {"type": "realtime", "model": "gpt-realtime", "audio": {"input": {"turn_detection": None}}}


async def one_call(base: str, start_in: float) -> dict[str, Any]:
    await asyncio.sleep(start_in)
    peer = RtcPeer()
    t0 = time.time()
    answer = await peer.call(base, session=SESSION, form="multipart")
    if answer.status != 201:
        return {"ok": False, "status": answer.status}
    try:
        await peer.opened(20)
        connected_s = time.time() - t0
        content = [{"type": "input_text", "text": "What are your hours?"}]
        peer.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": content}})
        peer.send({"type": "response.create"})
        done = await peer.until("response.done", 40)
        rid = done["response"]["id"]
        await peer.wait_for(lambda: peer.event_time("output_audio_buffer.stopped", response_id=rid), 40)
        await asyncio.sleep(0.2)
    except TimeoutError:
        await peer.close()
        return {"ok": False, "status": 201}
    await peer.close()
    speech = peer.speech()
    gaps = [b.t - a.t for a, b in itertools.pairwise(speech)]
    return {"ok": True, "connected_s": connected_s, "heard_ms": sum(f.ms for f in speech),
            "max_gap_ms": max(gaps, default=0.0) * 1000, "rid": rid}  # fmt: skip


async def round_of(base: str, n: int) -> list[dict[str, Any]]:
    return await asyncio.gather(*(one_call(base, i * 0.05) for i in range(n)))


def run(n: int) -> dict[str, Any]:
    with start_mock(overrides={"audio.speed": 3.0, "latency.created_ms": [5, 10],
                               "latency.first_delta_ms": [5, 10]}) as mock:  # fmt: skip
        assert mock.popen is not None
        proc = psutil.Process(mock.popen.pid)
        cpu0, t0 = proc.cpu_times(), time.monotonic()
        calls = asyncio.run(asyncio.wait_for(round_of(mock.url.replace("ws://", "http://"), n), 60))
        cpu1, t1 = proc.cpu_times(), time.monotonic()
        stats = mock.stats()
    ok = [c for c in calls if c["ok"]]
    busy = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / (t1 - t0)
    return {
        "calls": n,
        "completed": len(ok),
        "seconds": round(t1 - t0, 1),
        "mock_cpu_share_of_one_core": round(busy, 3),
        "mock_schedule_lag_p99_le_ms": stats["schedule_lag_ms"]["p99_le"],
        "mock_schedule_lag_histogram": stats["schedule_lag_ms"]["histogram"],
        "mock_loop_lag_max_ms": stats.get("loop_lag_max_ms"),
        "connect_s_max": round(max((c["connected_s"] for c in ok), default=0.0), 2),
        "max_speech_gap_ms": round(max((c["max_gap_ms"] for c in ok), default=0.0), 1),
        "heard_ms_min": round(min((c["heard_ms"] for c in ok), default=0.0), 1),
    }


def main(argv: list[str] | None = None) -> None:
    counts = [int(a) for a in (argv if argv is not None else sys.argv[1:]) if a.isdigit()] or [5, 20]
    rounds = [run(n) for n in counts]
    for r in rounds:
        print(json.dumps(r), flush=True)
    RESULTS.write_text(json.dumps({"rounds": rounds, "cores": psutil.cpu_count()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
