"""The master's record of workers lost mid-run (no Locust import: it reads the runner's worker table).

A worker that dies (SIGKILL, a crash, its machine gone) stops sending heartbeats; Locust's master
marks it ``missing`` after ``HEARTBEAT_LIVENESS`` missed heartbeats (about 4 s) and carries on with
the others. A worker that quits mid-run leaves the table at once (once the run is stopping, workers
leave after sending their last records: only a missing one is lost then). :class:`WorkerWatch` turns either
into one record for run.json's ``workers_lost`` (which worker, when, its last batch of records; see
:mod:`loadtest.records.worker_loss`), so the run says its data is incomplete instead of looking
finished and complete.

A worker that leaves is judged :data:`LEAVE_GRACE_S` later, or when the run stops if that comes
first: a Ctrl-C (or a SIGTERM to every process of the run) reaches the workers and the master at
once, and a worker's quit can be handled before the master's own signal is. Once the master is
``interrupted`` (the user stopped the run), no worker newly gone or missing is a loss: every
process is quitting with the run, and one slow to say so on a loaded machine misses heartbeats
meanwhile. A worker leaving on its own, even just before the run stops (the last worker quitting
stops the run), is a loss, stamped when it left.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MISSING = "missing"  # locust.runners.STATE_MISSING
LEAVE_GRACE_S = 3.0  # a worker gone from the table is judged this long after, or at the stop


@dataclass(slots=True)
class _Seen:
    worker_id: str
    last_batch_t: float | None = None
    last_batch_rows: int = 0
    rows_received: int = 0


class WorkerWatch:
    """Workers seen during the run, their batches, and the ones lost (each reported once)."""

    def __init__(self) -> None:
        self.seen: dict[str, _Seen] = {}
        self.lost: list[dict[str, Any]] = []
        self._judged: set[str] = set()  # lost, or forgiven: said once
        self._left_at: dict[str, float] = {}  # client id -> when it was first seen gone, not yet judged

    def batch(self, client_id: str, worker_id: str | None, rows: int, t: float) -> None:
        """A records batch arrived from ``client_id``."""
        seen = self.seen.setdefault(client_id, _Seen(worker_id or client_id))
        if worker_id:
            seen.worker_id = worker_id
        seen.last_batch_t, seen.last_batch_rows = t, rows
        seen.rows_received += rows

    def check(
        self,
        clients: Mapping[str, Any],
        t: float,
        run_start: float | None,
        index_of: Mapping[str, int] | None = None,
        stopping: bool = False,
        interrupted: bool = False,
    ) -> list[dict[str, Any]]:
        """Compare the runner's worker table (``client id -> node`` with a ``state``) with the workers
        seen so far; returns the records of workers newly lost: ``missing``, or gone from the table
        while the run was not ``stopping`` and judged so (:data:`LEAVE_GRACE_S` later, or now that
        it is ``stopping``) without the master being ``interrupted``."""
        for client_id, node in list(clients.items()):
            if getattr(node, "state", None) != MISSING and client_id not in self.seen:
                index = (index_of or {}).get(client_id)
                self.seen[client_id] = _Seen(f"w{index}" if index is not None else client_id)
        new: list[dict[str, Any]] = []
        for client_id, seen in self.seen.items():
            if client_id in self._judged:
                continue
            node = clients.get(client_id)
            if node is not None and getattr(node, "state", None) != MISSING:
                continue
            if interrupted:  # the user stopped the run: every process quits with it, not a loss
                self._judged.add(client_id)
                continue
            t_lost = t
            if node is None:
                left = self._left_at.setdefault(client_id, t) if not stopping else self._left_at.get(client_id)
                if left is None:  # it left after the stop began: it quit with the run, its last records sent
                    self._judged.add(client_id)
                    continue
                if not stopping and t - left < LEAVE_GRACE_S:
                    continue  # judged later: the run may be stopping with it
                t_lost = left
            self._judged.add(client_id)
            record = {
                "worker_id": seen.worker_id,
                "client_id": client_id,
                "how": "missed heartbeats" if node is not None else "left the run",
                "t_lost": round(t_lost, 3),
                "at_s": round(t_lost - run_start, 1) if run_start is not None else None,
                "last_batch_t": round(seen.last_batch_t, 3) if seen.last_batch_t is not None else None,
                "last_batch_rows": seen.last_batch_rows,
                "rows_received": seen.rows_received,
            }
            self.lost.append(record)
            new.append(record)
        return new

    def alive(self, clients: Mapping[str, Any]) -> set[str]:
        """Client ids in the table and not missing: the workers still worth waiting for."""
        return {cid for cid, node in clients.items() if getattr(node, "state", None) != MISSING}
