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
# Execution option read by the SQLite `begin` hook below: BEGIN IMMEDIATE instead of BEGIN.
_WRITE_OPTION = "chatwatch_write"
WRITE_LOCK = {_WRITE_OPTION: True}


@contextmanager
def write_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A write transaction on a pooled connection, committed on success, rolled back on any
    exception. SQLite: BEGIN IMMEDIATE, so the write lock is taken (or waited for, up to the
    busy timeout) at the start -- a deferred transaction that later needs it can fail with
    SQLITE_BUSY without waiting. PostgreSQL: a plain transaction (row locks do the rest)."""
    with engine.connect().execution_options(**WRITE_LOCK) as conn, conn.begin():
        yield conn


def create_engine(url: str | sa.URL, **engine_kw: Any) -> sa.Engine:
    """Engine for the store's URL; for SQLite files the parent folder is created."""
    u = sa.make_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        db = u.database or ""
        if db in ("", ":memory:") or db.startswith("file:") and "mode=memory" in db:
            raise ValueError("the store needs a SQLite file (an in-memory database is per connection)")
        Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"timeout": BUSY_TIMEOUT_MS / 1000, **engine_kw.pop("connect_args", {})}
        # Every connection is used inside `with`: Connection.close() already rolls back a
        # transaction left open, so the pool's extra ROLLBACK on each check-in is redundant
        # (SQLAlchemy's documented `pool_reset_on_return=None`; about 5 % of a write).
        engine_kw.setdefault("pool_reset_on_return", None)
        return sa.create_engine(u, connect_args=connect_args, **engine_kw)
    if backend == "postgresql":
        engine_kw.setdefault("pool_pre_ping", True)
        return sa.create_engine(u, **engine_kw)
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


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # Only takes effect on a new file, before the first table: so it comes first.
    cur.execute("PRAGMA auto_vacuum = INCREMENTAL")
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA synchronous = NORMAL")
    cur.close()
    dbapi_conn.create_function(rollups.HIST_MERGE_SQL, 2, rollups.hist_merge_sql, deterministic=True)


def _sqlite_begin(conn: sa.Connection) -> None:
    write = conn.get_execution_options().get(_WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
