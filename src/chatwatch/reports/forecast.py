"""Where the spend is heading: projected day-end and month-end cost (UTC), total and per
model, with a band, from the store's own hourly rollups.

Method (named on the page, see METHOD): the daily spend of the last `LOOKBACK_DAYS` whole
days (days without requests count as $0) gives a level and one factor per day of the week,
each factor shrunk toward 1 by `SHRINK_DAYS` pseudo-days so a weekday seen once does not
swing the projection. The rest of today is today's expected spend times the share of a
day's spend that usually comes after this hour (the hour-of-day profile of the same days).
The remaining whole days of the month are their weekdays' expected spend. The band is a
bootstrap: each round resamples the past days (refitting level and factors) and draws every
remaining day's noise from the past days' own residuals, so it holds both the uncertainty of
the level and the day-to-day swing; the band is its 2.5th-97.5th percentiles.

Spend so far is exact (integer nano-dollars from the rollups); projections are floats in
USD, since they are estimates. Unpriced requests are not in any sum: the page says how many.

    forecast = cost_forecast(store, now)
    forecast.total.month_end_usd, forecast.total.month_end_band
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np

from chatwatch.reports.aggregate import Filters
from chatwatch.reports.queries import per_model, timeseries
from chatwatch.store.records import Store, nanousd_to_usd

LOOKBACK_DAYS = 28
SHRINK_DAYS = 2.0
ROUNDS = 1000
BAND = (2.5, 97.5)
METHOD = (
    "day-of-week-aware mean of the last 28 whole days (fewer when the store is younger) and the "
    "hour-of-day profile for the rest of today; 95 % band from a bootstrap of those days and their residuals"
)


@dataclass(frozen=True)
class Projection:
    """One scope's projection ("total" or a model id). Bands are (low, high) in USD."""

    scope: str
    month_spent_usd: Decimal  # exact: the month so far, today included
    today_spent_usd: Decimal  # exact
    day_end_usd: float
    day_end_band: tuple[float, float]
    month_end_usd: float
    month_end_band: tuple[float, float]
    days_observed: int  # whole past days the projection rests on
    unpriced_requests: int = 0  # this month's requests without a price: in no sum above


@dataclass(frozen=True)
class Forecast:
    at: datetime
    month_start: datetime
    month_end: datetime  # exclusive: the first instant of the next month
    total: Projection | None  # None: no whole past day to project from yet
    per_model: list[Projection]
    # Models whose every request in the look-back is unpriced: their cost is unknown, so
    # they get no projection (never a $0 one).
    unpriced_models: list[str]
    # The month's priced spend per day so far (exact), for the cumulative chart.
    month_days: list[tuple[date, Decimal]]
    method: str = METHOD
    # The same per model with a projection (each model's chart and its budget lines).
    month_days_by_model: dict[str, list[tuple[date, Decimal]]] = field(default_factory=dict)

    def projection(self, scope: str) -> Projection | None:
        """ "total" or a model id's projection (None: none for that scope)."""
        if scope == "total":
            return self.total
        return next((p for p in self.per_model if p.scope == scope), None)

    def days(self, scope: str) -> list[tuple[date, Decimal]]:
        return self.month_days if scope == "total" else self.month_days_by_model.get(scope, [])


@dataclass(frozen=True)
class _Fit:
    level: float
    factors: np.ndarray  # 7, by weekday (Monday = 0)
    residuals: np.ndarray  # multiplicative, of the days with a non-zero expectation


def _fit(values: np.ndarray, weekdays: np.ndarray) -> _Fit:
    level = float(values.mean()) if len(values) else 0.0
    factors = np.ones(7)
    if level > 0:
        for w in range(7):
            seen = values[weekdays == w]
            factors[w] = (seen.sum() + SHRINK_DAYS * level) / ((len(seen) + SHRINK_DAYS) * level)
    expected = level * factors[weekdays]
    mask = expected > 0
    residuals = values[mask] / expected[mask] if mask.any() else np.ones(1)
    return _Fit(level, factors, residuals)


def project(
    past: Sequence[float],
    past_weekdays: Sequence[int],
    *,
    today_spent: float,
    rest_of_today_share: float,
    today_weekday: int,
    remaining_weekdays: Sequence[int],
    spent_before_today: float,
    rounds: int = ROUNDS,
    seed: int = 0,
) -> tuple[float, tuple[float, float], float, tuple[float, float]]:
    """(day_end, day_band, month_end, month_band) from past whole days' spend and their
    weekdays. `rest_of_today_share`: the share of a day's spend still to come today;
    `remaining_weekdays`: the weekdays of the whole days left in the month after today."""
    values = np.asarray(past, dtype=float)
    weekdays = np.asarray(past_weekdays, dtype=int)
    remaining = np.asarray(remaining_weekdays, dtype=int)
    fit = _fit(values, weekdays)
    day_end = today_spent + fit.level * fit.factors[today_weekday] * rest_of_today_share
    month_end = spent_before_today + day_end + float((fit.level * fit.factors[remaining]).sum())
    if len(values) == 0:
        return day_end, (day_end, day_end), month_end, (month_end, month_end)
    rng = np.random.default_rng(seed)
    n = len(values)
    day_samples = np.empty(rounds)
    month_samples = np.empty(rounds)
    for i in range(rounds):
        pick = rng.integers(0, n, n)
        boot = _fit(values[pick], weekdays[pick])
        noise = rng.choice(fit.residuals, size=len(remaining) + 1)
        today_rest = boot.level * boot.factors[today_weekday] * rest_of_today_share * noise[0]
        later = float((boot.level * boot.factors[remaining] * noise[1:]).sum())
        day_samples[i] = today_spent + today_rest
        month_samples[i] = spent_before_today + day_samples[i] + later
    day_band = tuple(float(x) for x in np.percentile(day_samples, BAND))
    month_band = tuple(float(x) for x in np.percentile(month_samples, BAND))
    return day_end, day_band, month_end, month_band  # type: ignore[return-value]


