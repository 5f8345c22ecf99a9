"""Helpers every test folder shares (one place, so they are written once).

- :func:`fast_mock`: mock overrides that keep loopback tests short (audio faster than real
  time, small service latencies), as a dict for ``start_mock``/``mock_server``;
  :func:`mock_set_args` gives them as ``--mock-set`` values for the command line.
- :func:`run_child`: run ``python -m <module> <args>`` (a driver that patches gevent, say) and
  return the JSON object on its last stdout line.
- :func:`transcription_agreement`: the rows' input transcription against the mock's truth rows of
  kind ``transcription`` (the mapping ``TRANSCRIPTION_FAULT_EXPECTATIONS``), for any test that ran
  sessions with input transcription on.
- :func:`timed_wait`, :func:`peak_hz`, :func:`connect`: a timed ``concurrency.wait``, the peak
  frequency of a signal, and a WebSocket to the mock in either dialect.
- TLS and enterprise networks on loopback: :func:`self_signed` (a certificate for 127.0.0.1) and
  :func:`private_ca` (a CA of its own and a server certificate it issued), both made with the
  ``openssl`` command at test time; :class:`TLSProxy`, a TLS front for the mock (as a
  TLS-terminating gateway would be); :class:`ConnectProxy`, an HTTP CONNECT proxy (optionally
  asking for credentials) that records what it was asked.
- Report statistics recomputed from first principles (scipy, not the report's code):
  :func:`wilson_pct` (a rate's Wilson interval in %), :func:`order_interval` (a quantile's
  order-statistic interval) and :func:`check_percentile_block` (a report's percentiles with
  their intervals against the values).
- :func:`broken_test_start`: an environment in which the Locust processes of a real ``rtload run``
  (the worker's or the standalone one) fail with an unexpected exception while the test starts,
  the way a bug of ours there would.
- WebRTC: :class:`RtcPeer` (tests/rtc_peer.py), a real aiortc caller on 127.0.0.1 for the mock's
  ``/realtime/calls`` (its Opus microphone, the ``oai-events`` channel, the answer's decoded
  frames), and :func:`client_secret` for an ephemeral key.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.rtc_peer import RtcPeer as RtcPeer
from tests.rtc_peer import client_secret as client_secret

ROOT = Path(__file__).resolve().parents[1]
KEY = "mock-key"


def fast_mock(speed: float = 20.0, latency_ms: tuple[float, float] = (5, 10), **extra: Any) -> dict[str, Any]:
    """Mock overrides: audio ``speed`` x real time, created and first delta within ``latency_ms``;
    ``extra`` adds any other dotted override (``faults.stall.rate=...`` as ``**{"faults.stall.rate": 1}``)."""
    return {
        "audio.speed": speed,
        "latency.created_ms": list(latency_ms),
        "latency.first_delta_ms": list(latency_ms),
        **extra,
    }


def mock_set_args(overrides: dict[str, Any]) -> list[str]:
    """The same overrides as ``--mock-set`` values (``audio.speed=20``, ``latency.created_ms=[10,30]``)."""

    def text(value: Any) -> str:
        if isinstance(value, list | tuple):
            return "[" + ",".join(text(v) for v in value) + "]"
        return f"{value:g}" if isinstance(value, int | float) and not isinstance(value, bool) else str(value)

    return [f"{k}={text(v)}" for k, v in overrides.items()]


def run_child(
    module: str, *args: str, timeout: float = 60, env: dict[str, str] | None = None, clean_stderr: bool = False
) -> dict[str, Any]:
    """``python -m module args`` in the repository; asserts it succeeded (and, with ``clean_stderr``,
    that nothing failed inside it either); its last stdout line as JSON."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    if clean_stderr:
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def transcription_agreement(rows: list[dict[str, Any]], truth: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """(items checked, mismatches) between the rows' input transcription and the mock's truth.

    Per session, the rows that carry an input transcription (in turn order) and the truth's
    ``transcription`` rows (in commit order) pair up one to one. Each row's ``input_transcription``
    is what ``TRANSCRIPTION_FAULT_EXPECTATIONS`` gives the truth's fault; a failed one carries the
    error code; a completed one's WER is the truth transcript's WER against the expected text, and
    a slow one's first delta came at least its drawn ``delay_ms`` after the commit.
    """
    from collections import defaultdict

    from loadtest.mock.input_transcription import FAILED_ERROR
    from loadtest.records.schema import TRANSCRIPTION_FAULT_EXPECTATIONS
    from loadtest.session.input_transcript import word_error_rate

    mine: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get("input_transcription") is not None:
            mine[row["session_id"]].append(row)
    theirs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in truth:
        if row.get("kind") == "transcription":
            theirs[row["session_id"]].append(row)
    wrong: list[str] = []
    checked = 0
    for sid in sorted(set(mine) | set(theirs)):
        got = sorted(mine[sid], key=lambda r: (r["turn_index"], r.get("t_trigger") or 0.0))
        want = sorted(theirs[sid], key=lambda r: r["t_commit"])
        if len(got) != len(want):
            wrong.append(f"{sid}: {len(got)} rows with an input transcription, {len(want)} in the truth log")
            continue
        for row, t in zip(got, want, strict=True):
            checked += 1
            expected = TRANSCRIPTION_FAULT_EXPECTATIONS[t["fault"]]
            where = f"{sid} turn {row['turn_index']} ({t['fault']})"
            if row["input_transcription"] != expected:
                wrong.append(f"{where}: truth expects {expected}, recorded {row['input_transcription']}")
            elif expected == "failed" and row["input_transcription_error"] != FAILED_ERROR["code"]:
                wrong.append(f"{where}: error {row['input_transcription_error']!r}")
            elif expected == "completed":
                wer = word_error_rate(t["expected"], t["transcript"])
                if row["input_transcript_wer"] != wer:
                    wrong.append(f"{where}: WER {row['input_transcript_wer']}, the truth's transcript gives {wer}")
                first = row["input_transcript_first_ms"]
                if first is None or first > row["input_transcript_done_ms"]:
                    wrong.append(f"{where}: first delta {first} ms, done {row['input_transcript_done_ms']} ms")
                elif t["fault"] == "transcription_slow" and first < t["params"]["delay_ms"]:
                    wrong.append(f"{where}: first delta {first} ms, slowed by {t['params']['delay_ms']} ms")
    return checked, wrong


def timed_wait(event: Any, timeout: float) -> tuple[bool, float]:
    """``concurrency.wait(event, timeout)`` and how long it took (s)."""
    from loadtest.session import concurrency

    t0 = time.monotonic()
    result = concurrency.wait(event, timeout)
    return result, time.monotonic() - t0


def peak_hz(pcm: np.ndarray, rate: int) -> float:
    """The strongest frequency of ``pcm`` (Hann-windowed FFT)."""
    spec = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / rate)[int(np.argmax(spec))])


