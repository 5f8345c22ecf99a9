"""A WebRTC call's answer as the session core reads a WebSocket's: events and audio in one stream.

No I/O: :class:`AnswerStream` is fed the data channel's messages and the answer's decoded RTP
audio in arrival order (on the WebRTC loop thread, so the line's idle packets never cross to the
harness) and hands ``on_message`` the events the core would have had over a WebSocket:

- each data-channel message as it came (the same JSON), except a ``response.done`` held back (below);
- each audio packet of a playing response as the dialect's ``output_audio.delta`` (base64 PCM16):
  a response plays from its ``output_audio_buffer.started`` to its ``.stopped`` / ``.cleared``
  (its message item from ``response.output_item.added``). Between responses the line may carry
  silence (the services and the mock keep sending packets): those are counted
  (``idle_packets``), not delivered. The data channel and RTP are two paths, so an answer's first
  packets may arrive just before its ``started``: the sound (not silent) packets of the last
  ``REORDER_S`` before it are the response's, with their own arrival times (time to first audio
  is the first of them);
- the service sends ``response.done`` when the answer is generated, while its audio still streams
  in real time: a response between ``output_audio_buffer.started`` and ``.stopped`` (or
  ``.cleared``) has its ``response.done`` held and delivered right after the ``stopped``, stamped
  with that time, so the response ends when its audio has arrived, as over a WebSocket (a
  ``rtload.response.generated`` event says at once that it came: the response's deadline, trigger
  to response.done, is met, and only the idle rule applies while the audio plays). A held done
  is let go after ``hold_s`` without an audio packet (a server that never says ``stopped``), and
  when the call ends.
"""

from __future__ import annotations

import collections
from typing import Any

import orjson
import pybase64

from loadtest.protocol.dialects import (
    GA,
    OUTPUT_AUDIO_BUFFER_CLEARED,
    OUTPUT_AUDIO_BUFFER_STARTED,
    OUTPUT_AUDIO_BUFFER_STOPPED,
)
from loadtest.session.link import RESPONSE_GENERATED, OnMessage

HOLD_DONE_S = 6.0  # longer than any stall the mock injects (3.8 s): a stall is not a silent end
# packets this long before output_audio_buffer.started may be its first ones (a busy peer's data
# channel lags its RTP: 0.1 s made time to first audio 0.5 s late against the mock at 40 calls)
REORDER_S = 0.5
_RING = 16  # packets kept while no response plays (320 ms)
BUFFER_STARTED = OUTPUT_AUDIO_BUFFER_STARTED
BUFFER_ENDS = frozenset({OUTPUT_AUDIO_BUFFER_STOPPED, OUTPUT_AUDIO_BUFFER_CLEARED})
_DONE, _ITEM_ADDED = GA.response_done, GA.output_item_added  # (the same names in the preview)
_WATCHED = frozenset({_DONE, _ITEM_ADDED, BUFFER_STARTED, *BUFFER_ENDS})


