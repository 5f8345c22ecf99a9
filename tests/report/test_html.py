"""`rtload report html`: a self-contained file, opened in headless Chromium, plots visibly rendered."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

from loadtest.report import plots
from tests.browser import screenshot

WIDTH, HEIGHT = 1400, 1400


def _screenshot(html: Path, png: Path) -> np.ndarray:
    screenshot(html.as_uri(), png, WIDTH, HEIGHT)
    return (image.imread(png)[:, :, :3] * 255).astype(int)


def _count(region: np.ndarray, colour: str, tol: int = 40) -> int:
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(region - rgb).sum(axis=2) < tol).sum())


@pytest.mark.browser
def test_html_is_self_contained_and_the_plots_render_in_chromium(ramp, cli, tmp_path) -> None:
    out = tmp_path / "report.html"
    cli("html", ramp.path, "-o", out, "--slo", "failed<3%,ttfa_p95<1200ms")
    text = out.read_text()
    assert text.count("<svg") == 6
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), "the report must not load anything"
    assert "<script" not in text
    assert "Knee: step" in text and "Highest load that met the SLO" in text
    png = _screenshot(out, tmp_path / "shot.png")
    assert png.shape[:2] == (HEIGHT, WIDTH)
    assert len(np.unique(png.reshape(-1, 3), axis=0)) > 200, "the screenshot looks blank"
    # the 2x3 grid of plots starts under the header and the KPI row
    left, right = slice(20, WIDTH // 2), slice(WIDTH // 2, WIDTH - 20)
    row1, row2, row3 = slice(140, 560), slice(540, 950), slice(930, HEIGHT)
    assert _count(png[row1, left], plots.OUTCOME_COLOURS["completed"]) > 2000  # outcome bars
    assert _count(png[row1, left], plots.OUTCOME_COLOURS["failed"]) > 20
    assert _count(png[row1, right], plots.P50_COLOUR) > 100  # latency lines over time
    assert _count(png[row1, right], plots.DONE_COLOUR) > 100
    assert _count(png[row2, left], plots.THROUGHPUT_COLOUR) > 100  # capacity curve
    assert _count(png[row2, left], plots.KNEE_COLOUR) > 50  # knee line + rate curve
    assert _count(png[row2, right], plots.P95_COLOUR) > 100  # latency per step
    assert _count(png[row3, left], plots.RL_COLOURS[1]) + _count(png[row3, left], plots.RL_COLOURS[0]) > 100
    assert _count(png[row3, right], plots.GAP_COLOUR) > 1000  # gap histogram
    assert _count(png[row3, right], plots.UNDERRUN_COLOUR) > 20  # the stalls stand out
    # and nothing plot-coloured leaks into the page margin
    assert _count(png[:, :8], plots.OUTCOME_COLOURS["completed"]) == 0


def test_default_output_is_report_html_in_the_run_dir(tmp_path, cli) -> None:
    from tests.report.synth import ramp_run

    run = ramp_run(tmp_path / "default-out")
    result = cli("html", run.path)
    assert (run.path / "report.html").exists()
    assert f"wrote {run.path / 'report.html'}" in result.stderr


def _kept_failure(run: Path, name: str, reason: str, arrivals: list[float], pieces: list[np.ndarray]) -> None:
    """A kept failure as the session writes it: the WAV beside its trace, the timeline in the trace."""
    import orjson

    from loadtest.audio.convert import to_wire
    from loadtest.audio.playback import render
    from loadtest.records.writer import RunWriter

    played = render([to_wire(p, "pcm16") for p in pieces], arrivals, "pcm16")
    writer = RunWriter(run)
    wav = writer.audio(name, played.wav)
    note = {"t": 0.0, "dir": "note", "type": "audio.playback", "wav": wav, **played.timeline()}
    writer.trace(name, [note, {"t": 1.0, "dir": "note", "type": "outcome", "outcome": "truncated", "reason": reason}])
    writer.close()
    assert orjson.loads((run / "traces" / f"{name}.json").read_bytes())["events"][0]["wav"] == wav


def _tone(ms: int) -> np.ndarray:
    t = np.arange(24 * ms) / 24000
    return (9000 * np.sin(2 * np.pi * 330 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))).astype(np.int16)


@pytest.mark.browser
def test_the_worst_failures_show_their_playback_timeline_and_a_player_in_chromium(cli, tmp_path) -> None:
    import base64
    import io
    import wave

    from tests.browser import rendered_dom
    from tests.report.synth import ramp_run

    run = ramp_run(tmp_path / "run").path
    # a stall: 1.0 s played, then the next delta 2.5 s late; a silence: 1.5 s of zeros in the audio
    _kept_failure(run, "sess_a_resp_stall", "audio_stall", [0.0, 0.1, 3.5, 3.6], [_tone(500)] * 4)
    silent = [_tone(800), np.zeros(24 * 1500, dtype=np.int16), _tone(800)]
    _kept_failure(run, "sess_b_resp_silence", "inner_silence", [0.0, 0.05, 0.1], silent)
    out = tmp_path / "report.html"
    cli("html", run, "-o", out)
    text = out.read_text()
    assert "<script" not in text and text.count("<svg") == 6 + 2  # the run's six plots and one per failure
    assert text.index("audio_stall") < text.index("inner_silence")  # the longest hole first
    dom = rendered_dom(out.as_uri())
    uris = re.findall(r'<audio controls="" preload="none" src="data:audio/wav;base64,([^"]+)"', dom)
    assert len(uris) == 2, "the players are in the rendered page"
    with wave.open(io.BytesIO(base64.b64decode(uris[0])), "rb") as w:  # the stall, as heard: 2 s + 2.5 s
        assert w.getframerate() == 24000 and abs(w.getnframes() / 24000 - 4.5) < 0.01
    height = 9000
    screenshot(out.as_uri(), tmp_path / "tall.png", WIDTH, height)
    png = (image.imread(tmp_path / "tall.png")[:, :, :3] * 255).astype(int)
    ink = np.flatnonzero((np.abs(png - png[-1, 4]).sum(axis=2) > 30).any(axis=1))
    section = png[max(0, ink.max() - 1900) : ink.max()]  # the evidence section closes the page
    assert _count(section, "#ffd2ab", tol=25) > 2000, "the underrun is shaded on the heard audio"
    assert _count(section, "#dfd1eb", tol=25) > 2000, "the silent stretch is shaded"
    assert _count(section, plots.P50_COLOUR) > 100  # when the player needed each delta
    assert _count(section, "#555555", tol=30) > 2000  # the waveform of what was heard
