"""Locust-free constants shared by ``rtload run`` and the Locust side."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import loadtest

LOCUSTFILE = Path(loadtest.__file__).resolve().parent / "locustfile.py"


def new_run_id() -> str:
    """A sortable, unique run id: ``YYYYmmdd-HHMMSS-xxxxxx`` (UTC)."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
