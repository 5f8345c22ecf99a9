"""G.711 over real sockets: the output format set for one response in ``response.create``, and
G.711 input audio into server VAD. Every server event is validated against the dialect's types."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest

from loadtest.audio import g711
from loadtest.protocol.dialects import AUDIO_FORMATS, get_dialect
from tests.mock.schema_check import validate
from tests.mock.wsclient import Client, assert_vad_turn, speechlike
from tests.support import connect

G711_RATE = 8000
DECODE = {"g711_ulaw": g711.ulaw_decode, "g711_alaw": g711.alaw_decode}
ENCODE = {"g711_ulaw": g711.ulaw_encode, "g711_alaw": g711.alaw_encode}


def _connect(base: str, dialect: str) -> Client:
    c = connect(base, dialect)
    validate(c.recv(), dialect)
    return c


def _response_create(dialect: str, fmt: str | None) -> dict[str, Any]:
    """``response.create`` asking this one response for ``fmt`` (None: the session's format)."""
    if fmt is None:
        return {"type": "response.create"}
    if dialect == "ga":
        return {"type": "response.create", "response": {"audio": {"output": {"format": AUDIO_FORMATS[fmt][0]}}}}
    return {"type": "response.create", "response": {"output_audio_format": fmt}}


def _reported_format(dialect: str, response: dict[str, Any]) -> str:
    if dialect == "ga":
        wire = response["audio"]["output"]["format"]
        return next(name for name, (ga, _p, _r) in AUDIO_FORMATS.items() if ga["type"] == wire["type"])
    return response["output_audio_format"]


def _one_response(c: Client, dialect: str, fmt: str | None) -> list[dict[str, Any]]:
    """Ask for one response (text-triggered) and return its events, each validated."""
    d = get_dialect(dialect)
    start = len(c.events)
    c.send(d.user_text_item("Where is my order?"))
    c.send(_response_create(dialect, fmt))
    c.until("rate_limits.updated", timeout=15)
    events = c.events[start:]
    for event in events:
        validate(event, dialect)
    assert "error" not in [e["type"] for e in events], [e for e in events if e["type"] == "error"]
    return events


def _deltas(events: list[dict[str, Any]], dialect: str) -> list[bytes]:
    name = get_dialect(dialect).output_audio_delta
    return [base64.b64decode(e["delta"]) for e in events if e["type"] == name]


def _done(events: list[dict[str, Any]]) -> dict[str, Any]:
    return next(e for e in events if e["type"] == "response.done")["response"]


def _dbfs(pcm: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))
    return 20 * np.log10(max(rms, 1e-9) / 32768.0)


def _check_sizes(chunks: list[bytes], ms_to_bytes: float, step_ms: int = 20) -> None:
    """The mock cuts 100-500 ms deltas on a 20 ms grid (the last one is what is left)."""
    assert len(chunks) >= 5
    step = int(step_ms * ms_to_bytes)
    for chunk in chunks[:-1]:
        assert len(chunk) % step == 0, (len(chunk), step)
        assert 100 * ms_to_bytes <= len(chunk) <= 500 * ms_to_bytes, len(chunk)
    assert 0 < len(chunks[-1]) <= 500 * ms_to_bytes


