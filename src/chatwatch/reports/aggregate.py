"""How the read side aggregates: a `Filters` becomes SQL conditions, then sums and
histograms per group, read either from raw rows ("exact") or from the rollups
("histogram"), whichever `choose_method` picks. `queries` turns these into results.

Rollup reads cover a range as raw rows for the partial minutes at its edges, minute
buckets up to the first/last whole hour and hour buckets in between, so counts and sums
equal the raw ones exactly whatever the range.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa

from chatwatch.store import histogram, rollups
from chatwatch.store.records import Store, to_us
from chatwatch.store.schema import requests
from chatwatch.store.schema import rollups as rollups_table

Method = Literal["exact", "histogram"]
LATENCY_QS = (50.0, 95.0, 99.0)
TTFT_QS = (50.0, 95.0)
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
)
_FLOAT_VALUES = ("latency_sum_s", "ttft_sum_s", "decode_s")
_GAUGES = (rollups.GAUGE_MAX, rollups.GAUGE_MIN)


@dataclass(frozen=True)
class Filters:
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    models: Sequence[str] = ()  # empty: every model
    statuses: Sequence[str] = ()  # empty: every status
    session_id: str | None = None
    error_type: str | None = None
    text: str | None = None  # case-insensitive search in id, error, prompt and response

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


def choose_method(store: Store, filters: Filters) -> Method:
    if filters.needs_raw:
        return "exact"
    if estimated_requests(store, filters) > store.exact_rows_limit or _reaches_pruned(store, filters):
        return "histogram"
    return "exact"


def _reaches_pruned(store: Store, filters: Filters) -> bool:
    """Whether the range starts before the oldest raw row at a time the rollups still
    cover (retention deleted those raw rows): raw rows would undercount it."""
    oldest = store.oldest_raw_us()
    since = filters.since_us
    if oldest is not None and since is not None and since >= oldest:
        return False
    t = rollups_table.c
    before = [t.grain_s == rollups.MINUTE_S]
    if oldest is not None:
        before.append(t.bucket_us < rollups.bucket_start(oldest, rollups.MINUTE_S))
    if since is not None:
        before.append(t.bucket_us >= rollups.bucket_start(since, rollups.MINUTE_S))
    with store.engine.connect() as conn:
        return conn.execute(sa.select(t.bucket_us).where(*before).limit(1)).first() is not None


def estimated_requests(store: Store, filters: Filters) -> int:
    """Requests in the range rounded out to whole hours: one cheap read of hour rollups."""
    t = rollups_table.c
    since, until = filters.since_us, filters.until_us
    cond = [t.grain_s == rollups.HOUR_S, *_model_status(t, filters)]
    if since is not None:
        cond.append(t.bucket_us >= rollups.bucket_start(since, rollups.HOUR_S))
    if until is not None:
        cond.append(t.bucket_us < until)
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(t.requests), 0)).where(*cond)).scalar_one())


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
class _Collected:
    method: Method
    keys: list[str]
    sums: pd.DataFrame  # keys..., VALUES..., errors, cancelled (statuses folded in)
    rollup_rows: pd.DataFrame | None  # histogram method: the rollup rows read (with blobs)
    raw_values: pd.DataFrame | None  # keys..., latency, ttft of the raw rows read

    def regrouped(self, keys: tuple[str, ...]) -> _Collected:
        """The same rows summed by fewer keys (e.g. per model from per time and model)."""
        return replace(self, keys=list(keys), sums=_regroup(self.sums, list(keys)))

    def histograms(self) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        """Groups (keys of `sums`, in order) and a (groups x SIZE) count matrix per metric."""
        groups = self.sums[self.keys].reset_index(drop=True)
        matrices = {m: np.zeros((len(groups), histogram.SIZE), dtype=np.int64) for m in ("latency", "ttft")}
        if self.rollup_rows is not None and len(self.rollup_rows):
            gid = self._group_ids(groups, self.rollup_rows)
            for metric, matrix in matrices.items():
                pairs = [histogram.blob_pairs(b) for b in self.rollup_rows[f"{metric}_hist"]]
                lengths = np.fromiter((len(p) for p in pairs), dtype=np.int64, count=len(pairs))
                if lengths.sum():
                    flat = np.concatenate(pairs)
                    np.add.at(matrix, (np.repeat(gid, lengths), flat[:, 0]), flat[:, 1])
        if self.raw_values is not None and len(self.raw_values):
            gid = self._group_ids(groups, self.raw_values)
            for metric, matrix in matrices.items():
                v = self.raw_values[metric].to_numpy(dtype=float)
                ok = ~np.isnan(v)
                np.add.at(matrix, (gid[ok], histogram.indexes(v[ok])), 1)
        return groups, matrices

    def _group_ids(self, groups: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
        if not self.keys:
            return np.zeros(len(rows), dtype=np.int64)
        index = pd.MultiIndex.from_frame(groups[self.keys])
        ids = index.get_indexer(pd.MultiIndex.from_frame(rows[self.keys]))
        if (ids < 0).any():
            raise RuntimeError("histogram rows outside the summed groups")
        return ids

    def percentiles(self, latency_qs: Sequence[float], ttft_qs: Sequence[float]) -> pd.DataFrame:
        """keys..., latency_p<q>..., ttft_p<q>... aligned with `sums` (NaN: nothing measured)."""
        wanted = (("latency", latency_qs), ("ttft", ttft_qs))
        if self.method == "histogram":
            groups, matrices = self.histograms()
            out = groups.copy()
            for metric, qs in wanted:
                est = histogram.percentiles_2d(matrices[metric], qs)
                for i, q in enumerate(qs):
                    out[f"{metric}_p{q:g}"] = est[:, i]
            return out
        rows = []
        parts = self.raw_values.groupby(self.keys, sort=False) if self.keys else [((), self.raw_values)]
        for key, part in parts:
            row = dict(zip(self.keys, key if isinstance(key, tuple) else (key,)))
            for metric, qs in wanted:
                v = part[metric].to_numpy(dtype=float)
                v = v[~np.isnan(v)]
                for q in qs:
                    row[f"{metric}_p{q:g}"] = float(np.percentile(v, q)) if v.size else np.nan
            rows.append(row)
        columns = [*self.keys, *(f"{m}_p{q:g}" for m, qs in wanted for q in qs)]
        found = pd.DataFrame(rows, columns=columns)
        if not self.keys:
            return found if len(found) else pd.DataFrame([{}], columns=columns)
        return self.sums[self.keys].merge(found, on=self.keys, how="left")


def _collect(store: Store, filters: Filters, keys: tuple[str, ...], step_us: int | None = None) -> _Collected:
    method = choose_method(store, filters)
    group = [*keys, "status"]
    rollup_rows = None
    with store.engine.connect() as conn:
        if method == "exact":
            where = request_conditions(filters)
            sums = _fetch(conn, _raw_sums(group, step_us, where), [*group, *rollups.VALUES])
            raw_values = _fetch_values(conn, keys, step_us, where)
        else:
            plan = _plan(filters, step_us)
            parts, raw_values = [], None
            if plan.rollup:
                t = rollups_table.c
                cols = ["bucket_us", "model", "status", *rollups.VALUES, *rollups.HISTS]
                q = sa.select(*(t[c] for c in cols)).where(*_rollup_where(rollups_table, filters, plan))
                rollup_rows = _fetch(conn, q, cols)
                if "ts" in keys:
                    rollup_rows["ts"] = _bucketed(rollup_rows["bucket_us"], step_us)
                parts.append(rollup_rows[[*group, *rollups.VALUES]])
            if plan.raw:
                where = request_conditions(filters, plan.raw)
                parts.append(_fetch(conn, _raw_sums(group, step_us, where), [*group, *rollups.VALUES]))
                raw_values = _fetch_values(conn, keys, step_us, where)
            sums = pd.concat(parts, ignore_index=True) if parts else _fetch(conn, None, [*group, *rollups.VALUES])
    return _Collected(method, list(keys), _fold(_typed(sums), list(keys)), rollup_rows, raw_values)


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
            sa.func.max(r.rss_after_bytes),
            sa.func.min(r.system_available_bytes),
        )
        .where(*where)
        .group_by(*key_cols)
    )


def _fetch_values(conn: sa.Connection, keys: tuple[str, ...], step_us: int | None, where: list) -> pd.DataFrame:
    r = requests.c
    cols = [c for c in keys if c != "ts"]
    q = sa.select(*(r[c] for c in cols), r.started_us, r.latency_s, r.ttft_s).where(*where)
    frame = _fetch(conn, q, [*cols, "started_us", "latency", "ttft"])
    if "ts" in keys:
        frame["ts"] = _bucketed(frame["started_us"].astype("int64"), step_us)
    return frame.astype({"latency": "float64", "ttft": "float64"})


def _fetch(conn: sa.Connection, query: sa.Select | None, columns: list[str]) -> pd.DataFrame:
    """Rows into a DataFrame column by column (pandas is slow at building from Row objects)."""
    rows = [] if query is None else conn.execute(query).all()
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    return pd.DataFrame(dict(zip(columns, zip(*rows))))


def _bucketed(us: pd.Series, step_us: int | None) -> pd.Series:
    us = us.astype("int64")
    return us - us % step_us


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """PostgreSQL returns sum(bigint) as Decimal: make every value a plain int64/float64."""
    for c in _INT_VALUES:
        frame[c] = frame[c].map(int).astype("int64") if frame[c].dtype == object else frame[c].astype("int64")
    for c in (*_FLOAT_VALUES, *_GAUGES):
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    if "ts" in frame:
        frame["ts"] = frame["ts"].astype("int64")
    return frame


def _fold(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Sum rows per keys (statuses folded into requests/errors/cancelled)."""
    frame = frame.assign(
        errors=np.where(frame["status"] == "error", frame["requests"], 0),
        cancelled=np.where(frame["status"] == "cancelled", frame["requests"], 0),
    ).drop(columns="status")
    return _regroup(frame, keys)


def _regroup(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    agg = {
        **{c: "sum" for c in (*_INT_VALUES, *_FLOAT_VALUES, "errors", "cancelled")},
        rollups.GAUGE_MAX: "max",
        rollups.GAUGE_MIN: "min",
    }
    if not keys:
        return frame.agg(agg).to_frame().T if len(frame) else frame[list(agg)]
    return frame.groupby(keys, as_index=False, sort=True).agg(agg)
