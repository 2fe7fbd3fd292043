"""Alerts that know what normal is (alerts/baseline.py), on generated traffic with a daily
cycle: eight days of requests whose rate triples and whose latency doubles every afternoon.
The normal peak must never fire; a step change must; the baseline and band reported are
recomputed here from the raw records with plain Python."""

from __future__ import annotations

import math
import random
import statistics
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats  # an independent binomial and Poisson (scipy comes with choix)

from chatwatch.alerts.baseline import measure
from chatwatch.alerts.model import Rule
from tests.fixtures.db import make_record

END = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)  # late in the afternoon peak
START = END - timedelta(days=8)
WINDOW_MIN = 30


def peak(t: datetime) -> float:
    h = t.hour + t.minute / 60
    return math.exp(-(((h - 14) / 3) ** 2))


def traffic(rng: random.Random, *, step_at: datetime | None = None, kind: str | None = None):
    """Requests every 10 min slot: 4 at night up to 12 in the afternoon."""
    records, t = [], START
    while t < END:
        stepped = step_at is not None and t >= step_at
        n = round(4 + 8 * peak(t))
        if stepped and kind == "drop":
            n = 0
        for _ in range(n):
            at = t + timedelta(seconds=rng.uniform(0, 600))
            latency = (1.0 + 1.0 * peak(at)) * rng.lognormvariate(0, 0.15)
            if stepped and kind == "slow":
                latency *= 3
            error = rng.random() < (0.35 if stepped and kind == "errors" else 0.02)
            records.append(
                make_record(
                    started_at=at,
                    latency_s=latency,
                    ttft_s=latency / 5,
                    status="error" if error else "ok",
                    error_type="provider_error" if error else None,
                )
            )
        t += timedelta(minutes=10)
    return records


def us(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000)


def rule(kind: str, threshold: float) -> Rule:
    return Rule(name=kind, kind=kind, threshold=threshold, window_minutes=WINDOW_MIN, min_requests=10)


def check_points():
    """Every half hour of the last day, the afternoon peak included."""
    return [END - timedelta(minutes=30 * i) for i in range(48)]


@pytest.mark.parametrize(
    ("kind", "threshold"),
    [("latency_p95_anomaly", 1.5), ("ttft_p95_anomaly", 1.5), ("error_rate_anomaly", 3.0), ("traffic_drop", 0.5)],
)
def test_the_normal_daily_peak_never_fires(sqlite_store, kind, threshold):
    sqlite_store.write_many(traffic(random.Random(1)))
    r = rule(kind, threshold)
    with sqlite_store.engine.connect() as conn:
        fired = [t for t in check_points() if measure(conn, r, us(t)).holds]
    assert fired == []


@pytest.mark.parametrize(
    ("kind", "threshold", "step"),
    [("latency_p95_anomaly", 1.5, "slow"), ("error_rate_anomaly", 3.0, "errors"), ("traffic_drop", 0.5, "drop")],
)
def test_a_step_change_fires_within_its_window(store, kind, threshold, step):
    step_at = END - timedelta(minutes=WINDOW_MIN)
    records = traffic(random.Random(2), step_at=step_at, kind=step)
    store.write_many(records)
    r = rule(kind, threshold)
    with store.engine.connect() as conn:
        before = measure(conn, r, us(step_at))
        after = measure(conn, r, us(END))
    assert not before.holds and after.holds

    def window(end):  # the rule's window, recomputed from the records
        return [x for x in records if end - timedelta(minutes=WINDOW_MIN) < x.started_at <= end]

    def value(rows):
        if kind == "latency_p95_anomaly":
            return float(np.percentile([x.latency_s for x in rows], 95))
        if kind == "error_rate_anomaly":
            return sum(x.status == "error" for x in rows) / len(rows)
        return float(len(rows))

    past = [value(window(END - timedelta(days=d))) for d in range(1, 8)]
    now = window(END)
    assert after.value == pytest.approx(value(now))
    mean = statistics.mean(past)
    assert after.baseline == pytest.approx(mean)
    sd = statistics.stdev(past)
    low, high = mean - 3 * sd, mean + 3 * sd
    if kind == "error_rate_anomaly":  # never below what chance reaches at this window's size
        p, n = max(mean, 0.01), len(now)
        k = next(k for k in range(n + 2) if stats.binom.sf(k - 1, n, p) < 0.001)
        high = max(high, k / n)
    if kind == "traffic_drop":  # ... nor above the Poisson count chance falls to
        k = max([k for k in range(int(mean) + 1) if stats.poisson.cdf(k, mean) < 0.001], default=-1)
        low = min(low, k)
    assert after.band == pytest.approx((low, high))


def test_too_few_past_days_is_no_data(sqlite_store):
    recent = [make_record(started_at=END - timedelta(minutes=i)) for i in range(20)]
    sqlite_store.write_many(recent)
    with sqlite_store.engine.connect() as conn:
        m = measure(conn, rule("latency_p95_anomaly", 1.5), us(END))
    assert m.no_data and m.value is None and not m.holds
