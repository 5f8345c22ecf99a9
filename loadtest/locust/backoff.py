"""Reconnect backoff between sessions of one user (soak): exponential with jitter, honours retry-after.

A session that opened resets the backoff (recycling at its lifetime, or the server ending it at
its maximum duration, reconnects at once). A refused or failed upgrade waits
``max(retry_after, base * 2**(failures-1))`` capped at ``cap`` (``retry_after`` wins over the cap:
the service asked for it), with up to 20% jitter so users do not reconnect in lockstep.
Every attempt still writes its own session and response rows: the backoff never hides a failure.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Backoff:
    base: float = 0.5
    cap: float = 30.0
    failures: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def after(self, session: dict[str, Any] | None) -> float:
        """Seconds to wait before the next session, given the last session's row."""
        if session is None:
            return 0.0
        status = session.get("handshake_status")
        opened = status == 101 or (status is None and session.get("t_open") is not None)
        if opened and session.get("ended_by") not in ("dropped", "error"):
            self.failures = 0
            return 0.0
        self.failures += 1
        wait = min(self.cap, self.base * 2 ** (self.failures - 1)) * (1.0 + 0.2 * self.rng.random())
        retry_after = session.get("retry_after")
        if retry_after is not None:
            wait = max(wait, float(retry_after))
        return wait
