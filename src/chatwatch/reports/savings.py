"""What the response cache saved, per model, over a range: hits, the hit rate, the dollars
and seconds the original calls would have cost again.

Read from the raw request rows (a hit's record carries `cache_hit`, `saved_nanousd` and
`saved_s`, see resilience/cache.py), with the same range, model, status and session filters
as every other query (`aggregate.request_conditions`); the rollups hold no cache columns, so
a range reaching past the raw rows retention counts only the rows left.

* hit rate = hits / attempts of that model: attempts are its records minus the requests
  chatwatch refused itself before any call (reports/attempts.py), so a hit counts as an
  attempt that the cache answered. Models without cache = true have a rate of 0 hits.
* dollars saved = the exact sum of the hits' saved nano-dollars. A hit whose original call
  was unpriced saved an unknown amount: it is counted in `unpriced_hits`, never as $0.
* seconds saved = the sum of the hits' saved_s (the original latency minus the hit's).

    for s in cache_savings(store, filters): s.model, s.hits, s.hit_rate, s.saved_usd, s.unpriced_hits, s.saved_s
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from chatwatch.reports.aggregate import Filters, request_conditions
from chatwatch.store.record import LOCAL_REFUSALS
from chatwatch.store.records import Store, nanousd_to_usd
from chatwatch.store.schema import requests

HIT_RATE_BASIS = "attempts"  # the denominator of hit_rate, named on the page


@dataclass(frozen=True)
class CacheSavings:
    model: str
    attempts: int  # records of the model minus local refusals
    hits: int
    saved_usd: Decimal  # exact, over the hits whose original cost was known
    unpriced_hits: int  # hits whose original was unpriced: their saving is unknown
    saved_s: float  # over the hits with a known saving in time

    @property
    def hit_rate(self) -> float | None:
        return self.hits / self.attempts if self.attempts else None

    @property
    def priced_hits(self) -> int:
        return self.hits - self.unpriced_hits


def cache_savings(store: Store, filters: Filters) -> list[CacheSavings]:
    """One row per model with records in the range, by model id."""
    r = requests.c
    hit = r.cache_hit.is_(True)

    def count(condition) -> sa.ColumnElement[int]:
        return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)

    attempt = sa.or_(r.error_type.is_(None), r.error_type.not_in(LOCAL_REFUSALS))
    query = (
        sa.select(
            r.model,
            count(attempt).label("attempts"),
            count(hit).label("hits"),
            sa.func.coalesce(sa.func.sum(sa.case((hit, r.saved_nanousd), else_=None)), 0).label("saved_nanousd"),
            count(sa.and_(hit, r.saved_nanousd.is_(None))).label("unpriced_hits"),
            sa.func.coalesce(sa.func.sum(sa.case((hit, r.saved_s), else_=None)), 0.0).label("saved_s"),
        )
        .where(*request_conditions(filters))
        .group_by(r.model)
        .order_by(r.model)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        CacheSavings(
            model=row.model,
            attempts=int(row.attempts),
            hits=int(row.hits),
            saved_usd=nanousd_to_usd(int(row.saved_nanousd)),
            unpriced_hits=int(row.unpriced_hits),
            saved_s=float(row.saved_s),
        )
        for row in rows
    ]
