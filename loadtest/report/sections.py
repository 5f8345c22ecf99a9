"""Which optional sections a run's rows hold, found from a few cheap columns before the real read.

Function calls, input transcription and a transport other than WebSocket each need columns (lists
among them) that a run without them would only pay for: at ten million rows every extra column is
~80 MB of pandas. So a report first reads ``PROBE_COLUMNS`` as Arrow (from the segments or the
Parquet cache, which this read creates for a large JSONL file, so the real read that follows uses
it), then reads the sections' columns only for a run that has something to show.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loadtest.records.reader import read_table
from loadtest.records.schema import RESPONSES_FILE, ResponseRecord
from loadtest.report.function_calls import FUNCTION_COLUMNS
from loadtest.report.transcription import TRANSCRIPTION_COLUMNS

PROBE_COLUMNS = ["function_calls", "chain_depth", "input_transcription", "transport"]
WEBSOCKET = "websocket"  # what a row's empty transport means (rows written before the column existed)


def _any(values: pa.ChunkedArray) -> bool:
    return bool(pc.any(pc.fill_null(values, False)).as_py())


def optional_columns(run_dir: Path, *, cache: bool = True) -> list[str]:
    """The response columns of the optional sections this run has (none: an empty list)."""
    table, _ = read_table(Path(run_dir) / RESPONSES_FILE, ResponseRecord, PROBE_COLUMNS, [], cache=cache)
    out: list[str] = []
    if table.num_rows == 0:
        return out
    calls = _any(pc.greater(table["function_calls"], 0)) or _any(pc.greater(table["chain_depth"], 0))
    if calls:
        out.extend(FUNCTION_COLUMNS)
    if _any(pc.not_equal(table["input_transcription"], "")):
        out.extend(TRANSCRIPTION_COLUMNS)
    transport = pc.fill_null(table["transport"], "")
    if _any(pc.invert(pc.is_in(transport, pa.array(["", WEBSOCKET])))):
        out.append("transport")
    return out


def transports(frame: pd.DataFrame) -> pd.Series:
    """Each row's transport, empty (or a frame without the column) read as websocket."""
    if "transport" not in frame:
        return pd.Series(WEBSOCKET, index=frame.index, dtype=object)
    return frame["transport"].astype(object).fillna("").astype(str).replace("", WEBSOCKET)


def transport_text(frame: pd.DataFrame) -> str:
    """``websocket``, ``webrtc`` or both, comma-separated (an empty run: websocket)."""
    seen = sorted(set(transports(frame)))
    return ",".join(seen) if seen else WEBSOCKET
