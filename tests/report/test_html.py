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
