"""How the read side aggregates: a `Filters` becomes SQL conditions, then sums and
histograms per group, with percentiles either exact from raw values ("exact") or estimated
from the rollups' histograms ("histogram"). `queries` turns these into results.

Why it is built this way: a dashboard refresh must cost less than the plain SQL a
developer would write over the raw table, at every size.

* Sums (counts, tokens, cost, gauges) come from the rollups whenever they hold every
  request of the range: one row per minute or hour, model and status instead of one per
  request, and exactly the same integers (float sums to rounding). A range is covered as
  raw rows for the partial minutes at its edges, minute buckets up to the first/last whole
  hour and hour buckets in between. Filters the rollups cannot answer (session, error
  type, text) and ranges the rollups no longer cover read raw sums instead.
* Exact percentiles need the raw values: only latency and TTFT (and the start time when
  there is a time axis) are read, one query per model so no model name is materialised
  per row, and every group's percentiles come from `reports.percentile` in one call.
* Histograms are decoded once per read into a (groups x buckets) matrix; fewer groups
  (per model, overall) are sums of its rows, never a second decode.
* Everything of one read runs in one transaction (one snapshot), so sums and values
  always describe the same requests even while requests are being written.

Honest labels: when retention has cleaned up raw rows inside the range, the result carries
a `Coverage` saying so, and is never labelled "exact" for what it could not read.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa

from chatwatch.reports.attempts import EdgeAnswers
from chatwatch.reports.percentile import percentiles_by_group
from chatwatch.store import histogram, rollups
from chatwatch.store.record import LOCAL_REFUSALS
from chatwatch.store.records import Store, from_us, to_us
from chatwatch.store.schema import requests
from chatwatch.store.schema import rollups as rollups_table

Method = Literal["exact", "histogram"]
LATENCY_QS = (50.0, 95.0, 99.0)
TTFT_QS = (50.0, 95.0)
METRICS = ("latency", "ttft")
_INT_VALUES = (
    "requests",
    "latency_n",
    "ttft_n",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "decode_output_tokens",
    "cost_nanousd",
    "unpriced",
    "first_attempts",
    "retries",
    "rescued",
    "fallback_served",
    "refused",
)
_FLOAT_VALUES = ("latency_sum_s", "ttft_sum_s", "decode_s")
_GAUGES = (rollups.GAUGE_MAX, rollups.GAUGE_MIN)
_KEYS = ((), ("model",), ("ts", "model"))  # the groupings the read side offers


@dataclass(frozen=True)
class Filters:
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    models: Sequence[str] = ()  # empty: every model
    statuses: Sequence[str] = ()  # empty: every status
    session_id: str | None = None
    error_type: str | None = None
    text: str | None = None  # an id or request id (every attempt of it), or case-insensitive text of error/prompt/reply

    @property
    def needs_raw(self) -> bool:
        """Rollups are keyed by time, model and status only."""
        return bool(self.session_id or self.error_type or self.text)

    @property
    def since_us(self) -> int | None:
        return None if self.since is None else to_us(self.since)

    @property
    def until_us(self) -> int | None:
        return None if self.until is None else to_us(self.until)


@dataclass(frozen=True)
class Coverage:
    """Retention cleaned up the raw rows of part of the range: what the figures rest on.

    `raw_from` is the start of the oldest request still stored raw (None: no raw row is
    left). `counted` True: the requests before it are counted from the rollups (the result
    says "histogram"); False: they are not counted at all, because the filters need raw
    rows (session, error type, text search) or the range starts inside a cleaned-up minute,
    so every figure is partial."""

    raw_from: datetime | None
    counted: bool


@dataclass(frozen=True)
class _Decision:
    method: Method
    sums_from: Literal["rollups", "raw"]
    coverage: Coverage | None


def choose_method(store: Store, filters: Filters) -> Method:
    with _reading(store) as conn:
        return _decide(conn, store, filters).method


@contextmanager
def _reading(store: Store) -> Iterator[sa.Connection]:
    """One read transaction: SQLite's begin hook opens a WAL snapshot; PostgreSQL gets
    REPEATABLE READ so its statements share one snapshot too."""
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def _estimated(filters: Filters) -> sa.ScalarSelect:
    t = rollups_table.c
    since, until = filters.since_us, filters.until_us
    cond = [t.grain_s == rollups.HOUR_S, *_model_status(t, filters)]
    if since is not None:
        cond.append(t.bucket_us >= rollups.bucket_start(since, rollups.HOUR_S))
    if until is not None:
        cond.append(t.bucket_us < until)
    return sa.select(sa.func.coalesce(sa.func.sum(t.requests), 0)).where(*cond).scalar_subquery()


def _decide(conn: sa.Connection, store: Store, filters: Filters) -> _Decision:
    """Exact or histogram, sums from rollups or raw rows, and what retention took away:
    one round trip of index lookups (plus one when the range reaches cleaned-up rows)."""
    t, r = rollups_table.c, requests.c

    def first(grain: int) -> sa.ScalarSelect:
        return sa.select(sa.func.min(t.bucket_us)).where(t.grain_s == grain).scalar_subquery()

    oldest, first_minute, first_hour, estimated = conn.execute(
        sa.select(
            sa.select(sa.func.min(r.started_us)).scalar_subquery(),
            first(rollups.MINUTE_S),
            first(rollups.HOUR_S),
            _estimated(filters),
        )
    ).one()
    since = filters.since_us
    pruned = _reaches_pruned(conn, oldest, first_minute, since, filters.until_us)
    start = oldest if since is None else max(since, oldest) if oldest is not None else since
    if oldest is None:
        rollups_complete = True  # nothing raw: the rollups are all there is
    elif first_minute is None or first_hour is None:
        rollups_complete = False  # raw rows the rollups no longer hold
    else:  # retention deletes rollups older than a cutoff, per grain
        rollups_complete = start >= max(first_minute, first_hour)
    raw_from = None if oldest is None else from_us(oldest)
    if filters.needs_raw or not rollups_complete:
        return _Decision("exact", "raw", Coverage(raw_from, counted=False) if pruned else None)
    if pruned:
        # A range starting inside a cleaned-up minute that held requests: its raw edge is gone.
        edge_lost = since is not None and since % (rollups.MINUTE_S * 1_000_000) != 0 and _has_minute(conn, since)
        return _Decision("histogram", "rollups", Coverage(raw_from, counted=not edge_lost))
    if int(estimated or 0) > store.exact_rows_limit:
        return _Decision("histogram", "rollups", None)
    return _Decision("exact", "rollups", None)


def _has_minute(conn: sa.Connection, us: int) -> bool:
    t = rollups_table.c
    start = rollups.bucket_start(us, rollups.MINUTE_S)
    q = sa.select(t.bucket_us).where(t.grain_s == rollups.MINUTE_S, t.bucket_us == start).limit(1)
    return conn.execute(q).first() is not None


def _reaches_pruned(
    conn: sa.Connection, oldest: int | None, first_minute: int | None, since: int | None, until: int | None
) -> bool:
    """Whether the range holds requests whose raw rows retention deleted: minute rollups
    (kept longer than raw rows) in the range before the oldest raw row's minute."""
    if first_minute is None:
        return False
    limit = None if oldest is None else rollups.bucket_start(oldest, rollups.MINUTE_S)
    if limit is not None and (first_minute >= limit or since is not None and since >= oldest):
        return False
    t = rollups_table.c
    cond = [t.grain_s == rollups.MINUTE_S]
    if limit is not None:
        cond.append(t.bucket_us < limit)
    if since is not None:
        cond.append(t.bucket_us >= rollups.bucket_start(since, rollups.MINUTE_S))
    if until is not None:
        cond.append(t.bucket_us < until)
    return conn.execute(sa.select(t.bucket_us).where(*cond).limit(1)).first() is not None


