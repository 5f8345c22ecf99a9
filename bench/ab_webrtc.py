"""A/B of one harness change at a fixed WebRTC load: ``bench_webrtc``'s one step (N calls, the
harness on core 0, the mock on core 1), run alternately with two environments, the harness's CPU
per call read from its health rows (the share of one core per call, averaged over the step after
its settle time). ``python -m bench.ab_webrtc NAME VAR=A VAR=B [--calls 40 --step-s 35 --rounds 1]``
(an arm may set several variables: ``X=0,Y=0``)
appends the result to bench/results/webrtc_ab.json. Bounded: each run is one step (~step-s + 40 s).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

from bench import bench_webrtc

RESULTS = Path(__file__).parent / "results" / "webrtc_ab.json"


def one(env: dict[str, str], calls: int, step_s: float) -> dict[str, Any]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        result = bench_webrtc.measure([calls], step_s)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    row = result["steps"][0]
    cpu = row.get("cpu_percent")
    return {
        "env": env,
        "cpu_percent": cpu,
        "cpu_pct_per_call": round(cpu / calls, 4) if cpu is not None else None,
        "mock_cpu_percent": row.get("mock_cpu_percent"),
        "frames_late_pct": row.get("frames_late_pct"),
        "lag_p99_ms": row.get("lag_p99_ms"),
        "recv_lag_p99_ms": row.get("recv_lag_p99_ms"),
        "responses_completed": row.get("responses_completed"),
        "responses_not_completed": row.get("responses_not_completed"),
        "ttfa_error_ms": result["ttfa_error_ms"],
        "load": os.getloadavg(),
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--step-s", type=float, default=35.0)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    envs = [dict(kv.split("=", 1) for kv in arm.split(",")) for arm in (args.a, args.b)]
    runs = []
    for _ in range(args.rounds):
        for env in envs:
            runs.append(one(env, args.calls, args.step_s))
            print(f"ab {args.name}: {runs[-1]}", flush=True)
    doc = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    doc.append({"name": args.name, "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "calls": args.calls, "step_s": args.step_s, "runs": runs})  # fmt: skip
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
