"""G.711 μ-law / A-law: bit-exact against CPython's audioop, and within the codec's error bounds.

The reference values below were produced ONCE with ``audioop`` on CPython 3.11 (the last
versions that ship it), e.g.::

    python3 -c 'import audioop, numpy as np, hashlib; x = np.arange(-32768, 32768, dtype=np.int16);
                print(hashlib.sha256(audioop.lin2ulaw(x.tobytes(), 2)).hexdigest())'

and are hard-coded so the test runs on interpreters without ``audioop``.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from loadtest.audio import g711

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)

# sha256 of audioop.lin2ulaw / lin2alaw over every int16 value (ascending), and of
# audioop.ulaw2lin / alaw2lin (little-endian int16) over bytes 0..255.
REF_SHA256 = {
    "ulaw_encode": "81d633c9e6972a18c74a58720b96cb8ca0bdd096d4060b646dd708c3b846019a",
    "alaw_encode": "38488f6fd710f4686360edc4d38639f96c491595ef93f8eb8d62d5e07ca6ce7b",
    "ulaw_decode": "3dab54339e520bb2c924826e3b72a917a2b612e9fd12fc867500f1d983a75827",
    "alaw_decode": "e04788d110e58ff8c70c93b8480190d973e3b67876b6119abbaec766cc75c174",
}

# (linear sample, μ-law byte, A-law byte) from audioop.lin2ulaw / lin2alaw
ENCODE_REF = [
    (0, 255, 213), (1, 255, 213), (-1, 126, 85), (2, 255, 213), (-2, 126, 85), (7, 254, 213),
    (8, 254, 213), (100, 242, 211), (-100, 114, 83), (1000, 206, 250), (-1000, 78, 122),
    (4000, 175, 154), (-4000, 47, 26), (8158, 159, 138), (16000, 144, 186), (-16000, 16, 58),
    (32124, 128, 170), (32767, 128, 170), (-32768, 0, 42),
]  # fmt: skip

# (code byte, μ-law decoded, A-law decoded) from audioop.ulaw2lin / alaw2lin
DECODE_REF = [
    (0x00, -32124, -5504), (0x0F, -16764, -6784), (0x7F, 0, -848), (0x80, 32124, 5504),
    (0xFF, 0, 848), (0xD5, 716, 8), (0x55, -716, -8), (0x2A, -5372, -32256), (0xAA, 5372, 32256),
]  # fmt: skip


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_full_tables_match_audioop() -> None:
    assert _sha(g711.ulaw_encode(ALL_INT16)) == REF_SHA256["ulaw_encode"]
    assert _sha(g711.alaw_encode(ALL_INT16)) == REF_SHA256["alaw_encode"]
    codes = bytes(range(256))
    assert _sha(g711.ulaw_decode(codes).astype("<i2").tobytes()) == REF_SHA256["ulaw_decode"]
    assert _sha(g711.alaw_decode(codes).astype("<i2").tobytes()) == REF_SHA256["alaw_decode"]


@pytest.mark.parametrize(("linear", "ulaw", "alaw"), ENCODE_REF)
def test_encode_reference_values(linear: int, ulaw: int, alaw: int) -> None:
    sample = np.array([linear], dtype=np.int16)
    assert g711.ulaw_encode(sample) == bytes([ulaw])
    assert g711.alaw_encode(sample) == bytes([alaw])


@pytest.mark.parametrize(("code", "ulaw", "alaw"), DECODE_REF)
def test_decode_reference_values(code: int, ulaw: int, alaw: int) -> None:
    assert int(g711.ulaw_decode(bytes([code]))[0]) == ulaw
    assert int(g711.alaw_decode(bytes([code]))[0]) == alaw


@pytest.mark.parametrize("codec", ["ulaw", "alaw"])
def test_round_trip_error_within_codec_bounds(codec: str) -> None:
    enc, dec = (g711.ulaw_encode, g711.ulaw_decode) if codec == "ulaw" else (g711.alaw_encode, g711.alaw_decode)
    x = ALL_INT16.astype(np.int64)
    y = dec(enc(ALL_INT16)).astype(np.int64)
    inside = np.abs(x) <= 32000  # the top of the range clips at the codec's largest code
    err = np.abs(y - x)[inside]
    # 8 segments, 16 steps each: the step doubles per segment, so the error is at most ~1/32 of the
    # magnitude (half a step) plus the truncation of the 14-bit (μ) / 13-bit (A) input.
    assert np.all(err <= np.abs(x[inside]) / 32 + 8)
    assert err.max() <= 516
    # decode(encode(decode(c))) is stable: every code word survives a round trip
    codes = bytes(range(256))
    assert dec(enc(dec(codes))).tolist() == dec(codes).tolist()
    # a -6 dBFS sine keeps the textbook ~38 dB SQNR of 8-bit companding
    t = np.arange(8000) / 8000
    sine = (np.sin(2 * np.pi * 440 * t) * 16000).astype(np.int16)
    back = dec(enc(sine)).astype(np.float64)
    snr = 10 * np.log10(np.sum(sine.astype(np.float64) ** 2) / np.sum((back - sine) ** 2))
    assert snr > 37


def test_one_byte_per_sample_and_float_rejected() -> None:
    pcm = np.zeros(160, dtype=np.int16)
    assert len(g711.ulaw_encode(pcm)) == 160
    assert len(g711.alaw_encode(pcm)) == 160
    with pytest.raises(TypeError):
        g711.ulaw_encode(np.zeros(4, dtype=np.float32))
