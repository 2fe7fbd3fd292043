"""The store on SQLite and PostgreSQL: migrations, writes, reads, feedback, exact costs."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa

from chatwatch import config
from chatwatch.reports import queries
from chatwatch.store import migrations
from chatwatch.store.records import Store
from chatwatch.store.schema import feedback, metadata, model_loads, requests, rollups, schema_migrations
from tests.fixtures.db import assert_rollups_match_raw, make_record

ALL_VERSIONS = [m.VERSION for m in migrations.discover()]


def test_migrations_are_discovered_in_order() -> None:
    modules = migrations.discover()
    assert [m.VERSION for m in modules] == sorted(m.VERSION for m in modules)
    assert ALL_VERSIONS[:2] == [1, 2]
    assert all(m.NAME and callable(m.upgrade) for m in modules)


def test_migrations_run_once_and_are_recorded(store_url: str) -> None:
    first = Store.open(store_url)
    assert first.migrations_applied == ALL_VERSIONS
    second = Store.open(store_url)
    assert second.migrations_applied == []
    with second.engine.connect() as conn:
        rows = conn.execute(
            sa.select(schema_migrations.c.version, schema_migrations.c.name).order_by(schema_migrations.c.version)
        ).all()
    assert [v for v, _ in rows] == ALL_VERSIONS
    assert rows[0].name == "initial"
    first.close()
    second.close()


def test_concurrent_opens_of_a_fresh_database_migrate_once(store_url: str) -> None:
    barrier = threading.Barrier(4)
    applied: list[list[int]] = []
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            barrier.wait()
            s = Store.open(store_url)
            applied.append(s.migrations_applied)
            s.close()
        except BaseException as exc:  # a thread's exception would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(v for a in applied for v in a) == ALL_VERSIONS


def test_database_schema_matches_schema_module(store: Store) -> None:
    """Migrations (frozen history) and schema.py (current tables) must agree."""
    inspector = sa.inspect(store.engine)
    for table in metadata.sorted_tables:
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        assert columns == {c.name for c in table.columns}, table.name
        indexes = {i["name"] for i in inspector.get_indexes(table.name)}
        assert {i.name for i in table.indexes} <= indexes, table.name


def test_write_then_get_round_trips_every_field(store: Store) -> None:
    record = make_record(
        prompt_text="¿Hola? \u2603",
        response_text="hi",
        response_model="smollm2-135m",
        cost_usd=Decimal("0.000000001"),
        reasoning_tokens=3,
        cache_read_tokens=7,
        stream=False,
        started_at=datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=UTC),
    )
    store.write(record)
    got = store.get(record.id)
    assert got == record
    assert got.started_at.tzinfo is not None
    assert store.get("no-such-id") is None


def test_unpriced_and_failed_requests_keep_their_nulls(store: Store) -> None:
    record = make_record(status="error", cost_usd=None, price_source="unpriced", latency_s=None)
    store.write(record)
    got = store.get(record.id)
    assert got.cost_usd is None and got.latency_s is None and got.ttft_s is None
    assert got.error_type == "timeout"


def test_naive_times_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        store.write(make_record(started_at=datetime(2026, 1, 1)))


def test_duplicate_id_fails_and_leaves_no_partial_rollup(store: Store) -> None:
    record = make_record()
    store.write(record)
    with pytest.raises(sa.exc.IntegrityError):
        store.write(record)
    store.write(make_record())  # the store is still usable afterwards
    assert store.count() == 2
    assert_rollups_match_raw(store)


def test_cost_sums_are_exact(store: Store) -> None:
    costs = [Decimal("0.000000001") * k + Decimal("0.1") for k in range(1, 301)]
    for i, cost in enumerate(costs):
        store.write(make_record(cost_usd=cost, model=f"m{i % 3}"))
    store.write(make_record(cost_usd=None, price_source="unpriced"))
    total = queries.summary(store)
    assert total.cost_usd == sum(costs)
    assert total.unpriced == 1
    assert sum((m.cost_usd for m in queries.per_model(store)), Decimal(0)) == sum(costs)
    store.exact_rows_limit = 0  # the same through the rollups
    assert queries.choose_method(store, queries.Filters()) == "histogram"
    assert queries.summary(store).cost_usd == sum(costs)


def test_feedback_is_an_upsert(store: Store) -> None:
    record = make_record()
    store.write(record)
    store.add_feedback(record.id, 1, record.model, record.session_id)
    store.add_feedback(record.id, 0, record.model, record.session_id)  # changed the thumb
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(feedback)).all()
    assert len(rows) == 1 and rows[0].score == 0
    counts = queries.feedback_by_model(store)
    assert [(c.model, c.up, c.down) for c in counts] == [(record.model, 0, 1)]
    with pytest.raises(ValueError):
        store.add_feedback(record.id, 5, record.model, record.session_id)


def test_model_loads_are_recorded(store: Store) -> None:
    store.write_model_load(
        model="smollm2",
        instance="h:1",
        load_s=0.8,
        ok=True,
        path=Path("/models/a.gguf"),
        file_bytes=100,
        rss_before_bytes=1,
        rss_after_bytes=2,
    )
    store.write_model_load(model="smollm2", instance="h:1", load_s=0.1, ok=False, error_message="boom")
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(model_loads).order_by(model_loads.c.id)).all()
    assert [(r.ok, r.path, r.error_message) for r in rows] == [(True, "/models/a.gguf", None), (False, None, "boom")]


def test_threads_share_one_store(store: Store) -> None:
    def work(k: int) -> None:
        for _ in range(50):
            store.write(make_record(session_id=f"thread-{k}"))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.count() == 200
    assert_rollups_match_raw(store)


def test_write_many_is_one_transaction(store: Store) -> None:
    good = [make_record() for _ in range(5)]
    assert store.write_many(good) == 5
    with pytest.raises(sa.exc.IntegrityError):
        store.write_many([make_record(), good[0]])  # the duplicate aborts the whole batch
    assert store.count() == 5
    assert_rollups_match_raw(store)


# --- SQLite specifics ---------------------------------------------------------------------


def test_sqlite_file_settings(sqlite_store: Store, sqlite_url: str) -> None:
    path = Path(sa.make_url(sqlite_url).database)
    assert path.is_file()  # parent folder was created
    with sqlite_store.engine.connect() as conn:
        pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("synchronous") == 1  # NORMAL
        assert pragma("busy_timeout") == 10_000
        assert pragma("auto_vacuum") == 2  # INCREMENTAL, set before the first table
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    raw.close()


def test_sqlite_writes_take_the_lock_at_begin(sqlite_store: Store, sqlite_url: str) -> None:
    other = sqlite3.connect(sa.make_url(sqlite_url).database, timeout=0, isolation_level=None)
    with sqlite_store.transaction(), pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("BEGIN IMMEDIATE")
    with sqlite_store.engine.connect() as conn, conn.begin():
        conn.execute(sa.select(sa.func.count()).select_from(requests))
        other.execute("BEGIN IMMEDIATE")  # a plain read transaction does not block writers
        other.execute("ROLLBACK")
    other.close()


def test_close_closes_the_pooled_connections(sqlite_url: str) -> None:
    """Store.close() disposes the engine's pool: no handle on the database file is left."""
    path = Path(sa.make_url(sqlite_url).database).resolve()
    me = psutil.Process()
    open_db = lambda: [f.path for f in me.open_files() if Path(f.path).resolve() == path]  # noqa: E731
    store = Store.open(sqlite_url)
    threads = [threading.Thread(target=lambda: [store.write(make_record()) for _ in range(20)]) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pool = store.engine.pool
    assert open_db() and pool.checkedin() >= 1 and pool.checkedout() == 0
    store.close()
    assert open_db() == [] and pool.checkedin() == 0


def test_sqlite_in_memory_is_refused() -> None:
    with pytest.raises(ValueError, match="file"):
        Store.open("sqlite://")


def test_store_from_settings_uses_the_data_dir(tmp_path: Path) -> None:
    settings = config.parse(
        {"app": {"data_dir": str(tmp_path / "d")}, "dashboard": {"exact_percentiles_max_rows": 123}}
    )
    store = Store.from_settings(settings)
    store.write(make_record())
    assert (tmp_path / "d" / "chatwatch.db").is_file()
    assert store.exact_rows_limit == 123
    store.close()


def test_rollup_rows_per_grain(store: Store) -> None:
    base = datetime(2026, 1, 1, 10, 59, 30, tzinfo=UTC)
    for s in (0, 20, 40):  # 10:59:30, 10:59:50, 11:00:10
        store.write(make_record(started_at=base + timedelta(seconds=s)))
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(rollups.c.grain_s, rollups.c.requests).order_by(rollups.c.grain_s, rollups.c.bucket_us)
        ).all()
    assert [tuple(r) for r in rows] == [(60, 2), (60, 1), (3600, 2), (3600, 1)]


def test_prune_keeps_rollups_and_queries_use_them(store: Store) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    records = [make_record(started_at=t0 + timedelta(minutes=i), prompt_text="x" * 2000) for i in range(180)]
    store.write_many(records)
    store.add_feedback(records[0].id, 1, records[0].model, records[0].session_id)
    deleted = store.prune(raw_before=t0 + timedelta(hours=1), rollups_before=t0 - timedelta(days=1))
    assert deleted["requests"] == 60 and deleted["rollups"] == 0
    assert store.count() == 120 and store.get(records[0].id) is None
    # The first hour now lives only in the rollups: queries must not fall back to raw rows.
    full = queries.summary(store, queries.Filters(since=t0, until=t0 + timedelta(hours=3)))
    assert (full.requests, full.percentile_method) == (180, "histogram")
    recent = queries.summary(store, queries.Filters(since=t0 + timedelta(hours=1)))
    assert (recent.requests, recent.percentile_method) == (120, "exact")
    assert store.prune(raw_before=t0, rollups_before=t0 + timedelta(hours=10))["rollups"] > 0
    assert queries.summary(store).requests == 120  # rollups gone: raw rows again
    if store.dialect == "sqlite":
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA freelist_count").scalar() == 0  # space given back
