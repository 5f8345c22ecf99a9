"""Streaming analysis of the audio a response returns.

One :class:`AudioAnalyzer` per response. :meth:`AudioAnalyzer.feed` takes the decoded bytes of each
audio delta with its arrival time and does O(len) numpy work with no per-sample Python loop, so it
can run on every delta of hundreds of sessions in one process. It never keeps the audio: per
``silence_window_ms`` window it keeps one float (the window's mean square), i.e. about 0.4% of the
pcm16 bytes, plus a fixed carry-over buffer for a window split across deltas and the last half
second of deltas not analysed yet (analysed together, so numpy's per-call cost is paid per run).

Two families of numbers come out:

* **Content** — ``audio_bytes``, ``audio_ms`` (duration from the bytes received); silence found by
  comparing each window's RMS with a threshold *relative to the response's speech level*
  (``speech_level_dbfs`` = the ``speech_percentile``-th percentile of the levels of the windows
  above ``silence_floor_dbfs``; threshold = ``speech_level_dbfs + silence_rel_db``, never below
  ``silence_floor_dbfs``). Runs of silent windows touching the start or the end of the audio are the
  response's leading / trailing silence and are reported apart; ``longest_silence_ms`` and
  ``silence_ms`` cover only the *inner* runs (a hole in the middle of the speech is what a listener
  notices as a dropout); ``long_silences`` counts inner runs of at least ``stall_threshold_ms``.
  These are computed when read, in O(windows): read them at the end of the response, not per delta.
  Everything else is O(1) to read.
* **Delivery** — a playback-clock model: a real-time player starts at the first delta's arrival
  (plus ``jitter_buffer_ms``) and plays each delta's audio in order. Whenever a delta arrives after
  the player ran out, the wait is an underrun stretch (``underrun_ms`` in total,
  ``longest_underrun_ms``; stretches of at least ``stall_threshold_ms`` count in ``stalls``).
  Playback resumes at the late delta's arrival. ``max_gap_ms`` is the largest time between two
  consecutive deltas' arrivals.

Arrival times are seconds (``time.monotonic()`` or ``time.time()``, just be consistent);
every reported duration is milliseconds.
"""

from __future__ import annotations

import math

import numpy as np
import pybase64

from loadtest.audio.convert import BYTES_PER_SAMPLE, FORMAT_RATES, check_format
from loadtest.audio.g711 import ALAW_DECODE, ULAW_DECODE

DEFAULT_SILENCE_WINDOW_MS = 20.0
DEFAULT_SILENCE_REL_DB = -35.0  # a window this far below the speech level is silent
DEFAULT_SILENCE_FLOOR_DBFS = -60.0  # ...and never needs to be quieter than this to count as silent
DEFAULT_SPEECH_PERCENTILE = 90.0
DEFAULT_STALL_THRESHOLD_MS = 1500.0
_FULL_SCALE_SQ = 32768.0**2


