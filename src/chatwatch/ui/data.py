"""Store access for the dashboard pages, cached briefly across sessions.

Cached functions take only plain values (store URL, row limit, filter fields): never a
Store, Settings or other unhashable object. The store is the runtime's one store
(`chatwatch.ui.state.runtime()`), opened with the dashboard's exact-percentile limit.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import streamlit as st

from chatwatch.config import Settings
from chatwatch.reports import dashboard as dq
from chatwatch.reports.export import Format, iter_export
from chatwatch.reports.logsearch import LogScan, find_log_lines
from chatwatch.reports.queries import Filters, Page, attempts_of, list_requests
from chatwatch.store.record import RequestRecord
from chatwatch.store.records import Store
from chatwatch.ui.state import runtime

# Short: a live view aligns its range to the refresh interval, so sessions refreshing in
# the same interval share an answer; a custom range ending in the future is at most this
# stale.
TTL_S = 10
LISTS_TTL_S = 60  # model and error-type pick lists change rarely


def _store(url: str, exact_rows_limit: int) -> Store:
    """The runtime's one store. Cached functions take the URL and limit only as cache keys:
    a changed config changes them, and the runtime for it has the matching store."""
    return runtime().store


def _filters(since, until, models, statuses, session_id, error_type=None, text=None) -> Filters:
    return Filters(
        since=since,
        until=until,
        models=tuple(models),
        statuses=tuple(statuses),
        session_id=session_id,
        error_type=error_type,
        text=text,
    )


@st.cache_data(ttl=TTL_S, max_entries=64, show_spinner=False)
def _dashboard(
    url: str,
    exact_rows_limit: int,
    since: datetime | None,
    until: datetime | None,
    models: tuple[str, ...],
    statuses: tuple[str, ...],
    session_id: str | None,
    bucket_s: int,
) -> dq.DashboardData:
    store = _store(url, exact_rows_limit)
    f = _filters(since, until, models, statuses, session_id)
    return dq.load_dashboard(store, f, timedelta(seconds=bucket_s))


def dashboard(settings: Settings, filters: Filters, now: datetime) -> dq.DashboardData:
    """`load_dashboard` for these filters, cached by value (the bucket follows the range)."""
    bucket_s = int(dq.bucket_for(filters.since, filters.until, now).total_seconds())
    return _dashboard(
        settings.store_url,
        settings.dashboard.exact_percentiles_max_rows,
        filters.since,
        filters.until,
        tuple(filters.models),
        tuple(filters.statuses),
        filters.session_id,
        bucket_s,
    )


@st.cache_data(ttl=TTL_S, max_entries=64, show_spinner=False)
def _requests_page(
    url: str,
    exact_rows_limit: int,
    since: datetime | None,
    until: datetime | None,
    models: tuple[str, ...],
    statuses: tuple[str, ...],
    session_id: str | None,
    error_type: str | None,
    text: str | None,
    page: int,
    page_size: int,
) -> Page:
    store = _store(url, exact_rows_limit)
    f = _filters(since, until, models, statuses, session_id, error_type, text)
    return list_requests(store, f, page=page, page_size=page_size)


def requests_page(settings: Settings, filters: Filters, page: int, page_size: int) -> Page:
    return _requests_page(
        settings.store_url,
        settings.dashboard.exact_percentiles_max_rows,
        filters.since,
        filters.until,
        tuple(filters.models),
        tuple(filters.statuses),
        filters.session_id,
        filters.error_type,
        filters.text,
        page,
        page_size,
    )


@st.cache_data(ttl=LISTS_TTL_S, show_spinner=False)
def _models(url: str, exact_rows_limit: int) -> list[str]:
    return dq.known_models(_store(url, exact_rows_limit))


def model_options(settings: Settings) -> list[str]:
    """Configured models first, then any other model found in the store."""
    configured = [m.id for m in settings.models]
    stored = _models(settings.store_url, settings.dashboard.exact_percentiles_max_rows)
    return configured + [m for m in stored if m not in configured]


@st.cache_data(ttl=LISTS_TTL_S, show_spinner=False)
def _error_types(url: str, exact_rows_limit: int) -> list[str]:
    return dq.error_types(_store(url, exact_rows_limit), Filters())


def error_type_options(settings: Settings) -> list[str]:
    return _error_types(settings.store_url, settings.dashboard.exact_percentiles_max_rows)


def request_detail(request_id: str) -> tuple[RequestRecord | None, dq.FeedbackEntry | None]:
    """One request and its feedback, read fresh (a detail is opened one at a time)."""
    store = runtime().store
    return store.get(request_id), dq.feedback_for(store, request_id)


def request_attempts(record_id: str) -> list[RequestRecord]:
    """Every attempt of the user request of `record_id`, read fresh with its detail."""
    return attempts_of(runtime().store, record_id)


def export_data(store: Store, fmt: Format, filters: Filters) -> Callable[[], str]:
    """The export of the filtered view, produced when the download button is clicked (the
    callable runs then, on another thread): the same text `chatwatch export` writes."""

    def produce() -> str:
        return "".join(iter_export(store, fmt, filters))

    return produce


@st.cache_data(ttl=TTL_S, max_entries=16, show_spinner=False)
def log_lines(log_dir: str, request_id: str, started: datetime) -> LogScan:
    """One request's log lines, scanned once per `TTL_S` rather than on every rerun of the
    page or the detail fragment (the scan may read tens of MB of gzipped files)."""
    return find_log_lines(Path(log_dir), request_id, started)
