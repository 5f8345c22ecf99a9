"""Settings of one Realtime session: what to ask for, how to pace it, and the classifier thresholds.

Every threshold the classifier uses lives here with its default; the README section "The session
client and outcomes" documents each one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from loadtest.protocol.dialects import AUDIO_FORMATS
from loadtest.session.evidence import KEEP_MODES

Pacing = Literal["realtime", "fast"]
TRANSPORTS = ("websocket", "webrtc")


@dataclass(slots=True)
class Thresholds:
    """What the classifier needs to know beyond the events themselves (all durations in ms)."""

    stall_ms: float = 1500.0  # one playback underrun longer than this -> truncated/audio_stall
    inner_silence_ms: float = 1500.0  # one silent stretch inside the audio longer than this -> inner_silence
    check_audio_length: bool = True  # audio much shorter than its transcript -> audio_too_short


@dataclass(slots=True)
class SessionConfig:
    """How a session talks to the service. Defaults suit a real deployment; tests shorten the waits."""

    # what the responses should be
    output_modalities: list[str] = field(default_factory=lambda: ["audio"])  # ["audio"] | ["text"]
    audio_format: str = "pcm16"  # pcm16 | g711_ulaw | g711_alaw (input and output)
    voice: str | None = None
    instructions: str | None = None
    max_output_tokens: int | str | None = None
    transcription_model: str | None = None  # input transcription (None = off)
    transcription_wait_s: float = 10.0  # a row waits this long after its commit for the input's transcript
    # how audio is sent
    frame_ms: int = 100  # one input_audio_buffer.append per frame
    pacing: Pacing = "realtime"  # realtime: on the audio clock; fast: as fast as the socket takes it
    trailing_silence_ms: int = 800  # silence streamed after a server-VAD utterance so the VAD ends the turn
    # turn flow
    think_time_s: tuple[float, float] = (0.0, 0.0)  # uniform pause between turns
    barge_in_after_ms: float = 600.0  # barge-in: start the next utterance this long into the answer's playback
    lifetime_s: float | None = None  # recycle (close and reconnect) a session older than this between turns
    max_tool_chain: int = 4  # follow-ups answering function calls per turn at most (a scenario's tool_chain_limit wins)
    # waits
    connect_timeout_s: float = 10.0  # TCP + TLS + HTTP upgrade
    setup_timeout_s: float = 10.0  # after the 101: session.created and session.updated
    response_deadline_s: float = 30.0  # trigger -> response.done, at most
    response_idle_s: float = 10.0  # once a response started: no event of it for this long -> deadline
    close_timeout_s: float = 2.0  # wait for the server's close frame / TCP close
    # classifier thresholds
    stall_threshold_ms: float = 1500.0
    inner_silence_threshold_ms: float = 1500.0
    check_audio_length: bool = True
    jitter_buffer_ms: float = 0.0  # the modelled player starts this long after the first delta
    # evidence
    trace_events: int = 200  # events kept per response (ring); 0 disables traces
    keep_traces: bool = True  # hand non-completed responses' traces to the sink
    keep_audio: str = "failed"  # none | failed | sample: WAVs of what a caller heard (loadtest.session.evidence)
    keep_audio_s: float = 60.0  # audio kept per response at most (seconds)
    keep_audio_sample: float = 0.05  # with keep_audio="sample": the share of completed responses kept
    # transport
    transport: str = "websocket"  # websocket | webrtc (loadtest.session.webrtc)
    permessage_deflate: bool = False
    max_message_bytes: int = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.audio_format not in AUDIO_FORMATS:
            raise ValueError(f"unknown audio format {self.audio_format!r}: use one of {', '.join(AUDIO_FORMATS)}")
        if self.transport not in TRANSPORTS:
            raise ValueError(f"unknown transport {self.transport!r}: use one of {', '.join(TRANSPORTS)}")
        if self.pacing not in ("realtime", "fast"):
            raise ValueError(f"unknown pacing {self.pacing!r}: use 'realtime' or 'fast'")
        mods = list(self.output_modalities)
        if not mods or not set(mods) <= {"audio", "text"}:
            raise ValueError(f"output_modalities {mods!r}: use ['audio'], ['text'] or ['text', 'audio']")
        if self.frame_ms <= 0 or self.frame_ms > 1000:
            raise ValueError(f"frame_ms {self.frame_ms}: use 10..1000")
        if self.keep_audio not in KEEP_MODES:
            raise ValueError(f"keep_audio {self.keep_audio!r}: use one of {', '.join(KEEP_MODES)}")
        if self.max_tool_chain < 0:
            raise ValueError(f"max_tool_chain {self.max_tool_chain}: use 0 or more")
        lo, hi = self.think_time_s
        if lo < 0 or hi < lo:
            raise ValueError(f"think_time_s {self.think_time_s!r}: use (min, max) with 0 <= min <= max")

    @property
    def wants_audio(self) -> bool:
        return "audio" in self.output_modalities

    def thresholds(self) -> Thresholds:
        return Thresholds(
            stall_ms=self.stall_threshold_ms,
            inner_silence_ms=self.inner_silence_threshold_ms,
            check_audio_length=self.check_audio_length,
        )
