"""Crash safety, secrets, the web UI tab, plain `locust -f`, and bad input (real processes, loopback)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import psutil
import pytest
from typer.testing import CliRunner

from loadtest.cli import app
from loadtest.locust.harness_paths import LOCUSTFILE
from loadtest.records.writer import read_rows
from tests.browser import rendered_dom

from .conftest import FAST_MOCK, free_port, mock_args, responses, rtload_runs, run_dir

FAKE_KEY = "sk-rtload-FAKE-9d1c7e44b2a04f0d8e6b3c5a7f1e2d90"


def _as_under_nohup() -> None:
    """``nohup rtload run ... &`` from a script: SIGHUP and SIGINT ignored, SIGTERM as it comes."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _as_in_a_terminal() -> None:
    """The signal dispositions of a command typed at a terminal: a test suite started under
    ``nohup`` or as a shell's background job inherits SIGHUP or SIGINT ignored, and these tests are
    about what a terminal's hang-up and Ctrl-C do."""
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def _wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    limit = time.monotonic() + timeout
    while time.monotonic() < limit:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.mark.e2e
def test_sigkill_mid_run_leaves_a_readable_run_directory(tmp_path: Path, procs: list[subprocess.Popen]) -> None:
    cmd = [sys.executable, "-m", "loadtest", "run", "--out", str(tmp_path / "reports"), "--run-id", "killed",
           *mock_args(), "--scenario", "quick_text", "--users", "3", "--spawn-rate", "10", "--duration", "60s",
           "--progress-every", "1"]  # fmt: skip
    parent = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs.append(parent)
    path = run_dir(tmp_path, "killed")
    _wait_for(lambda: len(responses(path)) >= 5, 40, "five response rows")
    locust = [p for p in psutil.Process(parent.pid).children() if "locust" in " ".join(p.cmdline())]
    assert len(locust) == 1
    time.sleep(1.2)
    rows_before = len(responses(path))  # rows on disk over a second before the kill
    os.kill(locust[0].pid, signal.SIGKILL)
    out, err = parent.communicate(timeout=60)
    # the parent notices, still prints the summary from what was recorded, and fails the run
    assert parent.returncode == 1
    assert "Locust exited with code -9" in err
    rows = responses(path)  # a torn last line would be skipped; everything else parses
    assert len(rows) >= rows_before >= 5
    assert all(r["outcome"] for r in rows)
    run = json.loads((path / "run.json").read_text())
    assert run["status"] == "running"  # never reached its end, and says so
    assert read_rows(path / "sessions.jsonl")
    assert str(len(rows)) in out  # the summary counted the rows that survived


def _run_family(parent: subprocess.Popen, count: int, timeout: float = 30) -> list[psutil.Process]:
    """The processes `rtload run` started (Locust master and workers, the mock), once all are up."""
    found: list[psutil.Process] = []

    def up() -> bool:
        found[:] = psutil.Process(parent.pid).children(recursive=True)
        return len(found) >= count

    _wait_for(up, timeout, f"{count} child processes")
    return found


def _alive(procs: list[psutil.Process]) -> list[str]:
    out = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(" ".join(proc.cmdline()[-6:]))
    return out


def _of_run(path: Path) -> list[str]:
    """Any process on the machine whose command line names the run directory (master, mock)."""
    out = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if str(path) in " ".join(proc.info["cmdline"] or []) and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(" ".join(proc.info["cmdline"][-6:]))
    return out


