"""Budget spend in the store, kept so a limit holds across processes and replicas.

An attempt first `reserve`s what it may cost at most on every budget it falls under, in
one write transaction that locks those budgets' rows (SQLite: BEGIN IMMEDIATE; PostgreSQL:
SELECT ... FOR UPDATE, in budget order so two attempts never deadlock). The reservation is
refused when, for any enforcing budget, settled spend + reservations in flight + this one
would pass the limit; then nothing is reserved. After the attempt, `settle` replaces the
reservation by the real cost. Reservations of a process that died are reclaimed once they
expire. So racing processes can overspend only by what their in-flight attempts cost above
their reservations (the estimate of the prompt's tokens), never by whole requests.

    usage, refused = reserve(engine, claims, reservation_id=rid, nanousd=n, tokens=t, ttl_s=600, instance=i)
    ...
    settle(engine, claims, reservation_id=rid, nanousd=actual, tokens=actual_tokens)
    prune(store, ended_before=raw_before, day_budgets={"daily"})   # retention: ended periods

Retention keeps a period's rows as long as the raw request rows of that period: a period
goes once it ended more than `[retention] raw_days` ago. A row says only when its period
started, so its end comes from the budget's period in the config; a budget no longer
configured is taken to be monthly, the longer period, so no row goes before its time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa

from chatwatch.store.db import write_transaction
from chatwatch.store.records import to_us
from chatwatch.store.rollups import INSERT
from chatwatch.store.schema import budget_reservations, budget_usage

if TYPE_CHECKING:
    from chatwatch.store.records import Store

_U = budget_usage.c
_R = budget_reservations.c
DAY_US = 86_400_000_000
# What prune deletes, in its order: reservations first, so none is left without its period.
PRUNE_STAGES = ("budget_reservations", "budget_usage")


@dataclass(frozen=True)
class Claim:
    """One budget period an attempt falls under."""

    budget: str
    period_start_us: int
    limit_nanousd: int | None
    limit_tokens: int | None
    enforce: bool = True  # False ("warn"): reserved and counted, never refused


@dataclass(frozen=True)
class Usage:
    budget: str
    period_start_us: int
    spent_nanousd: int
    spent_tokens: int
    reserved_nanousd: int
    reserved_tokens: int
    notified: float

    def fits(self, claim: Claim, nanousd: int, tokens: int) -> bool:
        if claim.limit_nanousd is not None and nanousd > 0:
            if self.spent_nanousd + self.reserved_nanousd + nanousd > claim.limit_nanousd:
                return False
        if claim.limit_tokens is not None and tokens > 0:
            if self.spent_tokens + self.reserved_tokens + tokens > claim.limit_tokens:
                return False
        return True


def now_us() -> int:
    return time.time_ns() // 1000


def _usage(row) -> Usage:
    return Usage(
        budget=row.budget,
        period_start_us=row.period_start_us,
        spent_nanousd=row.spent_nanousd,
        spent_tokens=row.spent_tokens,
        reserved_nanousd=row.reserved_nanousd,
        reserved_tokens=row.reserved_tokens,
        notified=row.notified,
    )


def _key(claim: Claim):
    return sa.and_(_U.budget == claim.budget, _U.period_start_us == claim.period_start_us)


def _lock_rows(conn: sa.Connection, claims: Sequence[Claim]) -> dict[str, Usage]:
    """Make sure each claim's row exists, lock them in budget order, return them."""
    insert = INSERT[conn.dialect.name](budget_usage)
    for claim in claims:
        conn.execute(
            insert.values(
                budget=claim.budget,
                period_start_us=claim.period_start_us,
                spent_nanousd=0,
                spent_tokens=0,
                reserved_nanousd=0,
                reserved_tokens=0,
                notified=0.0,
            ).on_conflict_do_nothing(index_elements=["budget", "period_start_us"])
        )
    select = sa.select(budget_usage).where(sa.or_(*(_key(c) for c in claims))).order_by(_U.budget)
    if conn.dialect.name == "postgresql":
        select = select.with_for_update()
    return {row.budget: _usage(row) for row in conn.execute(select)}


def _reclaim_expired(conn: sa.Connection, claim: Claim, at_us: int) -> None:
    gone = conn.execute(
        budget_reservations.delete()
        .where(_R.budget == claim.budget, _R.period_start_us == claim.period_start_us, _R.expires_us <= at_us)
        .returning(_R.nanousd, _R.tokens)
    ).all()
    if gone:
        conn.execute(
            budget_usage.update()
            .where(_key(claim))
            .values(
                reserved_nanousd=_U.reserved_nanousd - sum(g.nanousd for g in gone),
                reserved_tokens=_U.reserved_tokens - sum(g.tokens for g in gone),
            )
        )


