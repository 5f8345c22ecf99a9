"""ICE host candidates of chosen addresses only (the mock: the loopback address it was reached on).

aioice gathers a host candidate on every interface address and leaves out the loopback ones, so a
WebRTC peer on a machine with only ``lo`` (or a mock that must stay on loopback) would offer none
it can use. aioice has no option for the addresses, so :func:`install` wraps its address lookup
once; the wrapper returns the addresses in :data:`HOST_ADDRESSES` when the running task set them
(:func:`use_host_addresses`) and aioice's own list otherwise, so other peers in the same process
(a load-test client to a real service) gather as usual. No STUN or TURN server is ever asked:
the peer connections are made with an empty ``iceServers`` list.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence

HOST_ADDRESSES: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "rtload_ice_host_addresses", default=None
)
_installed = False


def install() -> None:
    """Wrap aioice's host address lookup (idempotent)."""
    global _installed
    if _installed:
        return
    from aioice import ice

    original: Callable[[bool, bool], list[str]] = ice.get_host_addresses

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        chosen = HOST_ADDRESSES.get()
        if chosen is None:
            return original(use_ipv4, use_ipv6)
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    ice.get_host_addresses = host_addresses
    _installed = True


def use_host_addresses(addresses: Sequence[str]) -> None:
    """Peer connections gathered from the current task (and tasks it starts) offer host
    candidates on ``addresses`` only."""
    install()
    HOST_ADDRESSES.set(tuple(addresses))
