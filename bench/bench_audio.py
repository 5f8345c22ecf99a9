"""Benchmark: per-frame cost of encoding append events and of analysing received audio deltas.

Encoding: building one ``input_audio_buffer.append`` event from a frame of wire audio, ours
(``frames.encode_wire``: pybase64 + byte concatenation, done once per process per fixture) against a
naive baseline measured in the same run (stdlib ``base64`` + ``json.dumps`` of a dict per frame).
Sending a pre-encoded frame afterwards costs only a list index.

Analysis: ``AudioAnalyzer.feed`` per received delta (the silence windows and the playback clock),
plus base64-decoding the delta, against a naive pure-Python baseline (stdlib ``base64``, ``array``
and a per-sample loop for the window energies). From the per-delta cost we derive how many
concurrent real-time audio streams one core could analyse.

Writes ``bench/results/audio.json``.
"""

from __future__ import annotations

import array
import base64
import json
import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pybase64

from loadtest.audio.analysis import AudioAnalyzer
from loadtest.audio.convert import bytes_per_second, to_wire
from loadtest.audio.fixtures import load_pcm
from loadtest.audio.frames import encode_wire

RESULTS = Path(__file__).parent / "results" / "audio.json"
FIXTURE = "long_router_problem"  # 26.6 s of speech
MIN_SECONDS = 0.4  # per measurement


def _per_call_us(fn: Callable[[], int], min_seconds: float = MIN_SECONDS) -> float:
    """Microseconds per unit of work; ``fn`` does some units and returns how many."""
    fn()  # warm caches
    units, started = 0, time.perf_counter()
    while True:
        units += fn()
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return elapsed / units * 1e6


def _naive_encode(wire: bytes, step: int) -> list[bytes]:
    return [
        json.dumps(
            {"type": "input_audio_buffer.append", "audio": base64.b64encode(wire[i : i + step]).decode("ascii")}
        ).encode()
        for i in range(0, len(wire), step)
    ]


class _NaiveAnalyzer:
    """What one would write without numpy: stdlib decode and a Python loop per sample."""

    def __init__(self, window: int = 480) -> None:
        self.window = window
        self.energies: list[float] = []
        self.carry: list[int] = []
        self.last: float | None = None
        self.max_gap = 0.0

    def feed_b64(self, delta_b64: str, arrival: float) -> None:
        samples = array.array("h", base64.b64decode(delta_b64))
        buf = self.carry + samples.tolist()
        w = self.window
        full = len(buf) // w * w
        for i in range(0, full, w):
            self.energies.append(sum(s * s for s in buf[i : i + w]) / w)
        self.carry = buf[full:]
        if self.last is not None:
            self.max_gap = max(self.max_gap, arrival - self.last)
        self.last = arrival


def bench_encoding(pcm: np.ndarray) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for fmt, frame_ms in [("pcm16", 20), ("pcm16", 100), ("pcm16", 500), ("g711_ulaw", 100)]:
        wire = to_wire(pcm, fmt)
        step = bytes_per_second(fmt) * frame_ms // 1000
        n_frames = math.ceil(len(wire) / step)
        ours = _per_call_us(lambda w=wire, f=frame_ms, fm=fmt: len(encode_wire(w, f, fm)))
        naive = _per_call_us(lambda w=wire, s=step: len(_naive_encode(w, s)))
        assert [json.loads(m) for m in encode_wire(wire, frame_ms, fmt).messages] == [
            json.loads(m) for m in _naive_encode(wire, step)
        ]
        to_wire_us = _per_call_us(lambda f=fmt, n=n_frames: (to_wire(pcm, f), n)[1])
        out[f"{fmt}_{frame_ms}ms"] = {
            "frames": n_frames,
            "frame_bytes": step,
            "encode_us_per_frame": round(ours, 3),
            "naive_json_base64_us_per_frame": round(naive, 3),
            "speedup_vs_naive": round(naive / ours, 2),
            "to_wire_us_per_frame": round(to_wire_us, 3),
        }
    return out


def _deltas(pcm: np.ndarray, fmt: str, delta_ms: int) -> list[str]:
    wire = to_wire(pcm, fmt)
    step = bytes_per_second(fmt) * delta_ms // 1000
    return [pybase64.b64encode(wire[i : i + step]).decode("ascii") for i in range(0, len(wire), step)]


def bench_analysis(pcm: np.ndarray) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for fmt, delta_ms in [("pcm16", 20), ("pcm16", 100), ("pcm16", 200), ("g711_ulaw", 100)]:
        deltas = _deltas(pcm, fmt, delta_ms)
        raw = [pybase64.b64decode(d) for d in deltas]

        def feed_all(fmt: str = fmt, raw: list[bytes] = raw) -> int:
            analyzer = AudioAnalyzer(fmt)
            for i, data in enumerate(raw):
                analyzer.feed(data, i * 0.05)
            analyzer.finish()
            _ = analyzer.longest_silence_ms  # the end-of-response summary is part of the cost
            return len(raw)

        def decode_and_feed(fmt: str = fmt, deltas: list[str] = deltas) -> int:
            analyzer = AudioAnalyzer(fmt)
            for i, d in enumerate(deltas):
                analyzer.feed(pybase64.b64decode(d), i * 0.05)
            analyzer.finish()
            _ = analyzer.longest_silence_ms
            return len(deltas)

        feed_us = _per_call_us(feed_all)
        total_us = _per_call_us(decode_and_feed)
        row = {
            "deltas": len(deltas),
            "feed_us_per_delta": round(feed_us, 3),
            "decode_and_feed_us_per_delta": round(total_us, 3),
            # one core, analysing real-time audio: how many concurrent responses it could keep up with
            "realtime_streams_per_core": round(1e6 / (total_us * 1000 / delta_ms)),
        }
        if fmt == "pcm16":
            few = deltas[: max(5, 2000 // delta_ms)]  # the naive loop is slow: time a slice

            def naive(few: list[str] = few) -> int:
                analyzer = _NaiveAnalyzer()
                for i, d in enumerate(few):
                    analyzer.feed_b64(d, i * 0.05)
                return len(few)

            naive_us = _per_call_us(naive)
            row["naive_python_us_per_delta"] = round(naive_us, 3)
            row["speedup_vs_naive"] = round(naive_us / total_us, 1)
        out[f"{fmt}_{delta_ms}ms"] = row
    return out


def main() -> None:
    pcm = load_pcm(FIXTURE)
    results = {
        "benchmark": "audio",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "fixture": FIXTURE,
        "fixture_seconds": round(len(pcm) / 24000, 2),
        "encoding": bench_encoding(pcm),
        "analysis": bench_analysis(pcm),
        "notes": "encoding happens once per process per (fixture, frame_ms, format); "
        "analysis runs on every received delta. Timings share 2 cores with other work.",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    for section in ("encoding", "analysis"):
        for name, row in results[section].items():
            print(f"{section:9s} {name:16s} {row}")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
