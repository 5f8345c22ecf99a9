"""Run in a subprocess by test_final_csv.py (importing Locust patches gevent into the process): what
Locust's StatsCSVFileWriter offers of the internals loadtest/locust/final_csv.py reads. Prints one
JSON line."""

from __future__ import annotations

import csv
import io
import json
import sys
import tempfile

import locust
from locust.env import Environment
from locust.stats import StatsCSVFileWriter


def main() -> None:
    env = Environment()
    env.create_local_runner()
    env.stats.log_request("realtime", "turn", 120, 0)
    env.stats.log_error("realtime", "turn", "RealtimeOutcome('failed: x')")
    out: dict[str, object] = {"version": locust.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        writer = StatsCSVFileWriter(env, [0.5, 0.99], f"{tmp}/run", full_history=False)
        try:
            for kind, columns in (("requests", "requests_csv_columns"), ("failures", "failures_columns"),
                                  ("exceptions", "exceptions_columns")):  # fmt: skip
                handle = getattr(writer, f"{kind}_csv_filehandle", None)
                rows_of = getattr(writer, f"_{kind}_data_rows", None)
                text = None
                if callable(rows_of):
                    buffer = io.StringIO()
                    rows_of(csv.writer(buffer))
                    text = buffer.getvalue()
                out[kind] = {
                    "handle": handle is not None and hasattr(handle, "seek") and hasattr(handle, "truncate"),
                    "writer": hasattr(getattr(writer, f"{kind}_csv_writer", None), "writerow"),
                    "columns": isinstance(getattr(writer, columns, None), list),
                    "rows": text,
                }
        finally:
            writer.close_files()
            env.runner.quit()
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