def percentile(values: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` (its default, linear interpolation) from a partial sort of the
    two neighbours it needs: the same number at a fraction of the cost (numpy's general quantile
    machinery was most of what ending a response cost)."""
    n = values.size
    h = (n - 1) * q / 100.0
    lo = math.floor(h)
    hi = min(lo + 1, n - 1)
    part = np.partition(values, (lo, hi))
    a, b = float(part[lo]), float(part[hi])
    return a + (h - lo) * (b - a)


class AudioAnalyzer:
    """Streaming content and delivery analysis of one response's audio."""

    def __init__(
        self,
        audio_format: str = "pcm16",
        silence_window_ms: float = DEFAULT_SILENCE_WINDOW_MS,
        *,
        silence_rel_db: float = DEFAULT_SILENCE_REL_DB,
        silence_floor_dbfs: float = DEFAULT_SILENCE_FLOOR_DBFS,
        speech_percentile: float = DEFAULT_SPEECH_PERCENTILE,
        jitter_buffer_ms: float = 0.0,
        stall_threshold_ms: float = DEFAULT_STALL_THRESHOLD_MS,
    ) -> None:
        self.audio_format = check_format(audio_format)
        self.rate = FORMAT_RATES[audio_format]
        self._sample_bytes = BYTES_PER_SAMPLE[audio_format]
        self._table = {"g711_ulaw": ULAW_DECODE, "g711_alaw": ALAW_DECODE}.get(audio_format)
        self._win = max(1, round(self.rate * silence_window_ms / 1000))
        self.silence_window_ms = self._win * 1000 / self.rate
        self.silence_rel_db = silence_rel_db
        self.silence_floor_dbfs = silence_floor_dbfs
        self.speech_percentile = speech_percentile
        self.jitter_buffer_ms = jitter_buffer_ms
        self.stall_threshold_ms = stall_threshold_ms
        # content state
        self.audio_bytes = 0
        self.deltas = 0
        self._odd = b""  # a pcm16 byte split across deltas
        self._carry = np.zeros(self._win, dtype=np.int16)
        self._carry_n = 0
        self._ms = np.zeros(256, dtype=np.float32)  # mean square per complete window
        self._n_win = 0
        self._pending: list[bytes] = []  # deltas not analysed yet (at most ~0.5 s of audio)
        self._pending_bytes = 0
        self._flush_bytes = int(0.5 * self.rate * self._sample_bytes)
        self._dirty = True
        self._silence: tuple[float, float, float, float, float, int] = (0.0, 0.0, 0.0, 0.0, -math.inf, 0)
        # delivery state (seconds)
        self.first_arrival: float | None = None
        self.last_arrival: float | None = None
        self._play_end = 0.0
        self._max_gap = 0.0
        self._underrun = 0.0
        self._longest_underrun = 0.0
        self.stalls = 0
        self.finished_at: float | None = None

    # ---- what it keeps (memory per response) --------------------------------------------
    @property
    def pending_deltas(self) -> int:
        """Deltas fed but not analysed yet (they wait in runs of about half a second)."""
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        """Their bytes; analysed once they reach :attr:`flush_bytes`, or at a read or the finish."""
        return self._pending_bytes

    @property
    def flush_bytes(self) -> int:
        return self._flush_bytes

    @property
    def kept_bytes(self) -> int:
        """The analysis state kept for the response: one float per window and the partial window."""
        return int(self._ms.nbytes + self._carry.nbytes)

    # ---- feeding ----------------------------------------------------------------------
    def feed_b64(self, delta_b64: str | bytes, arrival: float) -> None:
        """Like :meth:`feed`, for the base64 ``delta`` field of an audio delta event."""
        self.feed(pybase64.b64decode(delta_b64), arrival)

    def feed(self, delta: bytes, arrival: float) -> None:
        """Account one audio delta (decoded bytes in the analyzer's format) that arrived at ``arrival``."""
        n_bytes = len(delta)
        self.audio_bytes += n_bytes
        self.deltas += 1
        self._clock(n_bytes, arrival)
        if n_bytes:
            # content is analysed in runs of about half a second: numpy's per-call cost is then
            # paid once per run instead of once per delta (same windows, same numbers)
            self._pending.append(delta)
            self._pending_bytes += n_bytes
            self._dirty = True
            if self._pending_bytes >= self._flush_bytes:
                self._flush()

    def _flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        self._pending = []
        self._pending_bytes = 0
        self._content(data)

    def _clock(self, n_bytes: int, arrival: float) -> None:
        seconds = n_bytes / (self.rate * self._sample_bytes)
        if self.first_arrival is None:
            self.first_arrival = arrival
            self._play_end = arrival + self.jitter_buffer_ms / 1000 + seconds
        else:
            gap = arrival - (self.last_arrival or arrival)
            if gap > self._max_gap:
                self._max_gap = gap
            if arrival > self._play_end:  # the player ran dry before this delta came
                starved = arrival - self._play_end
                self._underrun += starved
                if starved > self._longest_underrun:
                    self._longest_underrun = starved
                if starved * 1000 >= self.stall_threshold_ms:
                    self.stalls += 1
                self._play_end = arrival + seconds
            else:
                self._play_end += seconds
        self.last_arrival = arrival

    def _samples(self, delta: bytes) -> np.ndarray:
        if self._table is not None:
            return self._table[np.frombuffer(delta, dtype=np.uint8)]
        if self._odd:
            delta = self._odd + delta
            self._odd = b""
        if len(delta) % 2:
            self._odd = delta[-1:]
            delta = delta[:-1]
        return np.frombuffer(delta, dtype="<i2")

    def _content(self, delta: bytes) -> None:
        x = self._samples(delta)
        win = self._win
        start = 0
        if self._carry_n:
            take = min(win - self._carry_n, len(x))
            self._carry[self._carry_n : self._carry_n + take] = x[:take]
            self._carry_n += take
            start = take
            if self._carry_n == win:
                c = self._carry.astype(np.float32)
                self._push(np.array([np.dot(c, c) / win], dtype=np.float32))
                self._carry_n = 0
        usable = (len(x) - start) // win * win
        if usable:
            body = x[start : start + usable]
            sq = np.multiply(body, body, dtype=np.float32)  # one allocation per half second of audio
            means = np.add.reduce(sq.reshape(-1, win), axis=1)  # ndarray.mean's Python layer, without it
            self._push(np.true_divide(means, win, out=means))
        rest = len(x) - start - usable
        if rest:
            self._carry[:rest] = x[start + usable :]
            self._carry_n = rest
        self._dirty = True

    def _push(self, values: np.ndarray) -> None:
        end = self._n_win + len(values)
        if end > len(self._ms):
            grown = np.zeros(max(end, 2 * len(self._ms)), dtype=np.float32)
            grown[: self._n_win] = self._ms[: self._n_win]
            self._ms = grown
        self._ms[self._n_win : end] = values
        self._n_win = end

    def finish(self, at: float | None = None) -> None:
        """End of the response (``response.done`` / audio done at ``at``): flush a partial window."""
        self._flush()
        if self._carry_n >= max(1, self._win // 4):
            c = self._carry[: self._carry_n].astype(np.float32)
            self._push(np.array([np.dot(c, c) / self._carry_n], dtype=np.float32))
        self._carry_n = 0
        self._dirty = True
        self.finished_at = at

    # ---- silence ----------------------------------------------------------------------
    def _analyse_silence(self) -> tuple[float, float, float, float, float, int]:
        """(longest inner, total inner, leading, trailing silence ms, speech level dBFS, long silences)."""
        if not self._dirty:
            return self._silence
        self._flush()
        n = self._n_win
        w = self.silence_window_ms
        if n == 0:
            result = (0.0, 0.0, 0.0, 0.0, -math.inf, 0)
        else:
            ms = self._ms[:n]
            floor_sq = _FULL_SCALE_SQ * 10 ** (self.silence_floor_dbfs / 10)
            audible = ms[ms >= floor_sq]  # long digital silence must not drag the speech level down
            level_sq = percentile(audible, self.speech_percentile) if audible.size else float(ms.max())
            level_db = 10 * math.log10(level_sq / _FULL_SCALE_SQ) if level_sq > 0 else -math.inf
            thr_db = max(level_db + self.silence_rel_db, self.silence_floor_dbfs)
            silent = ms < _FULL_SCALE_SQ * 10 ** (thr_db / 10)
            if silent.all():
                result = (0.0, 0.0, n * w, 0.0, level_db, 0)
            else:
                loud = np.flatnonzero(~silent)
                lead, trail = int(loud[0]), int(n - 1 - loud[-1])
                inner = silent[loud[0] : loud[-1] + 1]
                # run lengths of silent windows inside the speech
                edges = np.diff(np.concatenate(([0], inner.view(np.int8), [0])))
                runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
                longest = float(runs.max()) * w if len(runs) else 0.0
                # a hole rarely starts on a window boundary: the windows it shares with speech stay loud,
                # so a stretch counts as long within one window of the threshold
                long_count = int(np.count_nonzero((runs + 1) * w >= self.stall_threshold_ms)) if len(runs) else 0
                result = (longest, float(inner.sum()) * w, lead * w, trail * w, level_db, long_count)
        self._silence = result
        self._dirty = False
        return result

    @property
    def longest_silence_ms(self) -> float:
        """Longest silent stretch inside the speech (leading/trailing silence excluded)."""
        return self._analyse_silence()[0]

    @property
    def silence_ms(self) -> float:
        """Total silent time inside the speech (leading/trailing silence excluded)."""
        return self._analyse_silence()[1]

    @property
    def leading_silence_ms(self) -> float:
        return self._analyse_silence()[2]

    @property
    def trailing_silence_ms(self) -> float:
        return self._analyse_silence()[3]

    @property
    def speech_level_dbfs(self) -> float:
        """The speech level the silence threshold is relative to (-inf for pure digital silence)."""
        return self._analyse_silence()[4]

    @property
    def long_silences(self) -> int:
        """Inner silent stretches of at least ``stall_threshold_ms`` (less one window of edge slack)."""
        return self._analyse_silence()[5]

    # ---- delivery ---------------------------------------------------------------------
    @property
    def audio_ms(self) -> float:
        return self.audio_bytes * 1000 / (self.rate * self._sample_bytes)

    @property
    def max_gap_ms(self) -> float:
        """Largest time between two consecutive deltas' arrivals."""
        return self._max_gap * 1000

    @property
    def underrun_ms(self) -> float:
        """Total time a real-time player starting at the first delta would have had nothing to play."""
        return self._underrun * 1000

    @property
    def longest_underrun_ms(self) -> float:
        return self._longest_underrun * 1000

    @property
    def done_gap_ms(self) -> float | None:
        """Time from the last delta to :meth:`finish`'s ``at`` (None if unknown)."""
        if self.finished_at is None or self.last_arrival is None:
            return None
        return (self.finished_at - self.last_arrival) * 1000

    def summary(self) -> dict[str, float | int | None]:
        """Every number as a plain dict (for records and traces)."""
        return {
            "audio_bytes": self.audio_bytes,
            "audio_ms": round(self.audio_ms, 1),
            "deltas": self.deltas,
            "max_gap_ms": round(self.max_gap_ms, 1),
            "underrun_ms": round(self.underrun_ms, 1),
            "longest_underrun_ms": round(self.longest_underrun_ms, 1),
            "stalls": self.stalls,
            "longest_silence_ms": round(self.longest_silence_ms, 1),
            "silence_ms": round(self.silence_ms, 1),
            "leading_silence_ms": round(self.leading_silence_ms, 1),
            "trailing_silence_ms": round(self.trailing_silence_ms, 1),
            "long_silences": self.long_silences,
        }
