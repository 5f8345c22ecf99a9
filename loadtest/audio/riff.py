"""RIFF/WAVE headers: does the file hold the audio its header announces?

libsndfile reads a truncated WAV without a word (it returns what is there), so a file cut short by a
failed copy or download would import as a fraction of a second and pass every other check. The
header's ``data`` chunk size says how much there should be; this compares it with the file.
"""

from __future__ import annotations

import struct
from pathlib import Path

_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # streamed writers leave the size open; RF64 puts it elsewhere


def truncation(path: Path) -> str | None:
    """One clause when ``path`` is a WAV whose audio is shorter than its header says, else None.

    Files that are not plain RIFF/RIFX WAVE (FLAC, OGG, RF64, garbage) are left to the decoder.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
                return None
            order = "<" if head[:4] == b"RIFF" else ">"
            size = Path(path).stat().st_size
            byte_rate = 0
            pos = 12
            while pos + 8 <= size:
                fh.seek(pos)
                chunk, length = struct.unpack(order + "4sI", fh.read(8))
                if chunk == b"fmt " and length >= 12:
                    byte_rate = struct.unpack(order + "I", fh.read(12)[8:12])[0]
                elif chunk == b"data":
                    if length in _UNKNOWN_SIZES:
                        return None
                    held = size - (pos + 8)
                    if held >= length:
                        return None
                    return (
                        f"truncated: its header announces {_amount(length, byte_rate)} of audio, the file holds "
                        f"{_amount(held, byte_rate)}"
                    )
                pos += 8 + length + (length & 1)
    except (OSError, struct.error):
        return None
    return None


def _amount(n: int, byte_rate: int) -> str:
    return f"{n / byte_rate:.2f} s" if byte_rate else f"{n} bytes"
