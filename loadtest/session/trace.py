"""A bounded ring of one response's events, payloads elided, turned into a trace only when needed.

The receive loop must stay cheap, so the ring stores references: a parsed server event as it is
(no copy) and, for audio deltas and appends, only the type, size and event id (the base64 payload
is never kept). :meth:`TraceRing.events` builds the elided JSON-ready list when a response did not
complete and its trace is written.
"""

from __future__ import annotations

from array import array
from typing import Any

# keys whose values are bulk payloads, replaced by a length note in traces
_PAYLOAD_KEYS = ("delta", "audio")
_PAYLOAD_TYPES_SUFFIX = ("audio.delta", ".append")


class TraceRing:
    """The last ``maxlen`` events of one response, oldest overwritten first.

    Built for the garbage collector as much as for speed: hundreds of sessions each hold a ring
    for as long as a response lasts, so every container in it is scanned by each collection it
    survives. Times and sizes live in ``array`` / ``bytearray`` columns (not containers the
    collector traverses), everything else in one list that grows only as events come (a
    pre-allocated 6 x 200-slot ring per response made young collections take 10 to 70 ms at
    1,600 sessions), and an entry allocates nothing the collector tracks: a payload is kept as
    one string, ``type`` or ``type\x00event_id``.
    """

    __slots__ = ("_dir", "_nbytes", "_obj", "_seen", "_size", "_t", "dropped")

    def __init__(self, maxlen: int) -> None:
        self._size = max(0, maxlen)
        self._seen = 0  # events added in all
        self._t = array("d")
        self._dir = bytearray()  # index into _DIRECTIONS
        self._nbytes = array("q")  # a payload's size; -1 for a whole event
        self._obj: list[Any] = []  # the event dict, or the payload's type[\x00event_id]
        self.dropped = 0

    def __len__(self) -> int:
        return min(self._seen, self._size)

    def _put(self, t: float, direction: str, nbytes: int, obj: Any) -> None:
        size = self._size
        if not size:
            return
        d = _DIRECTION_CODE.get(direction, _OTHER)
        n = self._seen
        if n < size:
            self._t.append(t)
            self._dir.append(d)
            self._nbytes.append(nbytes)
            self._obj.append(obj)
        else:
            self.dropped += 1
            i = n % size
            self._t[i] = t
            self._dir[i] = d
            self._nbytes[i] = nbytes
            self._obj[i] = obj
        self._seen = n + 1

    def add(self, t: float, event: dict[str, Any], direction: str = "in") -> None:
        self._put(t, direction, -1, event)

    def add_payload(self, t: float, event_type: str, nbytes: int, event_id: str | None, direction: str = "in") -> None:
        """An audio delta (or an append) without its payload: only its size is kept."""
        self._put(t, direction, nbytes, event_type + "\x00" + event_id if event_id else event_type)

    def events(self) -> list[dict[str, Any]]:
        """The ring as JSON-ready dicts, oldest first, bulk payloads elided."""
        out: list[dict[str, Any]] = []
        size, n = self._size, self._seen
        if not size or not n:
            return out
        first = max(0, n - size)
        if self.dropped:
            out.append({"t": self._t[first % size], "dir": "note", "type": "trace.truncated", "dropped": self.dropped})
        for j in range(first, n):
            i = j % size
            t, direction, nbytes, obj = self._t[i], _DIRECTIONS[self._dir[i]], self._nbytes[i], self._obj[i]
            if nbytes >= 0:
                event_type, _, event_id = obj.partition("\x00")
                row: dict[str, Any] = {"t": t, "dir": direction, "type": event_type, "payload_bytes": nbytes}
                if event_id:
                    row["event_id"] = event_id
                out.append(row)
            else:
                out.append({"t": t, "dir": direction, **elide(obj)})
        return out


_DIRECTIONS = ("in", "out", "note", "other")
_DIRECTION_CODE = {name: i for i, name in enumerate(_DIRECTIONS)}
_OTHER = _DIRECTION_CODE["other"]


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
