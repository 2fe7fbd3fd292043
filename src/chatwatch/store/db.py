"""The store's database engines: SQLite files in WAL mode with BEGIN IMMEDIATE for writes
(SQLAlchemy's documented pysqlite recipe), or PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from chatwatch.store import rollups

BUSY_TIMEOUT_MS = 10_000


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
    write = conn.get_execution_options().get("chatwatch_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