def _month_bounds(now: datetime) -> tuple[datetime, datetime]:
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days = calendar.monthrange(now.year, now.month)[1]
    return start, start + timedelta(days=days)


def cost_forecast(
    store: Store, now: datetime, *, models: Sequence[str] = (), rounds: int = ROUNDS, seed: int = 0
) -> Forecast:
    """Projected day-end and month-end spend at `now` (UTC), total and per model, from the
    hourly rollups of the last LOOKBACK_DAYS whole days and of this month."""
    now = now.astimezone(UTC)
    month_start, month_end = _month_bounds(now)
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    since = min(month_start, today - timedelta(days=LOOKBACK_DAYS))
    frame = timeseries(store, Filters(since=since, until=now, models=tuple(models)), timedelta(hours=1)).frame
    # Days before the first request in the look-back are days the store did not exist, not $0 days.
    first_day = frame["bucket"].min().to_pydatetime().astimezone(UTC).date() if len(frame) else None
    looked = {s.model: s for s in per_model(store, Filters(since=since, until=now, models=tuple(models)))}
    month = {s.model: s for s in per_model(store, Filters(since=month_start, until=now, models=tuple(models)))}
    unpriced_models = sorted(m for m, s in looked.items() if s.requests and s.unpriced == s.requests)
    scopes: list[tuple[str, object, int]] = [("total", frame, sum(s.unpriced for s in month.values()))]
    for model in sorted(looked):
        if model not in unpriced_models:
            scopes.append((model, frame[frame["model"] == model], month[model].unpriced if model in month else 0))
    projections = [
        _projection(scope, part, unpriced, now, today, month_start, month_end, first_day, rounds, seed)
        for scope, part, unpriced in scopes
    ]
    per_model_projections = [p for p in projections[1:] if p is not None]
    return Forecast(
        at=now,
        month_start=month_start,
        month_end=month_end,
        total=projections[0],
        per_model=per_model_projections,
        unpriced_models=unpriced_models,
        month_days=_month_days(frame, month_start, now),
        month_days_by_model={
            p.scope: _month_days(frame[frame["model"] == p.scope], month_start, now) for p in per_model_projections
        },
    )


def _month_days(frame, month_start: datetime, now: datetime) -> list[tuple[date, Decimal]]:
    totals: dict[date, int] = {}
    if len(frame):
        days = frame["bucket"].dt.tz_convert(UTC).dt.date
        for day, nanos in zip(days, frame["cost_nanousd"].astype("int64")):
            if day >= month_start.date():
                totals[day] = totals.get(day, 0) + int(nanos)
    out, day = [], month_start.date()
    while day <= now.date():
        out.append((day, nanousd_to_usd(totals.get(day, 0))))
        day += timedelta(days=1)
    return out


def _projection(
    scope, part, unpriced, now, today, month_start, month_end, first_day, rounds, seed
) -> Projection | None:
    if first_day is None:
        return None
    buckets = part["bucket"].dt.tz_convert(UTC) if len(part) else part["bucket"]
    nanos = part["cost_nanousd"].astype("int64").to_numpy() if len(part) else np.zeros(0, dtype="int64")
    days = buckets.dt.date.to_numpy() if len(part) else np.array([], dtype=object)
    hours = buckets.dt.hour.to_numpy() if len(part) else np.array([], dtype=int)
    today_d = today.date()
    start_d = max(first_day, (today - timedelta(days=LOOKBACK_DAYS)).date())
    past_days = [start_d + timedelta(days=i) for i in range((today_d - start_d).days)]
    if not past_days:
        return None
    per_day = {d: 0 for d in past_days}
    profile = np.zeros(24)
    for d, h, n in zip(days, hours, nanos):
        if d in per_day:
            per_day[d] += int(n)
            profile[h] += n
    month_before_today = int(sum(int(n) for d, n in zip(days, nanos) if month_start.date() <= d < today_d))
    today_nanos = int(sum(int(n) for d, n in zip(days, nanos) if d == today_d))
    elapsed_h = now.hour + now.minute / 60 + now.second / 3600
    if profile.sum() > 0:
        shares = profile / profile.sum()
        done = shares[: now.hour].sum() + shares[now.hour] * (elapsed_h - now.hour)
    else:
        done = elapsed_h / 24
    remaining = [
        (today + timedelta(days=i)).weekday()
        for i in range(1, (month_end - today).days)
        if today + timedelta(days=i) < month_end
    ]
    day_end, day_band, month_end_usd, month_band = project(
        [per_day[d] / 1e9 for d in past_days],
        [d.weekday() for d in past_days],
        today_spent=today_nanos / 1e9,
        rest_of_today_share=max(0.0, 1.0 - float(done)),
        today_weekday=today_d.weekday(),
        remaining_weekdays=remaining,
        spent_before_today=month_before_today / 1e9,
        rounds=rounds,
        seed=seed,
    )
    return Projection(
        scope=scope,
        month_spent_usd=nanousd_to_usd(month_before_today + today_nanos),
        today_spent_usd=nanousd_to_usd(today_nanos),
        day_end_usd=day_end,
        day_end_band=day_band,
        month_end_usd=month_end_usd,
        month_end_band=month_band,
        days_observed=len(past_days),
        unpriced_requests=unpriced,
    )