# --- filters ------------------------------------------------------------------------------


def request_conditions(filters: Filters, spans: Sequence[tuple[int | None, int | None]] | None = None) -> list:
    """Conditions on `requests`; `spans` (OR of [lo, hi)) replaces the filters' own range."""
    r = requests.c
    cond = list(_model_status(r, filters))
    if spans is None:
        spans = [(filters.since_us, filters.until_us)]
    cond.append(sa.or_(*(sa.and_(*_range(r.started_us, lo, hi)) for lo, hi in spans)))
    if filters.session_id:
        cond.append(r.session_id == filters.session_id)
    if filters.error_type:
        cond.append(r.error_type == filters.error_type)
    if filters.text:
        q = filters.text.strip()
        cond.append(
            sa.or_(
                r.id == q,
                r.request_id == q,
                r.error_message.icontains(q, autoescape=True),
                r.prompt_text.icontains(q, autoescape=True),
                r.response_text.icontains(q, autoescape=True),
            )
        )
    return cond


def _model_status(cols, filters: Filters) -> list:
    cond = []
    if filters.models:
        cond.append(cols.model.in_(list(filters.models)))
    if filters.statuses:
        cond.append(cols.status.in_(list(filters.statuses)))
    return cond


def _range(column, lo: int | None, hi: int | None) -> list:
    cond = [sa.true()]
    if lo is not None:
        cond.append(column >= lo)
    if hi is not None:
        cond.append(column < hi)
    return cond


