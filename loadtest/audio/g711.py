"""G.711 μ-law and A-law in numpy (``audioop`` is gone from Python 3.13).

Both codecs are table lookups: a 65 536-entry ``uint8`` table indexed by the 16-bit sample (viewed
as ``uint16``) for encoding and a 256-entry ``int16`` table for decoding. The tables are built once
at import with vectorised numpy from the ITU-T G.711 segment rules, bit-for-bit the same as the
reference C code (Sun's ``g711.c``) that CPython's ``audioop.lin2ulaw`` / ``lin2alaw`` /
``ulaw2lin`` / ``alaw2lin`` used; ``tests/audio/test_g711.py`` pins the tables to values
produced by ``audioop`` on Python 3.11.

Samples are int16 (16-bit linear PCM); G.711 itself is 8 kHz, resampling is ``convert``'s job.
"""

from __future__ import annotations

import numpy as np

_ULAW_BIAS = 0x84  # 132, added to the magnitude before finding the segment (in 16-bit units)
_ULAW_CLIP = 8159  # magnitude clip, in 14-bit units
_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)


def _segment(magnitude: np.ndarray, seg_end: np.ndarray) -> np.ndarray:
    """Index of the first segment whose end is >= magnitude (8 when above every segment)."""
    return np.searchsorted(seg_end, magnitude, side="left").astype(np.int32)


def _build_ulaw_encode() -> np.ndarray:
    x = np.arange(-32768, 32768, dtype=np.int32) >> 2  # 14-bit linear
    mask = np.where(x < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(x), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = _segment(mag, _ULAW_SEG_END)
    code = (np.minimum(seg, 7) << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0xF)
    code = np.where(seg >= 8, 0x7F, code) ^ mask
    table = np.empty(65536, dtype=np.uint8)
    # index by the uint16 view of the int16 sample: 0..32767 then -32768..-1
    table[np.arange(-32768, 32768, dtype=np.int32).astype(np.int16).view(np.uint16)] = code.astype(np.uint8)
    return table


def _build_ulaw_decode() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + _ULAW_BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)


def _build_alaw_encode() -> np.ndarray:
    x = np.arange(-32768, 32768, dtype=np.int32) >> 3  # 13-bit linear
    mask = np.where(x >= 0, 0xD5, 0x55)
    mag = np.where(x >= 0, x, -x - 1)
    seg = _segment(mag, _ALAW_SEG_END)
    segc = np.minimum(seg, 7)
    quant = np.where(segc < 2, mag >> 1, mag >> np.maximum(segc, 1)) & 0x0F
    code = np.where(seg >= 8, 0x7F, (segc << 4) | quant) ^ mask
    table = np.empty(65536, dtype=np.uint8)
    table[np.arange(-32768, 32768, dtype=np.int32).astype(np.int16).view(np.uint16)] = code.astype(np.uint8)
    return table


def _build_alaw_decode() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = a & 0x0F
    seg = (a & 0x70) >> 4
    t = np.where(seg > 0, (t + t + 1 + 32) << (seg + 2), (t + t + 1) << 3)
    return np.where(a & 0x80, t, -t).astype(np.int16)


ULAW_ENCODE: np.ndarray = _build_ulaw_encode()
ULAW_DECODE: np.ndarray = _build_ulaw_decode()
ALAW_ENCODE: np.ndarray = _build_alaw_encode()
ALAW_DECODE: np.ndarray = _build_alaw_decode()
for _t in (ULAW_ENCODE, ULAW_DECODE, ALAW_ENCODE, ALAW_DECODE):
    _t.setflags(write=False)


def _as_uint16(pcm: np.ndarray) -> np.ndarray:
    arr = np.asarray(pcm)
    if arr.dtype != np.int16:
        if arr.dtype.kind == "f":
            raise TypeError("G.711 encoders take int16 samples; convert float audio with convert.float_to_int16")
        arr = arr.astype(np.int16)
    return np.ascontiguousarray(arr).reshape(-1).view(np.uint16)


def ulaw_encode(pcm: np.ndarray) -> bytes:
    """int16 samples -> μ-law bytes (one byte per sample)."""
    return ULAW_ENCODE[_as_uint16(pcm)].tobytes()


def ulaw_decode(data: bytes) -> np.ndarray:
    """μ-law bytes -> int16 samples."""
    return ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def alaw_encode(pcm: np.ndarray) -> bytes:
    """int16 samples -> A-law bytes (one byte per sample)."""
    return ALAW_ENCODE[_as_uint16(pcm)].tobytes()


def alaw_decode(data: bytes) -> np.ndarray:
    """A-law bytes -> int16 samples."""
    return ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)]
