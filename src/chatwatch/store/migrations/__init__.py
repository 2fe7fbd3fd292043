"""Ordered schema migrations, recorded in the `schema_migrations` table.

Each module here named `mNNNN_<name>.py` defines VERSION (int), NAME (str) and
`upgrade(conn)`; new modules are found automatically. Pending migrations run in version
order inside one `write_transaction` that first takes the database's migration lock
(BEGIN IMMEDIATE on SQLite, a transaction-scoped advisory lock on PostgreSQL), so several
processes opening a fresh database at once apply each migration exactly once.

A migration is history: it must not import table definitions from schema.py (those move
on); it spells out the tables as they were at its version.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import time
from types import ModuleType

import sqlalchemy as sa

from chatwatch.store.db import write_transaction
from chatwatch.store.schema import schema_migrations

_MODULE = re.compile(r"^m(\d{4})_\w+$")
# pg_advisory_xact_lock key: any constant shared by every chatwatch process.
PG_LOCK_KEY = 0x63_68_61_74_77  # "chatw"


def discover() -> list[ModuleType]:
    found: list[ModuleType] = []
    for info in pkgutil.iter_modules(__path__):
        match = _MODULE.match(info.name)
        if not match:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if module.VERSION != int(match.group(1)):
            raise RuntimeError(f"migration {info.name} declares VERSION = {module.VERSION}")
        found.append(module)
    found.sort(key=lambda m: m.VERSION)
    versions = [m.VERSION for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migrations share a version: {versions}")
    return found


def applied(conn: sa.Connection) -> set[int]:
    if not sa.inspect(conn).has_table(schema_migrations.name):
        return set()
    return set(conn.execute(sa.select(schema_migrations.c.version)).scalars())


def upgrade(engine: sa.Engine) -> list[int]:
    """Apply pending migrations; returns the versions this call applied."""
    modules = discover()
    with engine.connect() as conn:  # cheap check without the write lock: the usual case
        done = applied(conn)
    if all(m.VERSION in done for m in modules):
        return []
    ran: list[int] = []
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(PG_LOCK_KEY)))
        schema_migrations.create(conn, checkfirst=True)
        done = applied(conn)  # again, under the lock: another process may have won
        for module in modules:
            if module.VERSION in done:
                continue
            module.upgrade(conn)
            conn.execute(
                schema_migrations.insert().values(
                    version=module.VERSION, name=module.NAME, applied_us=time.time_ns() // 1000
                )
            )
            ran.append(module.VERSION)
    return ran
