"""Read side for the dashboard and alerts.

Every function takes the store and a `Filters`. Aggregates come either from raw rows
("exact": numpy's default percentile on the real values) or from the rollups
("histogram": sums are still exact, percentiles are estimated from log-spaced histograms
within 5 %). Exact is used when the filters need raw rows (session, error type, text
search; all indexed or bounded by the time index) or when the range holds at most
`store.exact_rows_limit` requests; every result says which method it used. How the
sums and histograms are read lives in `aggregate`; this module shapes them into results.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import sqlalchemy as sa

from chatwatch.reports.aggregate import (  # noqa: F401 - Filters, request_conditions and choose_method are this API too
    LATENCY_QS,
    TTFT_QS,
    Coverage,
    Filters,
    Method,
    _collect,
    _Collected,
    choose_method,
    request_conditions,
)
from chatwatch.reports.attempts import NO_EDGE, EdgeAnswers, Outcomes, outcomes
from chatwatch.store import histogram, rollups
from chatwatch.store.histogram import Beyond
from chatwatch.store.record import RequestRecord
from chatwatch.store.records import Store, nanousd_to_usd, row_to_record
from chatwatch.store.schema import feedback, requests


@dataclass(frozen=True)
class Summary:
    requests: int  # records: one per attempt (and per local refusal)
    errors: int  # error records, local refusals included
    cancelled: int
    # The model error rate (failed attempts / attempts, refusals left out; see
    # reports/attempts.py), the figure every "error rate" of chatwatch means; None without attempts.
    error_rate: float | None
    latency_mean_s: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    latency_p99_s: float | None
    ttft_mean_s: float | None
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    output_tokens_per_s: float | None  # decode-phase output tokens / decode time
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cost_usd: Decimal  # exact sum of priced requests
    unpriced: int  # requests without a price (cost unknown, not zero)
    percentile_method: Method
    model: str | None = None  # set by per_model()
    cancel_rate: float | None = None  # cancelled / all requests; None without requests
    # Set when retention cleaned up raw rows inside the range (see aggregate.Coverage).
    coverage: Coverage | None = None
    # Histogram estimates that lie beyond the histogram's range, by field name (e.g.
    # "latency_p99_s": Beyond(7334.0, above=True), "> 2 h"): that field holds the bound, not
    # an estimate, and must be shown as such.
    beyond: dict[str, Beyond] = field(default_factory=dict)
    # Attempts and user requests: both error rates, rescued, retries, fallbacks served.
    outcomes: Outcomes = field(default_factory=lambda: outcomes(**dict.fromkeys(_OUTCOME_COUNTS, 0)))

    @property
    def user_error_rate(self) -> float | None:
        return self.outcomes.user_error_rate

    @property
    def partial(self) -> bool:
        """Whether requests of the range are missing from these figures."""
        return self.coverage is not None and not self.coverage.counted


@dataclass(frozen=True)
class Timeseries:
    """One row per (bucket, model) with requests: bucket (UTC), model, requests, errors,
    cancelled, latency_p50_s, latency_p95_s, ttft_p50_s, input_tokens, output_tokens,
    output_tokens_per_s, cost_nanousd (exact), cost_usd (float, for charts),
    rss_after_max_bytes, system_available_min_bytes."""

    frame: pd.DataFrame
    bucket: timedelta
    percentile_method: Method


@dataclass(frozen=True)
class Histogram:
    """Non-empty histogram buckets per model: model, bucket, lo_s, hi_s, count."""

    frame: pd.DataFrame
    percentile_method: Method


@dataclass(frozen=True)
class Page:
    records: list[RequestRecord]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


@dataclass(frozen=True)
class FeedbackCount:
    model: str
    up: int
    down: int

    @property
    def total(self) -> int:
        return self.up + self.down

    @property
    def up_ratio(self) -> float | None:
        return self.up / self.total if self.total else None


# --- public queries -----------------------------------------------------------------------


def summary(store: Store, filters: Filters = Filters()) -> Summary:
    return _summary_of(_collect(store, filters, ()))


def per_model(store: Store, filters: Filters = Filters()) -> list[Summary]:
    return _per_model_of(_collect(store, filters, ("model",)))


def timeseries(store: Store, filters: Filters, bucket: timedelta | int) -> Timeseries:
    """Per-model metrics per time bucket (bucket: a whole number of minutes, epoch-aligned
    in UTC). Buckets without requests are absent. Choose buckets so a range has at most a
    few hundred: a long range in small buckets reads minute rollups."""
    step, step_us = _step(bucket)
    return _timeseries_of(_collect(store, filters, ("ts", "model"), step_us), step)


def memory_timeseries(store: Store, filters: Filters, bucket: timedelta | int) -> pd.DataFrame:
    """Memory over time across models: bucket, rss_after_max_bytes, system_available_min_bytes."""
    return memory_frame(timeseries(store, filters, bucket).frame)


def memory_frame(timeseries: pd.DataFrame) -> pd.DataFrame:
    """Memory over time across models, from a `timeseries` frame (typed even when empty)."""
    if timeseries.empty:
        return pd.DataFrame(
            {
                "bucket": pd.Series(dtype="datetime64[ns, UTC]"),
                "rss_after_max_bytes": pd.Series(dtype=float),
                "system_available_min_bytes": pd.Series(dtype=float),
            }
        )
    buckets, group = np.unique(timeseries["bucket"].to_numpy(), return_inverse=True)
    worst = {}
    for name, ufunc in (("rss_after_max_bytes", np.fmax), ("system_available_min_bytes", np.fmin)):
        acc = np.full(len(buckets), np.nan)  # max / min over models, a missing gauge ignored
        ufunc.at(acc, group.reshape(-1), timeseries[name].to_numpy(dtype=float))
        worst[name] = acc
    return pd.DataFrame({"bucket": pd.DatetimeIndex(buckets, tz="UTC") if len(buckets) else buckets, **worst})


def ttft_histogram(store: Store, filters: Filters = Filters()) -> Histogram:
    return _histogram_of(_collect(store, filters, ("model",)), "ttft")


def latency_histogram(store: Store, filters: Filters = Filters()) -> Histogram:
    return _histogram_of(_collect(store, filters, ("model",)), "latency")


@dataclass(frozen=True)
class Overview:
    summary: Summary
    per_model: list[Summary]
    timeseries: Timeseries
    ttft_histogram: Histogram
    latency_histogram: Histogram


def overview(store: Store, filters: Filters, bucket: timedelta | int) -> Overview:
    """Everything the dashboard's main view charts, from ONE read of the rollups (or raw
    rows): the same results as the separate functions, at the cost of one of them."""
    step, step_us = _step(bucket)
    by_time = _collect(store, filters, ("ts", "model"), step_us)
    by_model = by_time.regrouped(("model",))
    return Overview(
        summary=_summary_of(by_time.regrouped(())),
        per_model=_per_model_of(by_model),
        timeseries=_timeseries_of(by_time, step),
        ttft_histogram=_histogram_of(by_model, "ttft"),
        latency_histogram=_histogram_of(by_model, "latency"),
    )


def _step(bucket: timedelta | int) -> tuple[timedelta, int]:
    step = bucket if isinstance(bucket, timedelta) else timedelta(seconds=bucket)
    step_us = step // timedelta(microseconds=1)
    if step_us <= 0 or step_us % (rollups.MINUTE_S * 1_000_000):
        raise ValueError(f"timeseries bucket must be a whole number of minutes, not {step}")
    return step, step_us


def recent_errors(store: Store, filters: Filters = Filters(), limit: int = 20) -> list[RequestRecord]:
    """The newest failed requests (status error) matching the other filters (no count: the
    dashboard shows the list, and its refresh should not count every error in the range)."""
    with store.engine.connect() as conn:
        return [
            row_to_record(row) for row in conn.execute(_page_query(replace(filters, statuses=("error",)), limit, 0))
        ]


def list_requests(store: Store, filters: Filters = Filters(), page: int = 1, page_size: int = 50) -> Page:
    """Requests newest first, one page of them, with the total count for the filters."""
    if page < 1 or page_size < 1:
        raise ValueError("page and page_size start at 1")
    where = request_conditions(filters)
    with store.engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(requests).where(*where)).scalar_one()
        records = [row_to_record(row) for row in conn.execute(_page_query(filters, page_size, (page - 1) * page_size))]
    return Page(records, int(total), page, page_size)


def attempts_of(store: Store, record_id: str) -> list[RequestRecord]:
    """Every attempt of the user request `record_id` belongs to (given any attempt's id or
    the request id), in order: the request detail's timeline."""
    r = requests.c
    request_id = sa.select(r.request_id).where(r.id == record_id).scalar_subquery()
    q = sa.select(requests).where(r.request_id == request_id).order_by(r.attempt, r.started_us, r.id)
    with store.engine.connect() as conn:
        return [row_to_record(row) for row in conn.execute(q)]