def _rollup_where(table: sa.Table, filters: Filters, plan: rollups.Plan) -> list:
    t = table.c
    spans = [sa.and_(t.grain_s == grain, *_range(t.bucket_us, lo, hi)) for grain, lo, hi in plan.rollup]
    return [sa.or_(*spans), *_model_status(t, filters)]


def _plan(filters: Filters, step_us: int | None) -> rollups.Plan:
    hourly = step_us is None or step_us % (rollups.HOUR_S * 1_000_000) == 0
    return rollups.plan(filters.since_us, filters.until_us, rollups.HOUR_S if hourly else rollups.MINUTE_S)


# --- collecting sums and histograms per group ------------------------------------------------


@dataclass
class _Values:
    """Raw values of one metric: `groups[i]` is the group (row of `sums`) of `values[i]`."""

    groups: np.ndarray
    values: np.ndarray


@dataclass
class _Collected:
    method: Method
    keys: list[str]
    # One array per column, one entry per group sorted by keys: keys..., VALUES..., errors, cancelled.
    sums: dict[str, np.ndarray]
    coverage: Coverage | None
    # Histogram method: (groups x SIZE) counts per metric, from rollup blobs and raw edges.
    rollup_hists: dict[str, np.ndarray] | None = None
    # Raw values per metric: every value of the range (exact) or of its raw edges (histogram).
    values: dict[str, _Values] = field(default_factory=dict)
    # Answers on the other side of a range edge from their request's first attempt, per
    # model of the answering attempt (see reports/attempts.py).
    edges: dict[str, EdgeAnswers] = field(default_factory=dict)

    @property
    def groups(self) -> int:
        return len(self.sums["requests"])

    def regrouped(self, keys: tuple[str, ...]) -> _Collected:
        """The same rows summed by fewer keys (e.g. per model from per time and model):
        sums regrouped, histogram matrices and value groups mapped, nothing read again."""
        keys_l = list(keys)
        mapping, sums = _reduce(self.sums, keys_l)
        hists = None
        if self.rollup_hists is not None:
            hists = {m: _sum_rows(h, mapping, len(sums["requests"])) for m, h in self.rollup_hists.items()}
        values = {m: _Values(mapping[v.groups], v.values) for m, v in self.values.items()}
        return replace(self, keys=keys_l, sums=sums, rollup_hists=hists, values=values)

    @cached_property
    def matrices(self) -> dict[str, np.ndarray]:
        """A (groups x SIZE) count matrix per metric: the rollups' histograms plus the raw
        values read (all of them for the exact method)."""
        out = {}
        for metric in METRICS:
            counts = np.zeros((self.groups, histogram.SIZE), dtype=np.int64)
            if self.rollup_hists is not None:
                counts += self.rollup_hists[metric]
            v = self.values.get(metric)
            if v is not None and v.values.size:
                cells = v.groups * histogram.SIZE + histogram.indexes(v.values)
                counts += np.bincount(cells, minlength=counts.size).reshape(counts.shape)
            out[metric] = counts
        return out

    def percentiles(self, latency_qs: Sequence[float], ttft_qs: Sequence[float]) -> dict[str, np.ndarray]:
        """latency_p<q>..., ttft_p<q>...: one array each, aligned with `sums` (NaN: nothing measured)."""
        out: dict[str, np.ndarray] = {}
        for metric, qs in (("latency", latency_qs), ("ttft", ttft_qs)):
            if self.method == "histogram":
                est, side = histogram.estimate_2d(self.matrices[metric], qs)
                for i, q in enumerate(qs):  # +1 / -1: the entry is a bound beyond the buckets
                    out[f"{metric}_p{q:g}_beyond"] = side[:, i]
            else:
                v = self.values.get(metric) or _Values(np.zeros(0, np.int64), np.zeros(0))
                est = percentiles_by_group(v.values, v.groups, self.groups, qs)
            for i, q in enumerate(qs):
                out[f"{metric}_p{q:g}"] = est[:, i]
        return out