def connect(base: str, dialect: str, key: str = KEY) -> Any:
    """A WebSocket client to the mock at ``base``: GA on the OpenAI path, preview on Azure's."""
    from tests.mock.wsclient import Client, azure_preview_url, openai_url

    if dialect == "ga":
        return Client(openai_url(base), {"Authorization": f"Bearer {key}"})
    return Client(azure_preview_url(base), {"api-key": key})


# -- TLS and proxies on loopback ----------------------------------------------------------------
def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def self_signed(directory: Path) -> tuple[Path, Path]:
    """(cert, key) for 127.0.0.1, valid one day."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    _openssl("req", "-x509", *_EC, "-keyout", str(key), "-out", str(cert), "-days", "1",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1")  # fmt: skip
    return cert, key


def big_ca_bundle(directory: Path) -> Path:
    """The system's CA bundle 20 times over (~4 MB, ~0.3 s to load): a cost tests can see. Skips
    the test where the system has no bundle."""
    system = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
    if not system.is_file():
        pytest.skip("no system CA bundle to build a big one from")
    big = directory / "big.pem"
    big.write_bytes(system.read_bytes() * 20)
    return big


@dataclass(frozen=True)
class PrivateCA:
    ca: Path  # the CA's certificate (what --ca-bundle is given)
    cert: Path  # the server's certificate, issued by the CA for 127.0.0.1 and localhost
    key: Path


def private_ca(directory: Path) -> PrivateCA:
    """A CA of its own and a server certificate it issued (as a company's TLS inspection would use)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, csr, ext = (directory / n for n in ("server.pem", "server.key", "server.csr", "server.ext"))
    _openssl("req", "-x509", *_EC, "-keyout", str(ca_key), "-out", str(ca), "-days", "1",
             "-subj", "/CN=rtload test private CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    _openssl("req", *_EC, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        "keyUsage=critical,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
             "-out", str(cert), "-days", "1", "-extfile", str(ext))  # fmt: skip
    return PrivateCA(ca, cert, key)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)


