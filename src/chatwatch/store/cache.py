"""The response cache's table (schema.response_cache): answers by exact request key, with
what the original call cost and took, bounded per model and by age.

    entry = lookup(engine, key)              # a hit also counts itself (hits, last_hit_us)
    put(engine, entry, max_entries=10_000)   # replaces the key's answer; evicts the least recently hit
    prune(store)                             # retention: expired answers, in the store's batches

An expired answer is never served (`lookup` checks expires_us) but keeps its text in the
store until retention deletes it, so the deletion is retention's job, in the same short
batches as the raw rows (store/retention.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from chatwatch.store.db import write_transaction
from chatwatch.store.rollups import INSERT
from chatwatch.store.schema import response_cache

if TYPE_CHECKING:
    from collections.abc import Callable

    from chatwatch.store.records import Store

_C = response_cache.c


@dataclass(frozen=True)
class CacheEntry:
    key: str
    model: str
    text: str
    finish_reason: str | None
    response_model: str | None
    input_tokens: int | None
    output_tokens: int | None
    token_source: str | None
    cost_nanousd: int | None  # the original call's cost (None: it was unpriced)
    price_source: str
    latency_s: float | None
    source_request_id: str
    created_us: int = 0
    expires_us: int = 0
    hits: int = 0


def now_us() -> int:
    return time.time_ns() // 1000


def _entry(row) -> CacheEntry:
    return CacheEntry(**{f: row._mapping[f] for f in CacheEntry.__dataclass_fields__})


def lookup(engine: sa.Engine, key: str, *, at_us: int | None = None) -> CacheEntry | None:
    """The unexpired answer for `key`, counting the hit; None on a miss."""
    at = now_us() if at_us is None else at_us
    with write_transaction(engine) as conn:
        row = conn.execute(
            response_cache.update()
            .where(_C.key == key, _C.expires_us > at)
            .values(hits=_C.hits + 1, last_hit_us=at)
            .returning(*response_cache.c)
        ).first()
    return None if row is None else _entry(row)


def put(engine: sa.Engine, entry: CacheEntry, *, ttl_s: float, max_entries: int, at_us: int | None = None) -> None:
    at = now_us() if at_us is None else at_us
    values = {f: getattr(entry, f) for f in CacheEntry.__dataclass_fields__}
    values.update(created_us=at, expires_us=at + int(ttl_s * 1_000_000), hits=0, last_hit_us=at)
    insert = INSERT[engine.dialect.name](response_cache).values(values)
    upsert = insert.on_conflict_do_update(index_elements=["key"], set_={k: v for k, v in values.items() if k != "key"})
    with write_transaction(engine) as conn:
        conn.execute(upsert)
        # Past the bound, the least recently hit answers of this model go.
        keep = (
            sa.select(_C.key)
            .where(_C.model == entry.model)
            .order_by(_C.last_hit_us.desc(), _C.key)
            .limit(max_entries)
            .scalar_subquery()
        )
        conn.execute(response_cache.delete().where(_C.model == entry.model, _C.key.not_in(keep)))


def prune(store: Store, *, at_us: int | None = None, progress: Callable[[int], None] | None = None) -> int:
    """Delete answers expired at `at_us` (now), a batch per transaction; `progress(deleted
    so far)` after each batch (it may raise to stop). Retention calls this."""
    at = now_us() if at_us is None else at_us
    return store.delete_batches(response_cache, _C.key, _C.expires_us, at + 1, progress=progress)


def count_prunable(engine: sa.Engine, *, at_us: int | None = None) -> int:
    """How many answers `prune` would delete at `at_us` (a dry run's answer)."""
    at = now_us() if at_us is None else at_us
    with engine.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(response_cache).where(_C.expires_us <= at)).scalar_one()
        )


def count(engine: sa.Engine, model: str | None = None) -> int:
    q = sa.select(sa.func.count()).select_from(response_cache)
    if model is not None:
        q = q.where(_C.model == model)
    with engine.connect() as conn:
        return int(conn.execute(q).scalar_one())
