"""Through a real LiteLLM proxy: does every response row agree with the mock's truth log? (issue 21)

The flaky mock (a fixed seed) behind LiteLLM's realtime proxy on loopback, and ``rtload run`` dialling
the proxy (``ws://127.0.0.1:<port>/v1/realtime?model=gw-realtime``), as a team that calls the service
through a gateway does. Every response row is compared with what the mock did (its truth log): the
outcome and reason the injected fault implies, whatever the gateway made of it on the way (a backend
refusal after the gateway's own 101, a backend drop translated into an error and a close). The same
seed is also run straight at a second mock, so a disagreement is the gateway's and not the harness's.

LiteLLM is heavy (hundreds of dependencies, seconds to import, its own web stack), so this is a
bench and not a test extra: the pinned ``litellm[proxy]`` goes into its own virtualenv under
``bench/.litellm`` (made once, like bench_harness's Node packages in ``bench/.node``), never into the
project's ``.venv``.

    python -m bench gateway
    python -m bench.bench_gateway --duration 60s --users 4 --results /tmp/gateway.json

Writes bench/results/gateway.json (or ``--results``). Loopback only; every process it starts is
stopped at the end, and each run is bounded by ``--duration`` plus its drain.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "gateway.json"
VENV = HERE / ".litellm"
# 1.106.x is the line issue 21 was found on; never 1.107.0 (a compromised release was published as it)
LITELLM = "litellm[proxy]==1.106.4"
SEED = 21
MODEL = "gw-realtime"
BACKEND_MODEL = "gpt-realtime"
# the proxy's own key (the harness sends it) and the backend's (the proxy sends it to the mock);
# made-up loopback values, both passed through the environment, never on a command line
PROXY_KEY_ENV, PROXY_KEY = "BENCH_LITELLM_KEY", "sk-bench-gateway"
BACKEND_KEY_ENV, BACKEND_KEY = "BENCH_BACKEND_KEY", "mock-backend-key"
# the flaky profile, answered faster than real time and with its faults made more frequent, so a
# bounded run sees each of them (and every translation the gateway makes) a few times
RESPONSE_FAULTS = ("server_error", "stall", "silence", "hang", "missing_audio", "text_only", "drop", "incomplete")
MOCK_SET: dict[str, Any] = {
    "audio.speed": 20,
    "latency.created_ms": [10, 30],
    "latency.first_delta_ms": [10, 30],
    **{f"faults.{name}.rate": 0.04 for name in RESPONSE_FAULTS},
    "faults.handshake_5xx.rate": 0.08,
    "faults.handshake_429.rate": 0.08,
}


def _seconds(text: str) -> float:
    from loadtest.locust.shapes import parse_duration

    try:
        value = parse_duration(text)
    except ValueError:
        value = None
    if not value or value <= 0:
        raise argparse.ArgumentTypeError(f"cannot read duration {text!r}; write e.g. 60s or 2m")
    return float(value)


def ensure_litellm(timeout: float = 1800) -> Path:
    """The ``litellm`` command of the pinned proxy in bench/.litellm (installed once)."""
    exe = VENV / "bin" / "litellm"
    stamp = VENV / ".installed"
    if exe.exists() and stamp.exists() and stamp.read_text().strip() == LITELLM:
        return exe
    print(f"bench gateway: pip install {LITELLM} into {VENV} (once; a few minutes)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, timeout=300)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, LITELLM], check=True, timeout=timeout)
    stamp.write_text(LITELLM + "\n")
    return exe


def litellm_version() -> str:
    out = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return out.stdout.strip() or "unknown"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proxy_config(mock_port: int) -> str:
    """LiteLLM's config.yaml: one realtime model routed to the mock (OpenAI's GA shape)."""
    return (
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{BACKEND_MODEL}\n"
        f"      api_base: http://127.0.0.1:{mock_port}/v1\n"
        f"      api_key: os.environ/{BACKEND_KEY_ENV}\n"
        "    model_info:\n"
        "      mode: realtime\n"
        "general_settings:\n"
        f"  master_key: os.environ/{PROXY_KEY_ENV}\n"
    )


def proxy_env() -> dict[str, str]:
    """The proxy's environment: the keys, and nothing that reaches off the machine."""
    return {
        **os.environ,
        PROXY_KEY_ENV: PROXY_KEY,
        BACKEND_KEY_ENV: BACKEND_KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of the price map at start-up
        "LITELLM_TELEMETRY": "False",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def start_proxy(exe: Path, config: Path, port: int, log: Path, ready_timeout: float = 300) -> subprocess.Popen[bytes]:
    """``litellm --config ... --port`` on loopback; returns once its liveness endpoint answers."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
            stdout=out, stderr=subprocess.STDOUT, env=proxy_env(), start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + ready_timeout
    url = f"http://127.0.0.1:{port}/health/liveliness"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the LiteLLM proxy exited ({proc.returncode}); see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            pass
        time.sleep(1.0)
    stop(proc)
    raise RuntimeError(f"the LiteLLM proxy did not answer within {ready_timeout:.0f} s; see {log}")


def stop(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


def rtload_run(target: str, out: Path, run_id: str, args: argparse.Namespace, env: dict[str, str]) -> int:
    cmd = [
        sys.executable, "-m", "loadtest", "run", "--target", target, "--api-key-env", PROXY_KEY_ENV,
        "--scenario", args.scenario, "--pacing", "fast", "--users", str(args.users), "--spawn-rate", str(args.users),
        "--duration", f"{int(args.duration)}s", "--deadline", "10s", "--out", str(out), "--run-id", run_id,
        "--no-summary", "--no-html", "--progress-every", "30",
    ]  # fmt: skip
    print("running:", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, cwd=ROOT, env=env, timeout=args.duration * 3 + 180)
    return done.returncode


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    from loadtest.records.writer import read_rows

    return read_rows(path) if path.exists() else []


def agreement(rows: list[dict[str, Any]], truth: list[dict[str, Any]]) -> dict[str, Any]:
    """Every row against the mock's truth log: the outcome and reason the injected fault implies.

    A response the client saw created is matched by its id (its first truth row is the injected
    fault). A refused upgrade (the mock's session faults) is matched by its expected outcome and
    reason with a row that has no response id; a turn the session cap cut before it was announced,
    likewise with the session's ``session_expired``. Anything left over on either side disagrees.
    """
    from loadtest.records.schema import FAULT_EXPECTATIONS

    first: dict[str, dict[str, Any]] = {}
    for t in truth:
        if t.get("kind") == "response" and t.get("response_id") and t["response_id"] not in first:
            first[t["response_id"]] = t
    by_id = {r["response_id"]: r for r in rows if r.get("response_id")}
    anonymous = [r for r in rows if not r.get("response_id")]
    faults: Counter[str] = Counter()
    agree, total, mismatches = 0, 0, []
    for rid, t in first.items():
        if t.get("t_created") is None:  # planned, never announced: the client saw no id
            expected = FAULT_EXPECTATIONS[t["fault"]]
            match = next((r for r in anonymous if (r["outcome"], r["reason"]) == expected), None)
            total += 1
            faults[t["fault"]] += 1
            if match is not None:
                anonymous.remove(match)
                agree += 1
            else:
                mismatches.append(f"{rid} (never announced): truth {t['fault']} expects {expected}, no such row")
            continue
        expected = FAULT_EXPECTATIONS[t["fault"]]
        row = by_id.pop(rid, None)
        got = (row["outcome"], row["reason"]) if row else None
        total += 1
        faults[t["fault"]] += 1
        if got == expected:
            agree += 1
        else:
            mismatches.append(f"{rid}: truth {t['fault']} expects {expected}, recorded {got}")
    for t in truth:
        if t.get("kind") != "session" or t.get("fault") in (None, "none"):
            continue
        if t["fault"] not in FAULT_EXPECTATIONS:
            continue
        expected = FAULT_EXPECTATIONS[t["fault"]]
        match = next((r for r in anonymous if (r["outcome"], r["reason"]) == expected), None)
        if t["fault"] == "session_expired" and match is None:
            continue  # the cap ended a session between turns: no turn was cut
        total += 1
        faults[t["fault"]] += 1
        if match is not None:
            anonymous.remove(match)
            agree += 1
        else:
            mismatches.append(f"session {t.get('session_id')}: truth {t['fault']} expects {expected}, no such row")
    for rid, row in by_id.items():
        total += 1
        mismatches.append(f"{rid}: recorded {row['outcome']}/{row['reason']}, not in the truth log")
    for row in anonymous:
        total += 1
        got = f"{row['outcome']}/{row['reason']}"
        mismatches.append(f"turn {row.get('turn_index')}: recorded {got} without a truth row")
    return {
        "responses": len(rows),
        "compared": total,
        "agree": agree,
        "agreement_pct": round(100.0 * agree / total, 2) if total else None,
        "faults": dict(sorted(faults.items())),
        "outcomes": dict(sorted(Counter(f"{r['outcome']}/{r['reason'] or '-'}" for r in rows).items())),
        "via_gateway": sum(1 for r in rows if r.get("via_gateway")),
        "mismatches": mismatches[:40],
    }


def one_run(label: str, target: str, mock: Any, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, PROXY_KEY_ENV: PROXY_KEY if label == "gateway" else BACKEND_KEY}
    rc = rtload_run(target, work / "reports", label, args, env)
    run_dir = work / "reports" / label
    rows = read_jsonl(run_dir / "responses.jsonl")
    sessions = read_jsonl(run_dir / "sessions.jsonl")
    try:  # how late the mock itself sent (a gap it did not plan, e.g. on a loaded machine, is not its fault's)
        mock_lag_max_ms = mock.stats()["schedule_lag_ms"]["max"]
    except (OSError, ValueError, KeyError):
        mock_lag_max_ms = None
    result = {
        "exit_code": rc, "target": target, "sessions": len(sessions),
        "max_delta_gap_ms_of_clean_responses": max(
            (r.get("max_delta_gap_ms") or 0.0 for r in rows if r.get("outcome") == "completed"), default=None
        ),
        "mock_send_lag_max_ms": mock_lag_max_ms,
        **agreement(rows, mock.truth()),
    }  # fmt: skip
    print(
        f"{label}: {result['agree']} of {result['compared']} agree with the truth log "
        f"({result['agreement_pct']}%), {result['responses']} rows, {result['via_gateway']} via the gateway",
        flush=True,
    )
    for line in result["mismatches"][:10]:
        print("   ", line, flush=True)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=_seconds, default=90.0, help="each run's length, e.g. 90s (default)")
    parser.add_argument("--users", type=int, default=6, help="concurrent sessions")
    parser.add_argument("--scenario", default="conversation")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv if argv is not None else [])

    from loadtest.mock.process import start_mock

    exe = ensure_litellm()
    version = litellm_version()
    work = Path(tempfile.mkdtemp(prefix="rtload-gateway-"))
    load_before = os.getloadavg()
    runs: dict[str, Any] = {}
    mocks = []
    proxy = None
    try:
        # straight at the mock: the control (the same seed, the same faults)
        direct = start_mock(profile="flaky", seed=SEED, truth_path=work / "truth_direct.jsonl",
                            api_key=BACKEND_KEY, overrides=MOCK_SET, log_path=work / "mock_direct.log")  # fmt: skip
        mocks.append(direct)
        runs["direct"] = one_run("direct", f"{direct.url}/v1/realtime?model={BACKEND_MODEL}", direct, work, args)
        # through the proxy, in front of a second mock with the same seed
        backend = start_mock(profile="flaky", seed=SEED, truth_path=work / "truth_gateway.jsonl",
                             api_key=BACKEND_KEY, overrides=MOCK_SET, log_path=work / "mock_gateway.log")  # fmt: skip
        mocks.append(backend)
        config = work / "litellm.yaml"
        config.write_text(proxy_config(backend.port))
        port = free_port()
        started = time.monotonic()
        proxy = start_proxy(exe, config, port, work / "litellm.log")
        print(f"bench gateway: LiteLLM {version} ready on 127.0.0.1:{port} in {time.monotonic() - started:.0f} s")
        runs["gateway"] = one_run("gateway", f"ws://127.0.0.1:{port}/v1/realtime?model={MODEL}", backend, work, args)
    finally:
        if proxy is not None:
            stop(proxy)
        for mock in mocks:
            mock.stop()
    gateway = runs["gateway"]
    result = {
        "bench": "gateway",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_before": [round(x, 2) for x in load_before],
            "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "litellm": {"package": LITELLM, "version": version},
        "config": {
            "duration_s": args.duration,
            "users": args.users,
            "scenario": args.scenario,
            "mock": {"profile": "flaky", "seed": SEED, "set": MOCK_SET},
            "proxy_model": MODEL,
        },
        "runs": runs,
        "agreement_pct": gateway["agreement_pct"],
        "passed": gateway["compared"] > 0 and gateway["agree"] == gateway["compared"],
        "work_dir": str(work),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.results}: through LiteLLM {version} {gateway['agree']} of {gateway['compared']} agree")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
