"""Plain and TLS ladders alternated round by round: issue 17's TLS/plain ratio on a shared machine.

One ladder's ratio swung from 0.50 to 0.83 within one sitting here (bench/results/harness.json,
``sittings_2026_12_03``): the machine's speed drifts between ladders run minutes apart, and
``python -m bench harness`` runs the whole plain ladder, then the whole TLS ladder, once. Here
each round runs a plain ladder and a TLS ladder back to back (the order alternating between
rounds), so each round's ratio compares two ladders a few minutes apart, and the rounds show
the spread. Same Node peer, stream shape and criteria as ``bench harness`` (its functions), the
harness pinned to core 0 and the peer to core 1. Loopback only; every ladder is bounded in steps
and time. Writes bench/results/tls_ladder.json.

    python -m bench.ab_tls_ladder --rounds 3 --plain-steps 600,100,1500 --tls-steps 400,100,1200

Locust spawns 100 users a second: a first step above ~800 sessions is not connected in time to be
judged (and the ladder then counts as failed from its start).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.bench_harness import RECV_LAG_P99_MAX_MS, best, ensure_node_packages, ladder, self_signed, steps_of

RESULTS = Path(__file__).parent / "results" / "tls_ladder.json"
STEP_KEYS = ("users", "sustained", "cpu_percent", "frames_late_pct", "lag_p99_ms", "recv_lag_p99_ms")


def _ladder(modules: Path, plan: list[int], step_s: float, work: Path, name: str,
            tls: tuple[Path, Path] | None) -> dict[str, Any]:  # fmt: skip
    rows = ladder(modules, plan, step_s, work, name, tls)
    reads_on_time = [
        {**r, "sustained": r["sustained"] and (r.get("recv_lag_p99_ms") or 0.0) < RECV_LAG_P99_MAX_MS} for r in rows
    ]  # (bench harness's stricter figure: reads keep up too)
    return {
        "sessions_sustained": best(rows),
        "sessions_sustained_receive_on_time": best(reads_on_time),
        "top_of_the_ladder_held": bool(rows) and rows[-1]["sustained"],
        "steps": [
            {k: r.get(k) for k in STEP_KEYS} | {"server_late_pct": (r.get("server") or {}).get("server_late_pct")}
            for r in rows
        ],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ab_tls_ladder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--plain-steps", default="600,100,1500", help="start,step,top sessions")
    parser.add_argument("--tls-steps", default="400,100,1200", help="start,step,top sessions")
    parser.add_argument("--step-s", type=float, default=15.0)
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    modules = ensure_node_packages()
    if modules is None or shutil.which("node") is None:
        raise SystemExit("ab_tls_ladder: needs node and npm (the bench's Node peer)")
    plain_plan = steps_of(*(int(x) for x in args.plain_steps.split(",")))
    tls_plan = steps_of(*(int(x) for x in args.tls_steps.split(",")))
    work = Path(tempfile.mkdtemp(prefix="rtload-ab-tls-ladder-"))
    tls = self_signed(work)
    result: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "argv": argv if argv is not None else sys.argv[1:],
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "rounds": [],
    }
    try:
        for i in range(args.rounds):
            order = ("plain", "tls") if i % 2 == 0 else ("tls", "plain")
            ladders: dict[str, Any] = {}
            for kind in order:
                plan = plain_plan if kind == "plain" else tls_plan
                ladders[kind] = _ladder(modules, plan, args.step_s, work, f"{kind}-{i}", tls if kind == "tls" else None)
                print(f"ab_tls_ladder: round {i} {kind} {ladders[kind]['sessions_sustained']}", flush=True)
            plain, secure = ladders["plain"]["sessions_sustained"], ladders["tls"]["sessions_sustained"]
            result["rounds"].append(
                {"order": list(order), **ladders, "tls_over_plain": round(secure / plain, 3) if plain else None}
            )
    finally:
        ratios = [r["tls_over_plain"] for r in result["rounds"] if r["tls_over_plain"] is not None]
        result["tls_over_plain"] = ratios
        result["tls_over_plain_median"] = round(statistics.median(ratios), 3) if ratios else None
        result["any_ladder_top_held"] = any(
            r[k]["top_of_the_ladder_held"] for r in result["rounds"] for k in ("plain", "tls")
        )  # (then that figure is a lower bound: widen the steps)
        result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        result["earlier"] = _earlier()
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(f"ab_tls_ladder: ratios {ratios}; wrote {RESULTS}", flush=True)
        shutil.rmtree(work, ignore_errors=True)


def _earlier() -> list[dict[str, Any]]:
    """The runs already in tls_ladder.json, each as its summary (kept across reruns: a sitting's
    ratio says little without the others')."""
    try:
        old = json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        return []
    keys = ("date", "argv", "load_average_at_start", "tls_over_plain", "tls_over_plain_median", "load_average_at_end")
    summary = {k: old.get(k) for k in keys} | {
        "sessions_sustained": [
            {kind: r[kind]["sessions_sustained"] for kind in ("plain", "tls")} for r in old.get("rounds", [])
        ]
    }
    return [*old.get("earlier", []), summary] if old.get("date") else list(old.get("earlier", []))


if __name__ == "__main__":
    main()
