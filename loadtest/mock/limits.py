"""The mock's limits: a token bucket per deployment and a concurrent-session capacity with a knee."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Bucket:
    """A bucket refilled continuously to ``limit`` per minute."""

    limit: int
    level: float = -1.0
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.level < 0:
            self.level = float(self.limit)

    def refill(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.level = min(float(self.limit), self.level + (now - self.stamp) * self.limit / 60.0)
        self.stamp = now

    def take(self, amount: float) -> bool:
        """Take ``amount`` if it is there; False (nothing taken) when the bucket is short."""
        self.refill()
        if self.level + 1e-9 < amount:
            return False
        self.level -= amount
        return True

    def entry(self, name: str) -> dict[str, Any]:
        """One ``rate_limits.updated`` entry."""
        self.refill()
        remaining = max(0, int(self.level))
        reset = (self.limit - self.level) * 60.0 / self.limit if self.limit else 0.0
        return {"name": name, "limit": self.limit, "remaining": remaining, "reset_seconds": round(max(0.0, reset), 3)}


class Limits:
    """Rate-limit buckets and active-session counts, per deployment."""

    def __init__(self, profile: dict[str, Any]) -> None:
        self.rl = profile["rate_limits"]
        self.cap = profile["capacity"]
        self.tokens: dict[str, Bucket] = {}
        self.requests: dict[str, Bucket] = {}
        self.active: dict[str, int] = {}

    def _buckets(self, deployment: str) -> tuple[Bucket, Bucket]:
        if deployment not in self.tokens:
            self.tokens[deployment] = Bucket(int(self.rl["tokens_per_minute"]))
            self.requests[deployment] = Bucket(int(self.rl["requests_per_minute"]))
        return self.tokens[deployment], self.requests[deployment]

    def admit_response(self, deployment: str, cost_tokens: float) -> tuple[bool, str]:
        """Take one request and ``cost_tokens`` tokens; (False, "tokens"|"requests") when short."""
        tokens, requests = self._buckets(deployment)
        if not requests.take(1):
            return False, "requests"
        if not tokens.take(cost_tokens):
            requests.level += 1
            return False, "tokens"
        return True, ""

    def rate_limits(self, deployment: str) -> list[dict[str, Any]]:
        tokens, requests = self._buckets(deployment)
        return [requests.entry("requests"), tokens.entry("tokens")]

    def total_active(self) -> int:
        return sum(self.active.values())

    def has_room(self, deployment: str) -> bool:
        limit = int(self.cap["max_sessions"])
        return limit <= 0 or self.active.get(deployment, 0) < limit

    def open(self, deployment: str) -> None:
        self.active[deployment] = self.active.get(deployment, 0) + 1

    def close(self, deployment: str) -> None:
        self.active[deployment] = max(0, self.active.get(deployment, 0) - 1)

    def overload(self, deployment: str) -> tuple[float, float]:
        """(extra latency in seconds, extra server_error probability) past the knee."""
        knee = int(self.cap["knee_sessions"])
        over = self.active.get(deployment, 0) - knee
        if knee <= 0 or over <= 0:
            return 0.0, 0.0
        latency = over * float(self.cap["latency_ms_per_session"]) / 1000.0
        error = min(float(self.cap["server_error_max"]), over * float(self.cap["server_error_per_session"]))
        return latency, error
