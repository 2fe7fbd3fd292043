"""Rollups: per-minute and per-hour aggregates of requests (schema.rollups).

Write side: statements and parameters that fold one request row into its minute and hour
rows; the store runs them in the same transaction as the row insert, so rollups never
disagree with raw rows. The sums are an upsert. On SQLite the histogram merge runs inside the
upsert itself, through a function registered on every connection (`HIST_MERGE_SQL`), so a
request is one insert and one two-row upsert. On PostgreSQL the blobs are read back from the
upsert (RETURNING, while the row lock is held) and written with the new value counted, so
concurrent writers never lose a count. All of them are ordinary SQLAlchemy Core statements
built once per store and run on the write transaction's connection.
Read side: `plan()` splits a time range into raw-row edges, minute buckets and hour buckets
so a long-range query reads few rollup rows yet counts exactly the requests in the range.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from chatwatch.store import histogram
from chatwatch.store.record import LOCAL_REFUSALS
from chatwatch.store.schema import rollups

MINUTE_S = 60
HOUR_S = 3600
GRAINS_S = (MINUTE_S, HOUR_S)

KEY = ("grain_s", "bucket_us", "model", "status")
ADDITIVE = (
    "requests",
    "latency_n",
    "latency_sum_s",
    "ttft_n",
    "ttft_sum_s",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "decode_s",
    "decode_output_tokens",
    "cost_nanousd",
    "unpriced",
    "first_attempts",
    "retries",
    "rescued",
    "fallback_served",
    "refused",
)
GAUGE_MAX = "rss_after_max_bytes"
GAUGE_MIN = "system_available_min_bytes"
VALUES = (*ADDITIVE, GAUGE_MAX, GAUGE_MIN)
HISTS = ("latency_hist", "ttft_hist")

INSERT = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


# --- write side ---------------------------------------------------------------------------


HIST_MERGE_SQL = "chatwatch_hist_merge"


def merges_in_sql(dialect_name: str) -> bool:
    """Whether the upsert merges histograms itself (SQLite, with HIST_MERGE_SQL registered)."""
    return dialect_name == "sqlite"


def hist_merge_sql(old: bytes | None, new: bytes | None) -> bytes | None:
    """SQLite function body: `old` with the counts of `new` (a one-bucket blob) added."""
    if not new:
        return old
    for bucket, count in struct.iter_unpack("<II", new):  # blobs are little-endian u32 pairs
        old = histogram.blob_add(old, bucket, count)
    return old


def upsert_statement(dialect_name: str) -> sa.Insert:
    """Add one request to one rollup row (execute it with `upsert_params`, one parameter set
    per grain). Bind names are the column names. PostgreSQL: returns the row's
    (latency_hist, ttft_hist), for `hist_updates`; SQLite: merges the histograms in the
    statement through HIST_MERGE_SQL and returns nothing, so both grains go in one
    executemany."""
    if dialect_name not in INSERT:
        raise ValueError(f"rollups support sqlite and postgresql, not {dialect_name}")
    in_sql = merges_in_sql(dialect_name)
    columns = (*KEY, *VALUES, *(HISTS if in_sql else ()))
    stmt = INSERT[dialect_name](rollups).values({c: sa.bindparam(c) for c in columns})
    new, old = stmt.excluded, rollups.c
    set_: dict[str, Any] = {c: old[c] + new[c] for c in ADDITIVE}
    # NULL-aware max/min that reads the same on both backends (SQLite's max(a, b) is NULL
    # when either is; PostgreSQL spells it greatest()).
    set_[GAUGE_MAX] = sa.case(
        (new[GAUGE_MAX].is_(None), old[GAUGE_MAX]),
        (old[GAUGE_MAX].is_(None) | (new[GAUGE_MAX] > old[GAUGE_MAX]), new[GAUGE_MAX]),
        else_=old[GAUGE_MAX],
    )
    set_[GAUGE_MIN] = sa.case(
        (new[GAUGE_MIN].is_(None), old[GAUGE_MIN]),
        (old[GAUGE_MIN].is_(None) | (new[GAUGE_MIN] < old[GAUGE_MIN]), new[GAUGE_MIN]),
        else_=old[GAUGE_MIN],
    )
    if in_sql:
        for h in HISTS:
            set_[h] = sa.func.chatwatch_hist_merge(old[h], new[h])
        return stmt.on_conflict_do_update(index_elements=list(KEY), set_=set_)
    stmt = stmt.on_conflict_do_update(index_elements=list(KEY), set_=set_)
    return stmt.returning(old.latency_hist, old.ttft_hist)


def hist_update_statement() -> sa.Update:
    """Store both histogram blobs of one rollup row (parameters from `hist_updates`)."""
    return (
        sa.update(rollups)
        .values(latency_hist=sa.bindparam("new_latency_hist"), ttft_hist=sa.bindparam("new_ttft_hist"))
        .where(*(rollups.c[k] == sa.bindparam(f"key_{k}") for k in KEY))
    )


def upsert_params(row: dict[str, Any], dialect_name: str) -> list[dict[str, Any]]:
    """Parameters of `upsert_statement` for one request row: one set per grain, in GRAINS_S
    order (runs once per request)."""
    started, model, status = row["started_us"], row["model"], row["status"]
    vals = dict(zip(VALUES, values(row)))
    if merges_in_sql(dialect_name):  # this request's own one-bucket histograms
        latency, ttft = row["latency_s"], row["ttft_s"]
        vals["latency_hist"] = None if latency is None else histogram.blob_add(None, histogram.index(latency))
        vals["ttft_hist"] = None if ttft is None else histogram.blob_add(None, histogram.index(ttft))
    return [
        {"grain_s": grain, "bucket_us": bucket_start(started, grain), "model": model, "status": status, **vals}
        for grain in GRAINS_S
    ]


def hist_updates(row: dict[str, Any], grain_s: int, blobs: tuple[bytes | None, bytes | None]) -> dict[str, Any] | None:
    """Parameters of `hist_update_statement` for the row of `grain_s` whose current blobs the
    upsert returned (under its row lock); None when the request measured neither."""
    latency, ttft = row["latency_s"], row["ttft_s"]
    if latency is None and ttft is None:
        return None
    lat_blob, ttft_blob = blobs
    return {
        "new_latency_hist": lat_blob if latency is None else histogram.blob_add(lat_blob, histogram.index(latency)),
        "new_ttft_hist": ttft_blob if ttft is None else histogram.blob_add(ttft_blob, histogram.index(ttft)),
        "key_grain_s": grain_s,
        "key_bucket_us": bucket_start(row["started_us"], grain_s),
        "key_model": row["model"],
        "key_status": row["status"],
    }


def values(row: dict[str, Any]) -> tuple[Any, ...]:
    """One request row's contribution to its rollup buckets, in VALUES order (no NULL sums)."""
    latency, ttft, out = row["latency_s"], row["ttft_s"], row["output_tokens"]
    decode = decode_s(latency, ttft, out)
    cost = row["cost_nanousd"]
    attempt, ok = row["attempt"], row["status"] == "ok"
    return (
        1,
        int(latency is not None),
        latency or 0.0,
        int(ttft is not None),
        ttft or 0.0,
        row["input_tokens"] or 0,
        out or 0,
        row["cache_read_tokens"] or 0,
        decode or 0.0,
        out if decode is not None else 0,
        cost or 0,
        int(cost is None),
        int(attempt == 1),
        int(attempt > 1),
        int(ok and attempt > 1),
        int(ok and row["fallback_from"] is not None),
        int(row["error_type"] in LOCAL_REFUSALS),
        row["rss_after_bytes"],
        row["system_available_bytes"],
    )


