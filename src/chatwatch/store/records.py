"""The durable store: one SQLite file (default) or a PostgreSQL database, shared by every
session, thread and process of the app.

SQLite runs in WAL mode with synchronous=NORMAL (a commit survives a process crash; only
an OS crash may lose the last commits), a busy timeout so concurrent writers queue instead
of failing, BEGIN IMMEDIATE for writes (a deferred transaction that later needs the write
lock can fail with SQLITE_BUSY without waiting), and incremental auto-vacuum so retention
can give space back.

`write()` is the hot path: one commit per request, including its rollups. It runs
statements that SQLAlchemy compiled once per store straight on a DBAPI connection from a
small private pool, skipping per-call compilation and pool bookkeeping.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from chatwatch.store import migrations, rollups
from chatwatch.store.db import configure_sqlite, create_engine
from chatwatch.store.record import RequestRecord
from chatwatch.store.schema import feedback, model_loads, requests
from chatwatch.store.schema import rollups as rollups_table

if TYPE_CHECKING:
    from chatwatch.config import Settings

DEFAULT_EXACT_ROWS_LIMIT = 50_000
_IDLE_WRITERS = 8  # DBAPI connections kept for write(); more threads just open more
_PRUNE_BATCH = 5_000  # rows per retention transaction, so writers are never held up long
_PRUNE_PAUSE_MAX_S = 0.1  # SQLite: rest between batches (as long as the batch took, at most this)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# RequestRecord fields stored under another name or unit.
_CONVERTED = {"started_us", "cost_nanousd"}
_COLUMNS = tuple(c.name for c in requests.columns)
_PLAIN = tuple(c for c in _COLUMNS if c not in _CONVERTED)

PruneProgress = Callable[[str, int], None]  # (table, rows deleted so far)
_R = rollups_table.c
# What retention deletes: (name, table, key, time column, extra condition, which cutoff).
# Rollups go one grain at a time so each batch is a range of their primary key.
_PRUNE_TARGETS: tuple[tuple[str, sa.Table, Any, sa.Column, tuple, str], ...] = (
    ("requests", requests, requests.c.id, requests.c.started_us, (), "raw"),
    ("feedback", feedback, feedback.c.request_id, feedback.c.created_us, (), "raw"),
    ("model_loads", model_loads, model_loads.c.id, model_loads.c.loaded_us, (), "raw"),
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
    return row


def row_to_record(row: Any) -> RequestRecord:
    """A `requests` row (mapping or Row) back into a RequestRecord (`extra` is not stored)."""
    m = row._mapping if hasattr(row, "_mapping") else row
    fields = {name: m[name] for name in _PLAIN}
    fields["stream"] = bool(fields["stream"])
    return RequestRecord(started_at=from_us(m["started_us"]), cost_usd=nanousd_to_usd(m["cost_nanousd"]), **fields)


class _Prepared:
    """A statement compiled once for the store's dialect, run on a DBAPI cursor. Values come
    as a tuple in `names` order: passed as-is to positional drivers (sqlite3) when the
    compiled order matches, else turned into the driver's form."""

    def __init__(self, stmt: sa.ClauseElement, names: tuple[str, ...], dialect: sa.Dialect):
        compiled = stmt.compile(dialect=dialect)
        self.sql: str = compiled.string
        order = tuple(compiled.positiontup) if compiled.positional else None
        if set(order or compiled.binds) != set(names):
            raise RuntimeError(f"bind names of {self.sql[:60]!r}... differ from the values given")
        self._names = names
        self._as_is = order == names
        self._reorder = None if order is None else [names.index(n) for n in order]

    def params(self, values: tuple[Any, ...]) -> Any:
        if self._as_is:
            return values
        if self._reorder is not None:
            return tuple(values[i] for i in self._reorder)
        return dict(zip(self._names, values))


