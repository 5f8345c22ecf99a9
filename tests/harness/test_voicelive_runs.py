"""End to end through `rtload run` against the mock's Azure Voice Live endpoint: a session file with
Voice Live's extras (spoken and text turns, 16 kHz in and out), faults classified as on the other
providers (checked against the mock's truth log), new-connection 429s with retry-after honoured, and
`rtload report compare` of one scenario on Azure OpenAI and on Voice Live."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.audio.fixtures import load_pcm
from loadtest.records.schema import FAULT_EXPECTATIONS
from loadtest.records.writer import read_rows

from .conftest import assert_agrees_with_truth, mock_args, responses, rtload_run, rtload_runs, run_dir

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

VOICELIVE = ["--provider", "voicelive"]

# a Voice Live agent's session: an Azure HD voice, 16 kHz in and out, Azure noise suppression and
# echo cancellation, Azure semantic VAD with end-of-utterance detection, azure-speech, word timestamps
VL_SESSION = {
    "modalities": ["text", "audio"],
    "instructions": "You are Ava, the booking assistant of Chez Nous. Answer in one short sentence.",
    "voice": {"type": "azure-standard", "name": "en-US-Ava:DragonHDLatestNeural", "temperature": 0.8, "rate": "1.1"},
    "input_audio_format": "pcm16",
    "input_audio_sampling_rate": 16000,
    "output_audio_format": "pcm16_16000hz",
    "input_audio_noise_reduction": {"type": "azure_deep_noise_suppression"},
    "input_audio_echo_cancellation": {"type": "server_echo_cancellation"},
    "input_audio_transcription": {"model": "azure-speech", "language": "en-US", "phrase_list": ["Chez Nous"]},
    "turn_detection": {
        "type": "azure_semantic_vad",
        "silence_duration_ms": 500,
        "remove_filler_words": True,
        "end_of_utterance_detection": {
            "model": "semantic_detection_v1",
            "threshold_level": "medium",
            "timeout_ms": 1000,
        },
    },
    "output_audio_timestamp_types": ["word"],
    "temperature": 0.8,
}
SPOKEN_AND_TEXT = """
[scenarios.booking]
[[scenarios.booking.turns]]
audio = "short_hello"
[[scenarios.booking.turns]]
text = "Can I book a table for two at eight?"
"""
MANUAL = '[scenarios.caller]\n[[scenarios.caller.turns]]\naudio = "short_hello"\ntrigger = "manual"\n'


def _files(tmp_path: Path, scenario: str) -> tuple[Path, Path]:
    session = tmp_path / "vl_session.json"
    session.write_text(json.dumps(VL_SESSION))
    mix = tmp_path / "scenario.toml"
    mix.write_text(scenario)
    return session, mix


def _truth(path: Path, kind: str) -> list[dict]:
    return [r for r in read_rows(path / "mock_truth.jsonl") if r.get("kind") == kind]


def test_a_voicelive_session_file_with_spoken_and_text_turns(tmp_path: Path) -> None:
    session, mix = _files(tmp_path, SPOKEN_AND_TEXT)
    done = rtload_run(
        tmp_path,
        *mock_args("voicelive.warning_rate=1.0"),
        *VOICELIVE,
        "--deployment",
        "gpt-4.1",
        "--session-file",
        str(session),
        "--scenario",
        str(mix),
        "--users",
        "1",
        "--duration",
        "8s",
        "--run-id",
        "vl",
        "--no-summary",
    )
    assert done.returncode == 0, done.stderr
    out = run_dir(tmp_path, "vl")
    received = _truth(out, "session_update")
    assert received and all(row["session"] == VL_SESSION for row in received)  # sent as it is
    rows = responses(out)
    assert {r["trigger"] for r in rows} == {"server_vad", "text"}
    assert {r["outcome"] for r in rows} == {"completed"}, [(r["outcome"], r["reason"]) for r in rows]
    assert {(r["provider"], r["model_class"], r["dialect"], r["audio_format"]) for r in rows} == {
        ("voicelive", "cascade", "voicelive", "pcm16_16000hz")
    }
    truth = {t["response_id"]: t for t in _truth(out, "response")}
    for row in rows:  # 16 kHz audio judged as 16 kHz: the same length the mock sent
        assert row["audio_ms"] == pytest.approx(truth[row["response_id"]]["audio_ms"], abs=1.0)
    sessions = read_rows(out / "sessions.jsonl")
    assert {s["model_class"] for s in sessions} == {"cascade"}
    assert all("/voice-live/realtime?api-version=2026-04-10&model=gpt-4.1" in s["url"] for s in sessions)
    run = json.loads((out / "run.json").read_text())
    assert run["target"]["provider"] == "voicelive" and run["target"]["model_class"] == "cascade"


def test_a_16khz_session_streams_16khz_audio(tmp_path: Path) -> None:
    """The mock counts committed input at the session's rate (32 bytes a ms at 16 kHz): the fixture's
    length means 16 kHz samples arrived (24 kHz samples would count 1.5 times as long)."""
    session, mix = _files(tmp_path, MANUAL)
    done = rtload_run(
        tmp_path,
        *mock_args(),
        *VOICELIVE,
        "--deployment",
        "gpt-realtime",
        "--session-file",
        str(session),
        "--scenario",
        str(mix),
        "--users",
        "1",
        "--duration",
        "3s",
        "--run-id",
        "in16",
        "--no-summary",
    )
    assert done.returncode == 0, done.stderr
    out = run_dir(tmp_path, "in16")
    expected_ms = len(load_pcm("short_hello")) / 24.0
    committed = _truth(out, "input_committed")
    assert committed and all(abs(r["audio_ms"] - expected_ms) < 1.0 for r in committed), (committed, expected_ms)
    assert {r["outcome"] for r in responses(out)} == {"completed"}


def test_voicelive_faults_agree_with_the_truth_log(tmp_path: Path) -> None:
    faults = [
        "faults.server_error.rate=0.12",
        "faults.text_only.rate=0.1",
        "faults.missing_audio.rate=0.1",
        "faults.incomplete.rate=0.1",
        "faults.silence.rate=0.08",
        "faults.silence.gap_s=[1.8,2.2]",
        "faults.drop.rate=0.06",
        "voicelive.new_connections_per_minute=0",  # short sessions reconnect fast: no 429s here (see below)
    ]
    done = rtload_run(
        tmp_path,
        *mock_args(*faults),
        *VOICELIVE,
        "--scenario",
        "quick_text",
        "--users",
        "3",
        "--spawn-rate",
        "10",
        "--duration",
        "7s",
        "--deadline",
        "8s",
        "--reconnect-max",
        "1s",
        "--run-id",
        "vlf",
    )
    assert done.returncode in (0, 1), done.stderr
    out = run_dir(tmp_path, "vlf")
    rows = assert_agrees_with_truth(out)
    assert {r["provider"] for r in rows} == {"voicelive"}
    reasons = {r["reason"] for r in rows}
    assert "" in reasons and len(reasons - {""}) >= 4, reasons  # completed answers and several faults


def test_new_connections_past_the_limit_get_429_and_retry_after_is_honoured(tmp_path: Path) -> None:
    done = rtload_run(
        tmp_path,
        *mock_args("voicelive.new_connections_per_minute=2", "voicelive.connection_window_s=3.0"),
        *VOICELIVE,
        "--scenario",
        "quick_text",
        "--users",
        "3",
        "--spawn-rate",
        "10",
        "--duration",
        "9s",
        "--run-id",
        "ncpm",
    )
    assert done.returncode in (0, 1), done.stderr
    out = run_dir(tmp_path, "ncpm")
    sessions = sorted(read_rows(out / "sessions.jsonl"), key=lambda s: s["t_start"])
    refused = [s for s in sessions if s["handshake_status"] == 429]
    assert refused and all(s["retry_after"] and 1 <= s["retry_after"] <= 3 for s in refused)
    for s in refused:  # the same user's next attempt waits at least what the service asked
        later = [n for n in sessions if n["user_id"] == s["user_id"] and n["t_start"] > s["t_start"]]
        if later:
            assert later[0]["t_start"] >= s["t_end"] + s["retry_after"] - 0.05, (s, later[0])
    rows = [r for r in responses(out) if r["handshake_status"] == 429]
    assert rows and {(r["outcome"], r["reason"]) for r in rows} == {FAULT_EXPECTATIONS["connection_rate_429"]}
    planned = [t for t in _truth(out, "session") if t.get("fault") == "connection_rate_429"]
    assert len(planned) == len(refused)
    opened = sorted(s["t_open"] for s in sessions if s["handshake_status"] == 101)
    assert all(b - a >= 3.0 - 0.2 for a, b in zip(opened, opened[2:], strict=False))  # at most 2 per 3 s


def test_compare_the_same_scenario_on_azure_openai_and_on_voice_live(tmp_path: Path) -> None:
    common = ["--scenario", "quick_text", "--users", "2", "--spawn-rate", "10", "--duration", "5s", "--no-summary"]
    azure, voicelive = rtload_runs(  # at the same time: each has its own mock, and B - A is what is compared
        tmp_path,
        ([*mock_args(), "--provider", "azure", "--run-id", "aoai", *common], None),
        ([*mock_args(), *VOICELIVE, "--deployment", "gpt-4.1", "--run-id", "vlive", *common], None),
    )
    assert azure.returncode == 0 and voicelive.returncode == 0, azure.stderr + voicelive.stderr
    a, b = run_dir(tmp_path, "aoai"), run_dir(tmp_path, "vlive")
    table = subprocess.run(
        [sys.executable, "-m", "loadtest", "report", "compare", str(a), str(b)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert table.returncode == 0, table.stderr
    assert "azure gpt-realtime" in table.stdout and "voicelive gpt-4.1 (cascade)" in table.stdout
    done = subprocess.run(
        [sys.executable, "-m", "loadtest", "report", "compare", str(a), str(b), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = json.loads(done.stdout)
    assert report["a"]["target"] == "azure gpt-realtime" and report["b"]["target"] == "voicelive gpt-4.1 (cascade)"
    first_audio = next(r for r in report["latency_ms"] if r["metric"] == "ttfa")
    # the cascade answers later (the mock's cascade_extra_ms 350-650): B - A, significant
    assert first_audio["shift_p50"] > 250 and first_audio["significant"], first_audio
