"""AudioAnalyzer on real speech: finds inserted 1.5 s / 3.8 s holes, both in the audio and in delivery."""

from __future__ import annotations

import numpy as np
import pytest

from loadtest.audio.analysis import AudioAnalyzer, percentile
from loadtest.audio.convert import to_wire
from loadtest.audio.fixtures import Manifest, load_pcm

SPEECH = "long_billing_complaint"  # 21 s of speech with caller lead/trail silence
RATE = 24000


def _loud_point(pcm: np.ndarray, fraction: float) -> int:
    """A sample index near ``fraction`` of the audio with loud speech 100 ms either side."""
    win = 480
    n = len(pcm) // win
    level = 10 * np.log10(np.mean(pcm[: n * win].reshape(n, win).astype(np.float64) ** 2, axis=1) + 1e-9)
    loud = level > np.percentile(level, 90) - 20
    start = int(n * fraction)
    for i in range(start, n - 5):
        if loud[i - 5 : i + 5].all():
            return i * win + win // 2
    raise AssertionError("no loud stretch found")


def _with_holes(pcm: np.ndarray, holes_s: list[float]) -> np.ndarray:
    points = [_loud_point(pcm, f) for f in np.linspace(0.3, 0.7, len(holes_s))]
    parts, last = [], 0
    for point, hole in zip(points, holes_s, strict=True):
        parts += [pcm[last:point], np.zeros(int(hole * RATE), dtype=np.int16)]
        last = point
    parts.append(pcm[last:])
    return np.concatenate(parts)


def _feed(
    analyzer: AudioAnalyzer,
    wire: bytes,
    *,
    delta_ms: float = 100,
    pace: float = 1.0,
    pauses: dict[int, float] | None = None,
    bytes_per_ms: float = 48.0,
) -> None:
    """Send ``wire`` as deltas of ``delta_ms`` arriving every ``delta_ms * pace`` (plus ``pauses`` before delta i)."""
    step = round(delta_ms * bytes_per_ms)
    t = 1000.0
    for i, offset in enumerate(range(0, len(wire), step)):
        t += (pauses or {}).get(i, 0.0)
        analyzer.feed(wire[offset : offset + step], t)
        t += delta_ms / 1000 * pace
    analyzer.finish(t)


def test_clean_speech_has_no_long_silence_and_no_underrun() -> None:
    pcm = load_pcm(SPEECH)
    analyzer = AudioAnalyzer()
    _feed(analyzer, pcm.tobytes())
    assert analyzer.audio_ms == pytest.approx(len(pcm) / 24, abs=0.01)
    assert analyzer.audio_bytes == 2 * len(pcm)
    assert analyzer.longest_silence_ms < 700  # the pauses between sentences
    assert analyzer.long_silences == 0
    assert analyzer.underrun_ms < 1 and analyzer.stalls == 0
    assert analyzer.max_gap_ms == pytest.approx(100, abs=1)


@pytest.mark.parametrize("hole_s", [1.5, 3.8])
def test_finds_a_silent_hole_inside_speech(hole_s: float) -> None:
    pcm = _with_holes(load_pcm(SPEECH), [hole_s])
    analyzer = AudioAnalyzer()
    _feed(analyzer, pcm.tobytes())
    assert analyzer.longest_silence_ms == pytest.approx(hole_s * 1000, abs=60)
    assert analyzer.long_silences == 1
    assert analyzer.underrun_ms < 1  # the hole was delivered on time: content problem, not delivery


def test_finds_both_holes_and_keeps_lead_and_trail_apart() -> None:
    fx = Manifest.load().get(SPEECH)
    pcm = _with_holes(load_pcm(SPEECH), [1.5, 3.8])
    analyzer = AudioAnalyzer()
    _feed(analyzer, pcm.tobytes(), delta_ms=40)
    assert analyzer.longest_silence_ms == pytest.approx(3800, abs=60)
    assert analyzer.long_silences == 2
    clean = AudioAnalyzer()
    _feed(clean, load_pcm(SPEECH).tobytes(), delta_ms=40)
    assert analyzer.silence_ms == pytest.approx(clean.silence_ms + 5300, abs=120)
    assert analyzer.leading_silence_ms == pytest.approx(fx.lead_silence_ms, abs=60)
    assert analyzer.trailing_silence_ms == pytest.approx(fx.trail_silence_ms, abs=120)


