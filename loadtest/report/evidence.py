"""The audio evidence of the worst failures, for the HTML report: each one's playback timeline as a
plot and an ``<audio>`` player with its WAV embedded (a ``data:`` URI, bounded).

Read from the run directory's ``traces/``: every kept WAV (``--keep-audio``) sits beside its trace,
whose ``audio.playback`` note holds the timeline and whose ``outcome`` note the verdict, so no
response column is needed (the report's cached columns stay as they are). The worst are the
responses a caller heard the longest hole in: the longest underrun or inner silent stretch.
"""

from __future__ import annotations

import base64
import html
import io
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from loadtest.records.schema import COMPLETED, TRACES_DIR

MAX_SHOWN = 4  # failures shown with a player
MAX_EMBED_S = 30.0  # of each WAV embedded at most (the file in the run directory is whole)
MAX_SCAN = 500  # kept WAVs looked at, at most


@dataclass(slots=True)
class Evidence:
    name: str
    wav: Path
    outcome: str
    reason: str
    playback: dict[str, Any]

    @property
    def worst_ms(self) -> float:
        holes = [*self.playback.get("underruns", []), *self.playback.get("silences", [])]
        return max((float(h.get("ms") or 0) for h in holes), default=0.0)


def worst_failures(run_dir: Path, limit: int = MAX_SHOWN) -> list[Evidence]:
    """The kept failures with the longest holes, worst first."""
    folder = Path(run_dir) / TRACES_DIR
    found: list[Evidence] = []
    for wav in sorted(folder.glob("*.wav"))[:MAX_SCAN]:
        trace = wav.with_suffix(".json")
        try:
            events = orjson.loads(trace.read_bytes()).get("events") or []
        except (OSError, orjson.JSONDecodeError, AttributeError):
            continue
        playback = next((e for e in events if e.get("type") == "audio.playback"), None)
        verdict = next((e for e in reversed(events) if e.get("type") == "outcome"), {})
        if playback is None or verdict.get("outcome") in (None, COMPLETED):
            continue
        found.append(Evidence(wav.stem, wav, str(verdict.get("outcome")), str(verdict.get("reason")), playback))
    found.sort(key=lambda e: e.worst_ms, reverse=True)
    return found[:limit]


def embedded_wav(path: Path, max_s: float = MAX_EMBED_S) -> tuple[str, float, float]:
    """(``data:`` URI of the WAV's first ``max_s`` seconds, seconds embedded, seconds in the file)."""
    with wave.open(str(path), "rb") as w:
        rate, total = w.getframerate(), w.getnframes()
        frames = w.readframes(min(total, int(max_s * rate)))
        params = w.getparams()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setparams(params)
        out.writeframes(frames)
    kept = len(frames) / (params.sampwidth * params.nchannels) / rate
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode(), kept, total / rate


def _envelope(path: Path, window_ms: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    with wave.open(str(path), "rb") as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    win = max(1, int(rate * window_ms / 1000))
    n = pcm.size // win
    if n == 0:
        return np.zeros(0), np.zeros(0)
    peak = np.abs(pcm[: n * win].reshape(n, win).astype(np.int32)).max(axis=1) / 32768.0
    return np.arange(n) * window_ms / 1000.0, peak


def timeline_svg(ev: Evidence) -> str:
    """Top: when each delta arrived against when a real-time player needed it (late = underrun).
    Bottom: the WAV as heard, underruns and silent stretches marked."""
    from loadtest.report import plots

    pb = ev.playback
    d = pb.get("deltas") or {}
    arrival = np.asarray(d.get("arrival_ms") or [], dtype=float) / 1000
    need = np.asarray(d.get("need_ms") or [], dtype=float) / 1000
    dur = np.asarray(d.get("dur_ms") or [], dtype=float) / 1000
    position = np.concatenate(([0.0], np.cumsum(dur)[:-1])) if dur.size else dur
    fig, (top, bottom) = plots.plt.subplots(2, 1, figsize=(6.4, 4.2), height_ratios=(3, 2))
    top.set_title(f"{ev.outcome} / {ev.reason}: playback timeline")
    if arrival.size:
        top.step(position, need, where="post", color=plots.P50_COLOUR, label="needed by a real-time player")
        top.plot(position, arrival, ".", color=plots.RATE_COLOUR, markersize=3, label="delta arrived")
        late = arrival > need + 1e-3
        top.vlines(position[late], need[late], arrival[late], color=plots.UNDERRUN_COLOUR, label="late (underrun)")
    top.set_xlabel("position in the answer's audio (s)")
    top.set_ylabel("s since first delta")
    top.legend(loc="upper left")
    t, peak = _envelope(ev.wav)
    bottom.fill_between(t, -peak, peak, color="#555555", linewidth=0)
    for hole in pb.get("underruns", []):
        at, ms = float(hole["at_ms"]) / 1000, float(hole["ms"]) / 1000
        bottom.axvspan(at, at + ms, color=plots.UNDERRUN_COLOUR, alpha=0.35, label="underrun")
    for hole in pb.get("silences", []):
        at, ms = float(hole["at_ms"]) / 1000, float(hole["ms"]) / 1000
        bottom.axvspan(at, at + ms, color="#9467bd", alpha=0.3, label="silent audio")
    handles, labels = bottom.get_legend_handles_labels()
    if handles:
        unique = dict(zip(labels, handles, strict=False))
        bottom.legend(unique.values(), unique.keys(), loc="upper right")
    bottom.set_xlabel("s of the WAV (what the caller heard)")
    bottom.set_yticks([])
    fig.tight_layout()
    return plots.to_svg(fig)


def evidence_html(run_dir: Path) -> str:
    """The report section (empty when the run kept no audio of a failure)."""
    shown = worst_failures(run_dir)
    if not shown:
        return ""
    parts = ['<section id="audio-evidence"><h2>Audio evidence: the worst failures as a caller heard them</h2>']
    for ev in shown:
        try:
            uri, kept_s, total_s = embedded_wav(ev.wav)
            svg = timeline_svg(ev)
        except (OSError, wave.Error, EOFError, ValueError, TypeError, KeyError):
            continue
        holes = ", ".join(
            f"{kind} {float(h['ms']) / 1000:.2f} s at {float(h['at_ms']) / 1000:.2f} s"
            for kind, key in (("underrun", "underruns"), ("silence", "silences"))
            for h in ev.playback.get(key, [])
        )
        cut = f" (first {kept_s:.0f} s of {total_s:.0f} s)" if kept_s < total_s - 0.01 else ""
        rel = f"{TRACES_DIR}/{ev.wav.name}"
        parts.append(
            f'<div class="evidence"><h3>{html.escape(ev.outcome)} / {html.escape(ev.reason)}: '
            f"<code>{html.escape(ev.name)}</code></h3>"
            f"<p>{html.escape(holes or 'no hole marked')} · {html.escape(rel)}{html.escape(cut)}</p>"
            f'<div class="plot">{svg}</div>'
            f'<audio controls preload="none" src="{uri}"></audio></div>'
        )
    parts.append("</section>")
    return "".join(parts)
