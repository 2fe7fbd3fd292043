"""Histograms, rollups and the queries built on them, on SQLite and PostgreSQL."""

from __future__ import annotations

import bisect
import math
import random
import struct
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from chatwatch.reports import queries
from chatwatch.reports.queries import Filters
from chatwatch.store import histogram, rollups
from chatwatch.store.records import Store, to_us
from chatwatch.store.schema import requests, schema_migrations
from chatwatch.store.schema import rollups as schema_rollups
from tests.fixtures.db import assert_rollups_match_raw, make_record

T0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)


# --- histogram ----------------------------------------------------------------------------


def test_buckets_cover_0_1ms_to_2h_growing_5_percent() -> None:
    under_lo, under_hi = histogram.bounds(histogram.UNDERFLOW)
    assert under_lo == 0.0 and under_hi <= 0.0001
    over_lo, over_hi = histogram.bounds(histogram.OVERFLOW)
    assert over_lo > 2 * 3600 and over_hi == math.inf
    for i in range(1, histogram.OVERFLOW):
        lo, hi = histogram.bounds(i)
        assert hi / lo == pytest.approx(1.05)
        assert histogram.index(lo) == i and histogram.index(math.nextafter(hi, 0)) == i
    assert histogram.index(0.00005) == histogram.UNDERFLOW
    assert histogram.index(3 * 3600) == histogram.OVERFLOW
    with pytest.raises(ValueError):
        histogram.bounds(histogram.SIZE)


def test_bucket_of_a_value_follows_the_log_formula() -> None:
    """Independent of the edge table: bucket = 48 + floor(log_1.05(v / 1 ms)) + 1."""
    rng = np.random.default_rng(0)
    for v in np.exp(rng.uniform(math.log(0.0001), math.log(7200), 2_000)):
        k = math.log(v / 0.001) / math.log(1.05)
        if abs(k - round(k)) < 1e-9:  # on an edge: float rounding may go either way
            continue
        assert histogram.index(v) == 48 + math.floor(k) + 1, v


@pytest.mark.parametrize("seed", range(4))
def test_percentiles_within_5_percent_of_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    samples = [
        rng.lognormal(0.0, 1.0, 20_000),
        rng.uniform(0.0001, 7200, 3_000),
        np.exp(rng.uniform(math.log(0.0001), math.log(7200), 3_000)),  # every decade alike
        np.concatenate([rng.normal(0.2, 0.01, 500), rng.normal(30, 1, 25)]),  # bimodal tail
        rng.exponential(0.05, 7) + 0.001,  # tiny sample: interpolation between far values
        np.array([0.42]),
    ]
    for values in samples:
        values = np.clip(values, 0.0001, 7200)
        counts = histogram.of_values(values)
        for q in (0, 1, 50, 90, 95, 99, 99.9, 100):
            exact = np.percentile(values, q)
            est = histogram.percentiles(counts, [q])[0]
            assert abs(est - exact) / exact < 0.05, (q, exact, est)


@pytest.mark.parametrize("value", [0.0001, 1.0, 7200.0])
def test_the_ends_of_the_range_are_estimated_within_5_percent(value: float) -> None:
    counts = histogram.of_values([value] * 3)
    for est in histogram.percentiles(counts, [0, 50, 99, 100]):
        assert isinstance(est, float) and abs(est / value - 1) < 0.05, est
    together = [0.0001, 1.0, 7200.0]
    for q in (0, 25, 50, 75, 100):
        est, exact = histogram.percentiles(histogram.of_values(together), [q])[0], np.percentile(together, q)
        assert abs(est / exact - 1) < 0.05, (q, est, exact)


