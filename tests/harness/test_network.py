"""`rtload run` on an enterprise network: wss:// through an HTTP CONNECT proxy that asks for
credentials, to a TLS front (the mock behind it) whose certificate a private CA issued."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from loadtest.mock.process import MockProcess, start_mock
from tests.harness.conftest import responses, rtload_run, run_dir
from tests.support import ConnectProxy, PrivateCA, TLSProxy, fast_mock, private_ca

PASSWORD = "pr0xy-S3CRET-run"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCA:
    return private_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def tls_mock(tmp_path_factory: pytest.TempPathFactory, ca: PrivateCA) -> Iterator[TLSProxy]:
    log = tmp_path_factory.mktemp("mock") / "mock.log"
    mock: MockProcess = start_mock(overrides=fast_mock(20, (10, 30)), log_path=log)
    front = TLSProxy(int(mock.url.rsplit(":", 1)[1]), ca.cert, ca.key)
    yield front
    front.close()
    mock.stop()


def _args(front: TLSProxy, run_id: str, *extra: str) -> list[str]:
    return [
        "--target", f"wss://127.0.0.1:{front.port}", "--api-key-env", "RT_TEST_KEY", "--scenario", "quick_text",
        "--users", "2", "--spawn-rate", "10", "--duration", "4s", "--deadline", "8s", "--run-id", run_id, *extra,
    ]  # fmt: skip


@pytest.mark.e2e
def test_run_through_a_proxy_with_credentials_and_a_private_ca(
    tmp_path: Path, tls_mock: TLSProxy, ca: PrivateCA
) -> None:
    proxy = ConnectProxy(credentials=("alice", PASSWORD))
    try:
        done = rtload_run(
            tmp_path,
            *_args(
                tls_mock, "tls", "--proxy", f"http://alice:{PASSWORD}@127.0.0.1:{proxy.port}", "--ca-bundle", str(ca.ca)
            ),
            env={"RT_TEST_KEY": "mock-key"},
        )
    finally:
        proxy.close()
    assert done.returncode == 0, done.stderr[-2000:]
    path = run_dir(tmp_path, "tls")
    rows = responses(path)
    assert rows and all(r["outcome"] == "completed" for r in rows), {r["reason"] for r in rows}
    assert proxy.tunnels and set(proxy.tunnels) == {f"127.0.0.1:{tls_mock.port}"}
    run = orjson.loads((path / "run.json").read_bytes())
    assert run["options"]["network"]["proxy"] == f"127.0.0.1:{proxy.port}"
    assert run["options"]["network"]["ca_bundle"] == str(ca.ca)
    # the proxy's password is nowhere: not in the output, not in any file of the run directory
    assert PASSWORD not in done.stdout + done.stderr
    for file in path.rglob("*"):
        if file.is_file():
            assert PASSWORD.encode() not in file.read_bytes(), file


@pytest.mark.e2e
def test_run_without_the_private_ca_says_which_host_and_what_to_set(tmp_path: Path, tls_mock: TLSProxy) -> None:
    done = rtload_run(tmp_path, *_args(tls_mock, "noca", "--proxy", "none"), env={"RT_TEST_KEY": "mock-key"})
    path = run_dir(tmp_path, "noca")
    sessions = [orjson.loads(line) for line in (path / "sessions.jsonl").read_bytes().splitlines() if line.strip()]
    errors = {s.get("handshake_error") for s in sessions}
    assert sessions and len(errors) == 1, errors
    (error,) = errors
    assert error.startswith("TLS: the certificate of 127.0.0.1 is not trusted"), error
    assert "--ca-bundle FILE or SSL_CERT_FILE" in error
    assert done.returncode in (0, 1), done.stderr[-2000:]


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--ca-bundle", "/nonexistent/ca.pem", "--ca-bundle /nonexistent/ca.pem: no such file"),
        ("--proxy", f"https://bob:{PASSWORD}@proxy:3128", "only http:// proxies are supported"),
    ],
)
def test_a_proxy_or_ca_bundle_that_cannot_work_is_one_line_and_exit_2(
    tmp_path: Path, flag: str, value: str, says: str
) -> None:
    done = rtload_run(tmp_path, "--target", "wss://127.0.0.1:9", "--api-key-env", "RT_TEST_KEY", flag, value,
                      env={"RT_TEST_KEY": "k"}, timeout=60)  # fmt: skip
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0], done.stderr
    assert PASSWORD not in done.stderr + done.stdout