def decode_s(latency: float | None, ttft: float | None, output_tokens: int | None) -> float | None:
    """Time spent generating after the first token; defined only when it is positive and
    the output tokens are known, so tokens/s never divides by a made-up duration."""
    if latency is None or ttft is None or output_tokens is None or latency <= ttft:
        return None
    return latency - ttft


def bucket_start(us: int, grain_s: int) -> int:
    return us - us % (grain_s * 1_000_000)


# --- read side ----------------------------------------------------------------------------

Bound = int | None  # microseconds since epoch; None = unbounded


@dataclass(frozen=True)
class Plan:
    """How to read [since, until): raw rows in `raw` spans, rollup buckets of `grain_s`
    whose start lies in each `rollup` span (lo inclusive, hi exclusive)."""

    raw: tuple[tuple[Bound, Bound], ...]
    rollup: tuple[tuple[int, Bound, Bound], ...]


def plan(since_us: Bound, until_us: Bound, grain_s: int = HOUR_S) -> Plan:
    """Split [since, until) into raw edges (partial minutes), minute buckets and, when
    grain_s is an hour, whole hours; spans that would be empty are left out."""
    minute = MINUTE_S * 1_000_000
    m0 = None if since_us is None else _ceil(since_us, minute)
    m1 = None if until_us is None else _floor(until_us, minute)
    if m0 is not None and m1 is not None and m0 >= m1:
        return Plan(raw=((since_us, until_us),) if since_us < until_us else (), rollup=())
    raw = []
    if since_us is not None and since_us < m0:
        raw.append((since_us, m0))
    if until_us is not None and m1 < until_us:
        raw.append((m1, until_us))
    rollup: list[tuple[int, Bound, Bound]] = []
    hour = HOUR_S * 1_000_000
    h0 = None if m0 is None else _ceil(m0, hour)
    h1 = None if m1 is None else _floor(m1, hour)
    if grain_s == HOUR_S and (h0 is None or h1 is None or h0 < h1):
        rollup.append((HOUR_S, h0, h1))
        if m0 is not None and m0 < h0:
            rollup.append((MINUTE_S, m0, h0))
        if m1 is not None and h1 < m1:
            rollup.append((MINUTE_S, h1, m1))
    else:
        rollup.append((MINUTE_S, m0, m1))
    return Plan(raw=tuple(raw), rollup=tuple(rollup))


def _floor(us: int, step: int) -> int:
    return us - us % step


def _ceil(us: int, step: int) -> int:
    return -((-us) // step) * step
