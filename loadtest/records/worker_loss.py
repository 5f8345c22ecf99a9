"""run.json's ``workers_lost``: workers of a distributed run that died or left before its end.

The master writes one record per lost worker (``worker_id``, ``client_id``, ``how``: missed
heartbeats or left the run, ``t_lost`` and ``at_s`` into the run, ``last_batch_t`` and
``last_batch_rows`` of its last batch of records, ``rows_received`` in all). A run with such a
record is incomplete: ``rtload run`` exits 1 unless ``--allow-worker-loss``, and the summary and
the HTML report say so in one line at their top (:func:`loss_line`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

WORKERS_LOST = "workers_lost"


def loss_line(run: Mapping[str, Any]) -> str | None:
    """The one line a report puts at its top when run.json records lost workers, else None."""
    lost = [r for r in (run.get(WORKERS_LOST) or []) if isinstance(r, dict)]
    if not lost:
        return None
    total = run.get("workers")
    share = f" ({len(lost)} of {total} workers)" if isinstance(total, int) and total >= len(lost) else ""

    def when(rec: dict[str, Any]) -> str:
        at = rec.get("at_s")
        return f"{at:.0f} s into the run" if isinstance(at, int | float) else "mid-run"

    if len(lost) == 1:
        what = f"worker {lost[0].get('worker_id', '?')} was lost {when(lost[0])}{share}; the responses it"
    else:
        named = ", ".join(f"{r.get('worker_id', '?')} ({when(r)})" for r in lost)
        what = f"workers {named} were lost{share}; the responses they"
    return f"INCOMPLETE: {what} would have recorded after that are missing, so the run had less load than planned"
