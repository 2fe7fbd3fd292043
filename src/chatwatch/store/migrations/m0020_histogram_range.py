"""Rollup histograms widened from 1 ms..1 h to 0.1 ms..2 h (store/histogram.py, layout 2).

Why a migration: the stored blobs are (bucket, count) pairs, and bucket numbers are only
meaningful in one layout. Layout 2 keeps every layout-1 edge bit for bit and adds 48 buckets
below 1 ms and 14 above 1 h, so a layout-1 regular bucket i is exactly bucket i + 48.

Layout 1's underflow [0, 1 ms) and overflow [3,704 s, inf) are open ranges that layout 2
splits into many buckets. For those counts the migration goes back to the raw rows: when
the rollup's minute or hour still has every raw value that fell there (raw rows are kept
`raw_days`), each is counted in its layout-2 bucket, exactly. When retention already deleted
them, the counts go to the layout-2 bucket at the old edge -- [0.95 ms, 1 ms) and
[3,704 s, 3,889 s) -- so old percentiles read as they did (layout 1 gave < 1 ms values a
number inside [0, 1 ms) and > 1 h values its 3,704 s lower bound), never as "< 0.1 ms" or
"> 2 h", which the old data cannot tell.

History: both layouts are spelled out here, not imported (histogram.py may move on).
"""

from __future__ import annotations

import struct
from bisect import bisect_right

import sqlalchemy as sa

VERSION = 20
NAME = "histogram_range"

_GROWTH = 1.05
_V1_REGULAR = 310  # layout 1: edges 1 ms * 1.05**k, k = 0..310
_V1_TOP_S = 0.001 * _GROWTH**_V1_REGULAR
_SHIFT = 48  # layout 2: edges 1 ms * 1.05**(k - 48), k = 0..372
_V2_EDGES = tuple(0.001 * _GROWTH ** (k - _SHIFT) for k in range(372 + 1))
_V1_UNDER, _V1_OVER = 0, _V1_REGULAR + 1
_FALLBACK = {_V1_UNDER: _SHIFT, _V1_OVER: _V1_OVER + _SHIFT}  # the v2 bucket at the old edge
_PAGE = 2_000  # rollup rows converted per round trip

_rollups = sa.table(
    "rollups",
    sa.column("grain_s", sa.Integer),
    sa.column("bucket_us", sa.BigInteger),
    sa.column("model", sa.String),
    sa.column("status", sa.String),
    sa.column("latency_hist", sa.LargeBinary),
    sa.column("ttft_hist", sa.LargeBinary),
)
_requests = sa.table(
    "requests",
    sa.column("started_us", sa.BigInteger),
    sa.column("model", sa.String),
    sa.column("status", sa.String),
    sa.column("latency_s", sa.Float),
    sa.column("ttft_s", sa.Float),
)
_KEY = ("grain_s", "bucket_us", "model", "status")
_HISTS = {"latency_hist": "latency_s", "ttft_hist": "ttft_s"}


def upgrade(conn: sa.Connection) -> None:
    r = _rollups.c
    key = sa.tuple_(*(r[k] for k in _KEY))
    last: tuple | None = None
    while True:
        page = sa.select(*(r[k] for k in _KEY), r.latency_hist, r.ttft_hist).order_by(*(r[k] for k in _KEY))
        if last is not None:
            page = page.where(key > sa.tuple_(*(sa.literal(v) for v in last)))
        rows = conn.execute(page.limit(_PAGE)).all()
        for row in rows:
            new = {h: _convert(conn, row, h) for h in _HISTS if row._mapping[h]}
            if new:
                conn.execute(
                    _rollups.update().where(*(r[k] == row._mapping[k] for k in _KEY)).values(**new),
                )
        if len(rows) < _PAGE:
            return
        last = tuple(rows[-1][: len(_KEY)])


def _convert(conn: sa.Connection, row: sa.Row, hist: str) -> bytes:
    counts: dict[int, int] = {}
    for bucket, n in struct.iter_unpack("<II", bytes(row._mapping[hist])):
        if bucket in _FALLBACK:
            for b, m in _from_raw(conn, row, _HISTS[hist], bucket, n).items():
                counts[b] = counts.get(b, 0) + m
        else:
            counts[bucket + _SHIFT] = counts.get(bucket + _SHIFT, 0) + n
    return b"".join(struct.pack("<II", b, counts[b]) for b in sorted(counts))


def _from_raw(conn: sa.Connection, row: sa.Row, column: str, v1_bucket: int, n: int) -> dict[int, int]:
    """Layout-2 counts of the raw values behind layout-1 `v1_bucket` of this rollup row, if
    all `n` of them are still stored; else all `n` in the bucket at the old edge."""
    m, q = row._mapping, _requests.c
    start = m["bucket_us"]
    value = q[column]
    edge = value < 0.001 if v1_bucket == _V1_UNDER else value >= _V1_TOP_S
    found = conn.execute(
        sa.select(value).where(
            q.model == m["model"],
            q.status == m["status"],
            q.started_us >= start,
            q.started_us < start + m["grain_s"] * 1_000_000,
            value.is_not(None),
            edge,
        )
    ).scalars()
    values = list(found)
    if len(values) != n:
        return {_FALLBACK[v1_bucket]: n}
    out: dict[int, int] = {}
    for v in values:
        b = bisect_right(_V2_EDGES, v)
        out[b] = out.get(b, 0) + 1
    return out