def _collect(store: Store, filters: Filters, keys: tuple[str, ...], step_us: int | None = None) -> _Collected:
    if keys not in _KEYS:
        raise ValueError(f"the read side groups by one of {_KEYS}, not {keys}")
    if "ts" in keys and not step_us:
        raise ValueError("grouping by time needs a bucket (step_us)")
    with _reading(store) as conn:
        d = _decide(conn, store, filters)
        group = [*keys, "status"]
        sum_cols = [*group, *rollups.VALUES]
        parts: list[dict[str, np.ndarray]] = []
        blobs: dict[str, list] | None = None
        value_spans: list[tuple[int | None, int | None]] | None = None  # None: the whole range
        if d.sums_from == "raw":
            parts.append(_fetch(conn, _raw_sums(group, step_us, request_conditions(filters)), sum_cols))
        else:
            plan = _plan(filters, step_us)
            if plan.rollup:
                t = rollups_table.c
                hists = rollups.HISTS if d.method == "histogram" else ()
                cols = ["bucket_us" if "ts" in keys else None, "model", "status", *rollups.VALUES, *hists]
                q = sa.select(*(t[c] for c in cols if c)).where(*_rollup_where(rollups_table, filters, plan))
                rows = _fetch(conn, q, [c for c in cols if c], raw_columns=hists)
                if "ts" in keys:
                    rows["ts"] = _bucketed(rows.pop("bucket_us"), step_us)
                blobs = {h: rows.pop(h) for h in hists} if hists else None
                parts.append(rows)
            if plan.raw:
                where = request_conditions(filters, plan.raw)
                parts.append(_fetch(conn, _raw_sums(group, step_us, where), sum_cols))
            if d.method == "histogram":
                value_spans = list(plan.raw)
        columns = (
            {c: np.concatenate([p[c] for p in parts]) for c in sum_cols} if parts else _fetch(None, None, sum_cols)
        )
        codes, sums = _fold(columns, list(keys))
        collected = _Collected(d.method, list(keys), sums, d.coverage)
        if blobs is not None:
            n = len(blobs[rollups.HISTS[0]])
            groups = collected.groups
            collected.rollup_hists = {m: _decode(blobs[f"{m}_hist"], codes[:n], groups) for m in METRICS}
        if value_spans is None or value_spans:
            where = request_conditions(filters, value_spans)
            collected.values = _fetch_values(conn, sums, list(keys), step_us, where)
        collected.edges = edge_answers(conn, filters)
    return collected


def edge_answers(conn: sa.Connection, filters: Filters) -> dict[str, EdgeAnswers]:
    """Per model, the answers (ok or cancelled after a first attempt) to count with the range
    or leave out of it so every user request is counted in the range of its first attempt:
    minus the answers inside the range to requests that started before it, plus the answers
    after it to requests that started inside it. Only attempts after the first can be on the
    other side, so both lookups read few rows (the time index, then request_id's)."""
    since, until = filters.since_us, filters.until_us
    if since is None and until is None:
        return {}
    r, first = requests.c, requests.alias("first_attempt").c
    answered = [r.attempt > 1, r.status.in_(("ok", "cancelled"))]

    def moved(answer_span: tuple[int | None, int | None], first_span: tuple[int | None, int | None]) -> sa.Select:
        starts = sa.select(first.request_id).where(
            first.request_id == r.request_id, first.attempt == 1, *_range(first.started_us, *first_span)
        )
        return (
            sa.select(r.model, r.status, sa.func.count())
            .where(*request_conditions(filters, [answer_span]), *answered, starts.exists())
            .group_by(r.model, r.status)
        )

    out: dict[str, EdgeAnswers] = {}

    def add(rows, sign: int) -> None:
        for model, status, n in rows:
            delta = EdgeAnswers(ok=sign * int(n)) if status == "ok" else EdgeAnswers(cancelled=sign * int(n))
            out[model] = out.get(model, EdgeAnswers()) + delta

    if since is not None:
        add(conn.execute(moved((since, until), (None, since))).all(), -1)
    if until is not None:
        add(conn.execute(moved((until, None), (since, until))).all(), +1)
    return out