def _page_query(filters: Filters, limit: int, offset: int) -> sa.Select:
    r = requests.c
    return (
        sa.select(requests)
        .where(*request_conditions(filters))
        .order_by(r.started_us.desc(), r.id.desc())
        .limit(limit)
        .offset(offset)
    )


def feedback_by_model(store: Store, filters: Filters = Filters()) -> list[FeedbackCount]:
    """Thumbs per model for feedback given in the range (models / session filters apply)."""
    f = feedback.c
    cond = []
    if filters.since_us is not None:
        cond.append(f.created_us >= filters.since_us)
    if filters.until_us is not None:
        cond.append(f.created_us < filters.until_us)
    if filters.models:
        cond.append(f.model.in_(list(filters.models)))
    if filters.session_id:
        cond.append(f.session_id == filters.session_id)
    up = sa.func.coalesce(sa.func.sum(f.score), 0)
    q = sa.select(f.model, up, sa.func.count() - up).where(*cond).group_by(f.model).order_by(f.model)
    with store.engine.connect() as conn:
        return [FeedbackCount(m, int(u), int(d)) for m, u, d in conn.execute(q)]


# --- assembling results -------------------------------------------------------------------


def _summary_of(c: _Collected) -> Summary:
    pct = c.percentiles(LATENCY_QS, TTFT_QS)
    if not c.groups:
        return _summary(None, None, c.method, c.coverage)
    edge = sum(c.edges.values(), EdgeAnswers())
    return _summary(_row(c.sums, 0), _row(pct, 0), c.method, c.coverage, edge)


