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

from chatwatch.store.histogram import percentiles as estimate  # noqa: F401 - the histogram method

__all__ = ["estimate", "percentile", "percentiles"]


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
