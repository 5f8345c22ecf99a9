"""How a session ended (``SessionRecord.ended_by``): the names and the rules that pick one.

The names are the record contract's :data:`loadtest.records.schema.SESSION_ENDINGS`; the rule
(:func:`ending_of`) reads how the connection closed and what the server said before it did.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from loadtest.session.link import CLOSE_ABNORMAL, CloseInfo

CLIENT_CLOSED = "client_closed"  # the scenario finished or the user stopped
LIFETIME = "lifetime"  # the client recycled it at its configured lifetime
SESSION_EXPIRED = "session_expired"  # the server ended it at its maximum duration
SERVER_CLOSED = "server_closed"  # the server closed it for another reason (close_code says)
DROPPED = "dropped"  # the connection was lost without a close frame (1006)
HANDSHAKE_FAILED = "handshake_failed"  # never opened
NOT_READY = "session_not_ready"  # opened, but no session.created/updated within the setup wait
ERROR = "error"  # the client gave up after a protocol error (or an error event)

CLOSE_GOING_AWAY = 1001  # what a server sends at its session cap


def ending_of(info: CloseInfo | None, client_stop: bool, session_errors: Iterable[dict[str, Any]]) -> str:
    """How a connection that closed as ``info`` says ended: the client's doing, a protocol error,
    the server's session cap (close 1001, a ``session_expired`` error or reason), a drop, or
    another close by the server."""
    if info is None or client_stop or not info.by_server:
        return CLIENT_CLOSED
    if info.protocol_error:
        return ERROR
    reason = info.reason or ""
    expired = any(e.get("code") == SESSION_EXPIRED or e.get("type") == SESSION_EXPIRED for e in session_errors)
    if info.code == CLOSE_GOING_AWAY or expired or SESSION_EXPIRED in reason or "maximum duration" in reason:
        return SESSION_EXPIRED
    if info.code == CLOSE_ABNORMAL:
        return DROPPED
    return SERVER_CLOSED
