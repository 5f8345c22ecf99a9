"""What the mock session's helper modules see of it: one response's state (:class:`MockResponse`)
and the session itself as :class:`SessionHost`.

The helpers (function calls in ``tool_calls``, input transcription in ``input_transcription``) are
modules of their own that :mod:`loadtest.mock.session` imports, so they must not import it back;
they reach the session through this protocol, which :class:`~loadtest.mock.session.MockSession`
satisfies.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any, Protocol

from loadtest.mock.context import SessionContext
from loadtest.mock.faults import FaultPlan
from loadtest.mock.speech import Answer, Delta
from loadtest.mock.tools import PlannedCall
from loadtest.protocol.dialects import Dialect


@dataclass(slots=True, eq=False)
class MockResponse:
    id: str
    item_id: str
    out_of_band: bool
    modalities: list[str]
    output_format: str
    voice: str
    max_output_tokens: int | str
    metadata: dict[str, Any] | None
    answer: Answer
    plan: FaultPlan
    trigger: float  # loop time
    input_tokens: tuple[int, int]  # (text, audio)
    kind: str = "audio"  # audio | text (the content part type sent)
    task: asyncio.Task[None] | None = None
    created_sent: bool = False
    item_open: bool = False
    t_created: float | None = None
    t_first_audio: float | None = None
    audio_ms: float = 0.0
    transcript: list[str] = field(default_factory=list)
    truth_written: bool = False
    status: str | None = None
    previous_item_id: str | None = None
    first_send: float | None = None  # loop time of the first audio delta
    calls: list[PlannedCall] = field(default_factory=list)  # a calling response's function calls
    follow_up_of: str | None = None  # the calling response whose outputs this one answers
    calls_logged: bool = False  # its function_call truth rows are written
    answered_call_ids: list[str] = field(default_factory=list)  # (a follow-up) the outputs it answers
    t_first_arguments: float | None = None  # wall clock of a calling response's first arguments delta
    temperature: float = 0.8


class AnswerAudio(Protocol):
    """Where a session's answer audio goes when it is not sent as delta events: over WebRTC, the
    Opus track (loadtest/mock/rtc_media.py), which plays it in real time."""

    def audio(self, response_id: str, answer: Answer | None, delta: Delta) -> None:
        """Queue one delta of ``answer`` for playback (``answer`` None: ``delta`` is silence)."""
        ...

    def first_audio_at(self, response_id: str) -> float | None:
        """Wall clock of the response's first audio packet sent (None: none was)."""
        ...


class SessionHost(Protocol):
    """The parts of a mock session its helpers use."""

    id: str
    ctx: SessionContext
    dialect: Dialect
    profile: dict[str, Any]
    cfg: dict[str, Any]
    items: dict[str, dict[str, Any]]
    last_item_id: str | None
    loop: asyncio.AbstractEventLoop
    tools_rng: random.Random
    transcription_rng: random.Random

    async def send(self, event: dict[str, Any]) -> None: ...
    async def sleep_until(self, when: float) -> float: ...
    async def send_rate_limits(self) -> None: ...
    def finish_response(self, resp: MockResponse) -> None: ...
    def write_truth(self, resp: MockResponse, fault: str, extra: dict[str, Any] | None = None) -> None: ...
    def response_body(self, resp: MockResponse, status: str, **extra: Any) -> dict[str, Any]: ...
    def server_error_body(self) -> dict[str, Any]: ...