def test_percentiles_beyond_the_range_say_so() -> None:
    values = [1.0] * 90 + [3 * 3600.0] * 10  # the slowest tenth took 3 hours
    p50, p95, p100 = histogram.percentiles(histogram.of_values(values), [50, 95, 100])
    assert isinstance(p50, float) and abs(p50 - 1.0) < 0.05
    for est, q in ((p95, 95), (p100, 100)):
        assert isinstance(est, histogram.Beyond) and est.above
        assert 2 * 3600 < est.bound_s <= np.percentile(values, q)  # a true lower bound
    assert p100 == histogram.Beyond(histogram.HIGH_S, above=True)
    # Interpolating between 1 s and 3 h: only a lower bound is known, and it is one.
    values = [1.0, 3 * 3600.0]
    p60 = histogram.percentiles(histogram.of_values(values), [60])[0]
    assert isinstance(p60, histogram.Beyond) and p60.above and p60.bound_s <= np.percentile(values, 60)
    # Below the bottom bucket: an upper bound.
    tiny = [0.00001] * 5
    p50 = histogram.percentiles(histogram.of_values(tiny), [50])[0]
    assert p50 == histogram.Beyond(histogram.LOW_S, above=False) and p50.bound_s > 0.00001
    # The vectorised form flags the same cells.
    matrix = np.stack([histogram.of_values([1.0] * 90 + [3 * 3600.0] * 10), histogram.of_values(tiny)])
    est = histogram.estimate_2d(matrix, [50, 95])
    assert est.beyond.tolist() == [[0, 1], [-1, -1]]
    assert est.values[0, 1] == p95.bound_s and est.values[1, 0] == histogram.LOW_S


def test_percentiles_of_nothing_are_none() -> None:
    assert histogram.percentiles(np.zeros(histogram.SIZE, dtype=np.int64), [50]) == [None]
    est = histogram.estimate_2d(np.zeros((2, histogram.SIZE), dtype=np.int64), [50])
    assert np.isnan(est.values).all() and (est.beyond == 0).all()
    with pytest.raises(ValueError, match="groups x"):
        histogram.estimate_2d(np.zeros((1, 312), dtype=np.int64), [50])


def test_blob_keeps_sorted_sparse_counts() -> None:
    blob = None
    values = [5, 3, 5, 300, 0, 3, 3]
    for i in values:
        blob = histogram.blob_add(blob, i)
    pairs = histogram.blob_pairs(blob)
    assert pairs.tolist() == [[0, 1], [3, 3], [5, 2], [300, 1]]
    dense = histogram.dense({0: 1, 3: 3, 5: 2, 300: 1})
    assert histogram.blob_of(dense) == blob


# --- blobs stored in layout 1 (1 ms .. 1 h) are migrated -----------------------------------


def _v1_bucket(v: float) -> int:
    """Layout 1 (before migration 20): underflow < 1 ms, edges 1 ms * 1.05**k, k = 0..310."""
    return bisect.bisect_right([0.001 * 1.05**k for k in range(311)], v)


def _v2_bucket(v: float) -> int:
    """Layout 2, by the log formula (see test_bucket_of_a_value_follows_the_log_formula):
    372 regular buckets, then the overflow bucket 373."""
    return min(48 + math.floor(math.log(v / 0.001) / math.log(1.05)) + 1, 373)


def _v2_at_old_edges(v: float) -> int:
    """Where a migrated count goes without its raw row: layout 1's < 1 ms into [0.95, 1) ms,
    its > 3,704 s into [3,704, 3,889) s, the rest into the very same bounds as before."""
    return _v2_bucket(0.00099) if v < 0.001 else _v2_bucket(3704.2) if v > 3704.2 else _v2_bucket(v)