def _per_model_of(c: _Collected) -> list[Summary]:
    pct = c.percentiles(LATENCY_QS, TTFT_QS)  # aligned with c.sums
    out = []
    for i in range(c.groups):
        model = str(c.sums["model"][i])
        edge = c.edges.get(model, NO_EDGE)
        out.append(replace(_summary(_row(c.sums, i), _row(pct, i), c.method, c.coverage, edge), model=model))
    return out


_OUTCOME_COUNTS = (
    "records",
    "errors",
    "ok",
    "cancelled",
    "first_attempts",
    "retries",
    "rescued",
    "fallback_served",
    "refused",
)


def _outcomes(row: dict | None, edge: EdgeAnswers) -> Outcomes:
    if row is None:
        return outcomes(**dict.fromkeys(_OUTCOME_COUNTS, 0))
    counts = {name: int(row[name]) for name in _OUTCOME_COUNTS if name not in ("records", "ok")}
    records = int(row["requests"])
    ok = records - counts["errors"] - counts["cancelled"]
    return outcomes(records=records, ok=ok, edge=edge, **counts)


def _row(columns: dict[str, np.ndarray], i: int) -> dict:
    return {name: values[i] for name, values in columns.items()}


def _measured(pct: dict[str, np.ndarray], name: str) -> np.ndarray:
    """A percentile column with the cells beyond the histogram's range blanked (NaN): such a
    cell holds only a bound, and a chart must not plot a bound as a measurement."""
    values = np.asarray(pct[name], dtype=float)
    beyond = pct.get(f"{name}_beyond")
    return values if beyond is None else np.where(np.asarray(beyond) != 0, np.nan, values)


