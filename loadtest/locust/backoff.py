"""Reconnect backoff between sessions of one user (soak): exponential with jitter, honours retry-after.

A session that ended normally resets the backoff (the scenario finished, it was recycled at its
lifetime, or the server ended it at its maximum duration: reconnect at once). A refused or failed
upgrade, a server close for another reason (a rejected key), a drop or a protocol error waits
``max(retry_after, base * 2**(failures-1))`` capped at ``cap`` (``retry_after`` wins over the cap:
the service asked for it), with up to 20% jitter so users do not reconnect in lockstep.
Every attempt still writes its own session and response rows: the backoff never hides a failure.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

# endings after which the user reconnects at once; any other (a refused or failed upgrade, the
# server closing for another reason, a dropped connection, a protocol error) backs off
NORMAL_ENDINGS = frozenset({"client_closed", "lifetime", "session_expired"})


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
        if session.get("ended_by") in NORMAL_ENDINGS:
            self.failures = 0
            return 0.0
        self.failures += 1
        wait = min(self.cap, self.base * 2 ** (self.failures - 1)) * (1.0 + 0.2 * self.rng.random())
        retry_after = session.get("retry_after")
        if retry_after is not None:
            wait = max(wait, float(retry_after))
        return wait