def _raw_sums(group: list[str], step_us: int | None, where: list) -> sa.Select:
    """The rollup VALUES computed from raw rows, per group (same definitions as rollups.values)."""
    r = requests.c
    decoding = sa.and_(r.latency_s > r.ttft_s, r.output_tokens.is_not(None))
    zero = sa.literal(0)
    key_cols = [(r.started_us - r.started_us % step_us).label("ts") if k == "ts" else r[k] for k in group]
    return (
        sa.select(
            *key_cols,
            sa.func.count(),
            sa.func.count(r.latency_s),
            sa.func.coalesce(sa.func.sum(r.latency_s), 0.0),
            sa.func.count(r.ttft_s),
            sa.func.coalesce(sa.func.sum(r.ttft_s), 0.0),
            sa.func.coalesce(sa.func.sum(r.input_tokens), zero),
            sa.func.coalesce(sa.func.sum(r.output_tokens), zero),
            sa.func.coalesce(sa.func.sum(r.cache_read_tokens), zero),
            sa.func.coalesce(sa.func.sum(sa.case((decoding, r.latency_s - r.ttft_s))), 0.0),
            sa.func.coalesce(sa.func.sum(sa.case((decoding, r.output_tokens))), zero),
            sa.func.coalesce(sa.func.sum(r.cost_nanousd), zero),
            sa.func.count() - sa.func.count(r.cost_nanousd),
            _count_where(r.attempt == 1),
            _count_where(r.attempt > 1),
            _count_where(sa.and_(r.status == "ok", r.attempt > 1)),
            _count_where(sa.and_(r.status == "ok", r.fallback_from.is_not(None))),
            _count_where(r.error_type.in_(LOCAL_REFUSALS)),
            sa.func.max(r.rss_after_bytes),
            sa.func.min(r.system_available_bytes),
        )
        .where(*where)
        .group_by(*key_cols)
    )


