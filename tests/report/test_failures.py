"""`rtload report failures` and the support bundle."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import orjson

from loadtest.report.failures import scrub
from tests.report.synth import ramp_run


def test_every_non_completed_response_is_listed_in_time_order(ramp, cli) -> None:
    d = cli.json("failures", ramp.path)
    bad = sorted((r for r in ramp.responses if r.outcome != "completed"), key=lambda r: r.t_trigger)
    assert d["failures"] == len(bad)
    assert [r["response_id"] for r in d["rows"]] == [r.response_id for r in bad]
    assert [r["error_event_id"] for r in d["rows"]] == [r.error_event_id for r in bad]
    text = cli("failures", ramp.path).stdout
    assert f"({len(bad)} of {len(ramp.responses)})" in text
    first_failed = next(r for r in bad if r.outcome == "failed")
    assert first_failed.session_id in text and first_failed.error_event_id in text and first_failed.request_id in text


def test_bundle_has_rows_traces_run_json_and_no_secrets(tmp_path, cli) -> None:
    run = ramp_run(tmp_path / "bundled")
    run_json = json.loads((run.path / "run.json").read_text())
    run_json["target"] = {"url": "wss://x.openai.azure.com/openai/realtime?api-key=abcdef0123456789&deployment=d"}
    run_json["note"] = "Authorization: Bearer sk-proj-SECRETSECRET123"
    (run.path / "run.json").write_text(json.dumps(run_json))
    out = tmp_path / "case" / "bundle.zip"
    result = cli("failures", run.path, "--bundle", out)
    bad = [r for r in run.responses if r.outcome != "completed"]
    traced = [r.trace_file for r in bad if (run.path / r.trace_file).exists()]
    assert f"wrote {out}: {len(bad)} responses, 4 failed sessions, {len(traced)} traces" in result.stderr
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        assert {"failures.csv", "failures.jsonl", "failed_sessions.csv", "run.json", "README.txt"} <= names
        assert set(traced) <= names and len(traced) > 0
        rows = [orjson.loads(line) for line in zf.read("failures.jsonl").splitlines()]
        assert [r["response_id"] for r in rows] == [r.response_id for r in sorted(bad, key=lambda r: r.t_trigger)]
        table = list(csv.DictReader(io.StringIO(zf.read("failures.csv").decode())))
        assert len(table) == len(bad) and table[0]["outcome"] != "completed"
        sessions = list(csv.DictReader(io.StringIO(zf.read("failed_sessions.csv").decode())))
        assert sorted(s["handshake_status"] for s in sessions) == ["401", "429", "429", "503"]
        everything = b"".join(zf.read(n) for n in names).decode()
        assert "sk-abc123SECRET456xyz" not in everything  # in every trace file on disk
        assert "sk-proj-SECRETSECRET123" not in everything
        assert "abcdef0123456789" not in everything
        assert "api-key=***" in zf.read("run.json").decode()
        assert "every response that did not complete" in zf.read("README.txt").decode()


def test_scrub_patterns() -> None:
    assert scrub("Authorization: Bearer abc.def-ghi") == "Authorization: Bearer ***"
    assert scrub('{"api_key": "sk-live-1234567890"}') == '{"api_key": "***"}'
    assert scrub("key sk-proj-abcdefghijkl used") == "key *** used"
    assert (
        scrub("wss://h/openai/realtime?api-version=1&api-key=s3cr3t")
        == "wss://h/openai/realtime?api-version=1&api-key=***"
    )
    assert scrub("token eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0NTY3.sig_part-1") == "token ***"
    assert scrub("resp_123 sess_456 event_789") == "resp_123 sess_456 event_789"


def test_bundle_removes_the_runs_exact_secret_values(tmp_path, cli, monkeypatch) -> None:
    """Secrets that look like no key (so no pattern finds them) still leave the bundle: the API key
    from the variable run.json names, and the keys of the mock profile file the run used."""
    api_key, mock_key = "correct-horse-battery-staple-42", "plain words 77"
    profile = tmp_path / "mine.toml"
    profile.write_text(f'[auth]\nkeys = ["{mock_key}"]\n')
    run = ramp_run(tmp_path / "exact")
    info = json.loads((run.path / "run.json").read_text())
    info["options"] = {"api_key_env": "RTLOAD_BUNDLE_KEY", "mock_profile": str(profile)}
    (run.path / "run.json").write_text(json.dumps(info))
    lines = (run.path / "responses.jsonl").read_bytes().splitlines()
    rows = [orjson.loads(line) for line in lines]
    failed = next(i for i, r in enumerate(rows) if r["outcome"] == "failed" and r.get("trace_file"))
    rows[failed]["error_message"] = f"gateway echoed {api_key} and {mock_key} back"
    (run.path / "responses.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    trace = run.path / rows[failed]["trace_file"]
    trace.write_text(json.dumps([{"type": "error", "message": f"{api_key} / {mock_key}"}]))
    monkeypatch.setenv("RTLOAD_BUNDLE_KEY", api_key)
    out = tmp_path / "bundle.zip"
    cli("failures", run.path, "--bundle", out)
    with zipfile.ZipFile(out) as zf:
        everything = b"".join(zf.read(n) for n in zf.namelist()).decode()
        assert rows[failed]["trace_file"] in zf.namelist()
    assert api_key not in everything and mock_key not in everything
    assert "gateway echoed *** and *** back" in everything
    shown = cli("failures", run.path, "--format", "json").stdout
    assert api_key not in shown and mock_key not in shown


def test_bundle_carries_the_recordings_beside_their_traces_and_those_without_one(tmp_path, cli) -> None:
    run = ramp_run(tmp_path / "recorded")
    lines = (run.path / "responses.jsonl").read_bytes().splitlines()
    rows = [orjson.loads(line) for line in lines]
    bad = [i for i, r in enumerate(rows) if r["outcome"] != "completed" and r.get("trace_file")][:2]
    beside, alone = rows[bad[0]], rows[bad[1]]
    (run.path / beside["trace_file"]).write_text(json.dumps({"name": "x", "events": []}))
    for row, wav in ((beside, beside["trace_file"].replace(".json", ".wav")), (alone, "traces/alone.wav")):
        row["audio_file"] = wav
        (run.path / wav).write_bytes(b"RIFF\x00\xff\xfe" + wav.encode())  # binary: copied as it is
    (run.path / alone["trace_file"]).unlink(missing_ok=True)  # its trace was not kept
    (run.path / "responses.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    out = tmp_path / "bundle.zip"
    result = cli("failures", run.path, "--bundle", out)
    assert "2 recordings" in result.stderr
    with zipfile.ZipFile(out) as zf:
        for row in (beside, alone):
            assert zf.read(row["audio_file"]) == (run.path / row["audio_file"]).read_bytes()
        assert "Recordings (WAV) included: 2" in zf.read("README.txt").decode()


def test_a_json_report_written_in_chunks_is_the_rendered_text(monkeypatch) -> None:
    import io

    from loadtest.report import render as render_module
    from loadtest.report.render import Report, render, write

    report = Report("t", {"rows": [{"message": "délai dépassé ✓ " * 40, "n": i} for i in range(30)]}, [], [], ["w"])
    monkeypatch.setattr(render_module, "WRITE_CHUNK", 5)  # chunk ends inside multi-byte characters
    out = io.StringIO()
    write(report, "json", out)
    assert out.getvalue() == render(report, "json")
