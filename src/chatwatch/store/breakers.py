"""Circuit-breaker state in the store, so every process and replica sharing it sees one
state per model (the policy is resilience/breaker.py; this module is only the table access).

`breakers` holds one row per model: its state ("closed" | "open" | "half_open"), the
consecutive counted failures, the last error type, when it opened and `until_us` (open: the
end of the cool-down; half-open: when the probe in flight expires, so a probe whose process
died frees the model). Every transition is a conditional UPDATE inside `write_transaction`
(SQLite: BEGIN IMMEDIATE; PostgreSQL: the row lock the UPDATE takes), so two processes
racing for the half-open probe cannot both win.

The failure-ratio window is counted from the attempts' own records (`requests`, on its
(model, started_us) index): each attempt is a record already, so a second table of events
would be one more write per attempt for the same facts. Counted there: answers (status ok)
and failures of the types that say the model is unwell; not cache hits (no call was made),
cancellations, chatwatch's own refusals or bad requests. A record still waiting in the
monitor's memory (the store locked) is missing from the window until it is written; the
breaker cannot write then either.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import sqlalchemy as sa

from chatwatch.store.db import write_transaction
from chatwatch.store.rollups import INSERT
from chatwatch.store.schema import breakers, requests

_B = breakers.c
_R = requests.c

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerRow:
    model: str
    state: str
    failures: int
    last_error: str | None
    opened_us: int | None
    until_us: int | None
    changed_us: int
    cause: str | None


def _row(r) -> BreakerRow:
    return BreakerRow(
        model=r.model,
        state=r.state,
        failures=r.failures,
        last_error=r.last_error,
        opened_us=r.opened_us,
        until_us=r.until_us,
        changed_us=r.changed_us,
        cause=r.cause,
    )


def closed_row(model: str, now_us: int = 0) -> BreakerRow:
    """The state of a model that has no row yet."""
    return BreakerRow(model, CLOSED, 0, None, None, None, now_us, None)


def read(conn: sa.Connection, models: list[str] | None = None, *, lock: bool = False) -> dict[str, BreakerRow]:
    """Rows by model (all, or those named); `lock` takes PostgreSQL row locks (FOR UPDATE)."""
    q = sa.select(breakers)
    if models is not None:
        q = q.where(_B.model.in_(models))
    if lock and conn.dialect.name == "postgresql":
        q = q.with_for_update()
    return {r.model: _row(r) for r in conn.execute(q)}


def read_all(engine: sa.Engine, models: list[str] | None = None) -> dict[str, BreakerRow]:
    with engine.connect() as conn:
        return read(conn, models)


def ensure(conn: sa.Connection, model: str, now_us: int) -> None:
    """Insert a closed row for `model` unless it has one (any process may race for it)."""
    stmt = INSERT[conn.dialect.name](breakers).values(
        model=model, state=CLOSED, failures=0, last_error=None, opened_us=None, until_us=None, changed_us=now_us
    )
    conn.execute(stmt.on_conflict_do_nothing(index_elements=["model"]))


def update(conn: sa.Connection, model: str, *, expect_state: str | None = None, **values) -> bool:
    """UPDATE the model's row (only if it is in `expect_state`); True if a row changed."""
    q = sa.update(breakers).where(_B.model == model)
    if expect_state is not None:
        q = q.where(_B.state == expect_state)
    return conn.execute(q.values(**values)).rowcount == 1


def take_probe(engine: sa.Engine, model: str, *, now_us: int, probe_until_us: int) -> bool:
    """Move an open circuit whose cool-down is over (or a half-open one whose probe expired)
    to half-open with a new probe; True for the one caller that won it."""
    with write_transaction(engine) as conn:
        q = (
            sa.update(breakers)
            .where(_B.model == model, _B.state.in_((OPEN, HALF_OPEN)), _B.until_us <= now_us)
            .values(state=HALF_OPEN, until_us=probe_until_us, changed_us=now_us)
        )
        return conn.execute(q).rowcount == 1


def window(conn: sa.Connection, model: str, *, since_us: int, counted: Collection[str]) -> tuple[int, int]:
    """(attempts, failures) of `model` that started at or after `since_us`: answers and
    failures of the `counted` error types, cache hits left out."""
    failed = _R.error_type.in_(list(counted))
    q = sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(sa.case((failed, 1), else_=0)), 0)).where(
        _R.model == model,
        _R.started_us >= since_us,
        _R.cache_hit.is_(sa.false()),
        sa.or_(_R.status == "ok", failed),
    )
    total, bad = conn.execute(q).one()
    return int(total), int(bad)


def open_models(conn: sa.Connection) -> list[BreakerRow]:
    """Circuits not closed (open or half-open), for the circuit_open alert."""
    q = sa.select(breakers).where(_B.state != CLOSED).order_by(_B.model)
    return [_row(r) for r in conn.execute(q)]
