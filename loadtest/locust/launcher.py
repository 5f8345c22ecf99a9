"""What ``rtload run`` does: validate, start the mock and the Locust processes, show progress, judge.

Process layout (all on loopback unless ``--master``/``--worker`` spread it over machines):

- ``--target mock``: the mock is its own process (``start_mock``), its truth log written into the
  run directory as ``mock_truth.jsonl``;
- one standalone Locust process, or a master (``--master --expect-workers N``) and ``--workers N``
  worker processes (``--worker --master-host 127.0.0.1``);
- this process only reads the run directory (progress lines) and, at the end, prints the summary
  and checks ``--fail-on``.

Exit codes: 0 ok; 1 a ``--fail-on`` threshold was crossed, Locust failed, a worker was lost or no
response was recorded; 2 bad input.
Locust's own output goes to ``locust.log`` (and ``worker-N.log``) in the run directory.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from loadtest.locust import lifeline
from loadtest.locust.failon import Threshold, check, parse_fail_on
from loadtest.locust.harness_paths import LOCUSTFILE, new_run_id
from loadtest.locust.options import PROXY_ENV, HarnessOptions, OptionError
from loadtest.locust.progress import RunTail, outcome_table
from loadtest.records.schema import RESPONSES_FILE
from loadtest.records.worker_loss import WORKERS_LOST
from loadtest.records.writer import read_rows, read_run_json, update_run_json

WORKER_JOIN_TIMEOUT_S = 20.0


@dataclass(slots=True)
class RunRequest:
    target: str = "mock"
    provider: str = "openai"
    dialect: str = "ga"
    deployment: str = "gpt-realtime"
    api_key_env: str = ""
    auth: str = "auto"
    api_version: str = ""
    query: list[str] = field(default_factory=list)  # Voice Live query parameters, name=value
    scenario: str = "single_turn"
    fixture: str = ""
    modalities: str = ""  # "" = the session file's, else audio
    audio_format: str = ""  # "" = the session file's, else pcm16
    session_file: str = ""
    no_check: bool = False
    pacing: str = "realtime"
    users: int = 4
    spawn_rate: float = 2.0
    duration: str = "1m"
    shape: str = "constant"
    step_users: int = 0
    step_duration: str = "30s"
    start_users: int = 0
    spike_users: int = 0
    spike_at: str = ""
    spike_duration: str = "30s"
    session_lifetime: str = ""
    reconnect_max: str = "30s"
    deadline: str = "30s"
    stall_ms: float = 1500.0
    keep_audio: str = "failed"
    transport: str = "websocket"  # websocket | webrtc | both
    workers: int = 0
    master: bool = False
    expect_workers: int = 0
    worker: bool = False
    master_host: str = "127.0.0.1"
    master_port: int = 0
    out: str = "reports"
    run_id: str = ""
    mock_profile: str = "healthy"
    mock_set: list[str] = field(default_factory=list)
    fail_on: str = ""
    progress_every: float = 5.0
    summary: bool = True
    html: bool = True
    allow_worker_loss: bool = False
    proxy: str = ""  # a secret when it holds credentials: passed to the children in RTLOAD_PROXY, never argv
    ca_bundle: str = ""

    def rt_args(self) -> list[str]:
        """The ``--rt-*`` Locust options for this request."""
        pairs = {
            "--rt-target": self.target,
            "--rt-provider": self.provider,
            "--rt-dialect": self.dialect,
            "--rt-deployment": self.deployment,
            "--rt-api-key-env": self.api_key_env,
            "--rt-auth": self.auth,
            "--rt-api-version": self.api_version,
            "--rt-query": ";".join(self.query),
            "--rt-scenario": self.scenario,
            "--rt-fixture": self.fixture,
            "--rt-modalities": self.modalities,
            "--rt-audio-format": self.audio_format,
            "--rt-pacing": self.pacing,
            "--rt-stall-ms": str(self.stall_ms),
            "--rt-keep-audio": self.keep_audio,
            "--rt-transport": self.transport,
            "--rt-deadline": self.deadline,
            "--rt-session-lifetime": self.session_lifetime,
            "--rt-reconnect-max": self.reconnect_max,
            "--rt-shape": self.shape,
            "--rt-step-users": str(self.step_users),
            "--rt-step-duration": self.step_duration,
            "--rt-start-users": str(self.start_users),
            "--rt-spike-users": str(self.spike_users),
            "--rt-spike-at": self.spike_at,
            "--rt-spike-duration": self.spike_duration,
            "--rt-out": self.out,
            "--rt-mock-profile": self.mock_profile,
            "--rt-mock-set": ";".join(self.mock_set),
            "--rt-session-file": self.session_file,
            "--rt-no-check": "1" if self.no_check else "",
            "--rt-ca-bundle": self.ca_bundle,
        }
        args: list[str] = []
        for flag, value in pairs.items():
            if value not in ("", None):
                args += [flag, str(value)]
        return args

    def namespace(self) -> SimpleNamespace:
        """What Locust would parse from :meth:`rt_args` (for validation before starting anything)."""
        ns: dict[str, Any] = {}
        args = self.rt_args()
        for flag, value in zip(args[::2], args[1::2], strict=True):
            ns[flag[2:].replace("-", "_")] = value
        ns.update(num_users=self.users, spawn_rate=self.spawn_rate, run_time=self.duration or None)
        ns["rt_proxy"] = self.proxy
        return SimpleNamespace(**ns)


def _proxy_env(request: RunRequest) -> dict[str, str]:
    """--proxy for the Locust processes: in their environment, not on a command line others can list."""
    return {PROXY_ENV: request.proxy} if request.proxy else {}


def _die(message: str, code: int = 2) -> int:
    sys.stderr.write(f"rtload: {message}\n")
    return code


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def validate(request: RunRequest) -> tuple[HarnessOptions, list[Threshold]]:
    """Every user mistake as one :class:`OptionError` line, before any process starts."""
    if request.users < 1:
        raise OptionError(f"--users must be at least 1 (got {request.users})")
    if request.workers < 0:
        raise OptionError(f"--workers must be 0 or more (got {request.workers})")
    if request.master and request.worker:
        raise OptionError("--master and --worker exclude each other")
    options = HarnessOptions.from_namespace(request.namespace())
    options.check_key()
    options.check_mock()
    from loadtest.locust.inputs import build_session_inputs

    inputs = build_session_inputs(options)
    for line in inputs.warnings:  # preflight's warnings about the session file: printed, the run goes on
        sys.stderr.write(f"rtload: {line}\n")
    try:
        thresholds = parse_fail_on(request.fail_on)
    except ValueError as exc:
        raise OptionError(str(exc)) from None
    if options.is_mock and importlib.util.find_spec("loadtest.mock.process") is None:
        raise OptionError("--target mock needs the mock server (loadtest.mock.process), which is not installed")
    return options, thresholds


class MockStartError(RuntimeError):
    """The embedded mock did not start (its options were checked before: a port or machine problem)."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a run the way Ctrl-C does (Locust stops gracefully, the summary is printed):
    the children would otherwise outlive this process only to be ended by their lifeline."""

    def interrupt(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _locust(*args: str) -> list[str]:
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), *args]


RUN_CONFIG_FILE = "run_config.toml"  # the resolved configuration (secrets redacted), beside run.json


def launch(request: RunRequest, config_toml: str | None = None) -> int:
    """Run ``request``; ``config_toml`` (the configuration it came from, secrets redacted, as
    :func:`loadtest.workload.run_config.to_toml` writes it) is kept in the run directory."""
    if request.worker:
        return _run_worker(request)
    try:
        options, thresholds = validate(request)
    except OptionError as exc:
        return _die(str(exc))
    run_id = request.run_id or new_run_id()
    run_dir = Path(request.out) / run_id
    if (run_dir / "run.json").exists():
        return _die(f"run directory {run_dir} already exists: choose another --run-id or --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    if config_toml is not None:
        (run_dir / RUN_CONFIG_FILE).write_text(config_toml, encoding="utf-8")
    with sigterm_as_interrupt():
        try:
            code = _run_processes(request, options, run_id, run_dir)
        except MockStartError as exc:
            return _die(f"could not start the mock (profile {request.mock_profile!r}): {exc}")
    return _finish(run_dir, code, thresholds, request)


def _run_processes(request: RunRequest, options: HarnessOptions, run_id: str, run_dir: Path) -> int:
    """Start the mock and the Locust processes, show progress until the run ends; Locust's exit code."""
    mock = None
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Any] = []
    try:
        extra: list[str] = ["--rt-run-dir", str(run_dir), "--rt-run-id", run_id]
        if options.is_mock:
            from loadtest.locust.mockctl import start_embedded_mock

            try:
                mock = start_embedded_mock(options, run_dir)
            except Exception as exc:
                raise MockStartError(str(exc)) from None
            extra += ["--rt-mock-url", mock.url]
            print(f"rtload run: mock ({request.mock_profile}) on {mock.url}", flush=True)
            if request.master:
                sys.stderr.write(
                    f"rtload run: warning: the mock listens on {mock.url} (loopback), so only workers on this "
                    "machine can reach it; workers on other machines need a reachable --target\n"
                )
                sys.stderr.flush()
        common = [
            "--headless",
            "-u",
            str(request.users),
            "-r",
            str(request.spawn_rate),
            "--exit-code-on-error",
            "0",
            "--only-summary",
            *request.rt_args(),
            *extra,
        ]
        if request.duration:
            common += ["-t", request.duration]
        if request.html:
            common += ["--csv", str(run_dir / "locust"), "--html", str(run_dir / "locust.html")]
        env = lifeline.child_env({**os.environ, "PYTHONUNBUFFERED": "1", **_proxy_env(request)})  # end with us
        master_log = open(run_dir / "locust.log", "wb")  # noqa: SIM115 - closed in finally
        logs.append(master_log)
        n_local = request.workers
        if n_local or request.master:
            port = request.master_port or (_free_port() if not request.master else 5557)
            bind = "127.0.0.1" if not request.master else "*"
            expect = request.expect_workers or n_local or 1
            master_cmd = _locust(
                "--master",
                "--master-bind-host",
                bind,
                "--master-bind-port",
                str(port),
                "--expect-workers",
                str(expect),
                *common,
            )
            procs.append(subprocess.Popen(master_cmd, stdout=master_log, stderr=subprocess.STDOUT, env=env))
            for i in range(n_local):
                wlog = open(run_dir / f"worker-{i}.log", "wb")  # noqa: SIM115 - closed in finally
                logs.append(wlog)
                cmd = _locust("--worker", "--master-host", "127.0.0.1", "--master-port", str(port))
                procs.append(subprocess.Popen(cmd, stdout=wlog, stderr=subprocess.STDOUT, env=env))
            where = f"master on port {port}, {n_local} local worker(s), expecting {expect}"
        else:
            procs.append(subprocess.Popen(_locust(*common), stdout=master_log, stderr=subprocess.STDOUT, env=env))
            where = "one process"
        print(f"rtload run: {run_dir} ({where}; shape {options.plan.shape}, {request.users} users)", flush=True)
        code = _watch(procs, run_dir, request.progress_every)
    except KeyboardInterrupt:
        print("rtload run: interrupted, stopping Locust (the run directory keeps what was recorded)", flush=True)
        _terminate(procs)
        code = 130
    finally:
        _terminate(procs, grace=WORKER_JOIN_TIMEOUT_S)
        if mock is not None:
            mock.stop()
        for handle in logs:
            with contextlib.suppress(OSError):
                handle.close()
    return code


