"""The network path to a target: an HTTP CONNECT proxy and the certificates trusted for TLS. No sockets.

Enterprise networks reach the service through a proxy and often inspect TLS with a private CA.
:class:`NetworkPath` holds what a run was told:

- the proxy: ``--proxy URL`` (every connection), else the usual variables (``HTTPS_PROXY`` for
  ``wss://``, ``HTTP_PROXY`` for ``ws://``, either case), minus the hosts ``NO_PROXY`` lists
  (``*``, a host, a ``.domain`` suffix, an IP or CIDR range; ``host:port`` matches that port only).
  A proxy from the environment is never used for loopback (the embedded mock), as Go and curl
  do; ``--proxy none`` ignores the variables. Only ``http://`` proxies (CONNECT over plain TCP);
  credentials in the URL (``http://user:password@host:port``) become ``Proxy-Authorization:
  Basic`` and are secrets: :meth:`NetworkPath.secrets` lists them for redaction and
  :meth:`NetworkPath.describe` never shows them.
- the CA bundle: ``--ca-bundle FILE`` (added to the system's trusted CAs), else ``SSL_CERT_FILE``
  (which OpenSSL reads instead of the system's). :meth:`NetworkPath.ssl_context` is the context
  for it, made once per process and bundle.

The CONNECT exchange itself is bytes in, bytes out (:func:`connect_request`,
:func:`parse_connect_response`); the transport does the I/O. :func:`certificate_problem` turns a
failed certificate check into one line naming the host and what to set.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import ssl
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

REDACTED = "***"  # as loadtest.protocol.targets writes it (which imports this module's types)
NO_PROXY_WORDS = ("none", "off", "direct")
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
MAX_CONNECT_RESPONSE = 16 * 1024


class NetworkError(ValueError):
    """A proxy URL or CA bundle that cannot be used: one line saying what to fix."""


@dataclass(frozen=True, slots=True)
class Proxy:
    """An HTTP proxy that tunnels with CONNECT."""

    host: str
    port: int
    username: str = ""
    password: str = ""

    @property
    def address(self) -> str:
        """host:port, without credentials (safe to print)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def authorization(self) -> str | None:
        if not self.username and not self.password:
            return None
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        return f"Basic {token}"

    def secrets(self) -> list[str]:
        found = [self.password] if self.password else []
        auth = self.authorization()
        if auth is not None:
            found.append(auth.split(None, 1)[1])
        return [s for s in found if len(s) >= 4]


def parse_proxy(url: str, origin: str = "--proxy") -> Proxy:
    """A proxy URL (``http://[user:password@]host[:port]``, a bare ``host:port`` too)."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise NetworkError(f"{origin} {shown_proxy(url)!r} is not a proxy URL: write http://host:port") from None
    if parts.scheme.lower() != "http":
        raise NetworkError(
            f"{origin} {shown_proxy(url)!r}: only http:// proxies are supported (the tunnel to wss:// is TLS "
            f"already): write http://host:port"
        )
    if not parts.hostname:
        raise NetworkError(f"{origin} {shown_proxy(url)!r} names no host: write http://host:port")
    return Proxy(
        host=parts.hostname,
        port=port or 80,
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
    )


def shown_proxy(url: str) -> str:
    """A proxy URL as printed: its credentials replaced."""
    if "@" in url:
        scheme, sep, rest = url.rpartition("://")
        return (scheme + sep if sep else "") + REDACTED + "@" + rest.rsplit("@", 1)[1]
    return url


@dataclass(frozen=True, slots=True)
class NetworkPath:
    """How connections reach the target (see the module docstring)."""

    proxy: Proxy | None = None  # --proxy: every connection
    https_proxy: Proxy | None = None  # from HTTPS_PROXY: wss://
    http_proxy: Proxy | None = None  # from HTTP_PROXY: ws://
    no_proxy: tuple[str, ...] = ()
    ca_bundle: str | None = None  # --ca-bundle
    ca_from_env: str | None = None  # SSL_CERT_FILE (OpenSSL reads it itself)

    def proxy_for(self, host: str, port: int, secure: bool) -> Proxy | None:
        """The proxy a connection to ``host:port`` goes through, or None (direct)."""
        explicit = self.proxy
        chosen = explicit or (self.https_proxy if secure else self.http_proxy)
        if chosen is None or _bypassed(self.no_proxy, host, port):
            return None
        if explicit is None and _is_loopback(host):
            return None
        return chosen

    def ssl_context(self) -> ssl.SSLContext:
        """The client context trusting the system's CAs and ``--ca-bundle`` (made once per bundle)."""
        key = f"{self.ca_bundle or ''}|{self.ca_from_env or ''}"
        ctx = _CONTEXTS.get(key)
        if ctx is None:
            ctx = ssl.create_default_context()
            if self.ca_bundle:
                ctx.load_verify_locations(cafile=self.ca_bundle)
            _CONTEXTS[key] = ctx
        return ctx

    @property
    def trusted(self) -> str | None:
        """The CA bundle in use, as the user named it (for messages)."""
        if self.ca_bundle:
            return f"--ca-bundle {self.ca_bundle}"
        if self.ca_from_env:
            return f"SSL_CERT_FILE={self.ca_from_env}"
        return None

    def secrets(self) -> list[str]:
        found: list[str] = []
        for proxy in (self.proxy, self.https_proxy, self.http_proxy):
            if proxy is not None:
                found += proxy.secrets()
        return found

    def describe(self) -> dict[str, object]:
        """For run.json: where connections go, no credentials."""
        return {
            "proxy": self.proxy.address if self.proxy else None,
            "https_proxy": self.https_proxy.address if self.https_proxy else None,
            "http_proxy": self.http_proxy.address if self.http_proxy else None,
            "no_proxy": list(self.no_proxy),
            "ca_bundle": self.ca_bundle or self.ca_from_env,
        }


