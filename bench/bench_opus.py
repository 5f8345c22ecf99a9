"""What one 20 ms Opus packet costs to decode: libopus through ctypes against PyAV.

Both ends of a WebRTC call decode every packet of speech on their hot path (the harness the
answer's, the mock the caller's), so this is per packet per call. The packets: 4 s of speech-like
audio (a tone with noise, 24 kHz, encoded as the harness sends the caller's speech). Figures: us
per packet for libopus at 24 kHz and 8 kHz (:class:`loadtest.audio.opus.LibOpusDecoder`), PyAV
resampled to 24 kHz (:class:`loadtest.audio.opus.PyAVDecoder`), and the PyAV path the harness used
before (decode at 48 kHz, pairs averaged to 24), interleaved in rounds; the ratio is the median
round's. Writes bench/results/opus.json (a few seconds).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "opus.json"
ROUNDS = 7


def speech_like(seconds: float = 4.0, rate: int = 24000) -> bytes:
    rng = np.random.default_rng(0)
    t = np.arange(int(rate * seconds)) / rate
    wave = np.sin(2 * np.pi * 180 * t) * 6000 + np.sin(2 * np.pi * 710 * t) * 2000 + rng.normal(0, 600, t.size)
    return wave.astype("<i2").tobytes()


def averaged_pyav() -> Callable[[bytes], bytes]:
    """The harness's decoder before loadtest.audio.opus: PyAV at 48 kHz, sample pairs averaged."""
    import av

    codec = av.CodecContext.create("libopus", "r")
    codec.sample_rate, codec.layout, codec.format = 24000, "mono", "s16"

    def decode(payload: bytes) -> bytes:
        out = []
        for frame in codec.decode(av.Packet(payload)):
            samples = frame.to_ndarray().reshape(-1).astype(np.int32)
            if frame.sample_rate == 48000:
                samples = (samples[0::2] + samples[1::2]) >> 1
            out.append(samples.astype("<i2").tobytes())
        return b"".join(out)

    return decode


def per_packet_us(decode: Callable[[bytes], bytes], packets: list[bytes]) -> float:
    started = time.perf_counter()
    for payload in packets:
        decode(payload)
    return (time.perf_counter() - started) / len(packets) * 1e6


def measure() -> dict[str, Any]:
    from loadtest.audio import opus
    from loadtest.session.rtc_media import encode_opus

    packets = encode_opus(speech_like())
    ways: dict[str, Callable[[], Callable[[bytes], bytes]]] = {
        "libopus_24k": lambda: opus.LibOpusDecoder(24000).decode,
        "libopus_8k": lambda: opus.LibOpusDecoder(8000).decode,
        "pyav_24k_resampled": lambda: opus.PyAVDecoder(24000).decode,
        "pyav_48k_averaged": averaged_pyav,
    }
    rounds: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(ROUNDS):
        for name, make in ways.items():
            rounds[name].append(per_packet_us(make(), packets))
    median = {name: round(statistics.median(values), 2) for name, values in rounds.items()}
    ratios = [a / b for a, b in zip(rounds["libopus_24k"], rounds["pyav_48k_averaged"], strict=True)]
    return {
        "bench": "opus",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_before": os.getloadavg()},
        "packets": len(packets),
        "mean_packet_bytes": round(sum(map(len, packets)) / len(packets), 1),
        "us_per_packet_median": median,
        "libopus_over_pyav_before": round(statistics.median(ratios), 3),
        "rounds": ROUNDS,
    }


def main(argv: list[str] | None = None) -> None:
    result = measure()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    ratio = result["libopus_over_pyav_before"]
    print(f"bench opus: {result['us_per_packet_median']}; libopus/pyav {ratio} -> {RESULTS}")


if __name__ == "__main__":
    main()