def test_layout_1_blobs_are_migrated_exactly_where_raw_rows_remain(store_url: str) -> None:
    kept = T0  # its raw rows stay: every count, even < 1 ms and > 1 h, lands exactly
    pruned = T0 + timedelta(hours=5)  # raw rows deleted: old edges map to the v2 bucket there
    latencies = [0.0002, 0.0005, 0.5, 2.0, 4000.0, 9000.0]
    records = [
        make_record(started_at=start + timedelta(seconds=i), latency_s=v, ttft_s=None if i % 2 else v / 2)
        for start in (kept, pruned)
        for i, v in enumerate(latencies)
    ]
    v1: dict[tuple, tuple[Counter, Counter]] = {}  # what a layout-1 store held for them
    for rec in records:
        for grain in rollups.GRAINS_S:
            key = (grain, rollups.bucket_start(to_us(rec.started_at), grain), rec.model, rec.status)
            lat, ttft = v1.setdefault(key, (Counter(), Counter()))
            lat[_v1_bucket(rec.latency_s)] += 1
            if rec.ttft_s is not None:
                ttft[_v1_bucket(rec.ttft_s)] += 1
    pack = lambda c: b"".join(struct.pack("<II", b, n) for b, n in sorted(c.items()))  # noqa: E731
    r = schema_rollups.c
    with Store.open(store_url) as store:
        store.write_many(records)
        with store.transaction() as conn:
            for (grain, bucket, model, status), (lat, ttft) in v1.items():
                key = (r.grain_s == grain, r.bucket_us == bucket, r.model == model, r.status == status)
                conn.execute(schema_rollups.update().where(*key).values(latency_hist=pack(lat), ttft_hist=pack(ttft)))
            conn.execute(requests.delete().where(requests.c.started_us >= to_us(pruned)))
            conn.execute(schema_migrations.delete().where(schema_migrations.c.version == 20))
    with Store.open(store_url) as store:
        assert store.migrations_applied == [20]
        with store.engine.connect() as conn:
            rows = conn.execute(
                sa.select(schema_rollups.c.bucket_us, schema_rollups.c.latency_hist, schema_rollups.c.ttft_hist)
            ).all()
    assert len(rows) == 4  # minute and hour of each group
    for bucket_us, lat, ttft in rows:
        got_lat = dict(histogram.blob_pairs(bytes(lat)).tolist())
        got_ttft = dict(histogram.blob_pairs(bytes(ttft)).tolist())
        if bucket_us < to_us(pruned):
            want_lat = Counter(_v2_bucket(v) for v in latencies)
            want_ttft = Counter(_v2_bucket(v / 2) for i, v in enumerate(latencies) if i % 2 == 0)
        else:
            want_lat = Counter(_v2_at_old_edges(v) for v in latencies)
            want_ttft = Counter(_v2_at_old_edges(v / 2) for i, v in enumerate(latencies) if i % 2 == 0)
        assert (got_lat, got_ttft) == (dict(want_lat), dict(want_ttft)), bucket_us


# --- plan of a range ----------------------------------------------------------------------


def test_plan_splits_a_range_into_raw_minutes_and_hours() -> None:
    m, h = 60_000_000, 3_600_000_000
    since, until = 10 * h + 5 * m + 7, 14 * h + 3 * m + 2
    p = rollups.plan(since, until)
    assert p.raw == ((since, 10 * h + 6 * m), (14 * h + 3 * m, until))
    assert p.rollup == ((3600, 11 * h, 14 * h), (60, 10 * h + 6 * m, 11 * h), (60, 14 * h, 14 * h + 3 * m))
    assert rollups.plan(since, since + 10).raw == ((since, since + 10),)
    assert rollups.plan(None, None).rollup == ((3600, None, None),)
    assert rollups.plan(None, until, 60) == rollups.Plan(
        raw=((14 * h + 3 * m, until),), rollup=((60, None, 14 * h + 3 * m),)
    )


# --- rollups equal raw aggregates ---------------------------------------------------------


def _mixed_records(n: int, seed: int = 1) -> list:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        status = rng.choice(["ok"] * 8 + ["error", "cancelled"])
        started = T0 + timedelta(seconds=rng.uniform(0, 3 * 3600))
        rec = make_record(
            started_at=started,
            model=rng.choice(["a", "b", "c"]),
            status=status,
            session_id=rng.choice(["s1", "s2"]),
            latency_s=rng.lognormvariate(0, 0.7),
            cost_usd=None if rng.random() < 0.2 else Decimal(rng.randint(0, 10**6)).scaleb(-9),
            rss_after_bytes=rng.choice([None, rng.randint(1, 10**9)]),
            system_available_bytes=rng.choice([None, rng.randint(1, 10**9)]),
        )
        if status == "cancelled":
            rec.ttft_s = None if rng.random() < 0.5 else rec.latency_s / 2
        else:
            rec.ttft_s = None if status == "error" else rec.latency_s * rng.uniform(0.05, 0.5)
        out.append(rec)
    return out


def test_rollups_equal_raw_aggregates(store: Store) -> None:
    for rec in _mixed_records(400):
        store.write(rec)
    assert_rollups_match_raw(store)