class Store:
    """Open with `Store.open(url)` (or `Store.from_settings(settings)`); thread-safe."""

    def __init__(self, engine: sa.Engine, *, exact_rows_limit: int = DEFAULT_EXACT_ROWS_LIMIT):
        self.engine = engine
        self.dialect = engine.dialect.name
        if self.dialect == "sqlite":
            configure_sqlite(engine)
        elif self.dialect != "postgresql":
            raise ValueError(f"the store supports sqlite and postgresql, not {self.dialect}")
        # Queries read at most this many raw rows for exact percentiles, else use rollups.
        self.exact_rows_limit = exact_rows_limit
        self.migrations_applied = migrations.upgrade(engine)
        insert = sa.insert(requests).values({c: sa.bindparam(c) for c in _COLUMNS})
        self._insert = _Prepared(insert, _COLUMNS, engine.dialect)
        self._upsert = _Prepared(*rollups.upsert_statement(self.dialect), engine.dialect)
        self._hist = _Prepared(*rollups.hist_update_statement(), engine.dialect)
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False

    @classmethod
    def open(cls, url: str, *, exact_rows_limit: int = DEFAULT_EXACT_ROWS_LIMIT, **engine_kw: Any) -> Store:
        return cls(create_engine(url, **engine_kw), exact_rows_limit=exact_rows_limit)

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        return cls.open(settings.store_url, exact_rows_limit=settings.dashboard.exact_percentiles_max_rows)

    def close(self) -> None:
        with self._lock:
            idle, self._idle, self._closed = self._idle, [], True
        for conn in idle:
            conn.close()
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writes -----------------------------------------------------------------------------

    def write(self, record: RequestRecord) -> None:
        """Store one request and fold it into the rollups: one transaction, one commit."""
        prepared = self._prepare(record)  # before taking the write lock
        with self._writer() as cursor:
            self._execute(cursor, *prepared)

    def write_many(self, records: Iterable[RequestRecord]) -> int:
        """Store several requests in ONE transaction (imports, seeding, benchmarks)."""
        n = 0
        with self._writer() as cursor:
            for record in records:
                self._execute(cursor, *self._prepare(record))
                n += 1
        return n

    def _prepare(self, record: RequestRecord) -> tuple[dict[str, Any], Any, Any]:
        row = record_to_row(record)
        values = self._insert.params(tuple(row[c] for c in _COLUMNS))
        return row, values, self._upsert.params(rollups.upsert_values(row, self.dialect))

    def _execute(self, cursor: Any, row: dict[str, Any], insert_values: Any, upsert_values: Any) -> None:
        cursor.execute(self._insert.sql, insert_values)
        cursor.execute(self._upsert.sql, upsert_values)
        if rollups.merges_in_sql(self.dialect):
            return
        for values in rollups.hist_updates(row, cursor.fetchall()):
            cursor.execute(self._hist.sql, self._hist.params(values))

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
        with self.transaction() as conn:
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
    def transaction(self) -> Iterator[sa.Connection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite) on a pooled connection."""
        with migrations.write_transaction(self.engine) as conn:
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
            deleted[name] = done + self._delete_batches(
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

    def _delete_batches(
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
        transaction; `key` identifies a row (a tuple of columns for a composite key)."""
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

    def oldest_raw_us(self) -> int | None:
        """Start of the oldest request still stored raw (an index lookup)."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.min(requests.c.started_us))).scalar()

    # --- the hot path's connections ---------------------------------------------------------

    @contextmanager
    def _writer(self) -> Iterator[Any]:
        """A DBAPI cursor inside an open write transaction, committed on success."""
        conn = self._checkout()
        try:
            cursor = conn.cursor()
            if self.dialect == "sqlite":
                cursor.execute("BEGIN IMMEDIATE")
            yield cursor
            conn.commit() if self.dialect == "postgresql" else cursor.execute("COMMIT")
        except BaseException as exc:
            self._discard(conn)  # its state is unknown (e.g. interrupted mid-transaction)
            dbapi = self.engine.dialect.loaded_dbapi
            if isinstance(exc, dbapi.Error):  # the same exception types as the Core paths
                raise sa.exc.DBAPIError.instance(None, None, exc, dbapi.Error) from exc
            raise
        self._checkin(conn)

    def _checkout(self) -> Any:
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's connections are not ours
                self._idle, self._pid = [], os.getpid()
            if self._idle:
                return self._idle.pop()
        # A pool connection detached for good: SQLAlchemy's connect hooks (PRAGMAs) ran on it.
        proxied = self.engine.raw_connection()
        proxied.detach()
        return proxied.dbapi_connection

    def _checkin(self, conn: Any) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < _IDLE_WRITERS:
                self._idle.append(conn)
                return
        conn.close()

    @staticmethod
    def _discard(conn: Any) -> None:
        with suppress(Exception):  # already broken: nothing more to do with it
            conn.close()  # closing rolls back whatever the failed write left open
