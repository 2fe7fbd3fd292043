"""Sliding-minute rate limits in the store, shared by every process and replica.

`admit` is one write transaction (SQLite BEGIN IMMEDIATE; PostgreSQL a transaction-scoped
advisory lock per key, so racing replicas queue per limit, not on one global lock): drop
the key's events older than the window, sum what is left, and either log this request or
say when the oldest event leaves the window (the "retry in N s"). `settle` replaces a
request's estimated tokens by its real count.

    ok, retry_in_s = admit(engine, [("model:gpt", 60, 100_000)], event_id, tokens=900)
    prune(store)   # retention: events that left the window, in the store's batches

`admit` drops old events only of the keys it checks, so a key that goes quiet (a session
that ended, a model no longer used) would keep its last minute's events forever: retention
deletes every event older than the window (one minute: the only and so the longest window),
which no admit can count any more.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa

from chatwatch.store.db import write_transaction
from chatwatch.store.schema import rate_events

if TYPE_CHECKING:
    from chatwatch.store.records import Store

_E = rate_events.c
WINDOW_US = 60_000_000

Limit = tuple[str, int | None, int | None]  # (key, requests per minute, tokens per minute)


def now_us() -> int:
    return time.time_ns() // 1000


def admit(
    engine: sa.Engine, limits: Sequence[Limit], event_id: str, *, tokens: int, at_us: int | None = None
) -> tuple[bool, float | None, str | None]:
    """Log one request under every limit, or under none. Returns (admitted, seconds until a
    request could be admitted, the key that refused)."""
    active = [(k, r, t) for k, r, t in limits if r or t]
    if not active:
        return True, None, None
    at = now_us() if at_us is None else at_us
    since = at - WINDOW_US
    with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            for key, _, _ in sorted(active):
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(zlib.crc32(key.encode()))))
        for key, per_min, tokens_per_min in active:
            conn.execute(rate_events.delete().where(_E.key == key, _E.at_us <= since))
            rows = conn.execute(sa.select(_E.at_us, _E.tokens).where(_E.key == key).order_by(_E.at_us)).all()
            wait = None
            if per_min and len(rows) + 1 > per_min:
                wait = rows[len(rows) - per_min].at_us + WINDOW_US - at  # when enough of them leave
            if tokens_per_min and tokens > 0 and sum(r.tokens for r in rows) + tokens > tokens_per_min:
                need, freed, w = sum(r.tokens for r in rows) + tokens - tokens_per_min, 0, None
                for r in rows:
                    freed += r.tokens
                    if freed >= need:
                        w = r.at_us + WINDOW_US - at
                        break
                w = WINDOW_US if w is None else w  # this request alone is over the limit
                wait = max(wait or 0, w)
            if wait is not None:
                return False, max(wait, 0) / 1e6, key
        conn.execute(
            rate_events.insert(), [{"id": event_id, "key": k, "at_us": at, "tokens": tokens} for k, _, _ in active]
        )
    return True, None, None


def settle(engine: sa.Engine, event_id: str, tokens: int) -> None:
    """The request's real token count replaces its estimate."""
    with write_transaction(engine) as conn:
        conn.execute(rate_events.update().where(_E.id == event_id).values(tokens=tokens))


def prune(store: Store, *, at_us: int | None = None, progress: Callable[[int], None] | None = None) -> int:
    """Delete events that left every window at `at_us` (now), a batch per transaction;
    `progress(deleted so far)` after each batch (it may raise to stop). Retention calls this."""
    return store.delete_batches(rate_events, (_E.id, _E.key), _E.at_us, _left_before(at_us), progress=progress)


def count_prunable(engine: sa.Engine, *, at_us: int | None = None) -> int:
    """How many events `prune` would delete at `at_us` (a dry run's answer)."""
    query = sa.select(sa.func.count()).select_from(rate_events).where(_E.at_us < _left_before(at_us))
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def _left_before(at_us: int | None) -> int:
    """Events that started before this have left the window (admit drops `at_us <= at - WINDOW_US`)."""
    at = now_us() if at_us is None else at_us
    return at - WINDOW_US + 1
