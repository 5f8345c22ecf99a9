"""Live outcome counts per load-shape step (what the web UI tab and the progress line show).

Pure bookkeeping, fed with response rows on the process that writes the run directory.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from loadtest.records.schema import OUTCOMES


class OutcomeBoard:
    """Counts of outcomes and reasons per step, and the target users of each step."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_step: dict[int, Counter[tuple[str, str]]] = {}
        self.users: dict[int, int] = {}
        self.total: Counter[str] = Counter()

    def add(self, row: dict[str, Any]) -> None:
        step = row.get("step")
        step = int(step) if step is not None else 0
        outcome = row.get("outcome") or "unknown"
        reason = row.get("reason") or ""
        with self._lock:
            self.by_step.setdefault(step, Counter())[(outcome, reason)] += 1
            if row.get("users") is not None:
                self.users[step] = int(row["users"])
            self.total[outcome] += 1

    def reset(self) -> None:
        with self._lock:
            self.by_step.clear()
            self.users.clear()
            self.total.clear()

    @property
    def responses(self) -> int:
        return sum(self.total.values())

    def rows(self) -> list[dict[str, Any]]:
        """One row per (step, outcome, reason), steps in order, most frequent first."""
        out = []
        with self._lock:
            for step in sorted(self.by_step):
                counts = self.by_step[step]
                total = sum(counts.values())
                for (outcome, reason), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
                    out.append(
                        {
                            "step": step,
                            "users": self.users.get(step),
                            "outcome": outcome,
                            "reason": reason or "-",
                            "count": n,
                            "share": round(100.0 * n / total, 2) if total else 0.0,
                        }
                    )
        return out

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            steps = [
                {
                    "step": step,
                    "users": self.users.get(step),
                    "responses": sum(counts.values()),
                    "outcomes": {o: sum(n for (oc, _r), n in counts.items() if oc == o) for o in OUTCOMES},
                }
                for step, counts in sorted(self.by_step.items())
            ]
            total = dict(self.total)
        return {"responses": sum(total.values()), "outcomes": total, "steps": steps, "rows": self.rows()}

    def progress_line(self) -> str:
        with self._lock:
            total = dict(self.total)
        parts = [f"{o} {total[o]}" for o in OUTCOMES if total.get(o)]
        return f"responses {sum(total.values())}" + (": " + ", ".join(parts) if parts else "")