def _watch(procs: list[subprocess.Popen[bytes]], run_dir: Path, every: float) -> int:
    master = procs[0]
    worker_logs = {proc.pid: run_dir / f"worker-{i}.log" for i, proc in enumerate(procs[1:])}
    tail = RunTail(run_dir)
    next_line = time.monotonic() + every if every > 0 else float("inf")
    while master.poll() is None:
        time.sleep(0.25)
        if time.monotonic() >= next_line:
            tail.poll()
            print(tail.line(), flush=True)
            next_line += every
        for worker in procs[1:]:
            if worker.poll() not in (None, 0):
                its_log = worker_logs[worker.pid]
                print(f"rtload run: a worker exited with code {worker.returncode}; see {its_log}", flush=True)
                procs.remove(worker)
    return master.returncode or 0


def _terminate(procs: list[subprocess.Popen[bytes]], grace: float = 10.0) -> None:
    """SIGTERM the master (or standalone process) first: it stops the run and tells its workers to
    quit after their last records; then whatever is left. SIGKILL what outlives ``grace``."""
    deadline = time.monotonic() + grace
    for group in (procs[:1], procs[1:]):
        for proc in group:
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.send_signal(signal.SIGTERM)
        for proc in group:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _finish(run_dir: Path, locust_code: int, thresholds: list[Threshold], request: RunRequest) -> int:
    rows = read_rows(run_dir / RESPONSES_FILE)
    if request.summary:
        print(summary_text(run_dir, rows), flush=True)
    if locust_code not in (0, 130):
        return _die(f"Locust exited with code {locust_code}; see {run_dir / 'locust.log'}", 1)
    if locust_code == 130:
        return 130
    lost = _workers_lost(run_dir)
    if lost and not request.allow_worker_loss:
        return _die(f"{lost}; the data is incomplete (--allow-worker-loss accepts such a run)", 1)
    crossed = check(thresholds, rows)
    with contextlib.suppress(OSError):
        update_run_json(run_dir, fail_on=request.fail_on or None, fail_on_crossed=crossed)
    if crossed:
        return _die("--fail-on crossed: " + "; ".join(crossed), 1)
    if not rows:  # nothing to judge: a CI job or a 3 a.m. rerun must not read this as a pass
        return _die(f"no response was recorded, so the run measured nothing; see {run_dir / 'locust.log'}", 1)
    print(f"rtload run: done, {len(rows)} responses in {run_dir}", flush=True)
    return 0


