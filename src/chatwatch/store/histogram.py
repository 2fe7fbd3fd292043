"""Log-spaced duration histogram: bucket index <-> bounds, and percentiles from counts.

Regular buckets cover LOW_S (1 ms) to beyond HIGH_S (1 hour); each is GROWTH (5 %) wider
than the one before, so any value inside a bucket is within 5 % of any other value in it.
Index 0 is the underflow bucket [0, 1 ms) and the last index the overflow bucket.

Percentiles follow numpy's default (linear interpolation between order statistics): each
order statistic needed is estimated inside the bucket that holds it, so the result stays
within 5 % relative error of the exact value for anything between 1 ms and 1 hour.
"""

from __future__ import annotations

import math
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

LOW_S = 0.001
HIGH_S = 3600.0
GROWTH = 1.05
REGULAR = math.ceil(math.log(HIGH_S / LOW_S) / math.log(GROWTH))
UNDERFLOW = 0
OVERFLOW = REGULAR + 1
SIZE = REGULAR + 2

# EDGES[k] is the lower bound of bucket k + 1; computed once so index() and bounds() agree.
EDGES: tuple[float, ...] = tuple(LOW_S * GROWTH**k for k in range(REGULAR + 1))
_EDGES_NP = np.asarray(EDGES)
_LOWER = np.concatenate(([0.0], _EDGES_NP))  # lower bound of every bucket
_UPPER = np.concatenate((_EDGES_NP, [math.inf]))  # upper bound of every bucket


def index(value_s: float) -> int:
    """Bucket holding `value_s` (negative values count as underflow)."""
    return bisect_right(EDGES, value_s)


def indexes(values_s: np.ndarray) -> np.ndarray:
    """Vectorised index() for many values."""
    return np.searchsorted(_EDGES_NP, values_s, side="right")


def bounds(i: int) -> tuple[float, float]:
    """[lower, upper) of bucket `i`: (0, LOW_S) for underflow, (…, inf) for overflow."""
    if not 0 <= i < SIZE:
        raise ValueError(f"histogram bucket {i} is outside 0..{SIZE - 1}")
    return float(_LOWER[i]), float(_UPPER[i])


def dense(counts: Mapping[int, int] | Iterable[tuple[int, int]]) -> np.ndarray:
    """A SIZE-long count vector from sparse (bucket, count) pairs."""
    out = np.zeros(SIZE, dtype=np.int64)
    items = counts.items() if isinstance(counts, Mapping) else counts
    for i, n in items:
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


def percentiles(counts: np.ndarray | Mapping[int, int], qs: Sequence[float]) -> list[float | None]:
    """Estimated percentiles (0..100) of the values counted in `counts`; None if empty."""
    vec = counts if isinstance(counts, np.ndarray) else dense(counts)
    out = percentiles_2d(vec.reshape(1, -1), qs)
    return [None if math.isnan(v) else float(v) for v in out[0]]


def percentiles_2d(counts: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Row-wise percentiles of a (groups x SIZE) count matrix -> (groups x len(qs)); NaN
    where a row is empty. Vectorised so a 7-day timeseries needs no Python loop per bucket."""
    counts = np.asarray(counts, dtype=np.int64)
    groups = counts.shape[0]
    cum = np.cumsum(counts, axis=1)
    total = cum[:, -1]
    out = np.full((groups, len(qs)), np.nan)
    live = total > 0
    if not live.any():
        return out
    cum, total, counts_live = cum[live], total[live], counts[live]
    for col, q in enumerate(qs):
        rank = np.clip(q / 100.0, 0.0, 1.0) * (total - 1)
        lo_rank = np.floor(rank)
        frac = rank - lo_rank
        hi_rank = np.minimum(lo_rank + 1, total - 1)
        a = _order_statistic(cum, counts_live, lo_rank)
        b = _order_statistic(cum, counts_live, hi_rank)
        out[live, col] = a + frac * (b - a)
    return out


def _order_statistic(cum: np.ndarray, counts: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Estimate of the rank-th smallest value (0-based) of each row, placed inside its bucket
    by its position among that bucket's values (geometrically: the buckets are log-spaced)."""
    rows = np.arange(cum.shape[0])
    b = np.argmax(cum > rank[:, None], axis=1)
    n = counts[rows, b]
    before = cum[rows, b] - n
    pos = (rank - before + 0.5) / n
    lower, upper = _LOWER[b], _UPPER[b]
    regular = (b > UNDERFLOW) & (b < OVERFLOW)
    est = np.where(regular, lower * np.power(upper / np.where(regular, lower, 1.0), pos), lower)
    # Underflow: linear inside [0, 1 ms); overflow: the bucket's lower bound (no upper bound).
    return np.where(b == UNDERFLOW, LOW_S * pos, est)
