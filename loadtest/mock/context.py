"""What one :class:`~loadtest.mock.session.MockSession` needs of its server, as a small object.

The server builds one :class:`SessionContext` and hands it to every session, so a session
reaches the profile, its seed, the audio bank, the limits, the truth log and the counters, and
nothing else of the server (and the session module does not import the server's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from loadtest.mock.limits import Limits
from loadtest.mock.speech import AudioBank
from loadtest.mock.stats import Stats
from loadtest.mock.truth import TruthLog
from loadtest.protocol.dialects import Dialect


@dataclass(slots=True, frozen=True)
class SessionContext:
    profile: dict[str, Any]
    seed: int
    bank: AudioBank
    limits: Limits
    truth: TruthLog
    stats: Stats
    dialects: dict[str, Dialect]

    def dialect(self, name: str) -> Dialect:
        return self.dialects[name]

    @staticmethod
    def decode_input(data: bytes, fmt: str) -> np.ndarray:
        """Samples of an appended audio chunk (pcm16 read in place; G.711 decoded)."""
        if fmt == "pcm16":
            usable = len(data) - len(data) % 2
            return np.frombuffer(data[:usable], dtype="<i2")
        from loadtest.audio.convert import from_wire

        return from_wire(data, fmt)