@pytest.mark.e2e
@pytest.mark.timing
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP], ids=["SIGKILL", "SIGHUP"])
def test_killing_rtload_run_leaves_no_process_of_the_run(
    sig: int, tmp_path: Path, procs: list[subprocess.Popen]
) -> None:
    """`rtload run --workers 2` killed outright (or its terminal closed): the master, both workers and
    the mock end with it instead of sending load until the duration ends."""
    cmd = [sys.executable, "-m", "loadtest", "run", "--out", str(tmp_path / "reports"), "--run-id", "orphans",
           *mock_args(), "--scenario", "quick_text", "--workers", "2", "--users", "4", "--spawn-rate", "20",
           "--duration", "60s", "--progress-every", "0"]  # fmt: skip
    parent = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_as_in_a_terminal)
    procs.append(parent)
    path = run_dir(tmp_path, "orphans")
    family = _run_family(parent, 4)  # master, two workers, the mock
    _wait_for(lambda: {r["worker_id"] for r in responses(path)} == {"w0", "w1"}, 40, "rows from both workers")
    assert _of_run(path)  # the search below does find this run's processes while they live
    os.kill(parent.pid, sig)
    parent.wait(timeout=10)
    limit = time.monotonic() + 3  # all gone within 3 s of the parent (polled, not slept)
    while (_alive(family) or _of_run(path)) and time.monotonic() < limit:
        time.sleep(0.1)
    assert _alive(family) == []
    assert _of_run(path) == []
    # the master closed the run directory on its way out, and says why the run stopped
    run = json.loads((path / "run.json").read_text())
    assert run["status"] == "stopped" and run["stopped_by"] == "parent_died" and run["t_end"]
    assert responses(path)


@pytest.mark.timing  # Locust's graceful stop must fit the launcher's grace
@pytest.mark.e2e
@pytest.mark.parametrize(
    ("how", "workers"),
    [("SIGTERM", 0), ("SIGTERM", 2), ("Ctrl-C", 2), ("SIGTERM-nohup", 2)],
    ids=["sigterm", "sigterm-workers", "ctrl-c", "sigterm-nohup"],
)
def test_sigterm_stops_rtload_run_gracefully_with_the_summary(
    how: str, workers: int, tmp_path: Path, procs: list[subprocess.Popen]
) -> None:
    """SIGTERM to `rtload run`, or Ctrl-C (SIGINT to the terminal's whole process group): the run
    stops gracefully, prints its summary, and no worker quitting with it counts as lost. Also when
    started as ``nohup rtload run ... &`` does (SIGHUP and SIGINT ignored): ``kill`` stops it gracefully."""
    cmd = [sys.executable, "-m", "loadtest", "run", "--out", str(tmp_path / "reports"), "--run-id", "termed",
           *mock_args(), "--scenario", "quick_text", "--users", "2", "--spawn-rate", "20", "--duration", "60s",
           "--progress-every", "0", "--workers", str(workers)]  # fmt: skip
    parent = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=_as_under_nohup if how == "SIGTERM-nohup" else _as_in_a_terminal,
    )  # fmt: skip
    procs.append(parent)
    path = run_dir(tmp_path, "termed")
    family = _run_family(parent, 2 + workers)  # Locust (standalone or master), the workers, the mock
    _wait_for(lambda: len(responses(path)) >= 3, 40, "three response rows")
    if how == "Ctrl-C":
        os.killpg(parent.pid, signal.SIGINT)
    else:
        parent.send_signal(signal.SIGTERM)
    out, err = parent.communicate(timeout=60)
    assert parent.returncode == 130, err
    assert "interrupted, stopping Locust" in out
    assert "Summary of run termed" in out  # the summary of what was recorded
    assert _alive(family) == []
    run = json.loads((path / "run.json").read_text())
    assert run["status"] == "finished" and "stopped_by" not in run
    assert "workers_lost" not in run, run["workers_lost"]
    assert "INCOMPLETE" not in out


