"""Log-spaced duration histogram: bucket index <-> bounds, and percentiles from counts.

Why: long-range dashboards and alerts read per-minute/per-hour rollups instead of every raw
row, so each rollup keeps its latency and TTFT as counts per bucket, small enough to update
in the write transaction of every request.

Range and error: regular buckets cover LOW_S (96 µs, just under 0.1 ms) to HIGH_S (7,334 s,
just over 2 h); each is GROWTH (5 %) wider than the one before, so any value inside a bucket
is within 5 % of any other value in it, and every percentile of values in that range is
estimated within 5 % relative error. Index 0 is the underflow bucket [0, LOW_S), the last
index the overflow bucket [HIGH_S, inf). A percentile that needs a value from either of
them is not a number within 5 %: `percentiles` returns it as `Beyond(bound_s, above)`
("> 2 h", "< 0.1 ms"), and `estimate_2d` flags it in its `beyond` array.

Layout history: version 1 (until migration 0020) had 1 ms to 1 h (312 buckets). Version 2
keeps every v1 edge bit for bit: EDGES are ANCHOR_S * GROWTH**(k - ANCHOR_INDEX), with
ANCHOR_S = 1 ms at index ANCHOR_INDEX = 48, so a v1 regular bucket i is v2 bucket i + 48
(store/migrations/m0020_histogram_range.py moves stored blobs).

Percentiles follow numpy's default (linear interpolation between order statistics): each
order statistic needed is estimated inside the bucket that holds it.
"""

from __future__ import annotations

import math
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

LAYOUT_VERSION = 2
GROWTH = 1.05
ANCHOR_S = 0.001  # an edge of every layout so far: v1 started here
ANCHOR_INDEX = 48  # regular buckets below 1 ms: 1 ms / 1.05**48 = 96 µs <= 0.1 ms
COVERS_S = (0.0001, 7200.0)  # the promise: 0.1 ms to 2 h lie inside regular buckets
REGULAR = ANCHOR_INDEX + math.ceil(math.log(COVERS_S[1] / ANCHOR_S) / math.log(GROWTH))
UNDERFLOW = 0
OVERFLOW = REGULAR + 1
SIZE = REGULAR + 2
RELATIVE_ERROR = GROWTH - 1

# EDGES[k] is the lower bound of bucket k + 1; computed once so index() and bounds() agree.
EDGES: tuple[float, ...] = tuple(ANCHOR_S * GROWTH ** (k - ANCHOR_INDEX) for k in range(REGULAR + 1))
LOW_S = EDGES[0]
HIGH_S = EDGES[-1]
assert LOW_S <= COVERS_S[0] and HIGH_S > COVERS_S[1]
_EDGES_NP = np.asarray(EDGES)
_LOWER = np.concatenate(([0.0], _EDGES_NP))  # lower bound of every bucket
_UPPER = np.concatenate((_EDGES_NP, [math.inf]))  # upper bound of every bucket


@dataclass(frozen=True)
class Beyond:
    """A percentile the histogram cannot place within its error: it lies above `bound_s`
    (`above=True`, a guaranteed lower bound, e.g. "> 2 h") or below it (`above=False`, a
    guaranteed upper bound, e.g. "< 0.1 ms"). Deliberately not a float, so it cannot be
    averaged, compared or plotted as if it were a measurement."""

    bound_s: float
    above: bool = True

    @property
    def text(self) -> str:
        """How a page or the CLI says it, rounded outwards so it stays true: a bound of
        7,334 s above reads "> 2 h", one of 96 µs below reads "< 0.1 ms"."""
        for unit, size in (("h", 3600.0), ("min", 60.0), ("s", 1.0), ("ms", 1e-3)):
            if self.bound_s >= size or unit == "ms":
                x = self.bound_s / size
                x = math.floor(x * 10) / 10 if self.above else math.ceil(x * 10) / 10
                return f"{'>' if self.above else '<'} {x:g} {unit}"
        raise AssertionError("unreachable")


class Estimates(NamedTuple):
    """`estimate_2d`'s result: `values` (groups x qs) holds the estimate, the bound (where
    `beyond` is not 0) or NaN (empty group); `beyond` is +1 above the range, -1 below, 0 in."""

    values: np.ndarray
    beyond: np.ndarray


def index(value_s: float) -> int:
    """Bucket holding `value_s` (negative values count as underflow)."""
    return bisect_right(EDGES, value_s)


def indexes(values_s: np.ndarray) -> np.ndarray:
    """Vectorised index() for many values."""
    return np.searchsorted(_EDGES_NP, values_s, side="right")


def bounds(i: int) -> tuple[float, float]:
    """[lower, upper) of bucket `i`: (0, LOW_S) for underflow, (HIGH_S, inf) for overflow."""
    if not 0 <= i < SIZE:
        raise ValueError(f"histogram bucket {i} is outside 0..{SIZE - 1}")
    return float(_LOWER[i]), float(_UPPER[i])


def dense(counts: Mapping[int, int] | Iterable[tuple[int, int]]) -> np.ndarray:
    """A SIZE-long count vector from sparse (bucket, count) pairs."""
    out = np.zeros(SIZE, dtype=np.int64)
    items = counts.items() if isinstance(counts, Mapping) else counts
    for i, n in items:
        if not 0 <= int(i) < SIZE:
            raise ValueError(f"histogram bucket {i} is outside 0..{SIZE - 1}")
        out[int(i)] += int(n)
    return out


def of_values(values_s: Iterable[float]) -> np.ndarray:
    """Dense counts of raw values (used for the raw edges of a rollup query and in tests)."""
    arr = np.asarray([v for v in values_s if v is not None], dtype=float)
    return np.bincount(indexes(arr), minlength=SIZE).astype(np.int64)


