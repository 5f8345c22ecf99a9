"""A bounded ring of one response's events, payloads elided, turned into a trace only when needed.

The receive loop must stay cheap, so the ring stores references: a parsed server event as it is
(no copy) and, for audio deltas and appends, a small tuple instead of the event (the base64 payload
is never kept). :meth:`TraceRing.events` builds the elided JSON-ready list when a response did not
complete and its trace is written.
"""

from __future__ import annotations

from typing import Any

# keys whose values are bulk payloads, replaced by a length note in traces
_PAYLOAD_KEYS = ("delta", "audio")
_PAYLOAD_TYPES_SUFFIX = ("audio.delta", ".append")


class TraceRing:
    """The last ``maxlen`` events of one response, oldest overwritten first.

    Kept in parallel fixed-size lists, not as a tuple per event: a ring entry then allocates no
    object the cyclic garbage collector tracks (floats, ints and strings are not tracked), so
    hundreds of sessions' rings do not fill the collector's young generation with medium-lived
    tuples whose collection pauses the whole process (the audio clock with it).
    """

    __slots__ = ("_dir", "_eid", "_event", "_kind", "_n", "_nbytes", "_size", "_t", "dropped")

    def __init__(self, maxlen: int) -> None:
        self._size = max(0, maxlen)
        self._n = 0  # events added in all
        self._t = [0.0] * self._size
        self._dir = [""] * self._size
        self._event: list[dict[str, Any] | None] = [None] * self._size  # a whole event, or None for a payload
        self._kind = [""] * self._size  # a payload's event type
        self._nbytes = [0] * self._size
        self._eid: list[str | None] = [None] * self._size
        self.dropped = 0

    def __len__(self) -> int:
        return min(self._n, self._size)

    def add(self, t: float, event: dict[str, Any], direction: str = "in") -> None:
        size = self._size
        if size:
            n = self._n
            if n >= size:
                self.dropped += 1
            i = n % size
            self._t[i] = t
            self._dir[i] = direction
            self._event[i] = event
            self._n = n + 1

    def add_payload(self, t: float, event_type: str, nbytes: int, event_id: str | None, direction: str = "in") -> None:
        """An audio delta (or an append) without its payload: only its size is kept."""
        size = self._size
        if size:
            n = self._n
            if n >= size:
                self.dropped += 1
            i = n % size
            self._t[i] = t
            self._dir[i] = direction
            self._event[i] = None
            self._kind[i] = event_type
            self._nbytes[i] = nbytes
            self._eid[i] = event_id
            self._n = n + 1

    def events(self) -> list[dict[str, Any]]:
        """The ring as JSON-ready dicts, oldest first, bulk payloads elided."""
        out: list[dict[str, Any]] = []
        size, n = self._size, self._n
        if not size or not n:
            return out
        first = max(0, n - size)
        if self.dropped:
            out.append({"t": self._t[first % size], "dir": "note", "type": "trace.truncated", "dropped": self.dropped})
        for j in range(first, n):
            i = j % size
            t, direction, event = self._t[i], self._dir[i], self._event[i]
            if event is None:
                row: dict[str, Any] = {"t": t, "dir": direction, "type": self._kind[i]}
                row["payload_bytes"] = self._nbytes[i]
                if self._eid[i]:
                    row["event_id"] = self._eid[i]
                out.append(row)
            else:
                out.append({"t": t, "dir": direction, **elide(event)})
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