@pytest.mark.e2e
def test_api_key_never_written(tmp_path: Path, mock_server) -> None:  # type: ignore[no-untyped-def]
    """A distinctive fake key, used for real against a mock that requires it, appears nowhere."""
    mock = mock_server(api_key=FAKE_KEY, truth_path=tmp_path / "truth.jsonl")
    bad = "sk-rtload-WRONG-5b0c1d2e3f"
    common = ["--target", mock.url, "--api-key-env", "RTLOAD_TEST_KEY", "--scenario", "quick_text"]
    done, wrong = rtload_runs(  # the right key and a wrong one, at the same time
        tmp_path,
        ([*common, "--users", "2", "--duration", "3s", "--run-id", "secret"], {"RTLOAD_TEST_KEY": FAKE_KEY}),
        ([*common, "--users", "1", "--duration", "2s", "--run-id", "wrong", "--reconnect-max", "1s"],
         {"RTLOAD_TEST_KEY": bad}),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    path = run_dir(tmp_path, "secret")
    rows = responses(path)
    assert rows and all(r["outcome"] == "completed" for r in rows)  # the key was really used
    run = json.loads((path / "run.json").read_text())
    assert run["options"]["api_key_env"] == "RTLOAD_TEST_KEY"
    leaks = [p for p in path.rglob("*") if p.is_file() and FAKE_KEY.encode() in p.read_bytes()]
    assert leaks == []
    assert FAKE_KEY not in done.stdout + done.stderr
    # a wrong key is refused by the mock and recorded as such, still without the key in any file
    assert wrong.returncode == 0, wrong.stderr
    path = run_dir(tmp_path, "wrong")
    rows = responses(path)
    assert rows and {r["outcome"] for r in rows} == {"failed"}
    assert {r["reason"] for r in rows} == {"auth_rejected"}  # 101, then error invalid_api_key and close 3000
    assert len(rows) <= 6  # the rejected user backed off instead of hammering the service
    assert [p for p in path.rglob("*") if p.is_file() and bad.encode() in p.read_bytes()] == []


@pytest.mark.e2e
def test_secrets_in_the_url_and_the_mocks_keys_are_never_written(tmp_path: Path, mock_server) -> None:  # type: ignore[no-untyped-def]
    """A key in the --target query, and the mock's keys given by --mock-set auth.keys, appear in no
    file of the run directory (run.json and the mock's settings included), no output and no bundle."""
    url_key, mock_key = "urlkey-7Q2w9E4r6T8y", "mockkey-3Z5x7C9v1B"
    mock = mock_server(api_key=url_key, truth_path=tmp_path / "truth.jsonl")
    target = f"{mock.url}/openai/v1/realtime?model=gpt-realtime&api-key={url_key}"
    # the embedded mock, told to accept only a key the client does not send: every attempt fails
    # (both runs at the same time)
    done, embedded = rtload_runs(
        tmp_path,
        (["--target", target, "--provider", "azure", "--api-key-env", "RTLOAD_TEST_KEY",
          "--scenario", "quick_text", "--users", "1", "--duration", "2s", "--run-id", "inurl"],
         {"RTLOAD_TEST_KEY": url_key}),
        ([*mock_args(f'auth.keys=["{mock_key}"]', "faults.server_error.rate=0.5"),
          "--scenario", "quick_text", "--users", "1", "--duration", "2s", "--run-id", "mockkeys",
          "--reconnect-max", "1s"], None),
    )  # fmt: skip
    outputs = done.stdout + done.stderr + embedded.stdout + embedded.stderr
    assert done.returncode == 0, done.stderr
    path = run_dir(tmp_path, "inurl")
    assert responses(path) and all(r["outcome"] == "completed" for r in responses(path))
    run = json.loads((path / "run.json").read_text())
    assert run["options"]["target"].endswith("&api-key=***")
    assert embedded.returncode == 0, embedded.stderr
    mock_run = run_dir(tmp_path, "mockkeys")
    assert {r["reason"] for r in responses(mock_run)} == {"auth_rejected"}
    run = json.loads((mock_run / "run.json").read_text())
    assert "auth.keys=***" in run["options"]["mock_set"] and "auth.keys=***" in run["mock"]["overrides"]
    for folder in (path, mock_run):
        bundle = tmp_path / f"{folder.name}.zip"
        made = subprocess.run([sys.executable, "-m", "loadtest", "report", "failures", str(folder), "--bundle",
                               str(bundle)], capture_output=True, text=True, timeout=60)  # fmt: skip
        assert made.returncode == 0, made.stderr
        outputs += made.stdout + made.stderr
    for secret in (url_key, mock_key):
        leaks = [p for p in tmp_path.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
        assert leaks == [], secret
        assert secret not in outputs
    with zipfile.ZipFile(tmp_path / "mockkeys.zip") as zf:
        assert "run.json" in zf.namelist() and "auth.keys=***" in zf.read("run.json").decode()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read()


@pytest.mark.e2e
@pytest.mark.browser
def test_plain_locust_web_ui_shows_outcomes_per_step(tmp_path: Path, procs: list[subprocess.Popen]) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--web-host", "127.0.0.1", "--web-port", str(port),
           "--rt-target", "mock", "--rt-scenario", "quick_text",
           "--rt-mock-set", ";".join([*FAST_MOCK, "faults.server_error.rate=0.3"]),
           "--rt-out", str(tmp_path / "reports"), "--rt-run-id", "webui"]  # fmt: skip
    log = open(tmp_path / "locust.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    procs.append(proc)
    base = f"http://127.0.0.1:{port}"

    def swarm() -> bool:  # what the start form of the web UI posts
        try:
            data = urllib.parse.urlencode({"user_count": 2, "spawn_rate": 10}).encode()
            with urllib.request.urlopen(base + "/swarm", data=data, timeout=5) as resp:
                return json.loads(resp.read())["success"]
        except OSError:
            return False

    _wait_for(swarm, 30, "the web UI to start the swarm")

    def outcomes() -> dict:
        try:
            return json.loads(_get(base + "/realtime/outcomes"))
        except OSError:
            return {}

    _wait_for(lambda: outcomes().get("responses", 0) >= 6 and "failed" in outcomes().get("outcomes", {}), 40, "UI")
    snap = outcomes()
    assert snap["steps"][0]["step"] == 0 and snap["steps"][0]["users"] == 2
    stats = json.loads(_get(base + "/stats/requests"))
    tab = next(e for e in stats["extended_stats"] if e["key"] == "realtime-outcomes")
    assert {row["outcome"] for row in tab["data"]} >= {"completed", "failed"}
    assert any(row["reason"] == "server_error" for row in tab["data"])
    assert next(s for s in stats["stats"] if s["name"] == "quick_text")["num_failures"] > 0
    index = _get(base + "/").decode()
    assert "Realtime outcomes" in index and "realtime-outcomes" in index
    page = _get(base + "/realtime").decode()
    assert "server_error" in page and "completed" in page
    # what a person sees: Locust's React UI, rendered by Chromium, on the Realtime outcomes tab
    dom = rendered_dom(base + "/?tab=realtime-outcomes")
    assert "Realtime outcomes" in dom
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", dom)
    assert "server_error" in cells and "completed" in cells and "failed" in cells, cells
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    log.close()
    run = json.loads((tmp_path / "reports" / "webui" / "run.json").read_text())
    assert run["status"] == "finished"
    assert len(responses(tmp_path / "reports" / "webui")) >= 6


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--scenario", "nope"], {}, "unknown scenario 'nope'"),
        (["--target", "wss://example.invalid", "--api-key-env", "RTLOAD_UNSET_VAR"], {}, "RTLOAD_UNSET_VAR is not set"),
        (["--target", "example.com/realtime"], {}, "is not a URL"),
        (["--duration", "ten minutes"], {}, "bad duration"),
        (["--shape", "ramp"], {}, "--shape 'ramp' is not known"),
        (["--fail-on", "failed>>1"], {}, "bad --fail-on"),
        (["--fixture", "no_such_fixture"], {}, "not in the fixture manifest"),
        (["--mock-set", "bad=1"], {}, "--mock-set bad: unknown knob"),
        (["--mock-set", "audio.speed=fast"], {}, "--mock-set audio.speed='fast': expected a value like 3.0"),
        (["--mock-set", "auth.keys=7"], {}, "--mock-set auth.keys=***: expected a value like []"),
        (["--mock-profile", "nope"], {}, "unknown mock profile 'nope'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], env: dict[str, str], message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", "--out", str(tmp_path), *args], env=env)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("rtload: ")
    assert not list(tmp_path.iterdir())  # nothing started, nothing written