# the process's TLS state: one client context per CA bundle, and the bundles already loaded once
_CONTEXTS: dict[str, ssl.SSLContext] = {}
_BUNDLES_GOOD: set[tuple[str, int, int]] = set()  # (resolved path, size, mtime_ns)


def network_path(proxy: str = "", ca_bundle: str = "", environ: Mapping[str, str] | None = None) -> NetworkPath:
    """The path a run's connections take, from its flags and the environment (see the module
    docstring); :class:`NetworkError` (one line) for a proxy URL or CA bundle that cannot work."""
    env = os.environ if environ is None else environ

    def var(name: str) -> str:
        return (env.get(name) or env.get(name.lower()) or "").strip()

    explicit = None
    https_proxy = http_proxy = None
    given = proxy.strip()
    if given.lower() in NO_PROXY_WORDS:
        pass
    elif given:
        explicit = parse_proxy(given)
    else:
        if var("HTTPS_PROXY"):
            https_proxy = parse_proxy(var("HTTPS_PROXY"), "HTTPS_PROXY")
        if var("HTTP_PROXY"):
            http_proxy = parse_proxy(var("HTTP_PROXY"), "HTTP_PROXY")
    no_proxy = tuple(item.strip().lower() for item in var("NO_PROXY").split(",") if item.strip())
    bundle = ca_bundle.strip() or None
    from_env = (env.get("SSL_CERT_FILE") or "").strip() or None
    if bundle is not None:
        check_ca_bundle(bundle, "--ca-bundle")
    elif from_env is not None:
        check_ca_bundle(from_env, "SSL_CERT_FILE")
    return NetworkPath(explicit, https_proxy, http_proxy, no_proxy, bundle, None if bundle else from_env)


