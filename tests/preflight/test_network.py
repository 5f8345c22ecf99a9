"""`rtload preflight` on an enterprise network: through an HTTP CONNECT proxy to a TLS front (the
mock behind it) whose certificate a private CA issued; the certificate error without the CA."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from loadtest.mock.process import MockProcess
from tests.preflight.support import preflight
from tests.support import ConnectProxy, PrivateCA, TLSProxy, private_ca

PASSWORD = "pr0xy-S3CRET-pf"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCA:
    return private_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def front(mock: MockProcess, ca: PrivateCA) -> Iterator[TLSProxy]:
    tls = TLSProxy(int(mock.url.rsplit(":", 1)[1]), ca.cert, ca.key)
    yield tls
    tls.close()


def test_preflight_passes_through_a_proxy_with_a_private_ca(front: TLSProxy, ca: PrivateCA) -> None:
    proxy = ConnectProxy(credentials=("alice", PASSWORD))
    try:
        code, out, _ = preflight(
            "--target", f"wss://127.0.0.1:{front.port}/v1/realtime?model=gpt-realtime",
            "--proxy", f"http://alice:{PASSWORD}@127.0.0.1:{proxy.port}", "--ca-bundle", str(ca.ca),
        )  # fmt: skip
    finally:
        proxy.close()
    assert code == 0, out
    assert "PASS  live.handshake" in out and "PASS  live.text_response" in out
    assert proxy.tunnels and PASSWORD not in out


def test_the_environment_s_proxy_and_ssl_cert_file_are_used(front: TLSProxy, ca: PrivateCA) -> None:
    proxy = ConnectProxy()
    try:
        code, out, _ = preflight(
            "--target", f"wss://127.0.0.1:{front.port}/v1/realtime?model=gpt-realtime", "--proxy", proxy.url,
            env={"SSL_CERT_FILE": str(ca.ca)},
        )  # fmt: skip
    finally:
        proxy.close()
    assert code == 0, out
    assert len(proxy.tunnels) >= 1


def test_preflight_without_the_ca_says_which_host_and_what_to_set(front: TLSProxy) -> None:
    code, out, _ = preflight("--target", f"wss://127.0.0.1:{front.port}/v1/realtime?model=gpt-realtime")
    assert code == 1
    line = next(line for line in out.splitlines() if "live.handshake" in line)
    assert "TLS: the certificate of 127.0.0.1 is not trusted" in line and "--ca-bundle FILE" in line, out


def test_a_proxy_that_asks_for_credentials_is_named(front: TLSProxy) -> None:
    proxy = ConnectProxy(credentials=("alice", PASSWORD))
    try:
        code, out, _ = preflight("--target", f"wss://127.0.0.1:{front.port}/v1/realtime?model=gpt-realtime",
                                 "--proxy", proxy.url, "--no-probe")  # fmt: skip
    finally:
        proxy.close()
    assert code == 1
    assert f"proxy 127.0.0.1:{proxy.port} refused the tunnel" in out and "407" in out, out


def test_a_bad_ca_bundle_is_one_line_and_exit_2(tmp_path) -> None:
    code, out, _ = preflight("--target", "wss://127.0.0.1:9", "--ca-bundle", str(tmp_path / "none.pem"))
    assert code == 2
    assert out.strip().splitlines() == [f"rtload preflight: --ca-bundle {tmp_path / 'none.pem'}: no such file: "
                                        "give the PEM file of the CA certificates to trust"]  # fmt: skip
