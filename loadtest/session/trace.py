"""A bounded ring of one response's events, payloads elided, turned into a trace only when needed.

The receive loop must stay cheap, so the ring stores references: a parsed server event as it is
(no copy) and, for audio deltas and appends, a small tuple instead of the event (the base64 payload
is never kept). :meth:`TraceRing.events` builds the elided JSON-ready list when a response did not
complete and its trace is written.
"""

from __future__ import annotations

from collections import deque
from typing import Any

# keys whose values are bulk payloads, replaced by a length note in traces
_PAYLOAD_KEYS = ("delta", "audio")
_PAYLOAD_TYPES_SUFFIX = ("audio.delta", ".append")


class TraceRing:
    __slots__ = ("_ring", "dropped")

    def __init__(self, maxlen: int) -> None:
        self._ring: deque[tuple[float, str, Any]] | None = deque(maxlen=maxlen) if maxlen > 0 else None
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._ring) if self._ring is not None else 0

    def add(self, t: float, event: dict[str, Any], direction: str = "in") -> None:
        ring = self._ring
        if ring is not None:
            if len(ring) == ring.maxlen:
                self.dropped += 1
            ring.append((t, direction, event))

    def add_payload(self, t: float, event_type: str, nbytes: int, event_id: str | None, direction: str = "in") -> None:
        """An audio delta (or an append) without its payload: only its size is kept."""
        ring = self._ring
        if ring is not None:
            if len(ring) == ring.maxlen:
                self.dropped += 1
            ring.append((t, direction, (event_type, nbytes, event_id)))

    def events(self) -> list[dict[str, Any]]:
        """The ring as JSON-ready dicts, oldest first, bulk payloads elided."""
        out: list[dict[str, Any]] = []
        if self._ring is None:
            return out
        if self.dropped:
            out.append({"t": self._ring[0][0], "dir": "note", "type": "trace.truncated", "dropped": self.dropped})
        for t, direction, item in self._ring:
            if isinstance(item, tuple):
                event_type, nbytes, event_id = item
                row: dict[str, Any] = {"t": t, "dir": direction, "type": event_type, "payload_bytes": nbytes}
                if event_id:
                    row["event_id"] = event_id
                out.append(row)
            else:
                out.append({"t": t, "dir": direction, **elide(item)})
        return out


def elide(event: dict[str, Any]) -> dict[str, Any]:
    """A shallow copy of ``event`` with bulk audio payloads replaced by their length."""
    event_type = str(event.get("type", ""))
    if not event_type.endswith(_PAYLOAD_TYPES_SUFFIX):
        return dict(event)
    out = dict(event)
    for key in _PAYLOAD_KEYS:
        value = out.get(key)
        if isinstance(value, str | bytes):
            out[key] = f"<{len(value)} chars elided>"
    return out
