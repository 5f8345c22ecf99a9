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
        self.prefix_padding_ms = prefix_padding_ms
        self.silence_duration_ms = silence_duration_ms
        self.frame_ms = frame_ms
        self.in_speech = False
        self.silence_run_ms = 0.0
        self._pending = np.zeros(0, dtype=np.float32)
        self._pending_start_ms = 0.0  # session audio clock at the start of _pending

    def feed(self, pcm: np.ndarray, rate: int, clock_ms: float) -> list[VadEvent]:
        """Process samples appended at session audio time ``clock_ms``; the VAD events they cause."""
        if self._pending.size == 0:
            self._pending_start_ms = clock_ms
        samples = np.concatenate((self._pending, pcm.astype(np.float32)))
        frame = max(1, rate * self.frame_ms // 1000)
        whole = samples.size // frame
        events: list[VadEvent] = []
        if whole:
            frames = samples[: whole * frame].reshape(whole, frame)
            rms = np.sqrt(np.mean(frames * frames, axis=1)) / 32768.0
            db = 20 * np.log10(rms + 1e-12)
            speech = db > self.level_db
            for i, is_speech in enumerate(speech):
                start = self._pending_start_ms + i * self.frame_ms
                if is_speech:
                    self.silence_run_ms = 0.0
                    if not self.in_speech:
                        self.in_speech = True
                        events.append(VadEvent("started", int(max(0.0, start - self.prefix_padding_ms))))
                elif self.in_speech:
                    self.silence_run_ms += self.frame_ms
                    if self.silence_run_ms >= self.silence_duration_ms:
                        self.in_speech = False
                        self.silence_run_ms = 0.0
                        events.append(VadEvent("stopped", int(start + self.frame_ms)))
        self._pending = samples[whole * frame :]
        self._pending_start_ms = self._pending_start_ms + whole * self.frame_ms
        return events

    def reset(self) -> None:
        self.in_speech = False
        self.silence_run_ms = 0.0
