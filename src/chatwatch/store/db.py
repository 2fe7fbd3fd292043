"""The store's database engines and its one kind of write transaction.

SQLite files run in WAL mode with BEGIN IMMEDIATE for writes (SQLAlchemy's documented
pysqlite recipe: the driver's own BEGIN handling is off and the `begin` event emits ours);
PostgreSQL runs plain READ COMMITTED transactions. Every write of chatwatch -- records and
rollups, migrations, leases, alerts, retention -- goes through `write_transaction`, so there
is one place that decides how a write takes its lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from chatwatch.store import rollups

BUSY_TIMEOUT_MS = 10_000
PG_CONNECT_TIMEOUT_S = 5  # a PostgreSQL host that does not answer fails a write, not hangs it
# Execution options read by the SQLite `begin` hook below: BEGIN IMMEDIATE instead of BEGIN,
# and how long that BEGIN may wait for another writer's lock.
_WRITE_OPTION = "chatwatch_write"
_WAIT_OPTION = "chatwatch_lock_wait_ms"
WRITE_LOCK = {_WRITE_OPTION: True}


@contextmanager
def write_transaction(engine: sa.Engine, *, lock_wait_s: float | None = None) -> Iterator[sa.Connection]:
    """A write transaction on a pooled connection, committed on success, rolled back on any
    exception. SQLite: BEGIN IMMEDIATE, so the write lock is taken (or waited for, up to the
    busy timeout) at the start -- a deferred transaction that later needs it can fail with
    SQLITE_BUSY without waiting. PostgreSQL: a plain transaction (row locks do the rest).

    `lock_wait_s` bounds the wait for another writer's lock (default BUSY_TIMEOUT_MS): a
    request's own commit waits briefly and, if the database stays locked, leaves its record
    to the monitor's background writer instead of holding up the reply for ten seconds."""
    options = dict(WRITE_LOCK)
    if lock_wait_s is not None:
        options[_WAIT_OPTION] = max(1, int(lock_wait_s * 1000))
    with engine.connect().execution_options(**options) as conn, conn.begin():
        wait = conn.get_execution_options().get(_WAIT_OPTION)  # this call's, or a request_engine's
        if wait is not None and conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(wait)}")
        yield conn


def request_engine(engine: sa.Engine, lock_wait_s: float) -> sa.Engine:
    """The same engine (and pool) whose write transactions wait at most `lock_wait_s` for
    another writer: for what runs on a request's own thread (the gates' rate-limit, budget
    and cache writes), so a database locked by another process costs a request a bounded
    wait, after which the gate lets it through, instead of the ten-second busy timeout."""
    return engine.execution_options(**{_WAIT_OPTION: max(1, int(lock_wait_s * 1000))})


def create_engine(url: str | sa.URL, **engine_kw: Any) -> sa.Engine:
    """Engine for the store's URL; for SQLite files the parent folder is created."""
    u = sa.make_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        db = u.database or ""
        if db in ("", ":memory:") or db.startswith("file:") and "mode=memory" in db:
            raise ValueError("the store needs a SQLite file (an in-memory database is per connection)")
        try:
            Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass  # an unwritable place: the first connection fails and says why (Store waits for it)
        connect_args = {"timeout": BUSY_TIMEOUT_MS / 1000, **engine_kw.pop("connect_args", {})}
        # Every connection is used inside `with`: Connection.close() already rolls back a
        # transaction left open, so the pool's extra ROLLBACK on each check-in is redundant
        # (SQLAlchemy's documented `pool_reset_on_return=None`; about 5 % of a write).
        engine_kw.setdefault("pool_reset_on_return", None)
        return sa.create_engine(u, connect_args=connect_args, **engine_kw)
    if backend == "postgresql":
        engine_kw.setdefault("pool_pre_ping", True)
        connect_args = engine_kw.pop("connect_args", {})
        if "connect_timeout" not in u.query:
            connect_args.setdefault("connect_timeout", PG_CONNECT_TIMEOUT_S)
        return sa.create_engine(u, connect_args=connect_args, **engine_kw)
    raise ValueError(f"only sqlite:// and postgresql:// URLs are supported (got {backend!r})")


def configure_sqlite(engine: sa.Engine) -> None:
    if getattr(engine, "_chatwatch_sqlite", False):
        return
    engine._chatwatch_sqlite = True  # type: ignore[attr-defined]
    # SQLAlchemy's documented recipe for pysqlite transaction control: turn off the
    # driver's own BEGIN handling and emit BEGIN ourselves from the `begin` event.
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    engine.pool.dispose()  # connections opened before the hooks existed lack the PRAGMAs


def _sqlite_connect(dbapi_conn: Any, record: Any) -> None:
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    record.info[_WAIT_OPTION] = BUSY_TIMEOUT_MS
    # Only takes effect on a new file, before the first table: so it comes first, and only
    # there (on an existing file it still waits for another writer's lock, for nothing:
    # every connection would then wait the busy timeout while another process writes).
    if cur.execute("PRAGMA page_count").fetchone()[0] == 0:
        cur.execute("PRAGMA auto_vacuum = INCREMENTAL")
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA synchronous = NORMAL")
    cur.close()
    dbapi_conn.create_function(rollups.HIST_MERGE_SQL, 2, rollups.hist_merge_sql, deterministic=True)


def _sqlite_begin(conn: sa.Connection) -> None:
    options = conn.get_execution_options()
    wait = options.get(_WAIT_OPTION, BUSY_TIMEOUT_MS)
    info = conn.connection.info  # lives with the DBAPI connection across checkouts
    if info.get(_WAIT_OPTION) != wait:  # a PRAGMA only when this connection's wait changes
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(wait)}")
        info[_WAIT_OPTION] = wait
    conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_WRITE_OPTION, False) else "BEGIN")
