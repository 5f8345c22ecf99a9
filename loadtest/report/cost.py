"""What a run would cost: usage by kind against a dated price table (an estimate, not a bill).

The shipped table is ``loadtest/report/prices.toml`` (list prices per 1M tokens per model, each
with its source and date); ``--prices FILE`` replaces it with a user's own (the same shape). A
response row is priced by its ``deployment`` (a dated snapshot suffix such as ``-2025-08-28`` is
stripped when the full name is not in the table) from its usage details:

    uncached text  = input_text_tokens - cached text    (cached text = cached - cached audio)
    uncached audio = input_audio_tokens - cached audio  (cached audio: GA's cached_tokens_details;
                                                          without it, cached beyond the text tokens)
    cost = (uncached text * text_input + cached text * text_cached_input
            + uncached audio * audio_input + cached audio * audio_cached_input
            + output_text_tokens * text_output + output_audio_tokens * audio_output) / 1e6

Rows without usage details (a failed upgrade, an older run) or of a model the table lacks are
counted as unpriced. Per session-minute = cost / the session-minutes of the same sessions (each
opened session's t_open to t_end); per 1,000 conversation minutes = that x 1000.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loadtest.report.projection import session_minutes

DEFAULT_PRICES = Path(__file__).with_name("prices.toml")
PRICE_KEYS = ("text_input", "text_cached_input", "text_output", "audio_input", "audio_cached_input", "audio_output")
USAGE_COLUMNS = [
    "deployment",
    "input_text_tokens",
    "input_audio_tokens",
    "input_cached_tokens",
    "input_cached_audio_tokens",
    "output_text_tokens",
    "output_audio_tokens",
]
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")


class PriceError(ValueError):
    """A price file that cannot be used (the message says which and what to fix)."""


@dataclass(frozen=True)
class PriceTable:
    path: str
    date: str
    currency: str
    models: dict[str, dict[str, Any]]

    def lookup(self, deployment: str) -> str | None:
        """The table's model name for a deployment (None when it has no price)."""
        if deployment in self.models:
            return deployment
        base = _SNAPSHOT.sub("", deployment)
        return base if base in self.models else None


