"""`rtload report compare A B`: two runs side by side, with the significance of each difference.

``rtload report compare RUN --by transport`` compares the two halves of one run instead (a
``--transport both`` run: WebSocket users as A, WebRTC users as B; :func:`split_by`).

Outcome rates: Fisher's exact test (two-sided, scipy) on the 2x2 table [count, attempts -
count] of A and B. Latencies: the shift of p50 and p95 (B - A) with a 95% bootstrap
confidence interval (seeded, up to 20,000 values per run, 400 resamples) and the two-sided
Mann-Whitney U p-value on all values.

A run scanned in DuckDB (a day-long run: 10 million values a latency) gives the same figures
without its values in memory (:class:`ScannedValues`): the percentiles are DuckDB's exact order
statistics, Mann-Whitney's rank sum is computed exactly from each run's distinct values and their
counts (:func:`mannwhitney_p`: midranks are half-integers, so the sum is exact; the same p as
scipy's on all values), and the bootstrap's 20,000 values are the very rows numpy's seeded draw
picks (their positions drawn first, then fetched): no sampling error beyond the bootstrap's own.

"significant" means p < 0.05. Each rate also carries its
Wilson interval per run; with ``--slo`` each run gets the capacity report's verdict on every
clause (met / broken / inconclusive on the clause's confidence interval).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from scipy import special

from loadtest.records.reader import RunData
from loadtest.records.scan import Scan, ords_at
from loadtest.report import function_calls, scanned, scanstats, transcription
from loadtest.report.confidence import DEFAULT_CONFIDENCE, rate_interval_pct, scipy_stats
from loadtest.report.cost import PriceTable, cost_data, cost_words, load_prices, money
from loadtest.report.render import Report, Table, count, ms, num, pct
from loadtest.report.sections import transport_text
from loadtest.report.slo import Clause
from loadtest.report.stats import (
    LATENCIES,
    LATENCY_TITLES,
    RATE_NAMES,
    finite,
    outcome_rates,
    reason_rows,
    time_span,
)
from loadtest.report.verdict import interval_text, judge_group

ALPHA = 0.05
BOOT_MAX = 20_000
BOOT_RESAMPLES = 400
BOOT_SEED = 0


def fisher_p(k_a: int, n_a: int, k_b: int, n_b: int) -> float | None:
    if n_a == 0 or n_b == 0:
        return None
    return float(scipy_stats().fisher_exact([[k_a, n_a - k_a], [k_b, n_b - k_b]]).pvalue)


@dataclass
class ScannedValues:
    """The finite values of one latency of a scanned run, kept in DuckDB: their distinct values
    with counts (one GROUP BY: the rank test's input, and the exact order statistics behind the
    percentiles), and any of them by position (in the rows' order, as :func:`finite` of the column
    would hold them)."""

    scan: Scan
    value: str  # SQL of the value
    _counts: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def where(self) -> str:
        return f"coalesce(isfinite({self.value}), false)"

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """The distinct values (sorted) and how often each occurs."""
        if self._counts is None:
            got = self.scan.sql(
                f"SELECT x, count(*) AS c FROM (SELECT {self.value} AS x FROM {{v}} WHERE {self.where}) "
                "GROUP BY x ORDER BY x"
            ).fetchnumpy()
            self._counts = np.asarray(got["x"], dtype=float), np.asarray(got["c"], dtype=np.int64)
        return self._counts

    @property
    def size(self) -> int:
        return int(self.counts()[1].sum())

    def percentile(self, q: float) -> float:
        """numpy's percentile of the values (the order statistics from the counts, numpy's interpolation)."""
        x, c = self.counts()
        lo, hi, gamma = scanstats.positions(self.size, [q])
        ends = np.cumsum(c)  # the rank after each distinct value's last copy
        pick = np.searchsorted(ends, np.concatenate([lo, hi]), side="right")
        return float(scanstats.linear(x[pick[:1]], x[pick[1:]], gamma)[0])

    def at(self, positions: np.ndarray) -> np.ndarray:
        """The values at ``positions`` (0-based, among the finite values in the rows' order)."""
        ords = ords_at(self.scan, self.where, positions)
        self.scan.con.register("_at", pa.table({"o": pa.array(ords)}))
        try:
            got = self.scan.sql(
                f"SELECT _ord AS o, {self.value} AS x FROM {{v}} WHERE _ord IN (SELECT o FROM _at)"
            ).fetchnumpy()
        finally:
            self.scan.con.unregister("_at")
        found = dict(zip(np.asarray(got["o"]).tolist(), np.asarray(got["x"], dtype=float).tolist(), strict=True))
        return np.array([found[int(o)] for o in ords], dtype=float)

    def all(self) -> np.ndarray:
        return scanned.column(self.scan, self.value, self.where)


Values = np.ndarray | ScannedValues


def _size(v: Values) -> int:
    return int(v.size)


def _percentile(v: Values, q: int) -> float | None:
    if not _size(v):
        return None
    return float(np.percentile(v, q)) if isinstance(v, np.ndarray) else v.percentile(q)


def _subsample(v: Values, rng: np.random.Generator) -> np.ndarray:
    """At most BOOT_MAX of the values, drawn without replacement as ``rng.choice(values, ...)`` draws."""
    if isinstance(v, np.ndarray):
        return rng.choice(v, BOOT_MAX, replace=False) if v.size > BOOT_MAX else v
    if v.size > BOOT_MAX:
        return v.at(rng.choice(v.size, BOOT_MAX, replace=False))  # the same draw: positions, then values
    return v.all()


def bootstrap_shift_cis(a: Values, b: Values, qs: tuple[float, ...]) -> dict[float, tuple[float, float] | None]:
    """95% CI of percentile(b, q) - percentile(a, q) for each q, by resampling both runs (the
    same resamples for every q: each q's interval is what :func:`bootstrap_shift_ci` gives)."""
    if _size(a) < 2 or _size(b) < 2:
        return dict.fromkeys(qs)
    rng = np.random.default_rng(BOOT_SEED)
    a = _subsample(a, rng)
    b = _subsample(b, rng)
    diffs = np.empty((BOOT_RESAMPLES, len(qs)))
    for i in range(BOOT_RESAMPLES):
        diffs[i] = np.percentile(rng.choice(b, b.size), qs) - np.percentile(rng.choice(a, a.size), qs)
    out = {}
    for j, q in enumerate(qs):
        lo, hi = np.percentile(diffs[:, j], [2.5, 97.5])
        out[q] = (float(lo), float(hi))
    return out


def bootstrap_shift_ci(a: Values, b: Values, q: float) -> tuple[float, float] | None:
    """95% CI of percentile(b, q) - percentile(a, q) by resampling both runs."""
    return bootstrap_shift_cis(a, b, (q,))[q]


def _counts(v: Values) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(v, np.ndarray):
        x, c = np.unique(v, return_counts=True)
        return x.astype(float), c.astype(np.int64)
    return v.counts()


def mannwhitney_p(xa: np.ndarray, ca: np.ndarray, xb: np.ndarray, cb: np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value of samples A and B given as sorted distinct values with
    their counts: scipy's asymptotic test (tie-corrected, with continuity correction), its own
    arithmetic on the same rank sum. The rank sum is exact (twice each midrank is an integer),
    as is the tie term while it stays below 2**53 (scipy sums the same integers in floating
    point); so the p-value is scipy's. Either sample of 8 values or fewer: scipy itself."""
    n1, n2 = int(ca.sum()), int(cb.sum())
    if n1 <= 8 or n2 <= 8:
        return float(scipy_stats().mannwhitneyu(np.repeat(xa, ca), np.repeat(xb, cb), alternative="two-sided").pvalue)
    cum_b = np.concatenate([[0], np.cumsum(cb)])
    lo, hi = np.searchsorted(xb, xa, side="left"), np.searchsorted(xb, xa, side="right")
    below_b, at_b = cum_b[lo], cum_b[hi] - cum_b[lo]
    below_a = np.cumsum(ca) - ca
    twice_ranks = 2 * (below_a + below_b) + ca + at_b + 1  # twice the midrank of A's values
    r1 = np.float64(int((ca * twice_ranks).sum())) / 2
    only_b = np.ones(xb.size, dtype=bool)
    only_b[lo[hi > lo]] = False  # B's values that A also has are counted with A's
    t = np.concatenate([(ca + at_b), cb[only_b]]).astype(float)
    tie_term = np.sum(t**3 - t)
    u1 = r1 - n1 * (n1 + 1) / 2
    u = np.maximum(u1, n1 * n2 - u1)
    mu, n = n1 * n2 / 2, n1 + n2
    s = np.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
    numerator = u - mu
    numerator -= 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        z = numerator / s
    p = special.ndtr(-z) * 2
    return float(np.clip(p, 0.0, 1.0))


def _mannwhitney(va: Values, vb: Values) -> float:
    if isinstance(va, np.ndarray) and isinstance(vb, np.ndarray):
        return float(scipy_stats().mannwhitneyu(va, vb, alternative="two-sided").pvalue)
    return mannwhitney_p(*_counts(va), *_counts(vb))


def rate_row(
    key: str, name: str, ka: int, na: int, kb: int, nb: int, confidence: float = DEFAULT_CONFIDENCE
) -> dict[str, Any]:
    """k of n in A and in B: rates, Wilson intervals, the difference and Fisher's exact test."""
    p = fisher_p(ka, na, kb, nb)
    rate_a = 100 * ka / na if na else None
    rate_b = 100 * kb / nb if nb else None
    return {
        key: name,
        "a_count": ka,
        "a_rate_pct": rate_a,
        "b_count": kb,
        "b_rate_pct": rate_b,
        "a_ci_pct": rate_interval_pct(ka, na, confidence),
        "b_ci_pct": rate_interval_pct(kb, nb, confidence),
        "diff_pp": (rate_b - rate_a) if rate_a is not None and rate_b is not None else None,
        "fisher_p": p,
        "significant": p is not None and p < ALPHA,
    }


def shift_row(metric: str, va: Values, vb: Values) -> dict[str, Any]:
    """B - A of p50 and p95 with bootstrap intervals, and the Mann-Whitney U p-value on all values."""
    row: dict[str, Any] = {"metric": metric, "a_n": _size(va), "b_n": _size(vb)}
    cis = bootstrap_shift_cis(va, vb, (50, 95))
    for q in (50, 95):
        pa_, pb = _percentile(va, q), _percentile(vb, q)
        row[f"a_p{q}"], row[f"b_p{q}"] = pa_, pb
        row[f"shift_p{q}"] = (pb - pa_) if pa_ is not None and pb is not None else None
        row[f"shift_p{q}_ci95"] = cis[q]
    row["mannwhitney_p"] = _mannwhitney(va, vb) if _size(va) and _size(vb) else None
    row["significant"] = row["mannwhitney_p"] is not None and row["mannwhitney_p"] < ALPHA
    return row


def extra_section(
    va: dict[str, Any] | None, vb: dict[str, Any] | None, confidence: float = DEFAULT_CONFIDENCE
) -> dict[str, Any] | None:
    """A section's ``compare_values`` of A and B compared as the latencies and rates are (None when
    neither run has the section; a run without it has no values, so its side reads "-")."""
    if va is None and vb is None:
        return None
    empty: dict[str, Any] = {"latency": {}, "rates": {}}
    va, vb = va or empty, vb or empty
    none = np.array([])
    metrics = list(dict.fromkeys([*va["latency"], *vb["latency"]]))
    out: dict[str, Any] = {
        "latency_ms": [shift_row(m, va["latency"].get(m, none), vb["latency"].get(m, none)) for m in metrics],
        "rates": [
            rate_row("measure", name, *va["rates"].get(name, (0, 0)), *vb["rates"].get(name, (0, 0)), confidence)
            for name in dict.fromkeys([*va["rates"], *vb["rates"]])
        ],
    }
    if "wer_pct" in va or "wer_pct" in vb:
        out["wer_pct"] = shift_row("wer_pct", va.get("wer_pct", none), vb.get("wer_pct", none))
    return out


def _latency_values(data: RunData) -> dict[str, Values]:
    """Each latency's finite values of one run (kept in DuckDB when the run was scanned)."""
    out: dict[str, Values] = {}
    for label, (frame_name, col) in LATENCIES.items():
        if frame_name == "responses" and data.scan is not None:
            out[label] = ScannedValues(data.scan, scanstats.num(col)) if data.scan.has(col) else np.array([])
            continue
        frame = data.sessions if frame_name == "sessions" else data.responses
        out[label] = finite(frame[col]) if col in frame else np.array([])
    return out


def _side(data: RunData) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    """Outcome rates, reason rows and attempts of one run (in DuckDB when it was scanned)."""
    if data.scan is not None:
        n = data.scan.rows
        return scanstats.outcome_rates(data.scan, total=n), scanstats.reason_rows(data.scan, total=n), n
    return outcome_rates(data.responses), reason_rows(data.responses), len(data.responses)


def _cost(run: RunData, table: PriceTable) -> dict[str, Any]:
    if run.scan is not None:
        return scanned.cost_data(run.scan, run.sessions, table, scanned.time_span(run.run, run.scan, run.sessions)[1])
    return cost_data(run.responses, run.sessions, table, time_span(run.run, run.responses, run.sessions)[1])


TARGET_COLUMNS = ("provider", "deployment", "model_class", "transport")  # what what_ran() and the Runs table read
SPLIT_ORDER = {"transport": ("websocket", "webrtc")}  # --by: which value is A (the baseline)


class SplitError(ValueError):
    """A run that cannot be split in two by the column asked for (one line)."""


def split_by(data: RunData, column: str) -> tuple[RunData, RunData]:
    """One run's rows as two runs, by the two values of ``column`` (transport: websocket as A;
    rows written before the column existed read as websocket)."""
    import dataclasses

    frames = {}
    for name in ("responses", "sessions"):
        frame = getattr(data, name)
        if column not in frame:
            if column != "transport":
                raise SplitError(f"--by {column}: the run's rows have no {column} column")
            frame = frame.assign(transport="websocket")
        values = frame[column].fillna("").astype(str)
        if column == "transport":
            values = values.replace("", "websocket")
        frames[name] = (frame, values)
    seen = sorted(set(frames["responses"][1]) | set(frames["sessions"][1]))
    known = SPLIT_ORDER.get(column, ())
    order = [v for v in known if v in seen] + [v for v in seen if v not in known]
    if len(order) != 2:
        found = ", ".join(order) or "none"
        raise SplitError(f"--by {column}: the run has {len(order)} values of {column} ({found}); it needs two")
    halves = []
    for value in order:
        parts = {name: frame[values == value] for name, (frame, values) in frames.items()}
        run = {**data.run, "run_id": f"{data.run_id} [{column}={value}]"}
        halves.append(dataclasses.replace(data, run=run, **parts))
    return halves[0], halves[1]


def what_ran(data: RunData) -> str:
    """Provider, deployment and (Voice Live) model class of a run's responses, e.g. ``voicelive
    gpt-4.1 (cascade)``: so Azure OpenAI and Voice Live runs of one agent read side by side."""
    frame = data.responses

    def values(col: str) -> str:
        if data.scan is not None:
            return ",".join(v for v in scanstats.distinct(data.scan, col))
        if col not in frame:
            return ""
        return ",".join(sorted({str(v) for v in frame[col].dropna() if str(v)}))

    text = " ".join(v for v in (values("provider"), values("deployment")) if v)
    model_class = values("model_class")
    text = f"{text} ({model_class})" if model_class else text
    transport = values("transport")
    return f"{text} over {transport}" if transport and transport != "websocket" else text


def compare_data(
    a: RunData,
    b: RunData,
    clauses: list[Clause] | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    prices: PriceTable | None = None,
) -> dict[str, Any]:
    (ra, reasons_a, na), (rb, reasons_b, nb) = _side(a), _side(b)
    outcomes = []
    names = list(dict.fromkeys([*RATE_NAMES, *ra, *rb]))
    for name in names:
        ka = ra.get(name, {"count": 0})["count"]
        kb = rb.get(name, {"count": 0})["count"]
        outcomes.append(rate_row("outcome", name, ka, na, kb, nb, confidence))
    reasons = []
    ra_reasons = {(r["outcome"], r["reason"]): r["count"] for r in reasons_a}
    rb_reasons = {(r["outcome"], r["reason"]): r["count"] for r in reasons_b}
    # most frequent (both runs together) first; ties by (outcome, reason), not by set order
    for key in sorted(
        set(ra_reasons) | set(rb_reasons), key=lambda k: (-(ra_reasons.get(k, 0) + rb_reasons.get(k, 0)), k)
    ):
        ka, kb = ra_reasons.get(key, 0), rb_reasons.get(key, 0)
        p = fisher_p(ka, na, kb, nb)
        reasons.append(
            {
                "outcome": key[0],
                "reason": key[1],
                "a_count": ka,
                "b_count": kb,
                "a_rate_pct": 100 * ka / na if na else None,
                "b_rate_pct": 100 * kb / nb if nb else None,
                "fisher_p": p,
                "significant": p is not None and p < ALPHA,
            }
        )
    lat_a, lat_b = _latency_values(a), _latency_values(b)
    latency = [shift_row(label, lat_a[label], lat_b[label]) for label in LATENCIES]
    calls = extra_section(
        function_calls.compare_values(a.responses), function_calls.compare_values(b.responses), confidence
    )
    transcripts = extra_section(
        transcription.compare_values(a.responses), transcription.compare_values(b.responses), confidence
    )
    slo = None
    if clauses:
        slo = {
            "clauses": [c.text() for c in clauses],
            "a": judge_group(clauses, a.responses, a.sessions, confidence),
            "b": judge_group(clauses, b.responses, b.sessions, confidence),
        }
    table = prices or load_prices()
    cost = {side: _cost(run, table) for side, run in (("a", a), ("b", b))}
    return {
        "confidence": confidence,
        "slo": slo,
        "cost": cost,
        "a": {
            "run_id": a.run_id,
            "path": str(a.path),
            "responses": na,
            "in_progress": a.in_progress,
            "target": what_ran(a),
            "transport": transport_text(a.responses),
        },
        "b": {
            "run_id": b.run_id,
            "path": str(b.path),
            "responses": nb,
            "in_progress": b.in_progress,
            "target": what_ran(b),
            "transport": transport_text(b.responses),
        },
        "alpha": ALPHA,
        "outcomes": outcomes,
        "reasons": reasons,
        "latency_ms": latency,
        "function_calls": calls,  # None: neither run made a call
        "input_transcription": transcripts,  # None: neither run transcribed a turn
    }


def p_text(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.2g}"


def _ci(ci: tuple[float, float] | None) -> str:
    return "-" if ci is None else f"[{ci[0]:+.1f}, {ci[1]:+.1f}]"


def sig(flag: bool) -> str:
    return "*" if flag else ""


def _clause_cell(c: dict[str, Any]) -> str:
    if c["value"] is None:
        return f"no data: {c['verdict']}"
    value = pct(c["value"]) if c["kind"] == "rate" else ms(c["value"])
    interval = "as observed" if c["metric"].endswith("_max") else interval_text(c["lo"], c["hi"], c["kind"])
    return f"{value} {interval} {c['verdict']}"


def slo_table(d: dict[str, Any]) -> Table:
    slo, level = d["slo"], f"{100 * d['confidence']:g}%"
    rows = [
        [text, _clause_cell(ca), _clause_cell(cb)]
        for text, ca, cb in zip(slo["clauses"], slo["a"]["clauses"], slo["b"]["clauses"], strict=True)
    ]
    rows.append(["SLO", slo["a"]["verdict"], slo["b"]["verdict"]])
    return Table(
        f"SLO per run ({level} confidence intervals)",
        ["clause", "A", "B"],
        rows,
        note="met / broken when the whole interval meets / breaks the clause, else inconclusive",
    )


def cost_compare_table(d: dict[str, Any]) -> Table:
    ca, cb = d["cost"]["a"], d["cost"]["b"]
    cur = ca["prices"]["currency"]
    rows = []
    for label, key in (
        (f"{cur} per response", "per_response"),
        (f"{cur} per session-minute", "per_session_minute"),
        (f"{cur} per 1,000 conversation minutes", "per_1000_minutes"),
        (f"{cur} in total", "cost"),
    ):
        va, vb = ca["total"][key], cb["total"][key]
        change = f"{100 * (vb - va) / va:+.1f}%" if va and vb is not None else "-"
        rows.append([label, money(va), money(vb), change])
    rows.append(["priced responses", str(ca["total"]["priced"]), str(cb["total"]["priced"]), "-"])
    return Table(f"Cost (estimate at the list prices of {ca['prices']['date']})", ["measure", "A", "B", "B vs A"], rows)


def _shift(r: dict[str, Any], q: int) -> str:
    return "-" if r[f"shift_p{q}"] is None else f"{r[f'shift_p{q}']:+.1f} {_ci(r[f'shift_p{q}_ci95'])}"


def shift_table(title: str, rows: list[dict[str, Any]], titles: dict[str, str]) -> Table:
    """Shift rows (``shift_row``) of A and B: p50 and p95 each, their shift with its CI, Mann-Whitney."""
    return Table(
        title,
        ["latency", "A p50", "B p50", "shift p50 [95% CI]", "A p95", "B p95", "shift p95 [95% CI]", "Mann-Whitney p",
         "sig"],
        [
            [titles[r["metric"]], ms(r["a_p50"]), ms(r["b_p50"]), _shift(r, 50), ms(r["a_p95"]), ms(r["b_p95"]),
             _shift(r, 95), p_text(r["mannwhitney_p"]), sig(r["significant"])]
            for r in rows
        ],
        note="shift = B - A; CI by bootstrap; * = Mann-Whitney U p < 0.05",
    )  # fmt: skip


def rate_table(title: str, rows: list[dict[str, Any]]) -> Table:
    """Rate rows (``rate_row``) of A and B with Fisher's exact test."""
    return Table(
        title,
        ["measure", "A count", "A rate", "B count", "B rate", "B-A (pp)", "Fisher p", "sig"],
        [
            [r["measure"], count(r["a_count"]), pct(r["a_rate_pct"]), count(r["b_count"]), pct(r["b_rate_pct"]),
             "-" if r["diff_pp"] is None else f"{r['diff_pp']:+.2f}", p_text(r["fisher_p"]), sig(r["significant"])]
            for r in rows
        ],
        note=f"* = significant at p < {ALPHA} (Fisher's exact test, two-sided)",
    )  # fmt: skip


def extra_tables(d: dict[str, Any]) -> list[Table]:
    """The function-call and input-transcription comparisons, when either run has them."""
    tables = []
    calls, transcripts = d["function_calls"], d["input_transcription"]
    if calls is not None:
        tables.append(shift_table("Function calls: shifts (ms)", calls["latency_ms"], function_calls.COMPARE_TITLES))
        tables.append(rate_table("Function calls: rates", calls["rates"]))
    if transcripts is not None:
        rows = [*transcripts["latency_ms"], transcripts["wer_pct"]]
        titles = {**transcription.COMPARE_TITLES, "wer_pct": "word error rate (%, not ms)"}
        tables.append(shift_table("Input transcription: shifts (ms; WER in %)", rows, titles))
        tables.append(rate_table("Input transcription: rates", transcripts["rates"]))
    return tables


def build_compare(
    a: RunData,
    b: RunData,
    clauses: list[Clause] | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    prices: PriceTable | None = None,
) -> Report:
    d = compare_data(a, b, clauses, confidence, prices)
    tables = [
        Table(
            "Runs",
            ["", "run", "target", "transport", "responses", "state"],
            [
                [
                    side,
                    d[side]["run_id"],
                    d[side]["target"] or "-",
                    d[side]["transport"],
                    count(d[side]["responses"]),
                    "still being written" if d[side]["in_progress"] else "complete",
                ]
                for side in ("a", "b")
            ],
        ),
        Table(
            "Outcome rates",
            ["outcome", "A count", "A rate", "B count", "B rate", "B-A (pp)", "Fisher p", "sig"],
            [
                [
                    r["outcome"],
                    count(r["a_count"]),
                    pct(r["a_rate_pct"]),
                    count(r["b_count"]),
                    pct(r["b_rate_pct"]),
                    "-" if r["diff_pp"] is None else f"{r['diff_pp']:+.2f}",
                    p_text(r["fisher_p"]),
                    sig(r["significant"]),
                ]
                for r in d["outcomes"]
            ],
            note=f"* = significant at p < {ALPHA} (Fisher's exact test, two-sided)",
        ),
        Table(
            "Reasons",
            ["outcome", "reason", "A count", "A rate", "B count", "B rate", "Fisher p", "sig"],
            [
                [
                    r["outcome"],
                    r["reason"],
                    count(r["a_count"]),
                    pct(r["a_rate_pct"]),
                    count(r["b_count"]),
                    pct(r["b_rate_pct"]),
                    p_text(r["fisher_p"]),
                    sig(r["significant"]),
                ]
                for r in d["reasons"]
            ],
        ),
        shift_table("Latency shifts (ms)", d["latency_ms"], LATENCY_TITLES),
    ]
    tables.extend(extra_tables(d))
    tables.append(cost_compare_table(d))
    if d["slo"] is not None:
        tables.append(slo_table(d))
    warnings = [f"A: {w}" for w in a.warnings] + [f"B: {w}" for w in b.warnings]
    notes = [
        f"A = {d['a']['path']}",
        f"B = {d['b']['path']}",
        f"A has {num(d['a']['responses'])} responses, B {num(d['b']['responses'])}.",
        cost_words(d["cost"]["a"])[0],
    ]
    return Report(f"Compare {d['a']['run_id']} (A) with {d['b']['run_id']} (B)", d, tables, notes, warnings)
