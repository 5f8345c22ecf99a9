"""Load shapes as pure functions of elapsed time (no Locust import, unit-testable).

- ``constant``: ``users`` for ``duration``.
- ``step``: the capacity sweep. Start at ``step_users`` (or ``start_users``), add ``step_users``
  every ``step_duration`` seconds up to ``users``; the last step is held to the end of
  ``duration`` (or for one ``step_duration`` when no duration is given).
- ``soak``: ``users`` held for ``duration`` (hours); sessions are recycled at a lifetime by the
  user (``--rt-session-lifetime``), not by the shape.
- ``spike``: ``users`` (the base) until ``spike_at``, then ``spike_users`` for ``spike_duration``,
  then back to the base until ``duration``.

:meth:`ShapePlan.at` answers ``(step index, target users, spawn rate)`` or None when the run is
over. The step index is stamped on every record so reports group by it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

SHAPES: tuple[str, ...] = ("constant", "step", "soak", "spike")

_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m(?!s))?\s*(?:(\d+(?:\.\d+)?)s?)?\s*$")


def parse_duration(text: str | float | int | None) -> float | None:
    """Seconds from ``"90"``, ``"90s"``, ``"5m"``, ``"1h30m"``, ``"2.5m"``; None for empty. ValueError if bad."""
    if text is None:
        return None
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"bad duration {text!r}: must not be negative")
        return float(text)
    s = str(text).strip().lower()
    if not s:
        return None
    m = _DURATION.match(s)
    if not m or not any(m.groups()):
        raise ValueError(f"bad duration {text!r}: use seconds or a unit, e.g. 90s, 5m, 1h30m")
    h, mi, sec = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + sec


@dataclass(slots=True)
class ShapePlan:
    """The parameters of one load shape."""

    shape: str = "constant"
    users: int = 1
    spawn_rate: float = 1.0
    duration: float | None = None  # seconds; None = until stopped
    step_users: int = 0  # users added per step (step shape); 0 = users / 4 (at least 1)
    step_duration: float = 30.0  # seconds each step is held
    start_users: int = 0  # first step's users (step shape); 0 = step_users
    spike_users: int = 0  # users during the spike; 0 = 3 x users
    spike_at: float | None = None  # seconds into the run; None = a third of the duration
    spike_duration: float = 30.0

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r} (expected one of {', '.join(SHAPES)})")
        if self.users < 1:
            raise ValueError(f"users must be at least 1 (got {self.users})")
        if self.spawn_rate <= 0:
            raise ValueError(f"spawn rate must be positive (got {self.spawn_rate})")
        if self.step_duration <= 0:
            raise ValueError(f"step duration must be positive (got {self.step_duration})")

    # ---- step shape --------------------------------------------------------------------
    @property
    def increment(self) -> int:
        return self.step_users if self.step_users > 0 else max(1, math.ceil(self.users / 4))

    @property
    def first_step_users(self) -> int:
        return min(self.users, self.start_users if self.start_users > 0 else self.increment)

    def step_targets(self) -> list[int]:
        """The user count of each step of the step shape, in order."""
        out = [self.first_step_users]
        while out[-1] < self.users:
            out.append(min(self.users, out[-1] + self.increment))
        return out

    @property
    def total_duration(self) -> float | None:
        if self.duration is not None:
            return self.duration
        if self.shape == "step":
            return len(self.step_targets()) * self.step_duration
        return None

    def at(self, elapsed: float) -> tuple[int, int, float] | None:
        """``(step, users, spawn_rate)`` at ``elapsed`` seconds, or None when the run is over."""
        total = self.total_duration
        if total is not None and elapsed >= total:
            return None
        if self.shape == "step":
            targets = self.step_targets()
            index = min(int(elapsed // self.step_duration), len(targets) - 1)
            return index, targets[index], self.spawn_rate
        if self.shape == "spike":
            start = self.spike_at if self.spike_at is not None else (total / 3 if total else 60.0)
            if start <= elapsed < start + self.spike_duration:
                return 1, self.spike_users or 3 * self.users, self.spawn_rate
            return (0 if elapsed < start else 2), self.users, self.spawn_rate
        return 0, self.users, self.spawn_rate

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {"shape": self.shape, "users": self.users, "spawn_rate": self.spawn_rate}
        out["duration_s"] = self.total_duration
        if self.shape == "step":
            out.update(step_duration_s=self.step_duration, steps=self.step_targets())
        if self.shape == "spike":
            out.update(
                spike_users=self.spike_users or 3 * self.users,
                spike_at_s=self.spike_at,
                spike_duration_s=self.spike_duration,
            )
        return out