def load_prices(path: Path | str | None = None) -> PriceTable:
    """The shipped table, or a user's; PriceError with one line for a file that cannot be used."""
    source = Path(path) if path is not None else DEFAULT_PRICES
    try:
        raw = tomllib.loads(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PriceError(f"cannot read the price file {source}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PriceError(f"the price file {source} is not valid TOML: {exc}") from None
    models = raw.get("models")
    if not isinstance(models, dict) or not models:
        raise PriceError(f'the price file {source} has no [models."<name>"] tables; see {DEFAULT_PRICES.name}')
    for name, entry in models.items():
        missing = [k for k in PRICE_KEYS if not isinstance(entry.get(k), int | float) or entry.get(k) < 0]
        if missing:
            raise PriceError(
                f"the price file {source}: model {name!r} needs a price >= 0 (per 1M tokens) for {', '.join(missing)}"
            )
    date = str(raw.get("date") or "an unknown date")
    shown = "the shipped table loadtest/report/prices.toml" if path is None else str(source)
    return PriceTable(shown, date, str(raw.get("currency") or "USD"), models)


def _col(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame or frame.empty:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def response_costs(responses: pd.DataFrame, table: PriceTable) -> tuple[np.ndarray, dict[str, Any]]:
    """Cost of every row (NaN when unpriced) and why rows went unpriced."""
    n = len(responses)
    cost = np.full(n, np.nan)
    detail_cols = USAGE_COLUMNS[1:]
    values = {c: _col(responses, c) for c in detail_cols}
    has_usage = np.zeros(n, dtype=bool)
    for c in detail_cols:
        has_usage |= np.isfinite(values[c])
    zero = {c: np.nan_to_num(v, nan=0.0) for c, v in values.items()}
    in_text, in_audio = zero["input_text_tokens"], zero["input_audio_tokens"]
    cached = zero["input_cached_tokens"]
    cached_audio = np.where(
        np.isfinite(values["input_cached_audio_tokens"]),
        zero["input_cached_audio_tokens"],
        np.clip(cached - in_text, 0, None),
    )
    cached_text = np.clip(cached - cached_audio, 0, None)
    kinds = {
        "text_input": np.clip(in_text - cached_text, 0, None),
        "text_cached_input": cached_text,
        "audio_input": np.clip(in_audio - cached_audio, 0, None),
        "audio_cached_input": cached_audio,
        "text_output": zero["output_text_tokens"],
        "audio_output": zero["output_audio_tokens"],
    }
    if "deployment" in responses and n:
        codes, names = pd.factorize(responses["deployment"].fillna(""), sort=True)
    else:
        codes, names = np.zeros(n, dtype=np.int64), pd.Index([""])
    unknown: dict[str, int] = {}
    for code in np.unique(codes[has_usage]):
        name = str(names[code])
        rows = has_usage & (codes == code)
        model = table.lookup(name)
        if model is None:
            unknown[name or "(none)"] = int(rows.sum())
            continue
        prices = table.models[model]
        cost[rows] = sum(kinds[k][rows] * float(prices[k]) for k in PRICE_KEYS) / 1e6
    return cost, {"no_usage": int((~has_usage).sum()), "unknown_models": unknown}


def group_cost(costs: np.ndarray, sessions: pd.DataFrame, end: float | None) -> dict[str, Any]:
    """Cost, priced rows and cost per response / session-minute of one group's row costs."""
    priced = np.isfinite(costs)
    total = float(costs[priced].sum()) if priced.any() else 0.0
    minutes = session_minutes(sessions, end)
    per_minute = total / minutes if minutes > 0 and priced.any() else None
    return {
        "responses": int(costs.size),
        "priced": int(priced.sum()),
        "cost": total if priced.any() else None,
        "per_response": total / priced.sum() if priced.any() else None,
        "session_minutes": minutes,
        "per_session_minute": per_minute,
        "per_1000_minutes": None if per_minute is None else 1000 * per_minute,
    }


def cost_data(responses: pd.DataFrame, sessions: pd.DataFrame, table: PriceTable, end: float | None) -> dict[str, Any]:
    """The run's cost overall and by target and scenario, with the table it used."""
    costs, unpriced = response_costs(responses, table)
    out: dict[str, Any] = {
        "estimate": True,
        "prices": {"path": table.path, "date": table.date, "currency": table.currency},
        "unpriced": unpriced,
        "total": group_cost(costs, sessions, end),
    }
    for by in ("target", "scenario"):
        rows = []
        if by in responses and len(responses):
            codes, keys = pd.factorize(responses[by].fillna("").astype(str), sort=True)
            s_keys = sessions[by].fillna("").astype(str) if by in sessions else pd.Series("", index=sessions.index)
            for code, key in enumerate(keys):
                group = group_cost(costs[codes == code], sessions[s_keys == key], end)
                rows.append({by: key or "(none)", **group})
        out[f"by_{by}"] = rows
    return out


def money(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.4f}" if abs(value) >= 0.01 else f"{value:.6f}"


def cost_words(d: dict[str, Any]) -> list[str]:
    p, u = d["prices"], d["unpriced"]
    lines = [
        f"Cost is an estimate at the list prices of {p['date']} ({p['currency']}, {p['path']}; each model's source is "
        "in the file), not a bill: contracts, regions and later price changes differ."
    ]
    if u["unknown_models"]:
        names = ", ".join(f"{k} ({v})" for k, v in sorted(u["unknown_models"].items()))
        lines.append(f"Unpriced: no price for the deployment(s) {names}; add them with --prices FILE.")
    if u["no_usage"]:
        lines.append(f"Unpriced: {u['no_usage']} response rows carry no usage details (no response.done usage).")
    return lines