def reserve(
    engine: sa.Engine,
    claims: Sequence[Claim],
    *,
    reservation_id: str,
    nanousd: int,
    tokens: int,
    ttl_s: float,
    instance: str,
    at_us: int | None = None,
) -> tuple[dict[str, Usage], Claim | None]:
    """Reserve `nanousd` and `tokens` on every claim, or on none. Returns the usage rows as
    they were before this reservation and the first enforcing claim it would pass (None:
    reserved)."""
    if not claims:
        return {}, None
    at = now_us() if at_us is None else at_us
    ordered = sorted(claims, key=lambda c: c.budget)
    with write_transaction(engine) as conn:
        for claim in ordered:
            _reclaim_expired(conn, claim, at)
        usage = _lock_rows(conn, ordered)
        for claim in ordered:
            if claim.enforce and not usage[claim.budget].fits(claim, nanousd, tokens):
                return usage, claim
        expires = at + int(ttl_s * 1_000_000)
        for claim in ordered:
            conn.execute(
                budget_reservations.insert().values(
                    id=reservation_id,
                    budget=claim.budget,
                    period_start_us=claim.period_start_us,
                    nanousd=nanousd,
                    tokens=tokens,
                    expires_us=expires,
                    instance=instance,
                )
            )
            conn.execute(
                budget_usage.update()
                .where(_key(claim))
                .values(reserved_nanousd=_U.reserved_nanousd + nanousd, reserved_tokens=_U.reserved_tokens + tokens)
            )
    return usage, None


def settle(
    engine: sa.Engine, claims: Sequence[Claim], *, reservation_id: str | None, nanousd: int, tokens: int
) -> dict[str, Usage]:
    """Count an attempt's real cost on its claims and drop its reservation (if it still
    holds one: an expired one was reclaimed already). Returns the usage after."""
    if not claims:
        return {}
    ordered = sorted(claims, key=lambda c: c.budget)
    with write_transaction(engine) as conn:
        _lock_rows(conn, ordered)
        for claim in ordered:
            held = None
            if reservation_id is not None:
                held = conn.execute(
                    budget_reservations.delete()
                    .where(_R.id == reservation_id, _R.budget == claim.budget)
                    .returning(_R.nanousd, _R.tokens)
                ).first()
            conn.execute(
                budget_usage.update()
                .where(_key(claim))
                .values(
                    spent_nanousd=_U.spent_nanousd + nanousd,
                    spent_tokens=_U.spent_tokens + tokens,
                    reserved_nanousd=_U.reserved_nanousd - (held.nanousd if held else 0),
                    reserved_tokens=_U.reserved_tokens - (held.tokens if held else 0),
                )
            )
        rows = conn.execute(sa.select(budget_usage).where(sa.or_(*(_key(c) for c in ordered))))
        return {row.budget: _usage(row) for row in rows}


def mark_notified(engine: sa.Engine, budget: str, period_start_us: int, fraction: float) -> bool:
    """Record that `fraction` of the limit was announced this period; True for exactly one
    caller per fraction and period (the one that should notify)."""
    with write_transaction(engine) as conn:
        done = conn.execute(
            budget_usage.update()
            .where(_U.budget == budget, _U.period_start_us == period_start_us, _U.notified < fraction)
            .values(notified=fraction)
            .returning(_U.budget)
        ).first()
    return done is not None


def read_usage(engine: sa.Engine, keys: Sequence[tuple[str, int]]) -> dict[str, Usage]:
    """Usage rows of (budget, period_start_us) pairs; absent ones were never used."""
    if not keys:
        return {}
    where = sa.or_(*(sa.and_(_U.budget == b, _U.period_start_us == p) for b, p in keys))
    with engine.connect() as conn:
        return {row.budget: _usage(row) for row in conn.execute(sa.select(budget_usage).where(where))}


def _ended(table: sa.Table, ended_before: datetime, day_budgets: Collection[str]) -> list[tuple[int, tuple]]:
    """(period_start_us cutoff, extra condition) pairs selecting rows of `table` whose period
    ended at or before `ended_before`: a day ends a day after it starts; a month (and a
    budget not in the config) at the next month's start, so it has ended when it started
    before `ended_before`'s month."""
    at = ended_before.astimezone(UTC)
    day_cut = to_us(at) - DAY_US + 1  # start + 1 day <= ended_before
    month_cut = to_us(datetime(at.year, at.month, 1, tzinfo=UTC))
    days = sorted(day_budgets)
    c = table.c
    return [(day_cut, (c.budget.in_(days),)), (month_cut, (c.budget.not_in(days),))]


def prune(
    store: Store,
    *,
    ended_before: datetime,
    day_budgets: Collection[str] = (),
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Delete the rows of budget periods that ended at or before `ended_before`,
    reservations then usage, a batch per transaction; `day_budgets` are the names of the
    configured daily budgets. `progress(stage, deleted so far)` after each batch (it may
    raise to stop). Returns rows deleted per table."""
    deleted: dict[str, int] = {}
    for name, table, key in (
        ("budget_reservations", budget_reservations, (_R.id, _R.budget)),
        ("budget_usage", budget_usage, (_U.budget, _U.period_start_us)),
    ):
        for cut, where in _ended(table, ended_before, day_budgets):
            done = deleted.get(name, 0)
            report = None if progress is None else (lambda n, name=name, done=done: progress(name, done + n))
            deleted[name] = done + store.delete_batches(
                table, key, table.c.period_start_us, cut, where=where, progress=report
            )
    return deleted


def count_prunable(engine: sa.Engine, *, ended_before: datetime, day_budgets: Collection[str] = ()) -> dict[str, int]:
    """What `prune` with the same arguments would delete now (a dry run's answer)."""
    counts: dict[str, int] = {}
    with engine.connect() as conn:
        for name, table in (("budget_reservations", budget_reservations), ("budget_usage", budget_usage)):
            for cut, where in _ended(table, ended_before, day_budgets):
                query = sa.select(sa.func.count()).select_from(table).where(table.c.period_start_us < cut, *where)
                counts[name] = counts.get(name, 0) + int(conn.execute(query).scalar_one())
    return counts
