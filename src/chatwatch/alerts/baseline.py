"""Alerts that know what normal looks like: the current window against a baseline made of
earlier windows of the same length.

Kinds:
- latency_p95_anomaly, ttft_p95_anomaly: the window's p95 (the dashboard's percentile)
- error_rate_anomaly: failed model attempts / attempts (chatwatch's own refusals left out)
- traffic_drop: user requests (first attempts) in the window

The baseline (rule option `baseline`):
- "daily" (the default): the same window of the day on each of the past 7 days, so a daily
  peak that comes every day is normal and never fires. Needs BASELINE_MIN_DAYS usable days.
- "recent": the `baseline_windows` windows (default 6) right before the current one, back
  to back. Useful from the first hour (no week of history) and for traffic without a daily
  cycle; a slow drift becomes the new normal instead of firing. Needs half of those windows
  (rounded up, at least 2) usable.
A baseline window is usable when it has `min_requests`; the current window needs them too
(traffic_drop excepted: no traffic is what it looks for). Too few usable windows is "no
data", with `usable` saying how many there were, so the page says which side is missing.
With `no_data = "zero"` a current window under min_requests measures 0 (never holds, and
clears a firing alert); a missing baseline stays "no data" (0 against nothing says nothing).

How far from normal fires (rule option `score`):
- "ratio" (the default): a rising kind holds when the value is at least `threshold` times
  the baseline (the mean of the usable windows) AND above the band (mean + 3 standard
  deviations of those windows, never narrower than the chance swing of the current window's
  size): the ratio says "this is a lot worse", the band says "and not something these
  windows already swing by". traffic_drop holds at most `threshold` times the baseline and
  below the band.
- "z": holds when the value is at least `threshold` standard deviations above the mean
  (below, for traffic_drop). The standard deviation is never smaller than the band's floor
  (the chance swing above, as a third of the band's half-width) nor than 5 % of the
  baseline, so a flat baseline does not turn every wiggle into an infinite z. The band
  shown is then mean -+ threshold of those deviations: where it fires.
A firing alert clears with hysteresis (10 % below the ratio or the z, or back in the band).

Raw rows, not the rollups: a window is minutes to hours and ends at any minute, and the
baselines reach back at most 7 days (BASELINE_DAYS; "recent" is capped at the same span)
while raw rows are kept for `raw_days` (30 by default). Raw rows give the exact p95 and the
exact counts the plain kinds and the dashboard use; the rollups' histogram p95 is only within
5 % and their minute buckets would cut windows at bucket edges. Reads use the indexes on
started_us and (model, started_us): one query per window for "daily" (8 days apart), one
query for "recent" (its windows are back to back), split into windows here.
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
# score "z": the smallest spread, as a fraction of the baseline (5 %: what a percentile read
# from the rollups' histograms is within), and the largest threshold that makes sense.
SD_FLOOR_FRACTION = 0.05
Z_MAX = 100.0
# baseline "recent": how far back its windows may reach together (raw rows, as "daily" reads).
RECENT_MAX_MINUTES = BASELINE_DAYS * 24 * 60
ALPHA = 0.001  # how unlikely by chance alone a count must be to count as an anomaly
# Smallest baseline a ratio is taken against, so "3x a baseline of 0 errors" is not "any error".
FLOOR = {"latency_p95_anomaly": 0.01, "ttft_p95_anomaly": 0.01, "error_rate_anomaly": 0.01, "traffic_drop": 1.0}
RISING = BASELINE_KINDS - {"traffic_drop"}
KINDS = (*sorted(RISING), "traffic_drop")

Reading = tuple[float | None, int]  # (value, samples)


def _p95(column: str) -> Callable[[list], Reading]:
    def value(rows: list) -> Reading:
        values = [v for v in (getattr(row, column) for row in rows) if v is not None]
        return (percentile(values, 95) if values else None), len(values)

    return value


def _error_rate(rows: list) -> Reading:
    outcomes = [row.status for row in rows if row.error_type not in LOCAL_REFUSALS]
    if not outcomes:
        return None, 0
    return sum(s == "error" for s in outcomes) / len(outcomes), len(outcomes)


def _traffic(rows: list) -> Reading:
    return float(sum(row.attempt == 1 for row in rows)), len(rows)


# Each kind's value from a window's rows.
VALUES: dict[str, Callable[[list], Reading]] = {
    "latency_p95_anomaly": _p95("latency_s"),
    "ttft_p95_anomaly": _p95("ttft_s"),
    "error_rate_anomaly": _error_rate,
    "traffic_drop": _traffic,
}


def _fetch(conn: sa.Connection, rule: Rule, lo: int, hi: int) -> list:
    """The rule's rows with lo < started_us <= hi (cancelled requests left out)."""
    r = requests.c
    stmt = sa.select(r.started_us, r.latency_s, r.ttft_s, r.status, r.error_type, r.attempt).where(
        r.started_us > lo, r.started_us <= hi, r.status != "cancelled"
    )
    if rule.model is not None:
        stmt = stmt.where(r.model == rule.model)
    return conn.execute(stmt).all()


