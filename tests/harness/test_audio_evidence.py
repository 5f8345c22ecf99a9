"""Audio evidence end to end: a flaky-profile `rtload run` with stalls and silences forced on keeps
the WAV a caller heard for each of those responses, and the holes in them (found here, in the WAV
and in the playback timeline, without the client's own figures) are the mock's injected ones."""

from __future__ import annotations

import io
import wave
import zipfile
from pathlib import Path

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from loadtest.cli import app
from loadtest.mock.truth import read_truth
from loadtest.records.writer import read_rows
from tests.harness.conftest import mock_args, rtload_run, run_dir

TOLERANCE_MS = 50.0
FORCED = ("faults.stall.rate=0.5", "faults.silence.rate=0.5", "faults.stall.gap_s=[1.5,2.5]",
          "faults.silence.gap_s=[1.5,2.5]")  # fmt: skip


def _zero_runs_ms(wav: bytes, min_ms: float = 300.0) -> list[float]:
    """Lengths (ms) of the runs of digital silence in a WAV."""
    with wave.open(io.BytesIO(wav), "rb") as w:
        rate = w.getframerate()
        assert (rate, w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    edges = np.diff(np.concatenate(([0], (pcm == 0).view(np.int8), [0])))
    runs = (np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)) * 1000 / rate
    return [float(r) for r in runs if r >= min_ms]


def _underruns_ms(playback: dict) -> list[float]:
    """A real-time player's waits, recomputed from the timeline's arrivals and delta lengths."""
    d = playback["deltas"]
    play_end, waits = playback["jitter_buffer_ms"], []
    for arrival, dur in zip(d["arrival_ms"], d["dur_ms"], strict=True):
        if arrival > play_end:
            waits.append(arrival - play_end)
            play_end = arrival
        play_end += dur
    return [w for w in waits if w >= 50.0]


@pytest.fixture(scope="module")
def evidence_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("evidence")
    proc = rtload_run(tmp, *mock_args(*FORCED, profile="flaky"), "--users", "3", "--spawn-rate", "3",
                      "--duration", "14s", "--run-id", "ev", "--no-summary", "--no-html")  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    return run_dir(tmp, "ev")


@pytest.mark.e2e
def test_stalled_and_silent_responses_keep_wavs_whose_holes_match_the_truth_log(evidence_run) -> None:
    path = evidence_run
    rows = {r["response_id"]: r for r in read_rows(path / "responses.jsonl") if r.get("response_id")}
    truth = [t for t in read_truth(path / "mock_truth.jsonl") if t.get("kind") == "response"]
    checked = {"stall": 0, "silence": 0}
    for t in truth:
        fault = t["fault"]
        row = rows.get(t["response_id"])
        if fault not in checked or row is None:
            continue
        assert row["outcome"] != "completed", row
        assert row["audio_file"] and row["audio_file"].endswith(".wav"), row
        wav = (path / row["audio_file"]).read_bytes()
        trace = orjson.loads((path / row["trace_file"]).read_bytes())["events"]
        (playback,) = [e for e in trace if e["type"] == "audio.playback"]
        assert playback["wav"] == row["audio_file"]
        holes, waits = _zero_runs_ms(wav), _underruns_ms(playback)
        if fault == "stall":
            injected = t["params"]["stall_ms"]  # gap_s as delivered (the drawn gap plus the mock's wake-up lag)
            assert abs(injected - t["params"]["gap_s"] * 1000) < 500
            assert len(waits) == 1 and abs(waits[0] - injected) <= TOLERANCE_MS, (waits, injected)
            assert abs(max(holes) - injected) <= TOLERANCE_MS, (holes, injected)  # heard as silence
        else:
            injected = t["params"]["silence_ms"]
            assert waits == [], waits  # delivered in time: the hole is in the audio itself
            assert abs(max(holes) - injected) <= TOLERANCE_MS, (holes, injected)
            assert any(abs(s["ms"] - injected) <= TOLERANCE_MS for s in playback["silences"])
        checked[fault] += 1
    assert checked["stall"] >= 1 and checked["silence"] >= 1, checked


@pytest.mark.e2e
def test_the_bundle_and_the_html_report_carry_the_recordings(evidence_run, tmp_path) -> None:
    path = evidence_run
    kept = sorted(r["audio_file"] for r in read_rows(path / "responses.jsonl") if r.get("audio_file"))
    assert kept
    bundle = tmp_path / "bundle.zip"
    result = CliRunner().invoke(app, ["report", "failures", str(path), "--bundle", str(bundle)])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(bundle) as zf:
        names = set(zf.namelist())
        assert set(kept) <= names
        assert zf.read(kept[0]) == (path / kept[0]).read_bytes()
        assert "Recordings (WAV) included" in zf.read("README.txt").decode()
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", "html", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert 'id="audio-evidence"' in text
    assert text.count('<audio controls preload="none" src="data:audio/wav;base64,') >= 1
    assert "playback timeline" in text
