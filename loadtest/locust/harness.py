"""The harness inside a Locust process: options, run directory, record routing, health, web UI.

:func:`install` hooks Locust's events (call it once from the locustfile):

- ``init_command_line_parser``: our ``--rt-*`` options.
- ``init``: on the master or a standalone process, validate the options (one line and exit 2 on bad
  input), start the embedded mock for ``--rt-target mock`` when no ``--rt-mock-url`` was given,
  open the run directory, listen for worker batches, add the web UI tab; in every process start
  health sampling.
- ``test_start``: write ``run.json`` (master/standalone); on a worker, build the session inputs from
  the options the master sent and start the batcher.
- ``test_stop`` (master): drain every worker, then stamp the end in ``run.json``.
- ``quitting``: flush and close the run directory, stop the mock this process started.

Only this module, :mod:`loadtest.locust.user` and :mod:`loadtest.locust.shape` import Locust.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import gevent
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from loadtest import __version__
from loadtest.locust import bounds, final_csv, lifeline, webui
from loadtest.locust.board import OutcomeBoard
from loadtest.locust.channel import MSG_DRAIN, MSG_DRAINED, MSG_RECORDS, RecordBatcher, receive_batch
from loadtest.locust.harness_paths import new_run_id
from loadtest.locust.health import HealthSampler
from loadtest.locust.options import HarnessOptions, OptionError, register
from loadtest.locust.sinks import BatchSink, ProcessSink, WriterSink
from loadtest.locust.warmup import warm_up
from loadtest.locust.workerloss import WorkerWatch
from loadtest.protocol.targets import redact_url
from loadtest.records.schema import MASTER_WORKER_ID
from loadtest.records.worker_loss import WORKERS_LOST
from loadtest.records.writer import RunWriter, update_run_json, write_run_json
from loadtest.session.runtime import SessionRuntime, process_runtime

log = logging.getLogger("rtload")
DRAIN_GRACE_S = 15.0  # beyond the stop timeout, how long the master waits for workers' last rows
WORKER_CHECK_S = 0.5  # how often the master compares Locust's worker table with the workers it saw


class HarnessState:
    """Everything the harness keeps in one Locust process."""

    def __init__(self) -> None:
        self.environment: Any = None
        self.options: HarnessOptions | None = None
        self.role = "local"  # local | master | worker
        self.worker_id = "local"
        self.run_id = ""
        self.run_dir: Path | None = None
        self.writer: RunWriter | None = None
        self.board = OutcomeBoard()
        self.batcher: RecordBatcher | None = None
        self.sink: ProcessSink | None = None
        self.sampler: HealthSampler | None = None
        self.mock: Any = None
        self.target_url: str | None = None
        self.session_inputs: Any = None  # (target, scenario, config) built per test
        # the sessions' shared audio clock, receiver and figures in this process (set at init)
        self.runtime: SessionRuntime | None = None
        self.run_start: float | None = None
        self.run_end: float | None = None
        self.user_seq = 0
        self.drained: set[str] = set()  # client ids of workers that sent their last records
        self.workers = WorkerWatch()  # master: workers seen, their batches, the ones lost mid-run
        self.watching_workers = False  # master: between test_start and the end of the drain
        self.stopping = False  # master: the run is stopping (workers quitting now are not lost)
        self.interrupted = False  # a SIGINT or SIGTERM arrived: the process is stopping
        self.t_start: float | None = None
        self.finished = False  # the run directory is closed (quitting)

    # ---- the load context stamped on every record ------------------------------------------
    def context(self) -> dict[str, Any]:
        step = users = None
        if self.options is not None:
            start = self.run_start if self.run_start is not None else time.time()
            at = self.options.plan.at(max(0.0, time.time() - start))
            if at is None:  # past the end: the last step
                at = self.options.plan.at(max(0.0, (self.options.plan.total_duration or 0) - 1e-6))
            if at is not None:
                step, users = at[0], at[1]
        return {"step": step, "users": users, "concurrency": self.open_sessions}

    @property
    def open_sessions(self) -> int:
        """Sessions open in this process now (the runtime's one count)."""
        return self.runtime.figures.open_sessions if self.runtime is not None else 0

    def past_end(self) -> bool:
        return self.run_end is not None and time.time() >= self.run_end

    def next_user_id(self) -> int:
        self.user_seq += 1
        return self.user_seq

    def session_starting(self) -> None:
        """A user is about to run a session: from now on the health probe's wake-ups count."""
        if self.sampler is not None:
            self.sampler.probe.sessions_started()

    # ---- options --------------------------------------------------------------------------
    def load_options(self, parsed: Any) -> HarnessOptions:
        if self.role != "worker":  # -u/-r/-t (maybe changed in the web UI form) are the truth here
            for name in ("rt_plan_users", "rt_plan_spawn_rate", "rt_plan_run_time"):
                if hasattr(parsed, name):
                    delattr(parsed, name)
        self.options = HarnessOptions.from_namespace(parsed)
        if self.role != "worker":  # travel to the workers with every spawn message
            parsed.rt_plan_users = self.options.plan.users
            parsed.rt_plan_spawn_rate = self.options.plan.spawn_rate
            parsed.rt_plan_run_time = self.options.plan.duration
        start = getattr(parsed, "rt_run_start", None)
        if start:
            self.set_run_start(float(start))
        if getattr(parsed, "rt_run_id_resolved", None):
            self.run_id = parsed.rt_run_id_resolved
        if getattr(parsed, "rt_target_url", None):
            self.target_url = parsed.rt_target_url
        return self.options

    def set_run_start(self, start: float) -> None:
        self.run_start = start
        total = self.options.plan.total_duration if self.options else None
        self.run_end = start + total if total is not None else None

    def build_session_inputs(self) -> Any:
        from loadtest.locust.inputs import build_session_inputs

        assert self.options is not None
        self.session_inputs = build_session_inputs(self.options, self.target_url)
        target = self.session_inputs.target
        if target.url().startswith("wss://"):
            from loadtest.session.transport import client_ssl_context

            client_ssl_context(target.network)  # the trusted CAs loaded now, not in the first connect
        if self.options.transport != "websocket" and self.runtime is not None:
            # aiortc imported, its loop started and the scenarios' audio made Opus before any user runs
            self.runtime.prepare("webrtc", self.session_inputs.audio_messages())
        if self.role != "worker":
            for line in self.session_inputs.warnings:  # preflight's warnings about the session file
                log.warning("rtload: %s", line)
        return self.session_inputs


STATE = HarnessState()  # this process's (Locust runs one test per process); users and shapes read it
# from their environment (harness_state), where init puts it


def harness_state(environment: Any) -> HarnessState:
    """The harness's run state of the Locust process ``environment`` belongs to."""
    state = getattr(environment, "rtload", None)
    return state if isinstance(state, HarnessState) else STATE


def _fail(message: str, code: int = 2) -> None:
    """Bad input: one line on stderr, exit 2 (no traceback); ``code`` for another reason."""
    sys.stderr.write(f"rtload: {message}\n")
    sys.stderr.flush()
    os._exit(code)


def _start_failed(where: str, exc: Exception) -> None:
    """A bug of ours while a test starts: the traceback into this process's log, one line, exit 1.
    Left to Locust, the exception is logged and the test runs on: users without their session
    inputs or a record sink fail in a tight loop, every record is dropped, and the run ends
    "done, 0 responses" with exit 0."""
    log.error("rtload: internal error while %s started the test", where, exc_info=exc)
    line = f"internal error while {where} started the test: {type(exc).__name__}: {exc}"
    if STATE.role != "worker":  # (a worker's run directory is the master's)
        _close_run_now(STATE, status="failed", stopped_by="internal_error", error=line)
    _fail(f"{line} (a bug in rtload, not in your input; the traceback is in this process's log: please report it)", 1)


def _on_parser(parser: Any, **_kw: Any) -> None:
    register(parser)


GC_THRESHOLDS = (50_000, 50, 1_000)  # young collections stay short; full ones become rare


def tune_gc() -> None:
    """Keep the garbage collector from pausing the audio clock.

    A full collection over a heap of Locust, numpy and thousands of sessions takes tens to hundreds
    of milliseconds, during which no audio frame goes out. Objects alive at start-up are frozen
    (never scanned again) and the thresholds raised so collections are rare and short.
    """
    # gevent keeps the spawning stack of every greenlet (debugging aid, ~8 frame objects each)
    gevent.config.track_greenlet_tree = False
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _on_init(environment: Any, **_kw: Any) -> None:
    state = STATE
    tune_gc()
    state.environment = environment
    environment.rtload = state  # what users and the shape read
    state.runtime = process_runtime()
    runner = environment.runner
    _arm_lifeline(isinstance(runner, WorkerRunner))
    _stop_signals()
    if isinstance(runner, WorkerRunner):
        state.role = "worker"
        runner.register_message(MSG_DRAIN, _on_drain)
    else:
        state.role = "master" if isinstance(runner, MasterRunner) else "local"
        state.worker_id = MASTER_WORKER_ID if state.role == "master" else "local"
        try:
            _apply_run_config(environment.parsed_options)
            options = state.load_options(environment.parsed_options)
            options.check_key()
            options.check_mock()
        except OptionError as exc:
            _fail(str(exc))
            return
        _open_run_dir(environment, options)
        if state.role == "master":
            runner.register_message(MSG_RECORDS, _on_records)
            runner.register_message(MSG_DRAINED, _on_drained)
            gevent.spawn(_watch_workers, runner)
        if environment.web_ui is not None:
            webui.install(environment.web_ui, state.board)
        if environment.stop_timeout in (None, 0, 0.0):
            # let in-flight responses finish when the run ends (their deadline, plus margin)
            environment.stop_timeout = options.deadline_s + 5.0
    warm_up(sessions=state.role != "master")  # first-use costs now, not on the audio clock mid-run
    state.sampler = HealthSampler(
        state.worker_id,
        _emit_health,
        users=lambda: 0 if state.role == "master" else environment.runner.user_count,
        interval_s=(state.options.health_interval_s if state.options else 1.0),
        frame_source=_frame_lag,
        receive_source=_receive_lag,
        gated=state.role != "master",  # the master runs no session: its loop's lag counts throughout
    )
    state.sampler.start()


def _stop_signals() -> None:
    """SIGTERM stops the process the way Ctrl-C does, once.

    Locust installs its SIGTERM handler only after a headless shape test has ended, so until then
    SIGTERM kills the process outright (run.json left "running", the last rows unflushed). And a
    Ctrl-C reaches every process of the terminal at once, just before ``rtload run`` passes on its
    own SIGTERM: that second signal must not cut short the stop the first one began.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # started with SIGINT ignored (``nohup rtload run ... &``, a shell's background job): leave
        # it so, but SIGTERM (``kill``, or rtload run passing its own on) still stops gracefully
        def on_sigterm_alone(signum: int, frame: Any) -> None:
            if not STATE.interrupted:
                STATE.interrupted = True
                signal.default_int_handler(signum, frame)  # KeyboardInterrupt, as Ctrl-C's

        signal.signal(signal.SIGTERM, on_sigterm_alone)
        return

    def on_sigint(signum: int, frame: Any) -> None:
        STATE.interrupted = True
        signal.default_int_handler(signum, frame)  # KeyboardInterrupt, as without this handler

    def on_sigterm() -> None:
        if not STATE.interrupted:
            STATE.interrupted = True
            os.kill(os.getpid(), signal.SIGINT)

    signal.signal(signal.SIGINT, on_sigint)
    gevent.signal_handler(signal.SIGTERM, on_sigterm)


def _arm_lifeline(worker: bool) -> None:
    """Under ``rtload run``: end with it. A worker dies with it (nothing of its own to save); a master
    or standalone process closes the run directory first, stamped ``stopped_by: parent_died``."""
    if worker:
        lifeline.arm(death_signal=signal.SIGKILL, grace_s=0.0)
        return
    loop = gevent.get_hub().loop  # the watchdog is an OS thread: it hands the work to this hub
    lifeline.arm(lambda: loop.run_callback_threadsafe(gevent.spawn, _on_orphaned))


def _close_run_now(state: HarnessState, with_rows: bool = False, **why: Any) -> None:
    """The process is about to exit before the test's end: close the run directory once, run.json
    stamped with ``why`` and ``t_end`` (and the rows written, ``with_rows``). Never raises."""
    if state.writer is None or state.run_dir is None or state.finished:
        return
    state.finished = True
    with contextlib.suppress(Exception):
        state.writer.close()
        if with_rows:
            why["rows"] = dict(state.writer.counts)
        update_run_json(state.run_dir, t_end=time.time(), **why)


def _on_orphaned() -> None:
    """The ``rtload run`` that started this process is gone: stop the load now, keep what was recorded."""
    state = STATE
    log.warning("rtload: the rtload run process that started this one is gone; stopping now")
    _close_run_now(state, with_rows=True, status="stopped", stopped_by="parent_died")
    if state.mock is not None:
        with contextlib.suppress(Exception):
            state.mock.stop(timeout=0.3)
    os._exit(lifeline.ORPHANED_EXIT_CODE)


def _frame_lag() -> dict[str, float]:
    return process_runtime().figures.frame_lag.take()


def _receive_lag() -> dict[str, float]:
    return process_runtime().figures.receive_lag.take()


def _open_run_dir(environment: Any, options: HarnessOptions) -> None:
    state = STATE
    parsed = environment.parsed_options
    run_dir = Path(options.run_dir) if options.run_dir else None
    state.run_id = options.run_id or (run_dir.name if run_dir else new_run_id())
    run_dir = run_dir or Path(options.out) / state.run_id
    state.run_dir = run_dir
    state.writer = RunWriter(run_dir)
    state.writer.start_flusher()
    state.sink = WriterSink(state.writer, state.board)
    parsed.rt_run_id_resolved = state.run_id  # travels to the workers with every spawn message
    if options.is_mock:
        mock_url = getattr(parsed, "rt_mock_url", None) or os.environ.get("RTLOAD_MOCK_URL")
        if not mock_url:
            from loadtest.locust.mockctl import start_embedded_mock

            try:
                state.mock = start_embedded_mock(options, run_dir)
            except Exception as exc:
                _fail(f"could not start the embedded mock: {exc}")
            mock_url = state.mock.url
        state.target_url = mock_url
        parsed.rt_target_url = mock_url
    write_run_json(run_dir, run_info(options, status="starting"))


def run_info(options: HarnessOptions, **extra: Any) -> dict[str, Any]:
    import locust

    state = STATE
    target = options.build_target(state.target_url, environ={}).describe()
    info: dict[str, Any] = {
        "run_id": state.run_id,
        "harness_version": __version__,
        "locust_version": locust.__version__,
        "host": socket.gethostname(),
        "mode": state.role,
        "target": target,
        "dialect": options.dialect,
        "deployment": options.deployment,
        "scenario": options.scenario or "(default)",
        "fixture": options.fixture or None,
        "shape": options.plan.describe(),
        "options": options.describe(),
    }
    if options.is_mock:
        url = redact_url(state.target_url) if state.target_url else None
        info["mock"] = {"profile": options.mock_profile, "overrides": options.redacted_mock_set(), "url": url}
    info.update(_workload_info(options))
    info.update(extra)
    return info


def _apply_run_config(parsed: Any) -> None:
    """``locust -f loadtest/locustfile.py --config run.toml``: the file's top-level rtload options."""
    from loadtest.locust.options import LOCUST_OPTIONS
    from loadtest.workload.errors import WorkloadError
    from loadtest.workload.run_config import apply_to_locust

    defaults = {flag[2:].replace("-", "_"): default for flag, default, _help in LOCUST_OPTIONS}
    try:
        apply_to_locust(parsed, defaults)
    except WorkloadError as exc:
        raise OptionError(str(exc)) from None


def _workload_info(options: HarnessOptions) -> dict[str, Any]:
    """For run.json: the scenario mix, the scenario and session files (content and hash), and the
    resolved configuration ``rtload run`` left in the run directory (secrets redacted)."""
    import tomllib

    from loadtest.locust.launcher import RUN_CONFIG_FILE

    state = STATE
    out: dict[str, Any] = {}
    from loadtest.workload.bind import bind, describe

    inputs = state.session_inputs
    work = inputs.workload if inputs is not None else None
    with contextlib.suppress(Exception):  # run.json is written whatever the files say (validated elsewhere)
        if work is None:  # the master builds no sessions: read the files for the record
            work = bind(
                options.scenario,
                dialect=options.dialect,
                deployment=options.deployment,
                session_file=options.session_file,
                fixture=options.fixture,
                given=options.given,
                check=False,
            )
        out["workload"] = describe(work, options.scenario)
    if state.run_dir is not None and (state.run_dir / RUN_CONFIG_FILE).is_file():
        with contextlib.suppress(OSError, tomllib.TOMLDecodeError):
            out["config"] = tomllib.loads((state.run_dir / RUN_CONFIG_FILE).read_text(encoding="utf-8"))
    return out


def _emit_health(row: dict[str, Any]) -> None:
    state = STATE
    if state.role == "worker":
        if state.batcher is not None:
            state.batcher.add("health", row)
    elif state.writer is not None:
        state.writer.health(row)


def _on_test_start(environment: Any, **_kw: Any) -> None:
    state = STATE
    runner = environment.runner
    if state.sampler is not None:
        state.sampler.probe.idle()  # a test restarted from the web UI: nothing runs until its users start
    if state.role == "worker":
        state.worker_id = f"w{getattr(runner, 'worker_index', 0)}"
        if state.sampler is not None:
            state.sampler.worker_id = state.worker_id
        try:
            state.load_options(environment.parsed_options)
            state.options.check_key()  # type: ignore[union-attr]
            state.build_session_inputs()
        except OptionError as exc:
            log.error("rtload: %s", exc)
            _fail(str(exc))
        except Exception as exc:
            _start_failed(f"worker {state.worker_id}", exc)
        if state.batcher is not None:  # a test restarted from the web UI: one batcher at a time
            state.batcher.stop()
            state.batcher.flush()
        state.batcher = RecordBatcher(lambda t, d: runner.send_message(t, d), state.worker_id)
        state.sink = BatchSink(state.batcher)
        state.batcher.start()
        return
    # master / standalone: the options may have changed in the web UI form
    try:
        state.load_options(environment.parsed_options)
        if state.role == "local":
            state.build_session_inputs()
    except OptionError as exc:
        _fail(str(exc))
    except Exception as exc:
        _start_failed(state.role, exc)
    state.t_start = time.time()
    state.drained.clear()
    state.workers = WorkerWatch()
    state.watching_workers = state.role == "master"
    state.stopping = False
    assert state.options is not None and state.run_dir is not None
    extra: dict[str, Any] = {"status": "running", "t_start": state.t_start}
    if state.role == "master":
        clients = list(getattr(runner, "clients", {}).values()) if hasattr(runner, "clients") else []
        extra["workers"] = len(clients)
        extra["hosts"] = sorted({str(c.id).rsplit("_", 1)[0] for c in clients}) or [socket.gethostname()]
    else:
        extra["workers"] = 0
        extra["hosts"] = [socket.gethostname()]
    extra["host_count"] = len(extra["hosts"])
    write_run_json(state.run_dir, run_info(state.options, **extra))


def _on_records(environment: Any, msg: Any, **_kw: Any) -> None:
    state = STATE
    if state.writer is not None:
        rows = receive_batch(msg.data, state.writer, state.board.add)
        state.workers.batch(str(msg.node_id), msg.data.get("worker_id"), rows, time.time())


def _on_drained(environment: Any, msg: Any, **_kw: Any) -> None:
    STATE.drained.add(str(msg.node_id))


def _check_workers(runner: Any) -> None:
    """Master: record in run.json each worker lost since the last check (dead or gone mid-run)."""
    state = STATE
    if not state.watching_workers or state.run_dir is None:
        return
    indexes = getattr(runner, "worker_indexes", {})
    lost = state.workers.check(
        runner.clients, time.time(), state.t_start, indexes, stopping=state.stopping, interrupted=state.interrupted
    )
    for record in lost:
        log.warning(
            "rtload: worker %s lost (%s) %.0f s into the run; its last batch of records came at %s with %d rows",
            record["worker_id"], record["how"], record["at_s"] or 0, record["last_batch_t"],
            record["last_batch_rows"],
        )  # fmt: skip
    if lost:
        update_run_json(state.run_dir, **{WORKERS_LOST: state.workers.lost})


def _on_test_stopping(environment: Any, **_kw: Any) -> None:
    if STATE.role == "master":
        _check_workers(environment.runner)  # a loss just before the stop is still a loss
        STATE.stopping = True


def _watch_workers(runner: Any) -> None:
    """Master: notice a lost worker as soon as Locust does (its heartbeat check marks it missing)."""
    while not STATE.finished:
        gevent.sleep(WORKER_CHECK_S)
        with contextlib.suppress(Exception):  # a check must never end the watch
            _check_workers(runner)


def _on_drain(environment: Any, msg: Any, **_kw: Any) -> None:
    """Worker: stop the users (in-flight responses finish), send the rest, say so."""
    state = STATE
    runner = environment.runner
    with contextlib.suppress(Exception):  # already stopping
        runner.stop()
    if state.sampler is not None and state.batcher is not None:
        state.batcher.add("health", state.sampler.sample())
    if state.batcher is not None:
        state.batcher.flush()
    runner.send_message(MSG_DRAINED, {"worker_id": state.worker_id})


def _on_test_stop(environment: Any, **_kw: Any) -> None:
    state = STATE
    runner = environment.runner
    if state.role == "worker":
        if state.batcher is not None:
            state.batcher.flush()
        return
    if state.role == "master":
        _check_workers(runner)
        for client_id in state.workers.alive(runner.clients):
            runner.send_message(MSG_DRAIN, None, client_id)
        limit = time.monotonic() + (environment.stop_timeout or 0) + DRAIN_GRACE_S

        def waiting() -> set[str]:  # a worker lost meanwhile is not waited for
            _check_workers(runner)
            return state.workers.alive(runner.clients) - state.drained

        while waiting() and time.monotonic() < limit:
            gevent.sleep(0.1)
        state.watching_workers = False
        if waiting():
            log.warning("rtload: %d worker(s) did not send their last records", len(waiting()))
    if state.writer is not None and state.run_dir is not None and not state.finished:
        state.writer.flush()
        update_run_json(
            state.run_dir,
            status="stopped",
            t_end=time.time(),
            rows={k: v for k, v in state.writer.counts.items()},
            traces_dropped=state.writer.traces_dropped,
            audio_kept=state.writer.audio_budget.files,
            audio_dropped=state.writer.audio_budget.dropped,
        )


def _on_quitting(environment: Any, **_kw: Any) -> None:
    state = STATE
    runner = environment.runner
    if state.role != "worker" and runner is not None and runner.state in ("spawning", "running"):
        # Locust quits (SIGTERM, Ctrl-C) before stopping the users: stop them first so the
        # responses in flight and the workers' last batches still reach the run directory
        with contextlib.suppress(Exception):
            runner.stop()
    if state.sampler is not None:
        state.sampler.stop()
    if state.batcher is not None:
        state.batcher.stop()
        with contextlib.suppress(Exception):
            state.batcher.flush()
    if state.writer is not None:
        state.finished = True
        state.writer.close()
        if state.run_dir is not None:
            update_run_json(state.run_dir, status="finished", rows=dict(state.writer.counts))
    if state.mock is not None:
        state.mock.stop()


_installed = False


def install() -> None:
    """Hook the harness into Locust's events (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    final_csv.install()
    bounds.install()
    events.init_command_line_parser.add_listener(_on_parser)
    events.init.add_listener(_on_init)
    events.test_start.add_listener(_on_test_start)
    events.test_stopping.add_listener(_on_test_stopping)
    events.test_stop.add_listener(_on_test_stop)
    events.quitting.add_listener(_on_quitting)
