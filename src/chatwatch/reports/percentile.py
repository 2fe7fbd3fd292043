"""The one percentile of chatwatch: the dashboard, alerts, `chatwatch stats` and the
benchmarks all call these, so "p95" means the same number everywhere.

Why one: an alert "latency p95 > 2 s" must fire exactly when the dashboard shows a p95
above 2 s for the same window and scope. With nearest rank in one place and linear
interpolation in another, a window of 20 requests could show 1.9 s and fire at 2.1 s.

Two methods, and a page says which one it shows:

* ``exact``: numpy's default (linear interpolation between closest ranks, "type 7") on
  the raw values. Used whenever the raw rows of the window are available.
* ``histogram``: the estimate from the rollups' log-spaced histograms
  (`chatwatch.store.histogram`), within their stated relative error, for windows too
  large to read row by row or whose raw rows were cleaned up.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
    2.5
    >>> percentile([], 95) is None
    True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["percentile", "percentiles", "percentiles_by_group"]


def percentile(values: Iterable[float], q: float) -> float | None:
    """The `q`-th percentile (0..100) of `values`, numpy's linear method; None if empty."""
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    if arr.size == 0:
        return None
    return float(np.percentile(arr, q))


def percentiles(values: Iterable[float], qs: Sequence[float]) -> list[float | None]:
    """Several percentiles of the same values in one pass (one sort)."""
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    if arr.size == 0:
        return [None for _ in qs]
    return [float(v) for v in np.percentile(arr, list(qs))]


def percentiles_by_group(values: np.ndarray, groups: np.ndarray, n_groups: int, qs: Sequence[float]) -> np.ndarray:
    """`percentiles` of each group at once: (n_groups x len(qs)), NaN for a group without
    values. `groups[i]` (0..n_groups-1) is the group of `values[i]`. A dashboard's
    timeseries has hundreds of small groups and a call per group costs more than the
    data: groups of the same size are stacked and go through ONE np.percentile(axis=1),
    the very computation `percentiles` does on each of them, so the numbers are identical."""
    values = np.asarray(values, dtype=float)
    groups = np.asarray(groups, dtype=np.int64)
    if values.shape != groups.shape or values.ndim != 1:
        raise ValueError(f"values {values.shape} and groups {groups.shape} must be 1-D of the same length")
    if groups.size and (groups.min() < 0 or groups.max() >= n_groups):
        raise ValueError(f"group ids must lie in 0..{n_groups - 1}")
    out = np.full((n_groups, len(qs)), np.nan)
    order = np.argsort(groups, kind="stable")
    ordered = values[order]
    sizes = np.bincount(groups, minlength=n_groups)
    starts = np.cumsum(sizes) - sizes
    for n in np.unique(sizes[sizes > 0]):
        rows = np.flatnonzero(sizes == n)
        block = ordered[starts[rows, None] + np.arange(n)]
        out[rows] = np.percentile(block, list(qs), axis=1).T
    return out