def _timeseries_of(c: _Collected, step: timedelta) -> Timeseries:
    sums = c.sums
    pct = c.percentiles((50.0, 95.0), (50.0,))
    decode_s = sums["decode_s"]
    with np.errstate(divide="ignore", invalid="ignore"):
        per_s = np.where(decode_s > 0, sums["decode_output_tokens"] / np.where(decode_s > 0, decode_s, 1.0), np.nan)
    out = pd.DataFrame(
        {
            "bucket": pd.to_datetime(sums["ts"].astype("int64"), unit="us", utc=True),
            "model": sums["model"].astype(str),
            "requests": sums["requests"],
            "errors": sums["errors"],
            "cancelled": sums["cancelled"],
            "latency_p50_s": _measured(pct, "latency_p50"),
            "latency_p95_s": _measured(pct, "latency_p95"),
            "ttft_p50_s": _measured(pct, "ttft_p50"),
            "input_tokens": sums["input_tokens"],
            "output_tokens": sums["output_tokens"],
            "output_tokens_per_s": per_s.astype("float64"),
            "cost_nanousd": sums["cost_nanousd"],
            "cost_usd": sums["cost_nanousd"] / 1e9,
            "rss_after_max_bytes": sums[rollups.GAUGE_MAX],
            "system_available_min_bytes": sums[rollups.GAUGE_MIN],
        }
    )  # already in (bucket, model) order: the sums are sorted by their keys
    return Timeseries(out, step, c.method)


def _histogram_of(c: _Collected, metric: str) -> Histogram:
    counts = c.matrices[metric]
    g, b = np.nonzero(counts)
    edges = [histogram.bounds(int(i)) for i in b]
    frame = pd.DataFrame(
        {
            "model": c.sums["model"][g] if len(g) else pd.Series(dtype=object),
            "bucket": b,
            "lo_s": [lo for lo, _ in edges],
            "hi_s": [hi for _, hi in edges],
            "count": counts[g, b],
        }
    )
    return Histogram(frame, c.method)


def _summary(
    row: dict | None, pct: dict | None, method: Method, coverage: Coverage | None, edge: EdgeAnswers = NO_EDGE
) -> Summary:
    def num(name: str) -> int:
        return 0 if row is None else int(row[name])

    def ratio(a: str, b: str) -> float | None:
        return None if row is None or not row[b] else float(row[a]) / float(row[b])

    def p(name: str) -> float | None:
        value = None if pct is None else pct.get(name)
        return None if value is None or np.isnan(value) else float(value)

    requests_n = num("requests")
    figures = _outcomes(row, edge)
    return Summary(
        requests=requests_n,
        errors=num("errors"),
        cancelled=num("cancelled"),
        error_rate=figures.model_error_rate,
        outcomes=figures,
        cancel_rate=num("cancelled") / requests_n if requests_n else None,
        latency_mean_s=ratio("latency_sum_s", "latency_n"),
        latency_p50_s=p("latency_p50"),
        latency_p95_s=p("latency_p95"),
        latency_p99_s=p("latency_p99"),
        ttft_mean_s=ratio("ttft_sum_s", "ttft_n"),
        ttft_p50_s=p("ttft_p50"),
        ttft_p95_s=p("ttft_p95"),
        output_tokens_per_s=ratio("decode_output_tokens", "decode_s"),
        input_tokens=num("input_tokens"),
        output_tokens=num("output_tokens"),
        cache_read_tokens=num("cache_read_tokens"),
        cost_usd=nanousd_to_usd(num("cost_nanousd")) or Decimal(0),
        unpriced=num("unpriced"),
        percentile_method=method,
        coverage=coverage,
        beyond=_beyond(pct),
    )


_PERCENTILE_FIELDS = ("latency_p50", "latency_p95", "latency_p99", "ttft_p50", "ttft_p95")


def _beyond(pct: dict | None) -> dict[str, Beyond]:
    """The Summary fields whose histogram estimate is a bound beyond the buckets' range."""
    out = {}
    for name in _PERCENTILE_FIELDS:
        side = 0 if pct is None else int(pct.get(f"{name}_beyond", 0))
        if side:
            out[f"{name}_s"] = Beyond(float(pct[name]), above=side > 0)
    return out
