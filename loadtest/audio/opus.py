"""Opus packets to PCM16 through libopus itself (ctypes), at the rate the caller wants.

A WebRTC call's audio is decoded packet by packet on the hot path of both ends: the harness decodes
every packet of an answer (time to first audio, stalls and inner silence are read from it), the
mock every packet of the caller's speech (its VAD and input buffer). Through PyAV a 20 ms packet
cost 54 us (a packet object, a frame object, an ndarray through ``vstack``, 48 kHz averaged down
to 24); ``opus_decode`` into a buffer kept per decoder costs 29 us, nearly all of it libopus's own
work, and decodes at the rate asked (24 kHz for the harness, the session's input rate for the mock,
8 kHz for G.711) with no resampler (``bench/bench_opus.py``, ``bench/results/opus.json``).

libopus is the copy PyAV's wheel carries (``av.libs``), else the system's (``libopus.so.0``);
with neither, :func:`decoder` gives the PyAV decoder (the same interface). Loaded on first use,
once per process (:func:`libopus`).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os
from typing import Any, Protocol

MAX_FRAME_S = 0.120  # the longest Opus packet (120 ms)
_UNLOADED: Any = object()
_LIB: Any = _UNLOADED  # the process's libopus (None: not found), loaded by libopus()


class Decoder(Protocol):
    rate: int
    errors: int

    def decode(self, payload: bytes) -> bytes:
        """One packet's PCM16 (mono, little-endian, at ``rate``); b"" for a corrupt packet."""
        ...


def libopus() -> Any:
    """The process's libopus through ctypes, or None when there is none to load."""
    global _LIB
    if _LIB is _UNLOADED:
        _LIB = _load()
    return _LIB


def _load() -> Any:
    candidates: list[str] = []
    try:
        import av

        wheel_libs = os.path.join(os.path.dirname(av.__file__), os.pardir, "av.libs")
        candidates += sorted(glob.glob(os.path.join(wheel_libs, "libopus*.so*")))
    except ImportError:
        pass
    # the system's by the names the dynamic loader knows (not ctypes.util.find_library: it runs
    # ldconfig in a child process, which gevent's patched subprocess refuses off the main loop)
    candidates += ["libopus.so.0", "libopus.so", "libopus.0.dylib", "libopus.dylib", "opus.dll"]
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
            lib.opus_decoder_create.restype = ctypes.c_void_p
            lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
            lib.opus_decode.restype = ctypes.c_int
            lib.opus_decode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_void_p,
                                        ctypes.c_int, ctypes.c_int]  # fmt: skip
            lib.opus_decoder_destroy.restype = None
            lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
        except (OSError, AttributeError):
            continue
        return lib
    return None


class LibOpusDecoder:
    """One stream's libopus decoder (mono) at ``rate`` (8, 12, 16, 24 or 48 kHz)."""

    def __init__(self, rate: int, lib: Any = None) -> None:
        self._lib = lib or libopus()
        if self._lib is None:
            raise OSError("libopus is not installed")
        err = ctypes.c_int()
        self._state = self._lib.opus_decoder_create(rate, 1, ctypes.byref(err))
        if not self._state or err.value != 0:
            raise ValueError(f"libopus cannot decode at {rate} Hz (error {err.value})")
        self.rate = rate
        self.errors = 0
        self._samples = int(rate * MAX_FRAME_S)
        self._buffer = ctypes.create_string_buffer(self._samples * 2)
        self._decode = self._lib.opus_decode

    def decode(self, payload: bytes) -> bytes:
        count = self._decode(self._state, payload, len(payload), self._buffer, self._samples, 0)
        if count < 0:  # a corrupt packet: a gap, as a player would have
            self.errors += 1
            return b""
        return self._buffer.raw[: count * 2]

    def __del__(self) -> None:
        state, self._state = getattr(self, "_state", None), None
        if state:
            with contextlib.suppress(Exception):  # (at interpreter exit ctypes may be gone)
                self._lib.opus_decoder_destroy(state)


class PyAVDecoder:
    """The same through PyAV (its FFmpeg's libopus decodes at 48 kHz; resampled to ``rate``)."""

    def __init__(self, rate: int) -> None:
        import av

        codec = av.CodecContext.create("libopus", "r")
        codec.sample_rate = 48000
        codec.layout = "mono"
        codec.format = "s16"
        self._codec = codec
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        self._packet = av.Packet
        self.rate = rate
        self.errors = 0

    def decode(self, payload: bytes) -> bytes:
        try:
            frames = self._codec.decode(self._packet(payload))
        except Exception:  # a corrupt packet: a gap
            self.errors += 1
            return b""
        out = []
        for frame in frames:
            if frame.sample_rate == self.rate:
                out.append(frame.to_ndarray().astype("<i2").tobytes())
                continue
            for converted in self._resampler.resample(frame):
                out.append(converted.to_ndarray().astype("<i2").tobytes())
        return b"".join(out)


def decoder(rate: int) -> Decoder:
    """A decoder for one stream at ``rate``: libopus's where it loads, else PyAV's."""
    if libopus() is not None:
        return LibOpusDecoder(rate)
    return PyAVDecoder(rate)
