"""Alerts that know what normal looks like: the current window against the same window of
the day (same time of day) on each of the past 7 days.

Kinds:
- latency_p95_anomaly, ttft_p95_anomaly: the window's p95 (the dashboard's percentile)
- error_rate_anomaly: failed model attempts / attempts (chatwatch's own refusals left out)
- traffic_drop: user requests (first attempts) in the window

A kind that rises (the first three) holds when the value is at least `threshold` times the
baseline (its mean over the past days' windows) AND above the baseline's band (mean + 3
standard deviations of those windows, never narrower than the chance swing of the current
window's size): the ratio says "this is a lot worse", the band says "and not something
these days already swing by". traffic_drop holds when traffic is at most
`threshold` times the baseline and below the band. Each side needs `min_requests`: the
current window (traffic_drop excepted: no traffic is what it looks for) and every baseline
day counted; with fewer than BASELINE_MIN_DAYS usable days there is no baseline ("no data").
With `no_data = "zero"` a current window under min_requests measures 0 (never holds, and
clears a firing alert); a missing baseline stays "no data" (0 against nothing says nothing).

Because the baseline is the same hour of other days, a daily peak that comes every day is
normal and never fires; a step change fires within the window.

Reads raw rows of 8 windows (indexes on started_us and (model, started_us)): alert windows
are minutes to hours, and raw rows are kept for 30 days.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import sqlalchemy as sa

from chatwatch.alerts.model import BASELINE_KINDS, US_PER_MIN, Measurement, Rule
from chatwatch.reports.percentile import percentile
from chatwatch.store.record import LOCAL_REFUSALS
from chatwatch.store.schema import requests

US_PER_DAY = 86_400_000_000
BASELINE_DAYS = 7
BASELINE_MIN_DAYS = 3
BAND_SIGMAS = 3.0
HYSTERESIS = 0.10
ALPHA = 0.001  # how unlikely by chance alone a count must be to count as an anomaly
# Smallest baseline a ratio is taken against, so "3x a baseline of 0 errors" is not "any error".
FLOOR = {"latency_p95_anomaly": 0.01, "ttft_p95_anomaly": 0.01, "error_rate_anomaly": 0.01, "traffic_drop": 1.0}
RISING = BASELINE_KINDS - {"traffic_drop"}
KINDS = (*sorted(RISING), "traffic_drop")

Reading = tuple[float | None, int]  # (value, samples)


def _rows(conn: sa.Connection, rule: Rule, lo: int, hi: int, *cols) -> list:
    r = requests.c
    stmt = sa.select(*cols).where(r.started_us > lo, r.started_us <= hi, r.status != "cancelled")
    if rule.model is not None:
        stmt = stmt.where(r.model == rule.model)
    return conn.execute(stmt).all()


def _p95(column: sa.Column) -> Callable[[sa.Connection, Rule, int, int], Reading]:
    def read(conn: sa.Connection, rule: Rule, lo: int, hi: int) -> Reading:
        values = [v for (v,) in _rows(conn, rule, lo, hi, column) if v is not None]
        return (percentile(values, 95) if values else None), len(values)

    return read


def _error_rate(conn: sa.Connection, rule: Rule, lo: int, hi: int) -> Reading:
    r = requests.c
    rows = [s for s, e in _rows(conn, rule, lo, hi, r.status, r.error_type) if e not in LOCAL_REFUSALS]
    if not rows:
        return None, 0
    return sum(s == "error" for s in rows) / len(rows), len(rows)


def _traffic(conn: sa.Connection, rule: Rule, lo: int, hi: int) -> Reading:
    attempts = [a for (a,) in _rows(conn, rule, lo, hi, requests.c.attempt)]
    return float(sum(a == 1 for a in attempts)), len(attempts)


READERS: dict[str, Callable[[sa.Connection, Rule, int, int], Reading]] = {
    "latency_p95_anomaly": _p95(requests.c.latency_s),
    "ttft_p95_anomaly": _p95(requests.c.ttft_s),
    "error_rate_anomaly": _error_rate,
    "traffic_drop": _traffic,
}


def measure(conn: sa.Connection, rule: Rule, now_us: int) -> Measurement:
    """The current window's value, with `baseline` (mean of the past days' same windows) and
    `band` (mean -+ BAND_SIGMAS standard deviations)."""
    read = READERS[rule.kind]
    width = int(rule.window_minutes * US_PER_MIN)
    need = max(1, rule.min_requests)
    value, samples = read(conn, rule, now_us - width, now_us)
    past = []
    for day in range(1, BASELINE_DAYS + 1):
        end = now_us - day * US_PER_DAY
        v, n = read(conn, rule, end - width, end)
        if v is not None and n >= need:
            past.append(v)
    if rule.kind == "traffic_drop":
        value = value or 0.0  # no requests at all is the drop it looks for
        enough_now = True
    else:
        enough_now = value is not None and samples >= need
    if not enough_now and rule.no_data == "zero":  # the user's choice: an empty window measures 0
        value, enough_now = 0.0, True
    if len(past) < BASELINE_MIN_DAYS or not enough_now:
        return Measurement(value=None, samples=samples, holds=False, clear=False, no_data=True)
    mean = float(np.mean(past))
    base = max(mean, FLOOR[rule.kind])
    sd = float(np.std(past, ddof=1)) if len(past) > 1 else 0.0
    low, high = mean - BAND_SIGMAS * sd, mean + BAND_SIGMAS * sd
    # Never narrower than what chance alone gives at the current window's size.
    if rule.kind == "error_rate_anomaly" and samples:
        high = max(high, binomial_upper_critical(samples, min(base, 1.0)) / samples)
    elif rule.kind == "traffic_drop":
        low = min(low, float(poisson_lower_critical(base)))
    band = (low, high)
    assert value is not None
    if rule.kind in RISING:
        holds = value >= rule.threshold * base and value > high
        clear = not holds and (value <= rule.threshold * base * (1 - HYSTERESIS) or value <= high)
    else:
        holds = value <= rule.threshold * base and value < low
        clear = not holds and (value >= rule.threshold * base * (1 + HYSTERESIS) or value >= low)
    return Measurement(
        value=value,
        samples=samples,
        holds=holds,
        clear=clear,
        model=rule.model,
        baseline=mean,
        band=band,
    )


def binomial_upper_critical(n: int, p: float, alpha: float = ALPHA) -> int:
    """The fewest failures k out of n with P(X >= k) < alpha for a failure rate p: fewer
    than that happen by chance alone often enough to be normal."""
    if n <= 0:
        return 0
    if p <= 0:
        return 1
    if p >= 1:
        return n + 1
    pmf = (1 - p) ** n  # P(X = 0)
    below = 0.0  # P(X < k)
    for k in range(n + 1):
        if 1 - below < alpha:
            return k
        below += pmf
        pmf *= (n - k) / (k + 1) * p / (1 - p)
    return n + 1


def poisson_lower_critical(mean: float, alpha: float = ALPHA) -> int:
    """The largest count k with P(X <= k) < alpha for a Poisson mean (-1: none): more than
    that is within chance of a normal window."""
    if mean <= 0:
        return -1
    pmf = math.exp(-mean)
    cdf, k = pmf, 0
    if cdf >= alpha:
        return -1
    while True:
        pmf *= mean / (k + 1)
        if cdf + pmf >= alpha:
            return k
        cdf += pmf
        k += 1


def validate_threshold(kind: str, threshold: float) -> bool:
    """A rising kind's threshold is a ratio above 1 (2 = twice the baseline); traffic_drop's
    a fraction below 1 (0.5 = half the baseline)."""
    if not math.isfinite(threshold):
        return False
    return threshold > 1 if kind in RISING else 0 < threshold < 1