@pytest.mark.parametrize("fmt", ["g711_ulaw", "g711_alaw"])
def test_finds_holes_in_g711_audio(fmt: str) -> None:
    pcm = _with_holes(load_pcm(SPEECH), [1.5, 3.8])
    analyzer = AudioAnalyzer(fmt)
    _feed(analyzer, to_wire(pcm, fmt), bytes_per_ms=8.0)
    assert analyzer.longest_silence_ms == pytest.approx(3800, abs=60)
    assert analyzer.long_silences == 2
    assert analyzer.audio_ms == pytest.approx(len(pcm) / 24, abs=1)


def test_delivery_gaps_on_the_playback_clock() -> None:
    """Speech delivered in real time with two pauses: the player starves for exactly those pauses."""
    pcm = load_pcm(SPEECH)
    analyzer = AudioAnalyzer()
    _feed(analyzer, pcm.tobytes(), pauses={60: 1.5, 150: 3.8})
    assert analyzer.longest_underrun_ms == pytest.approx(3800, abs=1)
    assert analyzer.underrun_ms == pytest.approx(5300, abs=2)
    assert analyzer.stalls == 2
    assert analyzer.max_gap_ms == pytest.approx(3900, abs=1)
    assert analyzer.long_silences == 0  # the audio itself is intact


def test_a_buffered_player_rides_out_a_gap() -> None:
    """Delivered 2x faster than real time, 6 s of audio is buffered before a 3.8 s pause: no underrun."""
    analyzer = AudioAnalyzer()
    _feed(analyzer, load_pcm(SPEECH).tobytes(), pace=0.5, pauses={120: 3.8})
    assert analyzer.underrun_ms == 0 and analyzer.stalls == 0
    assert analyzer.max_gap_ms == pytest.approx(3850, abs=1)
    # the same pause after only 1 s of audio (0.5 s buffered) starves the player for 3.3 s
    early = AudioAnalyzer()
    _feed(early, load_pcm(SPEECH).tobytes(), pace=0.5, pauses={10: 3.8})
    assert early.longest_underrun_ms == pytest.approx(3300, abs=1)
    assert early.stalls == 1


def test_jitter_buffer_absorbs_small_gaps() -> None:
    plain, buffered = AudioAnalyzer(), AudioAnalyzer(jitter_buffer_ms=500)
    for analyzer in (plain, buffered):
        _feed(analyzer, load_pcm("short_hello").tobytes(), pauses={5: 0.3})
    assert plain.underrun_ms == pytest.approx(300, abs=1)
    assert buffered.underrun_ms == 0


def test_streaming_is_independent_of_delta_sizes() -> None:
    """Odd-sized deltas (split samples, split windows) give the same numbers as one big delta."""
    wire = _with_holes(load_pcm(SPEECH), [1.5]).tobytes()
    whole = AudioAnalyzer()
    whole.feed(wire, 0.0)
    whole.finish()
    pieces = AudioAnalyzer()
    rng = np.random.default_rng(7)
    offset = 0
    while offset < len(wire):
        size = int(rng.integers(1, 9000))
        pieces.feed(wire[offset : offset + size], offset / 48000)
        offset += size
    pieces.finish()
    for name in ("audio_ms", "longest_silence_ms", "silence_ms", "leading_silence_ms", "trailing_silence_ms"):
        assert getattr(pieces, name) == pytest.approx(getattr(whole, name), abs=1e-6), name
    # state kept per response: one float per 20 ms window (plus slack), never the audio itself
    # (deltas wait to be analysed in runs of at most half a second; none are left after finish)
    assert pieces.pending_bytes == 0 and not pieces.pending_deltas
    kept = pieces.kept_bytes
    assert kept < len(wire) / 20


