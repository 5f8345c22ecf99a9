"""A report asked again on an unchanged, finished run answers from its kept output."""

from __future__ import annotations

import orjson

from loadtest.records.schema import RESPONSES_FILE, ResponseRecord, to_row
from loadtest.report import memo
from tests.report.synth import T0, ramp_run


def test_the_same_report_again_is_kept_and_any_change_is_a_new_answer(tmp_path, cli, monkeypatch) -> None:
    run = ramp_run(tmp_path / "kept").path
    first = cli("summary", run, "--format", "json").stdout
    kept = list((run / memo.CACHE_DIR).glob("*.json"))
    assert len(kept) == 1
    # the second answer comes from the kept output: building a report is not called
    monkeypatch.setattr("loadtest.report.summary.build_summary", lambda *_a, **_k: 1 / 0)
    assert cli("summary", run, "--format", "json").stdout == first
    monkeypatch.undo()
    assert cli("summary", run, "--format", "md").stdout != first  # another option: another answer
    with open(run / RESPONSES_FILE, "ab") as out:  # one more row: the run changed
        out.write(orjson.dumps(to_row(ResponseRecord(run_id="kept", outcome="failed", t_trigger=T0 + 1))) + b"\n")
    again = orjson.loads(cli("summary", run, "--format", "json").stdout)
    assert again["run"]["responses"] == orjson.loads(first)["run"]["responses"] + 1
    fresh = cli("summary", run, "--format", "json", "--no-cache").stdout
    assert fresh == cli("summary", run, "--format", "json").stdout


def test_a_live_run_is_never_kept(tmp_path, cli) -> None:
    run = ramp_run(tmp_path / "live").path
    (run / "run.json").write_text(f'{{"run_id": "live", "t_start": {T0!r}}}')  # no end yet
    cli("summary", run)
    assert not (run / memo.CACHE_DIR).exists()


def test_the_html_page_again_is_written_from_the_kept_page(tmp_path, cli, monkeypatch) -> None:
    run = ramp_run(tmp_path / "page").path
    out = tmp_path / "first.html"
    first = cli("html", run, "-o", out)
    page = out.read_bytes()
    assert list((run / memo.CACHE_DIR).glob("*.page"))
    out.unlink()
    monkeypatch.setattr("loadtest.report.html.build_html", lambda *_a, **_k: 1 / 0)  # not built again
    again = cli("html", run, "-o", out)
    assert out.read_bytes() == page and again.stderr == first.stderr
    monkeypatch.undo()
    cli("html", run, "-o", out, "--slo", "failed<2%")  # another option: built anew
    assert out.read_bytes() != page


def test_a_kept_output_is_a_file_of_its_own_printed_back_whole(tmp_path, cli, monkeypatch) -> None:
    run = ramp_run(tmp_path / "big").path
    first = cli("failures", run, "--format", "json")
    (entry,) = (run / memo.CACHE_DIR).glob("*.json")
    assert orjson.loads(entry.read_bytes())["out"] is None  # not held in the entry (a listing can be huge)
    assert entry.with_suffix(".out").read_text(encoding="utf-8") == first.stdout
    monkeypatch.setattr(memo, "CHUNK", 7)  # printed back in many pieces, still the same text
    again = cli("failures", run, "--format", "json")
    assert again.stdout == first.stdout and again.stderr == first.stderr