class _Listener:
    """A thread accepting connections on 127.0.0.1 (port 0), one thread per connection."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        with contextlib.suppress(OSError):  # wakes the accept() (a bare close() leaves it listening)
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()


class TLSProxy(_Listener):
    """A TLS front for the mock's plain port, as a TLS-terminating gateway would be.

    With ``hold``, it stops reading what the client sends once the upgrade request has passed,
    until something connects to :attr:`release_port` (or 30 s went by): a peer that does not keep
    up, so a client's burst of sends must queue, whatever the machine's speed."""

    def __init__(self, upstream_port: int, cert: Path, key: Path, *, hold: bool = False) -> None:
        self.upstream_port = upstream_port
        self._ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ctx.load_cert_chain(cert, key)
        self.released = threading.Event()
        self.release_port = 0
        if hold:
            gate = socket.create_server(("127.0.0.1", 0))
            self.release_port = gate.getsockname()[1]
            threading.Thread(target=self._release_on_connect, args=(gate,), daemon=True).start()
        else:
            self.released.set()
        super().__init__()

    def _release_on_connect(self, gate: socket.socket) -> None:
        with gate:
            gate.settimeout(30)
            with contextlib.suppress(OSError):
                gate.accept()[0].close()
        self.released.set()

    def _serve(self, raw: socket.socket) -> None:
        try:
            tls = self._ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
        upstream.settimeout(None)
        threading.Thread(target=_pipe, args=(upstream, tls), daemon=True).start()
        if not self.released.is_set():
            head = b""
            try:
                while b"\r\n\r\n" not in head:  # the upgrade request passes; then nothing until released
                    data = tls.recv(65536)
                    if not data:
                        break
                    head += data
                    upstream.sendall(data)
            except OSError:
                return
            self.released.wait(30)
        _pipe(tls, upstream)


class ConnectProxy(_Listener):
    """An HTTP CONNECT proxy on loopback: tunnels to 127.0.0.1 ports only; with ``credentials``
    it answers 407 unless ``Proxy-Authorization: Basic`` carries them. ``requests`` keeps each
    request's head (as text), ``tunnels`` the ``host:port`` of each tunnel opened."""

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.credentials = credentials
        self.requests: list[str] = []
        self.tunnels: list[str] = []
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self, raw: socket.socket) -> None:
        head = b""
        raw.settimeout(10)
        try:
            while b"\r\n\r\n" not in head:
                data = raw.recv(4096)
                if not data:
                    raise OSError("closed before the request ended")
                head += data
        except OSError:
            raw.close()
            return
        text = head.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        self.requests.append(text)
        lines = text.split("\r\n")
        method, authority, _version = lines[0].split(" ", 2)
        fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        host, _, port = authority.rpartition(":")
        if method != "CONNECT" or host.strip("[]") != "127.0.0.1":
            self._answer(raw, b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        if self.credentials is not None:
            want = "Basic " + base64.b64encode(":".join(self.credentials).encode()).decode()
            if fields.get("proxy-authorization") != want:
                self._answer(raw, b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                             b"Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")  # fmt: skip
                return
        try:
            upstream = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
        except OSError:
            self._answer(raw, b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        self.tunnels.append(authority)
        raw.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        raw.settimeout(None)
        upstream.settimeout(None)
        threading.Thread(target=_pipe, args=(upstream, raw), daemon=True).start()
        _pipe(raw, upstream)

    @staticmethod
    def _answer(raw: socket.socket, response: bytes) -> None:
        with contextlib.suppress(OSError):
            raw.sendall(response)
        raw.close()


def wilson_pct(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    from scipy import stats

    z = stats.norm.ppf(0.5 + level / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 100 * (centre - half), 100 * (centre + half)


def order_interval(values: np.ndarray, q: float, level: float = 0.95) -> tuple[float | None, float | None]:
    """The q-quantile's distribution-free interval: the l-th and u-th smallest of Binomial(n, q)'s ranks."""
    from scipy import stats

    arr, n = np.sort(values), values.size
    lo = int(stats.binom.ppf((1 - level) / 2, n, q))
    hi = int(stats.binom.ppf(1 - (1 - level) / 2, n, q)) + 1
    return (float(arr[lo - 1]) if lo >= 1 else None, float(arr[hi - 1]) if hi <= n else None)


def check_percentile_block(block: dict, values: np.ndarray) -> None:
    assert block["n"] == values.size and values.size > 0
    for p in (50, 95, 99):
        assert block[f"p{p}"] == pytest.approx(np.percentile(values, p))
        lo, hi = order_interval(values, p / 100)
        assert block[f"p{p}_lo"] == (pytest.approx(lo) if lo is not None else None)
        assert block[f"p{p}_hi"] == (pytest.approx(hi) if hi is not None else None)
    assert block["max"] == pytest.approx(values.max())


_BROKEN_TEST_START = """
import importlib.abc, importlib.util, sys

class _Break(importlib.abc.MetaPathFinder):
    # once loadtest.locust.inputs is imported in a Locust process of ROLE, its build_session_inputs raises
    def find_spec(self, name, path, target=None):
        if name != "loadtest.locust.inputs":
            return None
        sys.meta_path.remove(self)
        roles = {"--worker", "--master"} & set(sys.argv)
        if "locust" not in sys.argv[0] or (roles != {"--worker"} if ROLE == "worker" else bool(roles)):
            return None
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)

            def broken(*_a, **_k):
                raise RuntimeError("injected at test start")

            module.build_session_inputs = broken

        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, _Break())
"""


def broken_test_start(directory: Path, role: str) -> dict[str, str]:
    """Environment variables under which the ``role`` ("worker" or "local") Locust process of a
    real ``rtload run`` raises ``RuntimeError("injected at test start")`` from its session inputs
    while the test starts (a ``sitecustomize`` on ``PYTHONPATH``; other processes are untouched)."""
    assert role in ("worker", "local"), role
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(f"ROLE = {role!r}\n" + _BROKEN_TEST_START, encoding="utf-8")
    path = os.pathsep.join(p for p in (str(directory), str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path}
