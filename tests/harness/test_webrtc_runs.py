"""End to end: ``rtload run --transport both`` splits the users between a WebSocket and WebRTC in one
run against the mock, every row says which, the run agrees with the truth log, and ``rtload report
compare RUN --by transport`` sets the two halves side by side; without aiortc, one line names the
extra."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import assert_agrees_with_truth, mock_args, rtload_run, run_dir

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_transport_both_splits_users_and_compares_by_transport(tmp_path: Path) -> None:
    pytest.importorskip("aiortc")
    done = rtload_run(
        tmp_path,
        *mock_args(),
        "--transport", "both", "--scenario", "quick_text", "--users", "4", "--spawn-rate", "10",
        "--duration", "15s", "--deadline", "8s", "--run-id", "ab",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    path = run_dir(tmp_path, "ab")
    rows = assert_agrees_with_truth(path)
    by_user = collections.defaultdict(set)
    for row in rows:
        by_user[row["user_id"]].add(row["transport"])
    assert all(len(t) == 1 for t in by_user.values())  # one transport per user
    assert {u: t.pop() for u, t in by_user.items()} == {u: "webrtc" if u % 2 else "websocket" for u in by_user}
    counts = collections.Counter(r["transport"] for r in rows if r["outcome"] == "completed")
    assert counts["websocket"] > 0 and counts["webrtc"] > 0, counts
    sessions = [json.loads(x) for x in (path / "sessions.jsonl").read_text().splitlines() if x.strip()]
    assert {s["transport"] for s in sessions} == {"websocket", "webrtc"}
    assert json.loads((path / "run.json").read_text())["options"]["transport"] == "both"

    cmp = subprocess.run(
        [sys.executable, "-m", "loadtest", "report", "compare", str(path), "--by", "transport", "--format", "json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert cmp.returncode == 0, cmp.stderr
    report = json.loads(cmp.stdout)
    assert report["a"]["run_id"].endswith("[transport=websocket]") and report["b"]["run_id"].endswith(
        "[transport=webrtc]"
    )
    assert report["a"]["responses"] == sum(1 for r in rows if r["transport"] == "websocket")
    assert report["b"]["responses"] == sum(1 for r in rows if r["transport"] == "webrtc")
    assert "over webrtc" in report["b"]["target"]
    ttfa = next(r for r in report["latency_ms"] if r["metric"] == "ttfa")
    assert ttfa["a_p50"] is not None and ttfa["b_p50"] is not None
    # one run with one transport cannot be split: one line
    text = subprocess.run(
        [sys.executable, "-m", "loadtest", "report", "compare", str(path), str(path), "--by", "transport"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert text.returncode == 2 and "one run" in text.stderr


def test_webrtc_without_aiortc_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    blocked = (
        "import sys; sys.modules['aiortc'] = None; sys.argv = ['rtload'] + sys.argv[1:]; "
        "from loadtest.cli import main; sys.exit(main())"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocked, "run", "--transport", "webrtc", "--out", str(tmp_path), "--duration", "2s"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "'webrtc' extra" in lines[0] and "realtime-loadtest[webrtc]" in lines[0], lines
    assert not any(tmp_path.iterdir())  # nothing started, nothing written
