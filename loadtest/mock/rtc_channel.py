"""What a :class:`~loadtest.mock.session.MockSession` sees of a WebRTC call: the surface of a
WebSocket connection (``send``, ``send_many``, ``async for``, ``close``, ``close_code``,
``transport.abort()``) over the ``oai-events`` data channel.

Server events go on the channel as text messages, as they go on the socket; the answer's audio
does not (the session hands it to the :class:`~loadtest.mock.rtc_media.AnswerTrack`). Two events
tell the track what the response did: ``response.done`` (its audio ends: ``.stopped`` once
played; a barge-in's ``cancelled``/``turn_detected`` drops what is queued and reports
``output_audio_buffer.cleared`` first) and the session's own ``output_audio_buffer.cleared`` (the
client's ``output_audio_buffer.clear``). Client events arrive as the channel's messages.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from websockets.exceptions import ConnectionClosed

from loadtest.mock.rtc_media import AnswerTrack

_DONE = b'{"type":"response.done"'
_CLEARED = b'{"type":"output_audio_buffer.cleared"'
_END = object()


class _Abort:
    def __init__(self, channel: ChannelSocket) -> None:
        self._channel = channel

    def abort(self) -> None:
        self._channel.hang_up(None)


class ChannelSocket:
    """The session's connection over WebRTC. ``hang_up_call`` closes the peer connection (the
    call owns it); ``emit`` (set once the session exists) sends an event with the session's ids."""

    def __init__(self, track: AnswerTrack, hang_up_call: Callable[[], None]) -> None:
        self.track = track
        self.channel: Any = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed = False
        self.transport = _Abort(self)
        self.emit: Callable[[dict[str, Any]], Awaitable[None]] | None = None
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._hang_up_call = hang_up_call
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self, channel: Any) -> None:
        """The ``oai-events`` channel the caller opened."""
        self.channel = channel
        channel.on("message", self._on_message)
        channel.on("close", lambda: self.ended(None))

    def _on_message(self, message: str | bytes) -> None:
        if not self.closed:
            self._inbox.put_nowait(message)

    # ---- the WebSocket surface --------------------------------------------------------------
    async def send(self, frame: bytes | str, text: bool = True) -> None:
        if self.closed:
            raise ConnectionClosed(None, None)
        data = frame if isinstance(frame, bytes) else frame.encode()
        if data.startswith(_DONE):
            await self._response_done(data)
        elif data.startswith(_CLEARED):
            self.track.clear()
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(data.decode())

    async def send_many(self, frames: list[bytes]) -> None:
        for frame in frames:
            await self.send(frame)

    def __aiter__(self) -> ChannelSocket:
        return self

    async def __anext__(self) -> str | bytes:
        message = await self._inbox.get()
        if message is _END:
            self._inbox.put_nowait(_END)
            raise StopAsyncIteration
        return message  # type: ignore[no-any-return]

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.hang_up(code, reason)

    # ---- the call's side ----------------------------------------------------------------------
    def hang_up(self, code: int | None, reason: str = "") -> None:
        """End the call now (a ``drop``, an expiry): the peer connection closes."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self.ended(code)
        self._hang_up_call()

    def ended(self, code: int | None) -> None:
        """The call is over (the channel or the peer connection closed): the session's loop ends."""
        if self.closed:
            return
        self.closed = True
        if self.close_code is None:
            self.close_code = code
        self._inbox.put_nowait(_END)

    def event_from_track(self, event: dict[str, Any]) -> None:
        """An ``output_audio_buffer.*`` event from the track (sent from its own task)."""
        if self.emit is None or self.closed:
            return
        task = asyncio.get_running_loop().create_task(self._emit(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _emit(self, event: dict[str, Any]) -> None:
        assert self.emit is not None
        with contextlib.suppress(ConnectionClosed):
            await self.emit(event)

    async def _response_done(self, data: bytes) -> None:
        response = orjson.loads(data).get("response") or {}
        rid = response.get("id")
        if not isinstance(rid, str):
            return
        details = response.get("status_details") or {}
        barge_in = response.get("status") == "cancelled" and details.get("reason") == "turn_detected"
        if barge_in and self.track.clear(rid) and self.emit is not None:
            await self._emit({"type": "output_audio_buffer.cleared", "response_id": rid})
        self.track.response_done(rid)