# --- stored form: sparse (bucket, count) pairs of little-endian uint32, sorted by bucket ---

_SWAP = sys.byteorder != "little"


def blob_add(blob: bytes | None, i: int, n: int = 1) -> bytes:
    """`blob` with `n` more values in bucket `i` (runs once per request: plain array ops)."""
    pairs = array("I")
    if blob:
        pairs.frombytes(blob)
        if _SWAP:
            pairs.byteswap()
    buckets = pairs[0::2]
    pos = bisect_left(buckets, i)
    if pos < len(buckets) and buckets[pos] == i:
        pairs[2 * pos + 1] += n
    else:
        pairs[2 * pos : 2 * pos] = array("I", (i, n))
    if _SWAP:
        pairs.byteswap()
    return pairs.tobytes()


def blob_pairs(blob: bytes | None) -> np.ndarray:
    """(k x 2) array of (bucket, count) from a stored blob."""
    if not blob:
        return np.zeros((0, 2), dtype=np.int64)
    return np.frombuffer(blob, dtype="<u4").reshape(-1, 2).astype(np.int64)


def blob_of(counts: np.ndarray) -> bytes:
    """Stored form of a dense count vector."""
    nz = np.flatnonzero(counts)
    return np.column_stack((nz, counts[nz])).astype("<u4").tobytes()


# --- percentiles --------------------------------------------------------------------------


def percentiles(counts: np.ndarray | Mapping[int, int], qs: Sequence[float]) -> list[float | Beyond | None]:
    """Estimated percentiles (0..100) of the values counted in `counts`: a float within
    RELATIVE_ERROR, a `Beyond` when the percentile lies outside [LOW_S, HIGH_S), None if empty."""
    vec = counts if isinstance(counts, np.ndarray) else dense(counts)
    est = estimate_2d(vec.reshape(1, -1), qs)
    out: list[float | Beyond | None] = []
    for v, side in zip(est.values[0], est.beyond[0]):
        out.append(None if math.isnan(v) else Beyond(float(v), above=bool(side > 0)) if side else float(v))
    return out


def estimate_2d(counts: np.ndarray, qs: Sequence[float]) -> Estimates:
    """Row-wise percentiles of a (groups x SIZE) count matrix, (groups x len(qs)) each.
    Vectorised so a 7-day timeseries needs no Python loop per bucket.

    A percentile interpolated from two order statistics a, b (weight f on b) is beyond
    the range when a or b is in the overflow bucket: then it is at least
    (1 - f) * lower(a) + f * lower(b) (`beyond` +1, that bound in `values`); else, when a or
    b is in the underflow bucket, it is less than (1 - f) * upper(a) + f * upper(b) (-1)."""
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 2 or counts.shape[1] != SIZE:
        raise ValueError(f"histogram counts must be (groups x {SIZE}), got shape {counts.shape}")
    groups = counts.shape[0]
    cum = np.cumsum(counts, axis=1)
    total = cum[:, -1]
    values = np.full((groups, len(qs)), np.nan)
    beyond = np.zeros((groups, len(qs)), dtype=np.int8)
    live = total > 0
    if not live.any():
        return Estimates(values, beyond)
    cum, total, counts_live = cum[live], total[live], counts[live]
    for col, q in enumerate(qs):
        rank = np.clip(q / 100.0, 0.0, 1.0) * (total - 1)
        lo_rank = np.floor(rank)
        frac = rank - lo_rank
        hi_rank = np.minimum(lo_rank + 1, total - 1)
        a, a_bucket = _order_statistic(cum, counts_live, lo_rank)
        b, b_bucket = _order_statistic(cum, counts_live, hi_rank)
        # An order statistic with no weight (frac 0 or 1) does not make the result beyond.
        over = ((a_bucket == OVERFLOW) & (frac < 1)) | ((b_bucket == OVERFLOW) & (frac > 0))
        under = ~over & (((a_bucket == UNDERFLOW) & (frac < 1)) | ((b_bucket == UNDERFLOW) & (frac > 0)))
        inside = a + frac * (b - a)
        at_least = _weigh(_LOWER[a_bucket], _LOWER[b_bucket], frac)
        below = _weigh(_UPPER[a_bucket], _UPPER[b_bucket], frac)
        values[live, col] = np.where(over, at_least, np.where(under, below, inside))
        side = np.zeros(len(total), dtype=np.int8)
        side[over], side[under] = 1, -1
        beyond[live, col] = side
    return Estimates(values, beyond)


def _weigh(a: np.ndarray, b: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """(1 - frac) * a + frac * b where a term of weight 0 counts 0 even if infinite."""
    with np.errstate(invalid="ignore"):
        return np.where(frac < 1, (1 - frac) * a, 0.0) + np.where(frac > 0, frac * b, 0.0)


def _order_statistic(cum: np.ndarray, counts: np.ndarray, rank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Estimate of the rank-th smallest value (0-based) of each row, placed inside its bucket
    by its position among that bucket's values (geometrically: the buckets are log-spaced),
    and the bucket it is in. Underflow and overflow get their finite bound (callers flag them)."""
    rows = np.arange(cum.shape[0])
    b = np.argmax(cum > rank[:, None], axis=1)
    n = counts[rows, b]
    before = cum[rows, b] - n
    pos = (rank - before + 0.5) / n
    regular = (b > UNDERFLOW) & (b < OVERFLOW)
    lower = np.where(regular, _LOWER[b], 1.0)
    upper = np.where(regular, _UPPER[b], 1.0)
    est = np.where(regular, lower * np.power(upper / lower, pos), np.where(b == UNDERFLOW, LOW_S, HIGH_S))
    return est, b