def _windows(conn: sa.Connection, rule: Rule, now_us: int) -> tuple[list, list[list]]:
    """The current window's rows and each baseline window's: one query for back-to-back
    recent windows (split by started_us here), one per day for daily ones."""
    width = int(rule.window_minutes * US_PER_MIN)
    if rule.baseline == "recent":
        n = rule.baseline_windows
        split: list[list] = [[] for _ in range(n + 1)]
        for row in _fetch(conn, rule, now_us - (n + 1) * width, now_us):
            split[(now_us - row.started_us) // width].append(row)  # k: now-(k+1)w < started <= now-kw
        return split[0], split[1:]
    ends = (now_us - day * US_PER_DAY for day in range(1, BASELINE_DAYS + 1))  # the same time, past days
    past = [_fetch(conn, rule, end - width, end) for end in ends]
    return _fetch(conn, rule, now_us - width, now_us), past


def min_usable(rule: Rule) -> int:
    """How many baseline windows need min_requests for there to be a baseline: 3 of the 7
    days, or half the recent windows (rounded up, at least 2: a spread needs two)."""
    if rule.baseline == "recent":
        return max(2, math.ceil(rule.baseline_windows / 2))
    return BASELINE_MIN_DAYS


def measure(conn: sa.Connection, rule: Rule, now_us: int) -> Measurement:
    """The current window's value, with `baseline` (mean of the baseline windows) and
    `band` (where the value would fire beyond: mean -+ BAND_SIGMAS standard deviations for
    score "ratio", mean -+ threshold spreads for score "z", with `z` itself)."""
    value_of = VALUES[rule.kind]
    need = max(1, rule.min_requests)
    current, windows = _windows(conn, rule, now_us)
    value, samples = value_of(current)
    past = []
    for rows in windows:
        v, n = value_of(rows)
        if v is not None and n >= need:
            past.append(v)
    if rule.kind == "traffic_drop":
        value = value or 0.0  # no requests at all is the drop it looks for
        enough_now = True
    else:
        enough_now = value is not None and samples >= need
    if not enough_now and rule.no_data == "zero":  # the user's choice: an empty window measures 0
        value, enough_now = 0.0, True
    if len(past) < min_usable(rule) or not enough_now:
        return Measurement(value=None, samples=samples, holds=False, clear=False, no_data=True, usable=len(past))
    assert value is not None
    mean = float(np.mean(past))
    base = max(mean, FLOOR[rule.kind])
    sd = float(np.std(past, ddof=1))
    low, high = mean - BAND_SIGMAS * sd, mean + BAND_SIGMAS * sd
    # Never narrower than what chance alone gives at the current window's size.
    if rule.kind == "error_rate_anomaly" and samples:
        high = max(high, binomial_upper_critical(samples, min(base, 1.0)) / samples)
    elif rule.kind == "traffic_drop":
        low = min(low, float(poisson_lower_critical(base)))
    if rule.score == "z":
        return _by_z(rule, value, samples, mean, spread(rule.kind, base, mean, sd, low, high))
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
        band=(low, high),
    )


def spread(kind: str, base: float, mean: float, sd: float, low: float, high: float) -> float:
    """The standard deviation a z-score divides by: the baseline windows' own, never
    smaller than the band's floor (the spread that chance alone gives at this window's
    size: the band's edge is BAND_SIGMAS of them from the mean) nor than SD_FLOOR_FRACTION
    of the baseline, so a flat baseline does not make every wiggle an infinite z."""
    chance = (high - mean) if kind in RISING else (mean - low)
    return max(sd, chance / BAND_SIGMAS, SD_FLOOR_FRACTION * base)


def _by_z(rule: Rule, value: float, samples: int, mean: float, sd: float) -> Measurement:
    z = (value - mean) / sd if rule.kind in RISING else (mean - value) / sd
    holds = z >= rule.threshold
    return Measurement(
        value=value,
        samples=samples,
        holds=holds,
        clear=not holds and z <= rule.threshold * (1 - HYSTERESIS),
        model=rule.model,
        baseline=mean,
        band=(mean - rule.threshold * sd, mean + rule.threshold * sd),
        z=z,
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


def validate_threshold(kind: str, threshold: float, score: str = "ratio") -> bool:
    """With score "ratio", a rising kind's threshold is a ratio above 1 (2 = twice the
    baseline); traffic_drop's a fraction below 1 (0.5 = half the baseline). With score
    "z" it is a number of standard deviations from the mean, above 0 and at most Z_MAX
    (3 = the usual band's edge)."""
    if not math.isfinite(threshold):
        return False
    if score == "z":
        return 0 < threshold <= Z_MAX
    return threshold > 1 if kind in RISING else 0 < threshold < 1
