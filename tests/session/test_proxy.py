"""Enterprise networks: the network path (proxy choice, NO_PROXY, CA bundles) and the transport
through an HTTP CONNECT proxy to a TLS server with its own CA, on loopback."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from loadtest.mock.process import MockProcess
from loadtest.protocol.network import (
    NetworkError,
    NetworkPath,
    certificate_problem,
    connect_request,
    network_path,
    parse_connect_response,
    parse_proxy,
)
from loadtest.protocol.targets import Target
from loadtest.session.transport import WebSocketTransport
from tests.support import ConnectProxy, PrivateCA, TLSProxy, big_ca_bundle, private_ca

PASSWORD = "pr0xy-S3CRET-pw"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCA:
    return private_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def tls_mock(fast_mock: MockProcess, ca: PrivateCA) -> Iterator[TLSProxy]:
    front = TLSProxy(int(fast_mock.url.rsplit(":", 1)[1]), ca.cert, ca.key)
    yield front
    front.close()


def _open(url: str, network: NetworkPath | None) -> tuple[WebSocketTransport, object]:
    target = Target(base_url=url, api_key="mock-key", label="mock", network=network)
    transport = WebSocketTransport(network=network)
    return transport, transport.connect(target.url(), target.headers(), timeout=10)


def _first_event(transport: WebSocketTransport) -> str:
    seen: list[str] = []

    def on_message(data: bytes, t: float) -> None:
        seen.append(orjson.loads(data)["type"])
        transport.close()

    transport.receive_loop(on_message)
    return seen[0]


# -- the network path alone ---------------------------------------------------------------------
def test_the_proxy_comes_from_the_flag_else_the_scheme_s_variable() -> None:
    env = {"HTTPS_PROXY": "http://secure:3128", "http_proxy": "plain:8080"}
    path = network_path("", "", env)
    assert path.proxy_for("api.openai.com", 443, secure=True).address == "secure:3128"
    assert path.proxy_for("gw.example.com", 80, secure=False).address == "plain:8080"
    explicit = network_path("http://flag:1", "", env)
    assert explicit.proxy_for("api.openai.com", 443, True).address == "flag:1"
    assert network_path("none", "", env).proxy_for("api.openai.com", 443, True) is None


def test_no_proxy_and_loopback_bypass_the_environment_s_proxy() -> None:
    env = {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": ".corp.example, 10.0.0.0/8, gw.test:8443"}
    path = network_path("", "", env)
    assert path.proxy_for("res.corp.example", 443, True) is None
    assert path.proxy_for("corp.example", 443, True) is None
    assert path.proxy_for("notcorp.example", 443, True) is not None  # a suffix of labels, not of letters
    assert path.proxy_for("10.1.2.3", 443, True) is None
    assert path.proxy_for("gw.test", 8443, True) is None and path.proxy_for("gw.test", 443, True) is not None
    assert path.proxy_for("127.0.0.1", 443, True) is None and path.proxy_for("localhost", 443, True) is None
    # an explicit --proxy is used for loopback too (a local proxy in front of a local service)
    assert network_path("http://p:1", "", {}).proxy_for("127.0.0.1", 9, True) is not None
    assert network_path("http://p:1", "", {"NO_PROXY": "*"}).proxy_for("api.openai.com", 443, True) is None


def test_proxy_credentials_become_basic_auth_and_are_never_shown() -> None:
    proxy = parse_proxy(f"http://alice:{PASSWORD.replace('-', '%2D')}@corp-proxy:3128")
    assert (proxy.username, proxy.password) == ("alice", PASSWORD)
    request = connect_request("api.openai.com", 443, proxy, "rtload/test").decode()
    assert request.startswith("CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n")
    token = proxy.authorization()
    assert token is not None and f"Proxy-Authorization: {token}\r\n" in request
    path = network_path(f"http://alice:{PASSWORD}@corp-proxy:3128", "", {})
    assert PASSWORD in path.secrets() and token.split()[1] in path.secrets()
    assert PASSWORD not in str(path.describe()) and path.describe()["proxy"] == "corp-proxy:3128"


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("https://p:3128", "only http:// proxies"),
        ("http://:3128", "names no host"),
        ("http://p:notaport", "not a proxy URL"),
        (f"socks5://bob:{PASSWORD}@p:1080", "only http:// proxies"),
    ],
)
def test_a_proxy_url_that_cannot_work_is_one_line_without_its_password(given: str, says: str) -> None:
    with pytest.raises(NetworkError) as err:
        network_path(given, "", {})
    line = str(err.value)
    assert says in line and "\n" not in line and PASSWORD not in line


def test_a_ca_bundle_must_be_a_pem_file(tmp_path: Path, ca: PrivateCA) -> None:
    with pytest.raises(NetworkError, match=r"--ca-bundle .*no such file"):
        network_path("", str(tmp_path / "missing.pem"), {})
    with pytest.raises(NetworkError, match=r"SSL_CERT_FILE .*: not a file \(a directory\?\): give the PEM file"):
        network_path("", "", {"SSL_CERT_FILE": str(tmp_path)})
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(NetworkError, match=r"SSL_CERT_FILE .*not a PEM file"):
        network_path("", "", {"SSL_CERT_FILE": str(junk)})
    assert network_path("", str(ca.ca), {}).trusted == f"--ca-bundle {ca.ca}"


def test_a_ca_bundle_found_good_is_not_loaded_again_until_the_file_changes(tmp_path: Path, ca: PrivateCA) -> None:
    # a big bundle (the system's, 20 times over: ~4 MB) takes ~0.3 s to load; a run asked for it
    # three times in test_start, with the health probe timing the loop (a false "bottleneck: yes")
    big = big_ca_bundle(tmp_path)
    env = {"SSL_CERT_FILE": str(big)}
    first = _timed(lambda: network_path("none", "", env))
    again = min(_timed(lambda: network_path("none", "", env)) for _ in range(3))
    assert again < first / 20, (first, again)
    assert network_path("none", str(big), {}).trusted == f"--ca-bundle {big}"  # the same file, either origin
    big.write_text("not a certificate any more\n")  # changed: checked again
    with pytest.raises(NetworkError, match=r"SSL_CERT_FILE .*not a PEM file"):
        network_path("none", "", env)


def _timed(call: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def test_the_proxy_s_answer_is_parsed_once_complete() -> None:
    assert parse_connect_response(b"HTTP/1.1 200 Connection established\r\n") is None
    done = parse_connect_response(b"HTTP/1.1 407 Proxy Authentication Required\r\nX: y\r\n\r\n")
    assert done is not None and done.status == 407 and done.reason == "Proxy Authentication Required"
    with pytest.raises(ValueError, match="did not answer HTTP"):
        parse_connect_response(b"SSH-2.0-OpenSSH\r\n\r\n")


def test_a_certificate_error_names_the_host_and_what_to_set() -> None:
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_code, exc.verify_message = 20, "unable to get local issuer certificate"
    line = certificate_problem(exc, "gw.corp.example", NetworkPath())
    assert "gw.corp.example" in line and "--ca-bundle FILE or SSL_CERT_FILE" in line
    exc.verify_code, exc.verify_message = 62, "hostname mismatch"
    assert "is not for gw.corp.example" in certificate_problem(exc, "gw.corp.example", None)


# -- the transport through a proxy to a TLS server with its own CA --------------------------------
def test_wss_through_a_connect_proxy_with_a_private_ca(tls_mock: TLSProxy, ca: PrivateCA) -> None:
    proxy = ConnectProxy(credentials=("alice", PASSWORD))
    try:
        network = network_path(f"http://alice:{PASSWORD}@127.0.0.1:{proxy.port}", str(ca.ca), {})
        transport, hs = _open(f"wss://127.0.0.1:{tls_mock.port}", network)
        assert hs.ok and hs.status == 101, hs
        assert _first_event(transport) == "session.created"
    finally:
        proxy.close()
    assert proxy.tunnels == [f"127.0.0.1:{tls_mock.port}"]
    assert "Proxy-Authorization: Basic " in proxy.requests[0]


def test_a_proxy_asking_for_credentials_is_one_line_that_says_where_to_put_them(tls_mock: TLSProxy) -> None:
    proxy = ConnectProxy(credentials=("alice", PASSWORD))
    try:
        _, hs = _open(f"wss://127.0.0.1:{tls_mock.port}", network_path(proxy.url, "", {}))
        _, wrong = _open(
            f"wss://127.0.0.1:{tls_mock.port}", network_path(f"http://alice:x{PASSWORD}@127.0.0.1:{proxy.port}", "", {})
        )
    finally:
        proxy.close()
    assert not hs.ok and hs.status is None
    assert f"proxy 127.0.0.1:{proxy.port} refused the tunnel to 127.0.0.1:{tls_mock.port}: 407" in hs.error
    assert "http://user:password@host:port" in hs.error
    assert "wrong proxy credentials" in wrong.error and PASSWORD not in wrong.error
    assert proxy.tunnels == []


def test_an_unreachable_proxy_is_named(tls_mock: TLSProxy) -> None:
    proxy = ConnectProxy()
    port = proxy.port
    proxy.close()
    _, hs = _open(f"wss://127.0.0.1:{tls_mock.port}", network_path(f"http://127.0.0.1:{port}", "", {}))
    assert not hs.ok and f"TCP connect to the proxy 127.0.0.1:{port}" in hs.error and "--proxy" in hs.error


def test_a_private_ca_not_given_is_one_line_naming_the_host_and_the_fix(tls_mock: TLSProxy) -> None:
    _, hs = _open(f"wss://127.0.0.1:{tls_mock.port}", network_path("", "", {}))
    assert not hs.ok and hs.status is None
    assert hs.error.startswith("TLS: the certificate of 127.0.0.1 is not trusted ("), hs.error
    assert "--ca-bundle FILE or SSL_CERT_FILE" in hs.error and "\n" not in hs.error


def test_ssl_cert_file_is_trusted(tls_mock: TLSProxy, ca: PrivateCA, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.ca))  # OpenSSL reads it when the context is made
    network = network_path("none", "", {"SSL_CERT_FILE": str(ca.ca)})
    transport, hs = _open(f"wss://127.0.0.1:{tls_mock.port}", network)
    assert hs.ok, hs
    assert _first_event(transport) == "session.created"


def test_ws_through_the_proxy_and_no_proxy_goes_direct(fast_mock: MockProcess) -> None:
    proxy = ConnectProxy()
    try:
        transport, hs = _open(fast_mock.url, network_path(proxy.url, "", {}))
        assert hs.ok and _first_event(transport) == "session.created"
        direct, hs2 = _open(fast_mock.url, network_path(proxy.url, "", {"NO_PROXY": "127.0.0.1"}))
        assert hs2.ok
        direct.abort()
    finally:
        proxy.close()
    assert len(proxy.tunnels) == 1