def test_rollups_equal_raw_with_concurrent_writers(store: Store) -> None:
    records = _mixed_records(400, seed=2)
    # Writers contend for the same minute/hour rows: the histogram blobs must not lose counts.
    chunks = [records[i::4] for i in range(4)]
    threads = [threading.Thread(target=lambda c=c: [store.write(r) for r in c]) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.count() == 400
    assert_rollups_match_raw(store)


# --- queries: exact and histogram agree ---------------------------------------------------


@pytest.fixture
def filled(store: Store) -> Store:
    store.write_many(_mixed_records(1500, seed=3))
    return store


def _both(store: Store, fn):
    store.exact_rows_limit = 10**9
    exact = fn()
    store.exact_rows_limit = 0
    approx = fn()
    return exact, approx


def test_summary_exact_and_histogram_agree(filled: Store) -> None:
    filters = Filters(
        since=T0 + timedelta(minutes=17, seconds=13.5), until=T0 + timedelta(hours=2, minutes=41, seconds=2)
    )
    exact, approx = _both(filled, lambda: queries.summary(filled, filters))
    assert (exact.percentile_method, approx.percentile_method) == ("exact", "histogram")
    for name in (
        "requests",
        "errors",
        "cancelled",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cost_usd",
        "unpriced",
    ):
        assert getattr(exact, name) == getattr(approx, name), name
    for name in ("error_rate", "latency_mean_s", "ttft_mean_s", "output_tokens_per_s"):
        assert getattr(approx, name) == pytest.approx(getattr(exact, name), rel=1e-9), name
    for name in ("latency_p50_s", "latency_p95_s", "latency_p99_s", "ttft_p50_s", "ttft_p95_s"):
        assert abs(getattr(approx, name) / getattr(exact, name) - 1) < 0.05, name
    raw = [r for r in _mixed_records(1500, seed=3) if filters.since <= r.started_at < filters.until]
    assert exact.requests == len(raw)
    assert exact.errors == sum(r.status == "error" for r in raw)
    assert exact.error_rate == exact.errors / len(raw)  # over all requests, not successes
    assert exact.cost_usd == sum((r.cost_usd for r in raw if r.cost_usd is not None), Decimal(0))
    lat = [r.latency_s for r in raw]
    assert exact.latency_p95_s == pytest.approx(float(np.percentile(lat, 95)), rel=1e-12)
    decode = [
        (r.latency_s - r.ttft_s, r.output_tokens)
        for r in raw
        if r.ttft_s is not None and r.output_tokens is not None and r.latency_s > r.ttft_s
    ]
    assert exact.output_tokens_per_s == pytest.approx(sum(t for _, t in decode) / sum(d for d, _ in decode))


def test_per_model_and_filters(filled: Store) -> None:
    filters = Filters(models=["a", "b"], statuses=["ok", "error"])
    exact, approx = _both(filled, lambda: queries.per_model(filled, filters))
    assert [s.model for s in exact] == [s.model for s in approx] == ["a", "b"]
    for e, a in zip(exact, approx):
        assert (e.requests, e.errors, e.cancelled, e.cost_usd) == (a.requests, a.errors, 0, a.cost_usd)
        assert abs(a.latency_p50_s / e.latency_p50_s - 1) < 0.05
    everything = queries.summary(filled, Filters())
    assert everything.requests == 1500


def test_timeseries_exact_and_histogram_agree(filled: Store) -> None:
    filters = Filters(since=T0 + timedelta(minutes=3, seconds=1), until=T0 + timedelta(hours=3))
    for bucket in (timedelta(hours=1), 600):
        exact, approx = _both(filled, lambda b=bucket: queries.timeseries(filled, filters, b))
        e, a = exact.frame, approx.frame
        assert approx.percentile_method == "histogram"
        assert list(e["bucket"]) == list(a["bucket"]) and list(e["model"]) == list(a["model"])
        for c in ("requests", "errors", "cancelled", "input_tokens", "output_tokens", "cost_nanousd"):
            assert list(e[c]) == list(a[c]), c
        assert np.allclose(a["latency_p50_s"], e["latency_p50_s"], rtol=0.05)
        assert e["bucket"].iloc[0] == T0  # epoch-aligned UTC buckets
    assert int(e["requests"].sum()) == queries.summary(filled, filters).requests
    mem = queries.memory_timeseries(filled, filters, 3600)
    assert len(mem) == 3 and (mem["rss_after_max_bytes"] > 0).all()
    with pytest.raises(ValueError):
        queries.timeseries(filled, filters, 90)


def test_ttft_histogram_counts(filled: Store) -> None:
    exact, approx = _both(filled, lambda: queries.ttft_histogram(filled, Filters(models=["a"])))
    assert exact.frame["count"].tolist() == approx.frame["count"].tolist()
    assert (approx.frame["hi_s"] > approx.frame["lo_s"]).all()
    with_ttft = sum(1 for r in _mixed_records(1500, seed=3) if r.model == "a" and r.ttft_s is not None)
    assert approx.frame["count"].sum() == with_ttft


def test_raw_only_filters_use_exact(filled: Store) -> None:
    filled.exact_rows_limit = 0
    for f in (Filters(session_id="s1"), Filters(error_type="timeout"), Filters(text="hello")):
        assert queries.summary(filled, f).percentile_method == "exact"
    s1 = queries.summary(filled, Filters(session_id="s1"))
    assert 0 < s1.requests < 1500
    assert queries.summary(filled, Filters(error_type="timeout")).requests == queries.summary(filled, Filters()).errors


def test_empty_range(store: Store) -> None:
    s = queries.summary(store, Filters(since=T0, until=T0 + timedelta(hours=1)))
    assert (s.requests, s.error_rate, s.latency_p50_s, s.cost_usd) == (0, None, None, Decimal(0))
    assert queries.per_model(store) == []
    assert queries.timeseries(store, Filters(), 3600).frame.empty
    assert queries.ttft_histogram(store).frame.empty


# --- lists --------------------------------------------------------------------------------


def test_list_requests_pages_newest_first(store: Store) -> None:
    records = [
        make_record(started_at=T0 + timedelta(seconds=i), session_id="me" if i % 3 == 0 else "other") for i in range(25)
    ]
    records[4].error_message = "Connection REFUSED by host"
    records[4].status, records[4].error_type = "error", "connection"
    store.write_many(records)
    page = queries.list_requests(store, Filters(), page=2, page_size=10)
    assert page.total == 25 and page.pages == 3
    assert [r.id for r in page.records] == [r.id for r in reversed(records)][10:20]
    mine = queries.list_requests(store, Filters(session_id="me"), page=1, page_size=100)
    assert mine.total == 9 and all(r.session_id == "me" for r in mine.records)
    found = queries.list_requests(store, Filters(text="refused"))
    assert [r.id for r in found.records] == [records[4].id]
    assert queries.list_requests(store, Filters(text=records[7].id)).total == 1
    assert queries.list_requests(store, Filters(text="100%_")).total == 0  # LIKE wildcards escaped
    assert [r.id for r in queries.recent_errors(store, limit=5)] == [records[4].id]


def test_feedback_by_model_counts_thumbs(store: Store) -> None:
    recs = [make_record(model=m) for m in ("a", "a", "b")]
    store.write_many(recs)
    store.add_feedback(recs[0].id, 1, "a", "s")
    store.add_feedback(recs[1].id, 0, "a", "s")
    store.add_feedback(recs[2].id, 1, "b", "s")
    counts = {c.model: (c.up, c.down, c.up_ratio) for c in queries.feedback_by_model(store)}
    assert counts == {"a": (1, 1, 0.5), "b": (1, 0, 1.0)}
    assert queries.feedback_by_model(store, Filters(models=["b"]))[0].total == 1


@pytest.mark.parametrize("limit", [10**9, 0])
def test_overview_equals_the_separate_queries(filled: Store, limit: int) -> None:
    filled.exact_rows_limit = limit
    f = Filters(since=T0 + timedelta(minutes=7, seconds=3), until=T0 + timedelta(hours=2, minutes=59))
    o = queries.overview(filled, f, 3600)
    same = lambda a, b: a == pytest.approx(b, rel=1e-12) if isinstance(a, float) else a == b  # noqa: E731
    pairs = [(o.summary, queries.summary(filled, f)), *zip(o.per_model, queries.per_model(filled, f))]
    assert len(pairs) == 4
    for got, want in pairs:  # float sums may differ in the last bits (another order)
        assert all(same(getattr(got, k), getattr(want, k)) for k in got.__dict__), (got, want)
    pd.testing.assert_frame_equal(o.timeseries.frame, queries.timeseries(filled, f, 3600).frame, rtol=1e-12)
    assert o.ttft_histogram.frame.equals(queries.ttft_histogram(filled, f).frame)
    assert o.latency_histogram.frame.equals(queries.latency_histogram(filled, f).frame)


def test_session_view_uses_the_session_index(sqlite_store: Store) -> None:
    """'This session' must stay fast on a big table: SQLite walks (session_id, started_us)."""
    from chatwatch.store.schema import requests

    conditions = queries.request_conditions(Filters(session_id="s1", since=T0))
    q = requests.select().where(*conditions).order_by(requests.c.started_us.desc()).limit(50)
    compiled = q.compile(sqlite_store.engine, compile_kwargs={"literal_binds": True})
    with sqlite_store.engine.connect() as conn:
        plan = " ".join(str(r) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
    assert "ix_requests_session_started" in plan
