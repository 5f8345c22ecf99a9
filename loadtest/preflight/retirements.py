"""Realtime models and API versions known to be retired or near retirement: a dated table.

Update it when a provider announces a date; each row says where the date came from. Dates are
shutdown (OpenAI) or retirement (Azure) dates, after which connections fail. ``checked`` is the
day the row was last compared with its source.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Retirement:
    name: str  # a model id (OpenAI), a model name/version (Azure) or an api-version
    provider: str  # openai | azure | any
    kind: str  # model | api-version
    date: dt.date  # shutdown / retirement date
    replacement: str
    source: str
    checked: dt.date


_CHECKED = dt.date(2026, 11, 22)

RETIREMENTS: tuple[Retirement, ...] = (
    Retirement(
        "gpt-4o-realtime-preview-2024-10-01",
        "azure",
        "model",
        dt.date(2025, 3, 26),
        "gpt-realtime",
        "Azure OpenAI legacy models page (retired models table)",
        _CHECKED,
    ),
    Retirement(
        "gpt-4o-realtime-preview-2024-10-01",
        "openai",
        "model",
        dt.date(2026, 5, 7),
        "gpt-realtime",
        "OpenAI deprecations page (deprecated in 2025; gone with the preview group at the latest)",
        _CHECKED,
    ),
    Retirement(
        "gpt-4o-realtime-preview",
        "openai",
        "model",
        dt.date(2026, 5, 7),
        "gpt-realtime-1.5",
        "OpenAI deprecations page (preview realtime and audio models group)",
        _CHECKED,
    ),
    Retirement(
        "gpt-4o-realtime-preview-2024-12-17",
        "openai",
        "model",
        dt.date(2026, 5, 7),
        "gpt-realtime-1.5",
        "OpenAI deprecations page (preview realtime and audio models group)",
        _CHECKED,
    ),
    Retirement(
        "gpt-4o-realtime-preview-2025-06-03",
        "openai",
        "model",
        dt.date(2026, 5, 7),
        "gpt-realtime-1.5",
        "OpenAI deprecations page (preview realtime and audio models group)",
        _CHECKED,
    ),
    Retirement(
        "gpt-4o-mini-realtime-preview",
        "openai",
        "model",
        dt.date(2026, 5, 7),
        "gpt-realtime-mini",
        "OpenAI deprecations page (preview realtime and audio models group)",
        _CHECKED,
    ),
    Retirement(
        "gpt-4o-mini-realtime-preview-2024-12-17",
        "openai",
        "model",
        dt.date(2026, 7, 23),
        "gpt-realtime-mini",
        "OpenAI deprecations page (snapshot shutdowns, 2026-07-23)",
        _CHECKED,
    ),
    Retirement(
        "gpt-realtime-mini-2025-10-06",
        "openai",
        "model",
        dt.date(2026, 7, 23),
        "gpt-realtime-mini",
        "OpenAI deprecations page (legacy snapshots announced 2026-04-22)",
        _CHECKED,
    ),
    Retirement(
        "realtime=v1",
        "openai",
        "beta-interface",
        dt.date(2026, 5, 7),
        "the GA interface: no OpenAI-Beta header, session.type, GA event names",
        "OpenAI deprecations page (Realtime API beta interface)",
        _CHECKED,
    ),
    Retirement(
        "2024-10-01-preview",
        "azure",
        "api-version",
        dt.date(2026, 4, 30),
        "GA: /openai/v1/realtime?model=<deployment> without api-version",
        "Azure realtime preview-to-GA migration guide (preview deprecated from 2026-04-30)",
        _CHECKED,
    ),
    Retirement(
        "2024-12-17",
        "azure",
        "api-version",
        dt.date(2026, 4, 30),
        "GA: /openai/v1/realtime?model=<deployment> without api-version",
        "Azure realtime preview-to-GA migration guide (preview deprecated from 2026-04-30)",
        _CHECKED,
    ),
    Retirement(
        "2025-04-01-preview",
        "azure",
        "api-version",
        dt.date(2026, 4, 30),
        "GA: /openai/v1/realtime?model=<deployment> without api-version",
        "Azure realtime preview-to-GA migration guide (preview deprecated from 2026-04-30)",
        _CHECKED,
    ),
)

# How soon before a date a model counts as "near retirement".
NEAR_DAYS = 90

KNOWN_PREVIEW_API_VERSIONS = ("2024-10-01-preview", "2024-12-17", "2025-04-01-preview")


def lookup(name: str, provider: str, kind: str = "model") -> Retirement | None:
    """The table row for ``name`` (case-insensitive) on ``provider``, if any."""
    wanted = name.strip().lower()
    for row in RETIREMENTS:
        if row.kind == kind and row.name.lower() == wanted and row.provider in (provider, "any"):
            return row
    return None