def test_every_shipped_fixture_reads_as_clean_speech() -> None:
    for fx in Manifest.load().fixtures:
        analyzer = AudioAnalyzer()
        analyzer.feed(load_pcm(fx.name).tobytes(), 0.0)
        analyzer.finish()
        assert analyzer.long_silences == 0, fx.name
        assert analyzer.longest_silence_ms < 700, fx.name
        assert -25 < analyzer.speech_level_dbfs < -10, fx.name


def test_edge_cases() -> None:
    empty = AudioAnalyzer()
    empty.finish()
    assert empty.audio_ms == 0 and empty.longest_silence_ms == 0 and empty.max_gap_ms == 0
    assert empty.done_gap_ms is None
    quiet = AudioAnalyzer()
    quiet.feed(bytes(48000), 1.0)
    quiet.finish(1.5)
    assert quiet.leading_silence_ms == pytest.approx(1000) and quiet.longest_silence_ms == 0
    assert quiet.done_gap_ms == pytest.approx(500)
    b64 = AudioAnalyzer()
    b64.feed_b64("AAAAAA==", 0.0)
    assert b64.audio_bytes == 4
    with pytest.raises(ValueError, match="unknown audio format"):
        AudioAnalyzer("mp3")
    assert set(AudioAnalyzer().summary()) >= {"audio_ms", "underrun_ms", "longest_silence_ms", "max_gap_ms"}


def test_brief_speech_around_a_long_hole() -> None:
    """Two short words with a 3.8 s hole and long edge silence: the speech level comes from the words."""
    word = load_pcm("short_yes")
    pcm = np.concatenate([np.zeros(3 * RATE, np.int16), word, np.zeros(int(3.8 * RATE), np.int16), word])
    pcm = np.concatenate([pcm, np.zeros(6 * RATE, np.int16)])
    analyzer = AudioAnalyzer()
    _feed(analyzer, pcm.tobytes())
    fx = Manifest.load().get("short_yes")
    # the hole plus the trail and lead silence the fixture carries on each side of it
    expected = 3800 + fx.trail_silence_ms + fx.lead_silence_ms
    assert analyzer.longest_silence_ms == pytest.approx(expected, abs=150)
    assert analyzer.long_silences == 1
    assert analyzer.trailing_silence_ms > 6000


def test_reading_mid_response_includes_deltas_not_analysed_yet() -> None:
    """Deltas are analysed in runs of about half a second; a read between runs still sees them all,
    and the unanalysed tail never grows past that half second."""
    pcm = _with_holes(load_pcm(SPEECH), [1.5]).tobytes()
    cut = len(pcm) // 2 + 4800 * 3 + 1000  # mid-run, mid-window
    streamed = AudioAnalyzer()
    for offset in range(0, cut, 4800):
        streamed.feed(pcm[offset : min(offset + 4800, cut)], offset / 48000)
        assert streamed.pending_bytes < streamed.flush_bytes
    assert streamed.pending_bytes > 0  # the read below has to flush
    whole = AudioAnalyzer()
    whole.feed(pcm[:cut], 0.0)
    for name in ("audio_ms", "longest_silence_ms", "silence_ms", "leading_silence_ms", "speech_level_dbfs"):
        assert getattr(streamed, name) == pytest.approx(getattr(whole, name), abs=1e-6), name
    assert streamed.longest_silence_ms >= 1400  # the 1.5 s hole is inside what was read


@pytest.mark.parametrize("n", [1, 2, 3, 10, 1351])
@pytest.mark.parametrize("q", [0.0, 37.5, 50.0, 90.0, 99.0, 100.0])
def test_percentile_is_numpys_linear_percentile(n: int, q: float) -> None:
    """The speech level's percentile (a partial sort) gives numpy's default percentile."""
    rng = np.random.default_rng(n)
    values = (rng.random(n) * 1e9).astype(np.float32)  # mean squares per window, as the analyzer keeps
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-6)
