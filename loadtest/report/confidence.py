"""Confidence intervals behind every verdict: a rate's Wilson interval, a percentile's order statistics.

- A rate (k of n attempts) gets the Wilson score interval at the chosen confidence (two-sided;
  near-nominal coverage even for small n and rates near 0, unlike the normal approximation,
  and less conservative than the exact Clopper-Pearson interval).
- A latency percentile gets the distribution-free interval from order statistics: with
  B ~ Binomial(n, q), the ranks l = F^-1(a/2) and u = F^-1(1 - a/2) + 1 bound the q-quantile
  between the l-th and the u-th smallest value with probability at least 1 - a, whatever the
  distribution. A rank outside 1..n means the data cannot bound that side (-inf / +inf): a
  p99 from 100 values has no upper bound.
- A clause is ``met`` when the whole interval satisfies it, ``broken`` when the whole interval
  violates it, ``inconclusive`` otherwise. ``more_to_decide`` says how many more values at the
  same load would decide it if what was seen so far holds (the rate, the shape of the latency
  distribution); None when it never would (the estimate sits on the threshold) or there is no data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist
from types import ModuleType

import numpy as np

DEFAULT_CONFIDENCE = 0.95
MET, BROKEN, INCONCLUSIVE = "met", "broken", "inconclusive"
VERDICTS = (MET, BROKEN, INCONCLUSIVE)
_SEARCH_CAP = 10**9  # more values than this "would never decide it"


def parse_confidence(text: str | float) -> float:
    """``0.95``, ``95`` or ``95%`` -> 0.95; ValueError with one line for anything else."""
    raw = str(text).strip()
    try:
        value = float(raw.removesuffix("%"))
    except ValueError:
        raise ValueError(f"cannot read confidence {raw!r}; write e.g. 0.95 or 95%") from None
    if raw.endswith("%") or value > 1:
        value /= 100
    if not 0.5 <= value < 1:
        raise ValueError(f"confidence {raw!r} is outside 50%..99.99%; write e.g. 0.95 or 95%")
    return value


def scipy_stats() -> ModuleType:
    """``scipy.stats``, imported on first use: importing it costs every report command about 0.6 s,
    and most reports never call it."""
    from scipy import stats

    return stats


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(k: float, n: float, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of k successes in n trials, as proportions (0..1)."""
    if n <= 0:
        return (0.0, 1.0)
    z = _z(confidence)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(p * (1 - p) / n + z * z / (4 * n * n), 0.0)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate_interval_pct(k: int, n: int, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float] | None:
    """The Wilson interval of k of n in percent (None without attempts)."""
    if n <= 0:
        return None
    lo, hi = wilson(k, n, confidence)
    return (100 * lo, 100 * hi)


def order_ranks(n: int, q: float, confidence: float = DEFAULT_CONFIDENCE) -> tuple[int, int]:
    """1-based ranks (l, u) of the q-quantile's interval; l < 1 or u > n is an unbounded side."""
    binom = scipy_stats().binom
    alpha = 1 - confidence
    lo = int(binom.ppf(alpha / 2, n, q))
    hi = int(binom.ppf(1 - alpha / 2, n, q)) + 1
    return lo, hi


def percentile_interval(values: np.ndarray, q: float, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float]:
    """Distribution-free interval of the q-quantile (0 < q < 1) of ``values``; -inf/+inf = unbounded."""
    arr = np.sort(np.asarray(values, dtype=float))
    n = arr.size
    if n == 0:
        return (-math.inf, math.inf)
    lo_rank, hi_rank = order_ranks(n, q, confidence)
    lo = float(arr[lo_rank - 1]) if lo_rank >= 1 else -math.inf
    hi = float(arr[hi_rank - 1]) if hi_rank <= n else math.inf
    return lo, hi


def judge(holds: Callable[[float], bool], lo: float, hi: float) -> str:
    """met / broken / inconclusive for a monotone clause over the interval [lo, hi]."""
    at_lo, at_hi = holds(lo), holds(hi)
    if at_lo and at_hi:
        return MET
    if not at_lo and not at_hi:
        return BROKEN
    return INCONCLUSIVE


def _smallest_deciding(n: int, decided: Callable[[int], bool]) -> int | None:
    """The smallest total m >= n for which ``decided(m)`` (monotone), or None below the cap."""
    if decided(n):
        return n
    hi = max(2 * n, 16)
    while not decided(hi):
        if hi >= _SEARCH_CAP:
            return None
        hi = min(hi * 4, _SEARCH_CAP)
    lo = n  # not decided at lo, decided at hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if decided(mid):
            hi = mid
        else:
            lo = mid
    return hi


def rate_more_to_decide(
    k: int, n: int, holds: Callable[[float], bool], confidence: float = DEFAULT_CONFIDENCE
) -> int | None:
    """More attempts needed (the observed rate k/n held) before the Wilson interval decides the clause."""
    if n <= 0:
        return None
    p = k / n

    def decided(m: int) -> bool:
        lo, hi = wilson(p * m, m, confidence)
        return judge(holds, 100 * lo, 100 * hi) != INCONCLUSIVE

    total = _smallest_deciding(n, decided)
    return None if total is None else total - n


def percentile_more_to_decide(
    values: np.ndarray, q: float, holds: Callable[[float], bool], confidence: float = DEFAULT_CONFIDENCE
) -> int | None:
    """More values needed (the distribution seen so far held) before the order-statistic interval decides."""
    arr = np.sort(np.asarray(values, dtype=float))
    n = arr.size
    if n == 0:
        return None

    def decided(m: int) -> bool:
        lo_rank, hi_rank = order_ranks(m, q, confidence)
        lo = float(np.quantile(arr, (lo_rank - 0.5) / m)) if lo_rank >= 1 else -math.inf
        hi = float(np.quantile(arr, min((hi_rank - 0.5) / m, 1.0))) if hi_rank <= m else math.inf
        return judge(holds, lo, hi) != INCONCLUSIVE

    total = _smallest_deciding(n, decided)
    return None if total is None else max(1, total - n)  # the projection is approximate; n itself was not enough


def bound(value: float) -> float | None:
    """An interval end for JSON: None for an unbounded side."""
    return None if value is None or math.isinf(value) or value != value else float(value)


def percentile_intervals(
    values: np.ndarray, percents: tuple[int, ...] = (50, 95, 99), confidence: float = DEFAULT_CONFIDENCE
) -> dict[str, float | int | None]:
    """n, each percentile with its order-statistic interval (``p95``, ``p95_lo``, ``p95_hi``; None for
    an unbounded side) and max, over the finite ``values`` (every figure None when there are none)."""
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    out: dict[str, float | int | None] = {"n": int(arr.size)}
    for p in percents:
        if arr.size:
            lo, hi = percentile_interval(arr, p / 100, confidence)
            out.update({f"p{p}": float(np.percentile(arr, p)), f"p{p}_lo": bound(lo), f"p{p}_hi": bound(hi)})
        else:
            out.update({f"p{p}": None, f"p{p}_lo": None, f"p{p}_hi": None})
    out["max"] = float(arr.max()) if arr.size else None
    return out
