"""Energy-based server VAD on the appended input audio.

Each ``frame_ms`` frame is speech when its RMS level is above ``floor_db + threshold * span_db``
dBFS. Speech starts at the first speech frame (reported ``prefix_padding_ms`` earlier) and stops
once ``silence_duration_ms`` of non-speech follow it; ``audio_end_ms`` then includes that silence,
as the services report it. Times count from the session's first appended audio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class VadEvent:
    kind: str  # "started" | "stopped"
    audio_ms: int


class EnergyVad:
    def __init__(self, *, threshold: float = 0.5, prefix_padding_ms: int = 300, silence_duration_ms: int = 500,
                 frame_ms: int = 20, floor_db: float = -60.0, span_db: float = 40.0) -> None:  # fmt: skip
        self.level_db = floor_db + threshold * span_db
        self._level_power = (10 ** (self.level_db / 20) * 32768.0) ** 2
        self.prefix_padding_ms = prefix_padding_ms
        self.silence_duration_ms = silence_duration_ms
        self.frame_ms = frame_ms
        self.in_speech = False
        self.silence_run_ms = 0.0
        self._pending = np.zeros(0, dtype=np.float32)
        self._pending_start_ms = 0.0  # session audio clock at the start of _pending

    def feed(self, pcm: np.ndarray, rate: int, clock_ms: float) -> list[VadEvent]:
        """Process samples appended at session audio time ``clock_ms``; the VAD events they cause."""
        if self._pending.size:
            samples = np.concatenate((self._pending, pcm.astype(np.float32)))
            start_ms = self._pending_start_ms
        else:
            samples = pcm.astype(np.float32)
            start_ms = clock_ms
        frame = max(1, rate * self.frame_ms // 1000)
        whole = samples.size // frame
        events: list[VadEvent] = []
        if whole:
            frames = samples[: whole * frame].reshape(whole, frame)
            # mean square per frame against the level, in the linear domain (no log per frame)
            power = np.einsum("ij,ij->i", frames, frames) / frame
            speech = power > self._level_power
            if self.in_speech and speech.all():
                self.silence_run_ms = 0.0
            elif self.in_speech or speech.any():
                for i, is_speech in enumerate(speech.tolist()):
                    at = start_ms + i * self.frame_ms
                    if is_speech:
                        self.silence_run_ms = 0.0
                        if not self.in_speech:
                            self.in_speech = True
                            events.append(VadEvent("started", int(max(0.0, at - self.prefix_padding_ms))))
                    elif self.in_speech:
                        self.silence_run_ms += self.frame_ms
                        if self.silence_run_ms >= self.silence_duration_ms:
                            self.in_speech = False
                            self.silence_run_ms = 0.0
                            events.append(VadEvent("stopped", int(at + self.frame_ms)))
        self._pending = samples[whole * frame :]
        self._pending_start_ms = start_ms + whole * self.frame_ms
        return events

    def reset(self) -> None:
        self.in_speech = False
        self.silence_run_ms = 0.0