def check_ca_bundle(path: str, origin: str) -> None:
    """``path`` is a readable PEM file of CA certificates.

    Loading a bundle costs ~17 ms for the system's 220 KB (more for bigger ones), and a run asks
    several times (run.json, each target, each process's test_start, with the health probe
    already timing the loop): a file already found good is not loaded again while its size and
    modification time stay the same.
    """
    file = Path(path)
    try:
        info = file.stat()
    except OSError:
        info = None
    if info is None or not stat.S_ISREG(info.st_mode):
        what = "no such file" if info is None else "not a file (a directory?)"
        raise NetworkError(f"{origin} {path}: {what}: give the PEM file of the CA certificates to trust")
    key = (str(file.resolve()), info.st_size, info.st_mtime_ns)
    if key in _BUNDLES_GOOD:
        return
    try:
        ssl.create_default_context(cafile=str(file))
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise NetworkError(
            f"{origin} {path}: not a PEM file of CA certificates ({getattr(exc, 'reason', None) or exc}): "
            f"give the CA bundle in PEM form (-----BEGIN CERTIFICATE-----)"
        ) from None
    _BUNDLES_GOOD.add(key)


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bypassed(no_proxy: tuple[str, ...], host: str, port: int) -> bool:
    """True when NO_PROXY lists ``host`` (``*``, host, .domain / domain suffix, IP, CIDR, host:port)."""
    host = host.lower().strip("[]")
    for entry in no_proxy:
        if entry == "*":
            return True
        name, want_port = entry, None
        if entry.count(":") == 1 and not entry.startswith("["):  # host:port (not a bare IPv6 address)
            name, _, port_text = entry.partition(":")
            want_port = int(port_text) if port_text.isdigit() else None
        name = name.strip("[]")
        if want_port is not None and want_port != port:
            continue
        if "/" in name:
            try:
                if ipaddress.ip_address(host) in ipaddress.ip_network(name, strict=False):
                    return True
            except ValueError:
                pass
            continue
        suffix = name.lstrip(".")
        if host == suffix or host.endswith("." + suffix):
            return True
    return False


# -- the CONNECT exchange (bytes only) -------------------------------------------------------
def connect_request(host: str, port: int, proxy: Proxy, user_agent: str) -> bytes:
    """The CONNECT request that opens a tunnel to ``host:port`` through ``proxy``."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}", f"User-Agent: {user_agent}"]
    auth = proxy.authorization()
    if auth is not None:
        lines.append(f"Proxy-Authorization: {auth}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass(frozen=True, slots=True)
class ConnectResponse:
    status: int
    reason: str
    rest: bytes  # bytes after the response head (the tunnel's first bytes, if any)


def parse_connect_response(data: bytes) -> ConnectResponse | None:
    """The proxy's answer once its head is complete (None until then); ValueError for garbage."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if len(data) > MAX_CONNECT_RESPONSE:
            raise ValueError("the proxy's answer has no end of headers")
        return None
    status_line = data[:end].split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"the proxy did not answer HTTP ({status_line[:60]!r})")
    return ConnectResponse(int(parts[1]), parts[2].strip() if len(parts) > 2 else "", data[end + 4 :])


def connect_refusal(proxy: Proxy, host: str, port: int, response: ConnectResponse) -> str:
    """One line for a proxy that would not open the tunnel."""
    said = f"{response.status} {response.reason}".strip()
    if response.status == 407:
        fix = (
            "wrong proxy credentials: check the user and password in the proxy URL"
            if proxy.authorization()
            else "put the credentials in the proxy URL (http://user:password@host:port)"
        )
    elif response.status == 403:
        fix = (
            f"the proxy does not allow {host}:{port}: ask for it to be allowed, or list the host in "
            f"NO_PROXY if it is reachable directly"
        )
    else:
        fix = "check --proxy / HTTPS_PROXY"
    return f"proxy {proxy.address} refused the tunnel to {host}:{port}: {said}: {fix}"


# -- certificate errors -----------------------------------------------------------------------
def certificate_problem(exc: ssl.SSLCertVerificationError, host: str, path: NetworkPath | None) -> str:
    """One line: which host's certificate failed, why, and what to set."""
    why = exc.verify_message or exc.reason or str(exc)
    code = exc.verify_code
    trusted = path.trusted if path is not None else None
    if code == 62 or "hostname mismatch" in str(why).lower() or "ip address mismatch" in str(why).lower():
        return (
            f"TLS: the certificate of {host} is not for {host} ({why}): connect with the name the "
            f"certificate is issued to"
        )
    if code in (9, 10):  # not yet valid / expired
        return (
            f"TLS: the certificate of {host} is not valid now ({why}): check the server's certificate "
            f"and this machine's clock"
        )
    where = f" (trusting the system's CAs and {trusted})" if trusted else ""
    return (
        f"TLS: the certificate of {host} is not trusted ({why}){where}: give the CA that issued it "
        f"with --ca-bundle FILE or SSL_CERT_FILE=FILE (a PEM bundle)"
    )
