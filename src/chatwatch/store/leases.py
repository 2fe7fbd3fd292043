"""Cross-process leases: a named claim in the `leases` table that one holder owns until
it expires. Used so that only one process (or replica) runs a periodic job per interval.

    if leases.acquire(store.engine, "retention", holder, ttl_s=3600):
        ...  # this process runs the job; the others skip it until the lease expires

`acquire` is one write transaction: take the row over if it expired (or is already ours),
else insert it if nobody has it. On SQLite the transaction is BEGIN IMMEDIATE, so
acquirers queue on the write lock; on PostgreSQL a concurrent UPDATE re-checks its WHERE
against the winner's committed row (READ COMMITTED) and the INSERT's ON CONFLICT DO
NOTHING loses to a row inserted meanwhile, so exactly one acquirer gets each free lease.
Expiry uses the callers' wall clocks: replicas on other hosts need clocks that agree to
well within a TTL (NTP does).
"""

from __future__ import annotations

import time
from typing import NamedTuple

import sqlalchemy as sa

from chatwatch.store.db import write_transaction
from chatwatch.store.rollups import INSERT
from chatwatch.store.schema import leases

_L = leases.c


class Lease(NamedTuple):
    name: str
    holder: str
    expires_us: int


def now_us() -> int:
    return time.time_ns() // 1000


def acquire(engine: sa.Engine, name: str, holder: str, ttl_s: float, *, at_us: int | None = None) -> bool:
    """Claim `name` for `holder` until `ttl_s` seconds from now. True if the caller holds it
    now: it was free, expired, or already held by `holder` (then the expiry is extended)."""
    if ttl_s <= 0:
        raise ValueError(f"a lease needs a positive TTL (got {ttl_s!r})")
    now = now_us() if at_us is None else at_us
    expires = now + int(ttl_s * 1_000_000)
    with write_transaction(engine) as conn:
        # RETURNING rather than rowcount: drivers disagree on rowcount for ON CONFLICT DO NOTHING.
        taken = conn.execute(
            leases.update()
            .where(_L.name == name, sa.or_(_L.expires_us <= now, _L.holder == holder))
            .values(holder=holder, expires_us=expires)
            .returning(_L.name)
        ).first()
        if taken is not None:
            return True
        insert = INSERT[engine.dialect.name](leases).values(name=name, holder=holder, expires_us=expires)
        claim = insert.on_conflict_do_nothing(index_elements=["name"]).returning(_L.name)
        return conn.execute(claim).first() is not None


def release(engine: sa.Engine, name: str, holder: str) -> bool:
    """Give the lease up early (only its holder can). True if `holder` held it."""
    with write_transaction(engine) as conn:
        delete = leases.delete().where(_L.name == name, _L.holder == holder).returning(_L.name)
        return conn.execute(delete).first() is not None


def current(engine: sa.Engine, name: str, *, at_us: int | None = None) -> Lease | None:
    """The unexpired lease on `name`, if any."""
    now = now_us() if at_us is None else at_us
    with engine.connect() as conn:
        row = conn.execute(sa.select(leases).where(_L.name == name, _L.expires_us > now)).first()
    return None if row is None else Lease(row.name, row.holder, row.expires_us)