@pytest.mark.parametrize("dialect", ["ga", "preview"])
@pytest.mark.parametrize("fmt", ["g711_ulaw", "g711_alaw"])
def test_output_format_set_for_one_response(shared_mock, dialect: str, fmt: str) -> None:
    d = get_dialect(dialect)
    with _connect(shared_mock.url, dialect) as c:
        c.send(d.session_update(audio_format="pcm16", turn_detection=None))
        updated = c.until("session.updated")
        validate(updated, dialect)
        override = _one_response(c, dialect, fmt)
        plain = _one_response(c, dialect, None)

    # the override: reported on the response, 8 kHz G.711 on the wire (1 byte a sample: 100 ms = 800 bytes)
    created = next(e for e in override if e["type"] == "response.created")["response"]
    done = _done(override)
    assert done["status"] == "completed"
    assert _reported_format(dialect, created) == _reported_format(dialect, done) == fmt
    g_chunks = _deltas(override, dialect)
    _check_sizes(g_chunks, G711_RATE / 1000)
    g_raw = b"".join(g_chunks)
    transcript = done["output"][0]["content"][0]["transcript"]
    assert 12 <= len(transcript) / (len(g_raw) / G711_RATE) <= 16
    rows = {r["response_id"]: r for r in shared_mock.truth() if r["kind"] == "response"}
    row = rows[done["id"]]
    assert row["audio_format"] == fmt
    assert abs(len(g_raw) - row["audio_ms"] * 8) <= 2  # exactly 8 bytes per ms sent
    # decodes to speech-like audio: speech level, never silent inside, voiced (energy low in the band)
    g_pcm = DECODE[fmt](g_raw)
    assert g_pcm.size == len(g_raw)
    assert -30 <= _dbfs(g_pcm) <= -6
    frames = g_pcm[: g_pcm.size // 800 * 800].reshape(-1, 800)
    assert min(_dbfs(f) for f in frames) > -45
    spectrum = np.abs(np.fft.rfft(g_pcm.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(g_pcm.size, 1 / G711_RATE)
    assert spectrum[freqs < 1000].sum() / spectrum.sum() > 0.9

    # the next response without the override is back to the session's 24 kHz PCM16
    done2 = _done(plain)
    assert done2["status"] == "completed"
    assert _reported_format(dialect, done2) == "pcm16"
    p_chunks = _deltas(plain, dialect)
    _check_sizes(p_chunks, 24000 * 2 / 1000)
    p_raw = b"".join(p_chunks)
    transcript2 = done2["output"][0]["content"][0]["transcript"]
    assert 12 <= len(transcript2) / (len(p_raw) / 48000) <= 16
    assert rows[done2["id"]]["audio_format"] == "pcm16"
    assert abs(len(p_raw) - rows[done2["id"]]["audio_ms"] * 48) <= 96
    p_pcm = np.frombuffer(p_raw, "<i2")
    # same loudness as the PCM16 answer (a G.711 stream decoded with the wrong law is ~8 dB louder)
    assert abs(_dbfs(g_pcm) - _dbfs(p_pcm)) < 2


def _g711_appends(pcm8k: np.ndarray, fmt: str, frame_ms: int = 100) -> list[dict[str, Any]]:
    data = ENCODE[fmt](pcm8k)
    step = G711_RATE * frame_ms // 1000  # one byte a sample
    return [
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(data[i : i + step]).decode()}
        for i in range(0, len(data), step)
    ]


@pytest.mark.parametrize("dialect", ["ga", "preview"])
@pytest.mark.parametrize("fmt", ["g711_ulaw", "g711_alaw"])
def test_g711_input_into_server_vad(shared_mock, dialect: str, fmt: str) -> None:
    d = get_dialect(dialect)
    with _connect(shared_mock.url, dialect) as c:
        c.send(d.session_update(audio_format=fmt, turn_detection="server_vad"))
        updated = c.until("session.updated")
        validate(updated, dialect)
        silence = np.zeros(int(0.5 * G711_RATE), np.int16)
        pcm = np.concatenate([silence, speechlike(1.0, rate=G711_RATE), np.zeros(int(0.8 * G711_RATE), np.int16)])
        appends = _g711_appends(pcm, fmt)
        assert len(appends) == 23 and all(len(base64.b64decode(a["audio"])) == 800 for a in appends)
        for event in appends:
            c.send(event)
        c.until("rate_limits.updated", timeout=10)
        for event in c.events:
            validate(event, dialect)
        types = c.types()
        assert "error" not in types
        assert_vad_turn(c.events)  # the same timing as for PCM16 at 24 kHz
        assert types.count("input_audio_buffer.speech_started") == 1
        assert types.index("input_audio_buffer.committed") < types.index("response.created")
        done = next(e for e in c.events if e["type"] == "response.done")["response"]
        assert done["status"] == "completed"
        assert _reported_format(dialect, done) == fmt
        assert len(b"".join(_deltas(c.events, dialect))) / G711_RATE > 1.0
