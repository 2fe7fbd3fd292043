"""An alert on p95 fires exactly when the dashboard shows a p95 above its threshold, for the
same window and model (SQLite and PostgreSQL).

The latencies are chosen so that the old nearest-rank p95 (2.0 s) and the linear p95 both
apps now use (2.1 s) fall on different sides of some thresholds: with two methods, "p95 >
2.05 s" would fire on one screen and not match the other. The expected values come from
`statistics.quantiles(method="inclusive")`, the same definition computed another way;
the only calls into chatwatch are the alert evaluation and the dashboard read.
"""

from __future__ import annotations

import statistics
from datetime import timedelta

import pytest

from chatwatch import config
from chatwatch.alerts.service import AlertService
from chatwatch.reports.dashboard import load_dashboard
from chatwatch.reports.queries import Filters
from chatwatch.store.records import Store, to_us
from tests.fixtures.db import BASE_TIME, make_record

WINDOW_MIN = 5
NOW = BASE_TIME + timedelta(minutes=30)
SINCE = NOW - timedelta(minutes=WINDOW_MIN)
# Model a, in the window: 18 fast replies, then 2.0 s and 4.0 s. Of 20 values, nearest rank
# takes the 19th (2.0 s); linear interpolation 2.0 + 0.05 * (4.0 - 2.0) = 2.1 s.
A_LATENCIES = [0.5 + 0.05 * i for i in range(18)] + [2.0, 4.0]
A_TTFTS = [0.1 + 0.01 * i for i in range(18)] + [0.8, 1.6]  # 0.8 vs 0.84
THRESHOLDS = (1.9, 1.99, 2.0, 2.05, 2.09, 2.11, 2.2, 3.9)
TTFT_THRESHOLDS = (0.79, 0.8, 0.82, 0.85)


def _seed(store: Store) -> None:
    records = []
    for i, (latency, ttft) in enumerate(zip(A_LATENCIES, A_TTFTS)):
        records.append(
            make_record(model="a", latency_s=latency, ttft_s=ttft, started_at=SINCE + timedelta(seconds=5 + i))
        )
    # Outside model a's scope or its window: would move the p95 if either leaked in.
    for i in range(5):
        records.append(make_record(model="b", latency_s=50.0, ttft_s=9.0, started_at=SINCE + timedelta(seconds=40 + i)))
        records.append(
            make_record(model="a", latency_s=60.0, ttft_s=9.0, started_at=SINCE - timedelta(minutes=2, seconds=i))
        )
    store.write_many(records)


def _fired(store: Store, kind: str, thresholds: tuple[float, ...]) -> dict[float, bool]:
    """Which of the rules `<kind> > X` on model a fire at NOW (one rule per threshold)."""
    rules = [
        {"name": f"{kind} > {x}", "kind": kind, "threshold": x, "model": "a", "window_minutes": WINDOW_MIN}
        for x in thresholds
    ]
    settings = config.parse(
        {
            "models": [
                {"id": "a", "kind": "openai", "base_url": "http://127.0.0.1:9/v1"},
                {"id": "b", "kind": "openai", "base_url": "http://127.0.0.1:9/v1"},
            ],
            "alerts": {"rules": rules},
        }
    )
    service = AlertService(settings, store.engine, instance="t", clock=lambda: to_us(NOW), channels=[])
    try:
        assert service.config_problems == []
        service.seed()
        fired = {e.rule for e in service.evaluate_now() if e.state == "firing"}
    finally:
        service.close()
    return {x: f"{kind} > {x}" in fired for x in thresholds}


def _dashboard_p95(store: Store) -> tuple[float, float, str]:
    summary = load_dashboard(store, Filters(since=SINCE, models=("a",))).overview.summary
    return summary.latency_p95_s, summary.ttft_p95_s, summary.percentile_method


def test_p95_alert_fires_exactly_when_the_dashboard_p95_is_above(store):
    _seed(store)
    latency_p95, ttft_p95, method = _dashboard_p95(store)
    assert method == "exact"  # 30 rows: far under the raw-row limit
    # The dashboard's number is the linear p95 of exactly model a's window.
    assert latency_p95 == pytest.approx(statistics.quantiles(A_LATENCIES, n=20, method="inclusive")[18])
    assert ttft_p95 == pytest.approx(statistics.quantiles(A_TTFTS, n=20, method="inclusive")[18])
    assert latency_p95 == pytest.approx(2.1)

    fired = _fired(store, "latency_p95", THRESHOLDS)
    assert fired == {x: latency_p95 > x for x in THRESHOLDS}
    # Nearest rank (2.0 s) would not fire at these; the dashboard shows 2.1 s, and so fires the alert.
    assert fired[2.0] and fired[2.05] and fired[2.09] and not fired[2.11]

    ttft_fired = _fired(store, "ttft_p95", TTFT_THRESHOLDS)
    assert ttft_fired == {x: ttft_p95 > x for x in TTFT_THRESHOLDS}
    assert ttft_fired[0.8] and not ttft_fired[0.85]


def test_alerts_stay_exact_when_the_dashboard_switches_to_histograms(store_url, store):
    """A window with more requests than the dashboard reads row by row: the page says
    "histogram" and shows an estimate within 5 %; the alert still reads the raw rows."""
    _seed(store)
    exact = statistics.quantiles(A_LATENCIES, n=20, method="inclusive")[18]
    small = Store.open(store_url, exact_rows_limit=10)  # the window's hour holds 30 requests
    try:
        latency_p95, _, method = _dashboard_p95(small)
    finally:
        small.close()
    assert method == "histogram"
    assert latency_p95 == pytest.approx(exact, rel=0.05)
    assert _fired(store, "latency_p95", (exact - 0.001, exact + 0.001)) == {exact - 0.001: True, exact + 0.001: False}