class AnswerStream:
    """One call's answer, reassembled for the session core (see the module docstring)."""

    def __init__(self, audio_event: str, on_message: OnMessage, hold_s: float = HOLD_DONE_S) -> None:
        self.audio_event = audio_event
        self.on_message = on_message
        self.hold_s = hold_s
        self.response_id: str | None = None  # the response the RTP audio belongs to (the one playing)
        self.items: dict[str, str] = {}  # response id -> its message item
        self.playing: set[str] = set()  # between output_audio_buffer.started and .stopped/.cleared
        self.held: dict[str, tuple[bytes, float]] = {}  # response.done waiting for its audio's end
        self.last_packet = 0.0
        self.audio_packets = 0
        self.idle_packets = 0  # packets while no response played (the line's silence)
        self.deltas = 0
        self.before: collections.deque[tuple[bytes, float, bool]] = collections.deque(maxlen=_RING)

    # -- feeding -----------------------------------------------------------------------------
    def event(self, data: bytes, t: float) -> None:
        kind = event_type(data)
        if kind not in _WATCHED:
            self.on_message(data, t)
            return
        event = _loads(data)
        rid = _response_id(event) if event is not None else None
        if rid is None:
            self.on_message(data, t)
            return
        if kind == _ITEM_ADDED:
            item = event.get("item") if event is not None else None
            if isinstance(item, dict) and item.get("type") == "message" and isinstance(item.get("id"), str):
                self.items[rid] = item["id"]
                if len(self.items) > 64:
                    self.items.pop(next(iter(self.items)))
        elif kind == BUFFER_STARTED:
            self.response_id = rid
            self.playing.add(rid)
            self.on_message(data, t)
            self._claim_early(t)
            return
        elif kind == _DONE:
            if rid in self.playing:
                self.held[rid] = (data, t)  # its audio is still arriving
                self.on_message(orjson.dumps({"type": RESPONSE_GENERATED, "response_id": rid}), t)
                return
        else:  # stopped / cleared
            self.on_message(data, t)
            self.playing.discard(rid)
            if self.response_id == rid:
                self.response_id = next(iter(self.playing), None)
            held = self.held.pop(rid, None)
            if held is not None:
                self.on_message(held[0], t)  # done when its audio ended
            return
        self.on_message(data, t)

    def audio(self, pcm: bytes, t: float, silent: bool = False) -> None:
        """One decoded packet (``silent``: it decoded to digital silence) and its arrival."""
        self.audio_packets += 1
        self.last_packet = t
        if not self.playing or not pcm:
            self.idle_packets += 1
            self.before.append((pcm, t, silent))
            return
        self._deliver(pcm, t)

    def _claim_early(self, t_started: float) -> None:
        """The sound packets that came just before ``started``: the response's first (oldest first)."""
        early: list[tuple[bytes, float]] = []
        while self.before:
            pcm, t, silent = self.before.pop()
            if silent or not pcm or t < t_started - REORDER_S:
                break
            early.append((pcm, t))
        self.before.clear()
        for pcm, t in reversed(early):
            self.idle_packets -= 1
            self._deliver(pcm, t)

    def _deliver(self, pcm: bytes, t: float) -> None:
        self.deltas += 1
        delta = {
            "type": self.audio_event,
            "event_id": f"rtp_{self.deltas}",
            "response_id": self.response_id,
            "item_id": self.items.get(self.response_id or ""),
            "output_index": 0,
            "content_index": 0,
            "delta": pybase64.b64encode(pcm).decode(),
        }
        self.on_message(orjson.dumps(delta), t)

    # -- held responses ----------------------------------------------------------------------
    def wait_s(self, now: float) -> float | None:
        """How long the receiver may wait for the next item before a held done is due (None: forever)."""
        if not self.held:
            return None
        return max(0.05, self.hold_s - (now - self.last_packet))

    def release_stale(self, now: float) -> None:
        """Let held dones go once no audio came for ``hold_s`` (stamped at the last packet)."""
        if self.held and now - self.last_packet >= self.hold_s:
            self.release_all()

    def release_all(self) -> None:
        held, self.held = self.held, {}
        for rid, (data, t_done) in held.items():
            self.playing.discard(rid)
            self.on_message(data, max(t_done, self.last_packet))


def event_type(data: bytes) -> str | None:
    """The ``type`` of an event, cheaply when it is the first key (as the services and the mock write)."""
    head = data[:64]
    start = head.find(b'"type":"')
    if start >= 0:
        start += 8
        end = head.find(b'"', start)
        if end > 0:
            return head[start:end].decode("ascii", "replace")
    event = _loads(data)
    kind = event.get("type") if event is not None else None
    return kind if isinstance(kind, str) else None


def _loads(data: bytes) -> dict[str, Any] | None:
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None


def _response_id(event: dict[str, Any]) -> str | None:
    rid = event.get("response_id")
    if not isinstance(rid, str):
        response = event.get("response")
        rid = response.get("id") if isinstance(response, dict) else None
    return rid if isinstance(rid, str) and rid else None
