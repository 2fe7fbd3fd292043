"""Reads the dashboard and the requests explorer need on top of `queries`.

`load_dashboard()` is THE set of queries the dashboard page runs for a view: the page
renders its result and `chatwatch bench dashboard` times it, so the benchmark measures
exactly what a refresh costs. Everything the main view charts comes from one
`queries.overview()` read (rollups for long ranges, raw rows for short or filtered ones);
memory over time is derived from that same read instead of a second one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pandas as pd
import sqlalchemy as sa

from chatwatch.reports.losses import NO_LOSSES, Losses, losses
from chatwatch.reports.queries import (
    FeedbackCount,
    Filters,
    Overview,
    feedback_by_model,
    memory_frame,
    overview,
    recent_errors,
    request_conditions,
)
from chatwatch.store import rollups
from chatwatch.store.record import RequestRecord
from chatwatch.store.records import Store, from_us
from chatwatch.store.schema import feedback, requests
from chatwatch.store.schema import rollups as rollups_table

RECENT_ERRORS = 20
# Range span -> timeseries bucket: a few dozen to ~200 points per series. Buckets of whole
# hours let long ranges read hour rollups (one row per hour, model and status).
_BUCKETS: tuple[tuple[timedelta, timedelta], ...] = (
    (timedelta(hours=1), timedelta(minutes=1)),
    (timedelta(hours=6), timedelta(minutes=5)),
    (timedelta(hours=25), timedelta(minutes=15)),
    (timedelta(days=8), timedelta(hours=1)),
    (timedelta(days=32), timedelta(hours=6)),
    (timedelta(days=200), timedelta(days=1)),
)
_LONGEST = timedelta(days=7)


@dataclass(frozen=True)
class Satisfaction:
    up: int
    total: int

    @property
    def ratio(self) -> float | None:
        return self.up / self.total if self.total else None


@dataclass(frozen=True)
class DashboardData:
    """Everything one refresh of the dashboard shows (all picklable, for st.cache_data)."""

    filters: Filters
    bucket: timedelta
    overview: Overview
    memory: pd.DataFrame  # bucket, rss_after_max_bytes, system_available_min_bytes
    recent_errors: list[RequestRecord]
    feedback: list[FeedbackCount]
    losses: Losses = NO_LOSSES  # records dropped unsaved in the range: its counts are short by this

    @property
    def satisfaction(self) -> Satisfaction:
        return Satisfaction(sum(f.up for f in self.feedback), sum(f.total for f in self.feedback))


def bucket_for(since: datetime | None, until: datetime | None, now: datetime | None = None) -> timedelta:
    """Timeseries bucket for [since, until): no end means up to `now`, no start is taken
    as the raw retention (30 days)."""
    end = until or now or datetime.now(UTC)
    span = end - since if since is not None else timedelta(days=30)
    for limit, step in _BUCKETS:
        if span <= limit:
            return step
    return _LONGEST


def load_dashboard(
    store: Store, filters: Filters, bucket: timedelta | None = None, recent: int = RECENT_ERRORS
) -> DashboardData:
    """Every query of one dashboard view: the overview (KPIs, per-model table, charts),
    the newest errors and the feedback."""
    step = bucket or bucket_for(filters.since, filters.until)
    ov = overview(store, filters, step)
    wants_errors = not filters.statuses or "error" in filters.statuses
    errors = recent_errors(store, filters, limit=recent) if wants_errors else []
    return DashboardData(
        filters=filters,
        bucket=step,
        overview=ov,
        memory=memory_frame(ov.timeseries.frame),
        recent_errors=errors,
        feedback=feedback_by_model(store, filters),
        losses=losses(store, filters),
    )


def known_models(store: Store) -> list[str]:
    """Every model with requests still summarised in the hour rollups (a short read of the
    rollups' primary key instead of a DISTINCT over a million raw rows)."""
    t = rollups_table.c
    q = sa.select(t.model).where(t.grain_s == rollups.HOUR_S).distinct().order_by(t.model)
    with store.engine.connect() as conn:
        return [m for (m,) in conn.execute(q)]


def error_types(store: Store, filters: Filters) -> list[str]:
    """Error types seen among failed requests in the range (for the explorer's filter)."""
    scoped = replace(filters, statuses=("error",), error_type=None, text=None)
    r = requests.c
    q = (
        sa.select(r.error_type)
        .where(*request_conditions(scoped), r.error_type.is_not(None))
        .distinct()
        .order_by(r.error_type)
    )
    with store.engine.connect() as conn:
        return [e for (e,) in conn.execute(q)]


@dataclass(frozen=True)
class FeedbackEntry:
    request_id: str
    score: int  # 1 thumbs up, 0 thumbs down
    model: str
    session_id: str
    created_at: datetime


def feedback_for(store: Store, request_id: str) -> FeedbackEntry | None:
    """The thumb given to one request, if any (a new thumb replaces the previous one)."""
    f = feedback.c
    q = sa.select(f.request_id, f.score, f.model, f.session_id, f.created_us).where(f.request_id == request_id)
    with store.engine.connect() as conn:
        row = conn.execute(q).first()
    if row is None:
        return None
    return FeedbackEntry(row.request_id, int(row.score), row.model, row.session_id, from_us(row.created_us))