def _count_where(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _fetch_values(
    conn: sa.Connection, sums: dict[str, np.ndarray], keys: list[str], step_us: int | None, where: list
) -> dict[str, _Values]:
    """Latency and TTFT of the raw rows matching `where`, each with its group (row of
    `sums`). Only small integers travel besides the values: the database numbers each row's
    group as model code + models x bucket offset, so no model name or timestamp object is
    built per row."""
    r = requests.c
    models = list(dict.fromkeys(sums["model"].tolist())) if "model" in keys else []
    key: sa.ColumnElement | None = None
    if models:
        key = sa.case({m: i for i, m in enumerate(models)}, value=r.model)
    if "ts" in keys:
        first = int(sums["ts"].min()) // step_us if len(sums["ts"]) else 0
        key = (r.started_us // step_us - first) * len(models) + key
    cols = [r.latency_s, r.ttft_s] if key is None else [key, r.latency_s, r.ttft_s]
    rows = conn.execute(sa.select(*cols).where(*where)).all() if len(sums["requests"]) else []
    if not rows:
        return {}
    columns = list(zip(*rows))
    if key is None:
        gid = np.zeros(len(rows), dtype=np.int64)
    else:
        try:
            codes = np.array(columns[0], dtype=np.int64)
        except TypeError:  # NULL: a model the CASE does not know
            raise RuntimeError("raw rows of a model without sums: the rollups disagree with the raw rows") from None
        gid = _locate(sums, keys, models, step_us, codes)
    out = {}
    for metric, raw in zip(METRICS, columns[-2:]):
        v = np.asarray(raw, dtype=float)  # None -> NaN
        ok = ~np.isnan(v)
        out[metric] = _Values(gid[ok], v[ok])
    return out


def _locate(sums: dict[str, np.ndarray], keys: list[str], models: list[str], step_us: int | None, codes: np.ndarray):
    """Rows of `sums` for the group codes the values query computed (see _fetch_values)."""
    model_code = pd.Index(models).get_indexer(sums["model"]).astype(np.int64)
    if "ts" in keys:
        ts = sums["ts"].astype(np.int64) // step_us
        model_code = (ts - ts.min()) * len(models) + model_code
    order = np.argsort(model_code, kind="stable")
    known = model_code[order]
    pos = np.minimum(np.searchsorted(known, codes), len(known) - 1)
    if not (known[pos] == codes).all():
        raise RuntimeError("raw rows outside the summed groups: the rollups disagree with the raw rows")
    return order[pos]


def _decode(blobs: pd.Series, codes: np.ndarray, groups: int) -> np.ndarray:
    """(groups x SIZE) counts from the rollup rows' blobs (row i belongs to group codes[i]):
    all blobs decoded in one call, as the stored form is a run of (bucket, count) pairs."""
    parts = [b or b"" for b in blobs]
    pairs = histogram.blob_pairs(b"".join(parts))
    lengths = np.fromiter((len(b) for b in parts), dtype=np.int64, count=len(parts)) // 8
    owner = np.repeat(codes, lengths)
    cells = owner * histogram.SIZE + pairs[:, 0]
    counts = np.bincount(cells, weights=pairs[:, 1], minlength=groups * histogram.SIZE)
    return np.rint(counts).astype(np.int64).reshape(groups, histogram.SIZE)


def _sum_rows(matrix: np.ndarray, mapping: np.ndarray, groups: int) -> np.ndarray:
    out = np.zeros((groups, matrix.shape[1]), dtype=np.int64)
    np.add.at(out, mapping, matrix)
    return out


def _fetch(
    conn: sa.Connection | None, query: sa.Select | None, columns: list[str], raw_columns: Sequence[str] = ()
) -> dict[str, np.ndarray]:
    """Rows as one numpy array per column: int64 for counts and sums (PostgreSQL returns
    sum(bigint) as Decimal), float64 with NaN for NULL for float sums and gauges, objects
    for keys; `raw_columns` (blobs) stay Python lists."""
    rows = [] if query is None or conn is None else conn.execute(query).all()
    data = list(zip(*rows)) if rows else [() for _ in columns]
    out: dict[str, Any] = {}
    for name, col in zip(columns, data):
        if name in raw_columns:
            out[name] = list(col)
        elif name in _INT_VALUES or name == "ts" or name == "bucket_us":
            out[name] = np.array(col, dtype=np.int64)
        elif name in _FLOAT_VALUES or name in _GAUGES:
            out[name] = np.array(col, dtype=float)
        else:
            out[name] = np.array(col, dtype=object)
    return out


def _bucketed(us, step_us: int | None):
    us = us.astype("int64")
    return us - us % step_us


def _fold(columns: dict[str, np.ndarray], keys: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Sum rows per keys (statuses folded into requests/errors/cancelled): the group of each
    input row and the sums, one row per group in key order."""
    status, n = columns["status"], columns["requests"]
    columns = {c: v for c, v in columns.items() if c != "status"}
    columns["errors"] = np.where(status == "error", n, 0).astype(np.int64)
    columns["cancelled"] = np.where(status == "cancelled", n, 0).astype(np.int64)
    return _reduce(columns, keys)


_SUMMED = (*_INT_VALUES, *_FLOAT_VALUES, "errors", "cancelled")


def _reduce(columns: dict[str, np.ndarray], keys: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Sums per keys (gauges: max / min ignoring NULL), one row per group sorted by keys,
    and the group of each input row. numpy ufuncs over a few thousand rows: pandas'
    groupby costs more in set-up than in work at this size."""
    n = len(columns["requests"])
    if not keys:
        codes = np.zeros(n, dtype=np.int64)
        groups, uniques = (1 if n else 0), {}
    else:
        model_names, model_code = np.unique(columns["model"], return_inverse=True)
        key = model_code.astype(np.int64)
        if "ts" in keys:
            ts_values, ts_code = np.unique(columns["ts"], return_inverse=True)
            key = ts_code.astype(np.int64) * len(model_names) + key
        found, codes = np.unique(key, return_inverse=True)
        codes = codes.astype(np.int64).reshape(-1)
        groups = len(found)
        uniques = {"model": model_names[found % max(len(model_names), 1)]}
        if "ts" in keys:
            uniques = {"ts": ts_values[found // max(len(model_names), 1)], **uniques}
    out: dict[str, np.ndarray] = {k: uniques[k] for k in keys}
    for c in _SUMMED:
        v = columns[c]
        acc = np.zeros(groups, dtype=v.dtype if v.dtype != object else np.int64)
        np.add.at(acc, codes, v)
        out[c] = acc
    for c, ufunc in ((rollups.GAUGE_MAX, np.fmax), (rollups.GAUGE_MIN, np.fmin)):
        acc = np.full(groups, np.nan)
        ufunc.at(acc, codes, columns[c].astype(float))
        out[c] = acc
    return codes, out
