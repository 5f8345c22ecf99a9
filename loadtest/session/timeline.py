"""The observer timeline: one row per event a session sent, received or noted (preflight's view).

:class:`Timeline` turns what the session does into rows ``{"t", "dir", "type", ...}`` for an
``observer`` callable; without an observer it does nothing (and costs one attribute test).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("loadtest.session")

Observer = Callable[[dict[str, Any]], None]

# fields an observer sees for a received event (the timeline of a session)
_TIMELINE_KEYS = ("event_id", "response_id", "item_id", "audio_start_ms", "audio_end_ms")


class Timeline:
    """Rows for ``observer`` (see the module docstring)."""

    __slots__ = ("observer",)

    def __init__(self, observer: Observer | None) -> None:
        self.observer = observer

    @property
    def on(self) -> bool:
        return self.observer is not None

    def note(self, direction: str, event_type: str, fields: dict[str, Any], t: float | None = None) -> None:
        """One row: ``direction`` is "out", "in" or "note"; None fields are left out."""
        if self.observer is None:
            return
        row = {"t": t or time.time(), "dir": direction, "type": event_type}
        row.update({k: v for k, v in fields.items() if v is not None})
        try:
            self.observer(row)
        except Exception:
            log.exception("observer failed")

    def received(self, event: dict[str, Any], t: float) -> None:
        """A server event: its ids, status, error and delta size (never its payload)."""
        fields: dict[str, Any] = {k: event[k] for k in _TIMELINE_KEYS if k in event}
        response = event.get("response")
        if isinstance(response, dict):
            fields["response_id"] = response.get("id")
            if response.get("status") is not None:
                fields["status"] = response.get("status")
            details = response.get("status_details")
            if isinstance(details, dict):
                if details.get("reason"):
                    fields["status_reason"] = details.get("reason")
                err = details.get("error")
                if isinstance(err, dict):
                    fields["error_type"], fields["error_code"] = err.get("type"), err.get("code")
        err = event.get("error")
        if isinstance(err, dict):
            fields["error_type"], fields["error_code"] = err.get("type"), err.get("code")
            fields["error_message"] = err.get("message")
        session = event.get("session")
        if isinstance(session, dict) and session.get("id"):
            fields["session_id"] = session.get("id")
        delta = event.get("delta")
        if isinstance(delta, str):
            fields["delta_chars"] = len(delta)
        self.note("in", str(event.get("type")), fields, t)
