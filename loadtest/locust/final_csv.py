"""Locust's CSV statistics, complete at the end of the run.

Locust rewrites ``*_stats.csv``, ``*_failures.csv`` and ``*_exceptions.csv`` once a second from a
background loop and closes them at shutdown without a last write, so requests that finish in the
run's final second (here: the responses still in flight when the duration ends, which get their
deadline) are in Locust's printed summary and HTML report but missing from its CSV
(locustio/locust#1806, #2299). :func:`install` makes ``close_files`` write one final snapshot
through Locust's own file handles and writers first.
"""

from __future__ import annotations

import logging

log = logging.getLogger("loadtest.locust")


def install() -> None:
    from locust.stats import StatsCSVFileWriter

    original = StatsCSVFileWriter.close_files
    if getattr(original, "_rtload_final_snapshot", False):
        return

    def close_files(self: StatsCSVFileWriter) -> None:
        snapshots = (
            (self.requests_csv_filehandle, self.requests_csv_writer, self.requests_csv_columns,
             self._requests_data_rows),
            (self.failures_csv_filehandle, self.failures_csv_writer, self.failures_columns,
             self._failures_data_rows),
            (self.exceptions_csv_filehandle, self.exceptions_csv_writer, self.exceptions_columns,
             self._exceptions_data_rows),
        )  # fmt: skip
        for handle, writer, columns, rows in snapshots:
            try:
                if handle.closed:
                    continue
                handle.seek(0)
                handle.truncate()
                writer.writerow(columns)
                rows(writer)
            except Exception as exc:  # Locust's own periodic snapshot stays; say why it is not final
                log.warning("rtload: could not write Locust's final CSV snapshot: %s", exc)
        original(self)

    close_files._rtload_final_snapshot = True  # type: ignore[attr-defined]
    StatsCSVFileWriter.close_files = close_files  # type: ignore[method-assign]
