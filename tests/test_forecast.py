"""The cost forecast (reports/forecast.py): a backtest on generated months whose daily
process is known, exact spend so far from the store on both backends, and a deterministic
month whose projection is plain arithmetic."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np

from chatwatch.reports.forecast import cost_forecast, project
from tests.fixtures.db import make_record

WEEKLY = np.array([1.25, 1.15, 1.05, 1.0, 0.95, 0.35, 0.25])  # weekday shape of the generated traffic


def test_backtest_the_month_end_falls_in_the_band_projected_on_day_10_in_at_least_90_percent():
    rng = np.random.default_rng(20261202)
    months, inside, widths = 200, 0, []
    for m in range(months):
        year, month = 2020 + m // 12, 1 + m % 12
        length = calendar.monthrange(year, month)[1]
        first = datetime(year, month, 1, tzinfo=UTC)
        start = first - timedelta(days=18)  # 28 whole days before day 10
        level = rng.lognormal(np.log(20.0), 0.8)  # dollars a day, different every month
        days = [start + timedelta(days=i) for i in range((first - start).days + length)]
        spend = {d.date(): level * WEEKLY[d.weekday()] * rng.lognormal(0.0, 0.35) for d in days}
        day10 = datetime(year, month, 10, tzinfo=UTC)
        past = [d for d in days if d < day10][-28:]
        # Noon on day 10, traffic spread evenly over the day: half of today is spent.
        today = spend[day10.date()]
        remaining = [(day10 + timedelta(days=i)).weekday() for i in range(1, length - 9)]
        _, _, point, (low, high) = project(
            [spend[d.date()] for d in past],
            [d.weekday() for d in past],
            today_spent=today / 2,
            rest_of_today_share=0.5,
            today_weekday=day10.weekday(),
            remaining_weekdays=remaining,
            spent_before_today=sum(spend[(first + timedelta(days=i)).date()] for i in range(9)),
            rounds=400,
            seed=m,
        )
        truth = sum(spend[(first + timedelta(days=i)).date()] for i in range(length))
        inside += low <= truth <= high
        widths.append((high - low) / truth)
        assert low <= point <= high
    print(f"coverage {inside / months:.3f}, mean band width {np.mean(widths):.3f} of the month")
    assert inside / months >= 0.90, inside / months
    # ... and the band is not a useless one: under +-40 % of the month on average here.
    assert float(np.mean(widths)) < 0.8, np.mean(widths)


def test_spend_so_far_is_exact_and_a_steady_month_projects_by_arithmetic(store):
    now = datetime(2026, 11, 10, 6, 0, tzinfo=UTC)  # November: 30 days
    first = datetime(2026, 11, 1, tzinfo=UTC)
    records = []
    for i in range(1, 29):  # one request a day at noon for the 28 whole days before the 10th
        day = now.replace(hour=12) - timedelta(days=i)
        records.append(make_record(started_at=day, cost_usd=Decimal("1.000000001"), model="m1"))
        records.append(make_record(started_at=day, cost_usd=None, price_source="unpriced", model="m2"))
    records.append(make_record(started_at=now - timedelta(hours=1), cost_usd=Decimal("0.25"), model="m1"))
    store.write_many(records)

    forecast = cost_forecast(store, now, rounds=50)
    total = forecast.total
    expected_month = sum(
        (r.cost_usd for r in records if r.cost_usd is not None and r.started_at >= first), start=Decimal(0)
    )
    assert total.month_spent_usd == expected_month == Decimal("9.000000009") + Decimal("0.25")
    assert total.today_spent_usd == Decimal("0.25")
    assert total.days_observed == 28
    # Every past day cost the same, all of it at noon: at 06:00 the whole day is still to
    # come, so day-end = today + one day; month-end = spent + one day for each day left.
    day = 1.000000001
    assert abs(total.day_end_usd - (0.25 + day)) < 1e-9
    assert abs(total.month_end_usd - (float(expected_month) + day * (30 - 9))) < 1e-6
    assert total.month_end_band[0] <= total.month_end_usd <= total.month_end_band[1]
    assert total.month_end_band[1] - total.month_end_band[0] < 1e-6  # no day-to-day swing, no band
    by_model = {p.scope: p for p in forecast.per_model}
    assert set(by_model) == {"m1"} and abs(by_model["m1"].month_end_usd - total.month_end_usd) < 1e-9
    # m2's cost is unknown: no projection, and never a $0 one; the total says what it leaves out.
    assert forecast.unpriced_models == ["m2"]
    assert total.unpriced_requests == 9
    assert forecast.method.startswith("day-of-week-aware")


def test_an_empty_store_has_no_projection(store):
    forecast = cost_forecast(store, datetime(2026, 11, 10, tzinfo=UTC))
    assert forecast.total is None and forecast.per_model == [] and forecast.unpriced_models == []


def test_the_dashboard_shows_the_forecast_with_exact_spend_so_far(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from chatwatch.store.records import Store
    from chatwatch.ui.widgets.format import fmt_usd

    config = tmp_path / "chatwatch.toml"
    config.write_text('[app]\nlanguage = "en"\ndata_dir = "data"\nlog_dir = "logs"\n')
    monkeypatch.setenv("CHATWATCH_CONFIG", str(config))
    now = datetime.now(UTC)
    records = [make_record(started_at=now - timedelta(days=i, minutes=1), cost_usd=Decimal("0.5")) for i in range(30)]
    with Store.open(f"sqlite:///{tmp_path / 'data' / 'chatwatch.db'}") as store:
        store.write_many(records)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = sum((r.cost_usd for r in records if r.started_at >= month_start), start=Decimal(0))
    spent_today = sum((r.cost_usd for r in records if r.started_at >= today), start=Decimal(0))

    dashboard = Path(__file__).resolve().parents[1] / "src" / "chatwatch" / "ui" / "views" / "dashboard.py"
    at = AppTest.from_file(str(dashboard), default_timeout=60).run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Spent this month"] == fmt_usd(month)
    assert metrics["Spent today"] == fmt_usd(spent_today)
    assert metrics["Projected month-end"].startswith("$")
    assert any(c.value.startswith("Method: day-of-week-aware mean") for c in at.caption)


def test_stats_prints_the_forecast_with_exact_spend_so_far(tmp_path, monkeypatch, capsys):
    from chatwatch.cli import main
    from chatwatch.store.records import Store

    config = tmp_path / "chatwatch.toml"
    config.write_text('[app]\nlanguage = "en"\ndata_dir = "data"\nlog_dir = "logs"\n')
    monkeypatch.setenv("CHATWATCH_CONFIG", str(config))
    now = datetime.now(UTC)
    records = [
        make_record(started_at=now - timedelta(days=i, minutes=1), cost_usd=Decimal("0.500000001"), model=m)
        for i in range(30)
        for m in ("m1", "m2")
    ] + [make_record(started_at=now - timedelta(minutes=2), cost_usd=None, price_source="unpriced", model="m1")]
    with Store.open(f"sqlite:///{tmp_path / 'data' / 'chatwatch.db'}") as store:
        store.write_many(records)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)

    def spent(since, model=None):
        return sum(
            (
                r.cost_usd
                for r in records
                if r.cost_usd is not None and r.started_at >= since and model in (None, r.model)
            ),
            start=Decimal(0),
        )

    assert main(["stats"]) == 0
    lines = capsys.readouterr().out.splitlines()
    section = lines[lines.index("forecast") + 1 :]
    assert section[0].startswith(f"UTC, {now:%Y-%m}: day-of-week-aware")
    rows = {line.split()[0]: line for line in section[1:4]}
    for scope, model in (("total", None), ("m1", "m1"), ("m2", "m2")):
        month, day = spent(month_start, model).normalize(), spent(today, model).normalize()
        assert rows[scope].split(None, 1)[1].startswith(f"month ${month:f}, today ${day:f}; day-end $"), rows[scope]
    assert "1 requests this month have no price: in no sum" in section
