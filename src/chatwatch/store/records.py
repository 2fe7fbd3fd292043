"""The durable store: one SQLite file (default) or a PostgreSQL database, shared by every
session, thread and process of the app.

SQLite runs in WAL mode with synchronous=NORMAL (a commit survives a process crash; only
an OS crash may lose the last commits), a busy timeout so concurrent writers queue instead
of failing, BEGIN IMMEDIATE for writes (a deferred transaction that later needs the write
lock can fail with SQLITE_BUSY without waiting), and incremental auto-vacuum so retention
can give space back.

`write()` is the hot path: one commit per request, including its rollups, in one
`write_transaction` (store/db.py) like every other write. It is plain SQLAlchemy Core: the
statements are built once per store, so SQLAlchemy's compiled cache finds them cheaply, and
connections come from the engine's pool, which `close()` disposes.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from chatwatch.privacy import scrub
from chatwatch.store import migrations, rollups
from chatwatch.store.db import configure_sqlite, create_engine, request_engine, write_transaction
from chatwatch.store.record import RequestRecord
from chatwatch.store.schema import feedback, model_loads, record_losses, requests, votes
from chatwatch.store.schema import rollups as rollups_table

if TYPE_CHECKING:
    from chatwatch.config import Settings

log = logging.getLogger(__name__)

DEFAULT_EXACT_ROWS_LIMIT = 50_000
_PRUNE_BATCH = 5_000  # rows per retention transaction, so writers are never held up long
_PRUNE_PAUSE_MAX_S = 0.1  # SQLite: rest between batches (as long as the batch took, at most this)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# RequestRecord fields stored under another name or unit.
_CONVERTED = {"started_us", "cost_nanousd", "saved_nanousd"}
_COLUMNS = tuple(c.name for c in requests.columns)
_PLAIN = tuple(c for c in _COLUMNS if c not in _CONVERTED)

PruneProgress = Callable[[str, int], None]  # (table, rows deleted so far)
_R = rollups_table.c
# What retention deletes: (name, table, key, time column, extra condition, which cutoff).
# Rollups go one grain at a time so each batch is a range of their primary key.
_PRUNE_TARGETS: tuple[tuple[str, sa.Table, Any, sa.Column, tuple, str], ...] = (
    ("requests", requests, requests.c.id, requests.c.started_us, (), "raw"),
    ("feedback", feedback, feedback.c.request_id, feedback.c.created_us, (), "raw"),
    ("votes", votes, votes.c.id, votes.c.created_us, (), "raw"),
    ("model_loads", model_loads, model_loads.c.id, model_loads.c.loaded_us, (), "raw"),
    # Losses are counts, like rollups: kept as long, so a long range still says what it misses.
    ("record_losses", record_losses, record_losses.c.id, record_losses.c.last_started_us, (), "rollups"),
    *(
        (
            "rollups",
            rollups_table,
            (_R.grain_s, _R.bucket_us, _R.model, _R.status),
            _R.bucket_us,
            (_R.grain_s == grain,),
            "rollups",
        )
        for grain in rollups.GRAINS_S
    ),
)
# The tables `prune` empties, in the order it runs (the stages its progress reports).
PRUNE_STAGES: tuple[str, ...] = tuple(dict.fromkeys(target[0] for target in _PRUNE_TARGETS))


def to_us(ts: datetime) -> int:
    if ts.tzinfo is None:
        raise ValueError(f"naive datetime {ts!r}: the store needs timezone-aware times")
    return (ts - EPOCH) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def nanousd_to_usd(n: int | None) -> Decimal | None:
    return None if n is None else Decimal(int(n)).scaleb(-9)


def record_to_row(record: RequestRecord) -> dict[str, Any]:
    row = {name: getattr(record, name) for name in _PLAIN}
    row["started_us"] = to_us(record.started_at)
    row["cost_nanousd"] = record.cost_nanousd
    row["saved_nanousd"] = record.saved_nanousd
    return row


def row_to_record(row: Any) -> RequestRecord:
    """A `requests` row (mapping or Row) back into a RequestRecord (`extra` is not stored)."""
    m = row._mapping if hasattr(row, "_mapping") else row
    fields = {name: m[name] for name in _PLAIN}
    fields["stream"] = bool(fields["stream"])
    fields["cache_hit"] = bool(fields["cache_hit"])
    return RequestRecord(
        started_at=from_us(m["started_us"]),
        cost_usd=nanousd_to_usd(m["cost_nanousd"]),
        saved_usd=nanousd_to_usd(m["saved_nanousd"]),
        **fields,
    )


START_LOCK_WAIT_S = 2.0  # how long a starting app waits for another writer's lock to migrate


class StoreUnavailableError(RuntimeError):
    """The store could not be reached when it opened and has not been found back yet."""


class Store:
    """Open with `Store.open(url)` (or `Store.from_settings(settings)`); thread-safe.

    With `wait_for_database=True` (the app's runtime) a database that cannot be reached or
    created yet -- PostgreSQL down, the data folder unwritable, the disk full -- does not stop
    the app: `unavailable` says why, and the first write that finds it back applies the
    migrations and goes on (the monitor keeps records in memory until then)."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        exact_rows_limit: int = DEFAULT_EXACT_ROWS_LIMIT,
        wait_for_database: bool = False,
        request_lock_wait_s: float | None = None,
    ):
        self.engine = engine
        self.dialect = engine.dialect.name
        if self.dialect == "sqlite":
            configure_sqlite(engine)
        elif self.dialect != "postgresql":
            raise ValueError(f"the store supports sqlite and postgresql, not {self.dialect}")
        # Queries read at most this many raw rows for exact percentiles, else use rollups.
        self.exact_rows_limit = exact_rows_limit
        # How long a request's own commit waits for another writer (store/db.py).
        self.request_lock_wait_s = request_lock_wait_s
        self.migrations_applied: list[int] = []
        self.unavailable: str | None = None
        self._ready_lock = threading.Lock()
        try:
            # The app does not wait out a long lock at start: it starts unavailable, and the
            # background writer applies the migrations once it gets the lock.
            self._migrate(START_LOCK_WAIT_S if wait_for_database else None)
        except (sa.exc.OperationalError, sa.exc.InterfaceError, OSError) as exc:
            if not wait_for_database:
                raise
            self.unavailable = scrub(f"{type(exc).__name__}: {exc}")[:500]
            log.error("the store is unavailable; records wait in memory until it is back: %s", self.unavailable)
        self._insert = sa.insert(requests)
        self._insert_missing = (
            rollups.INSERT[self.dialect](requests)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(requests.c.id)
        )
        self._upsert = rollups.upsert_statement(self.dialect)
        self._hist = None if rollups.merges_in_sql(self.dialect) else rollups.hist_update_statement()

    @classmethod
    def open(
        cls,
        url: str,
        *,
        exact_rows_limit: int = DEFAULT_EXACT_ROWS_LIMIT,
        wait_for_database: bool = False,
        request_lock_wait_s: float | None = None,
        **engine_kw: Any,
    ) -> Store:
        return cls(
            create_engine(url, **engine_kw),
            exact_rows_limit=exact_rows_limit,
            wait_for_database=wait_for_database,
            request_lock_wait_s=request_lock_wait_s,
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, wait_for_database: bool = False) -> Store:
        return cls.open(
            settings.store_url,
            exact_rows_limit=settings.dashboard.exact_percentiles_max_rows,
            wait_for_database=wait_for_database,
            request_lock_wait_s=settings.store.request_lock_wait_s,
        )

    def _migrate(self, lock_wait_s: float | None = None) -> None:
        if self.dialect == "sqlite":  # the folder may have been unwritable when the engine was made
            database = self.engine.url.database or ""
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = self.engine if lock_wait_s is None else request_engine(self.engine, lock_wait_s)
        self.migrations_applied = migrations.upgrade(engine)

    def ready(self) -> None:
        """Apply the migrations if the database was unavailable at start (raises while it
        still is). Cheap once the store is ready."""
        if self.unavailable is None:
            return
        with self._ready_lock:
            if self.unavailable is None:
                return
            self._migrate()
            log.info("the store is available again (%s)", self.engine.url.render_as_string(hide_password=True))
            self.unavailable = None

    def close(self) -> None:
        """Close every pooled connection (SQLite: the file handles) of the engine."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writes -----------------------------------------------------------------------------

    def write(self, record: RequestRecord, *, request: bool = False) -> None:
        """Store one request and fold it into the rollups: one transaction, one commit.
        `request=True` (the monitor, on a request's own thread): wait at most
        `request_lock_wait_s` for another writer's lock."""
        row = record_to_row(record)  # before taking the write lock
        if request and self.unavailable is not None:
            # Unavailable since start: applying the migrations may wait out the busy timeout,
            # which is the background writer's to do, not a reply's.
            raise StoreUnavailableError(f"the store is not ready yet: {self.unavailable}")
        self.ready()
        with self.transaction(lock_wait_s=self.request_lock_wait_s if request else None) as conn:
            self._write_rows(conn, [row])

    def write_many(self, records: Iterable[RequestRecord], *, lock_wait_s: float | None = None) -> int:
        """Store several requests in ONE transaction (imports, seeding, benchmarks, the
        monitor's retries of kept records); `lock_wait_s` bounds the wait for another writer."""
        rows = [record_to_row(r) for r in records]
        if rows:
            self.ready()
            with self.transaction(lock_wait_s=lock_wait_s) as conn:
                self._write_rows(conn, rows)
        return len(rows)

    def insert_missing(self, records: Iterable[RequestRecord], *, lock_wait_s: float | None = None) -> set[str]:
        """Store, in one transaction, the records whose id is not in the store yet (INSERT ...
        ON CONFLICT DO NOTHING) and fold only those into the rollups; returns their ids. So a
        spooled record ingested twice, or by two processes at once, is stored and counted
        once: on PostgreSQL the second insert of an id waits for the first's commit and then
        does nothing. `lock_wait_s` bounds the wait for another writer, as in `write`."""
        rows = [record_to_row(r) for r in records]
        if not rows:
            return set()
        self.ready()
        with self.transaction(lock_wait_s=lock_wait_s) as conn:
            new = set(conn.execute(self._insert_missing, rows).scalars())
            fresh = [row for row in rows if row["id"] in new]
            if fresh:
                self._fold(conn, fresh)
        return new

    def _write_rows(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        conn.execute(self._insert, rows)
        self._fold(conn, rows)

    def _fold(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        """Add the newly inserted `rows` to the rollups."""
        if self._hist is None:  # SQLite: the upsert merges the histograms; one executemany
            conn.execute(self._upsert, [p for row in rows for p in rollups.upsert_params(row, self.dialect)])
            return
        # PostgreSQL: one row at a time -- a batched upsert touching one rollup row twice
        # would fail ("ON CONFLICT DO UPDATE command cannot affect row a second time").
        for row in rows:
            for params in rollups.upsert_params(row, self.dialect):
                blobs = conn.execute(self._upsert, params).one()
                update = rollups.hist_updates(row, params["grain_s"], tuple(blobs))
                if update is not None:
                    conn.execute(self._hist, update)

    def write_model_load(
        self,
        *,
        model: str,
        instance: str,
        load_s: float,
        ok: bool,
        loaded_at: datetime | None = None,
        path: str | os.PathLike | None = None,
        file_bytes: int | None = None,
        rss_before_bytes: int | None = None,
        rss_after_bytes: int | None = None,
        error_message: str | None = None,
    ) -> None:
        """One model load row. Loads happen on a request's thread, before its first token: the
        write waits at most `request_lock_wait_s` for another writer, like a request's own."""
        with self.transaction(lock_wait_s=self.request_lock_wait_s) as conn:
            conn.execute(
                model_loads.insert().values(
                    loaded_us=to_us(loaded_at or datetime.now(UTC)),
                    instance=instance,
                    model=model,
                    path=None if path is None else str(path),
                    load_s=load_s,
                    ok=ok,
                    file_bytes=file_bytes,
                    rss_before_bytes=rss_before_bytes,
                    rss_after_bytes=rss_after_bytes,
                    error_message=error_message,
                )
            )

    def add_feedback(self, request_id: str, score: int, model: str, session_id: str) -> None:
        """Thumbs up (1) or down (0) for a response; a new thumb replaces the previous one."""
        if score not in (0, 1):
            raise ValueError(f"feedback score must be 0 or 1, not {score!r}")
        stmt = rollups.INSERT[self.dialect](feedback).values(
            request_id=request_id,
            score=score,
            model=model,
            session_id=session_id,
            created_us=to_us(datetime.now(UTC)),
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["request_id"],
            set_={"score": stmt.excluded.score, "created_us": stmt.excluded.created_us},
        )
        with self.transaction() as conn:
            conn.execute(stmt)

    @contextmanager
    def transaction(self, *, lock_wait_s: float | None = None) -> Iterator[sa.Connection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite) on a pooled connection."""
        with write_transaction(self.engine, lock_wait_s=lock_wait_s) as conn:
            yield conn

    # --- retention --------------------------------------------------------------------------

    def prune(
        self, *, raw_before: datetime, rollups_before: datetime, progress: PruneProgress | None = None
    ) -> dict[str, int]:
        """Delete raw rows (requests, feedback, model loads) older than `raw_before` and
        rollups older than `rollups_before`, in small transactions; on SQLite the freed
        pages go back to the file system (incremental auto-vacuum). Returns rows deleted.
        `progress(table, deleted_so_far)` runs after each batch; if it raises, the batches
        already committed stay deleted."""
        cutoffs = {"raw": to_us(raw_before), "rollups": to_us(rollups_before)}
        deleted: dict[str, int] = {}
        for name, table, key, time_col, where, cutoff in _PRUNE_TARGETS:
            done = deleted.get(name, 0)
            report = None if progress is None else (lambda n, name=name, done=done: progress(name, done + n))
            deleted[name] = done + self.delete_batches(
                table, key, time_col, cutoffs[cutoff], where=where, progress=report
            )
        if self.dialect == "sqlite" and any(deleted.values()):
            self.reclaim_space()
        return deleted

    def count_prunable(self, *, raw_before: datetime, rollups_before: datetime) -> dict[str, int]:
        """What `prune` with the same cutoffs would delete now (index range counts)."""
        cutoffs = {"raw": to_us(raw_before), "rollups": to_us(rollups_before)}
        counts: dict[str, int] = {}
        with self.engine.connect() as conn:
            for name, table, _key, time_col, where, cutoff in _PRUNE_TARGETS:
                query = sa.select(sa.func.count()).select_from(table).where(time_col < cutoffs[cutoff], *where)
                counts[name] = counts.get(name, 0) + conn.execute(query).scalar_one()
        return counts

    def reclaim_space(self) -> None:
        """SQLite: move the WAL into the file, hand free pages back to the file system and
        truncate the WAL, so the files shrink. A no-op on PostgreSQL (autovacuum's job)."""
        if self.dialect != "sqlite":
            return
        # executescript steps each pragma to the end; execute() would free one page only.
        # The first checkpoint empties the WAL so the vacuum's page moves start a fresh one;
        # the second writes them into the file, truncates it and resets the WAL to 0 bytes.
        with self.engine.connect() as conn:
            conn.connection.dbapi_connection.executescript(
                "PRAGMA wal_checkpoint(TRUNCATE); PRAGMA incremental_vacuum; PRAGMA wal_checkpoint(TRUNCATE);"
            )

    def delete_batches(
        self,
        table: sa.Table,
        key: sa.ColumnElement | tuple[sa.Column, ...],
        time_col: sa.Column,
        before_us: int,
        *,
        where: tuple[sa.ColumnElement[bool], ...] = (),
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Delete rows with `time_col < before_us` (and `where`), at most _PRUNE_BATCH per
        transaction; `key` identifies a row (a tuple of columns for a composite key). Every
        table's pruning (raw rows here, cache, rate events, budget periods in their own
        modules) goes through this, so they share the batch size and SQLite's pauses."""
        keys = key if isinstance(key, tuple) else (key,)
        match = sa.tuple_(*keys) if len(keys) > 1 else keys[0]
        total = 0
        while True:
            batch = sa.select(*keys).where(time_col < before_us, *where).limit(_PRUNE_BATCH)
            started = time.monotonic()
            with self.transaction() as conn:
                n = conn.execute(table.delete().where(match.in_(batch))).rowcount
            total += n
            if progress is not None and n:
                progress(total)
            if n < _PRUNE_BATCH:
                return total
            if self.dialect == "sqlite":
                # SQLite's busy handler polls with growing sleeps: without a pause, a writer
                # waiting for the lock could miss every gap between two batches and time out.
                time.sleep(min(time.monotonic() - started, _PRUNE_PAUSE_MAX_S))

    # --- reads ------------------------------------------------------------------------------

    def get(self, request_id: str) -> RequestRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(requests).where(requests.c.id == request_id)).first()
        return None if row is None else row_to_record(row)

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(requests)).scalar_one()
