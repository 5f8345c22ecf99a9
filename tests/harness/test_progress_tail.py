"""The live progress reader across the writer's rolls (loadtest.locust.progress.JsonlTail)."""

from __future__ import annotations

from loadtest.locust.progress import JsonlTail
from loadtest.records.schema import RESPONSES_FILE, ResponseRecord
from loadtest.records.writer import RunWriter


def test_progress_reads_every_row_once_across_rolls(tmp_path) -> None:
    writer = RunWriter(tmp_path, roll_bytes=3_000)  # a roll every few rows
    tail = JsonlTail(tmp_path / RESPONSES_FILE)
    seen: list[int] = []
    for i in range(60):
        writer.response(ResponseRecord(run_id="r", turn_index=i, outcome="completed"))
        writer.flush()
        if i % 7 == 0:  # the progress line polls now and then; rolls happen in between
            seen.extend(row["turn_index"] for row in tail.read())
    writer.close()
    seen.extend(row["turn_index"] for row in tail.read())
    assert (tmp_path / "responses.segments").is_dir()
    assert seen == list(range(60))