def _workers_lost(run_dir: Path) -> str:
    """One "worker w1 lost 12 s into the run" per worker run.json records as lost, or ""."""
    try:
        lost = read_run_json(run_dir).get(WORKERS_LOST) or []
    except (OSError, ValueError):
        return ""
    said = [f"worker {r.get('worker_id')} lost {r.get('at_s')} s into the run" for r in lost if isinstance(r, dict)]
    return ", ".join(said)


def summary_text(run_dir: Path, rows: list[dict[str, Any]]) -> str:
    """The report tool's summary when it is installed, else the built-in outcome table."""
    if importlib.util.find_spec("loadtest.report.command") is not None:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "loadtest", "report", "summary", str(run_dir)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            if done.returncode == 0 and done.stdout.strip():
                return done.stdout.rstrip()
        except (OSError, subprocess.TimeoutExpired):
            pass
    return outcome_table(rows)


def _run_worker(request: RunRequest) -> int:
    """``rtload run --worker --master-host H``: options come from the master."""
    port = request.master_port or 5557
    cmd = _locust("--worker", "--master-host", request.master_host, "--master-port", str(port))
    print(f"rtload run: worker of {request.master_host}:{port}", flush=True)
    proc = subprocess.Popen(cmd, env=lifeline.child_env({**os.environ, **_proxy_env(request)}))
    try:
        with sigterm_as_interrupt():
            return proc.wait()
    except KeyboardInterrupt:
        _terminate([proc], grace=WORKER_JOIN_TIMEOUT_S)
        return 130
