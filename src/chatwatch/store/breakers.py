"""Circuit-breaker state in the store, so every process and replica sharing it sees one
state per model (the policy is resilience/breaker.py; this module is only the table access).

`breakers` holds one row per model: its state ("closed" | "open" | "half_open"), the
consecutive counted failures, the last error type, when it opened and `until_us` (open: the
end of the cool-down; half-open: when the probe in flight expires, so a probe whose process
died frees the model). Every transition is a conditional UPDATE inside `write_transaction`
(SQLite: BEGIN IMMEDIATE; PostgreSQL: the row lock the UPDATE takes), so two processes
racing for the half-open probe cannot both win.

`breaker_events` is the failure-ratio window: one row per counted attempt (success or a
failure that counts) with its time, pruned past the model's window. It is kept here rather
than counted from `requests` because a request's record may be written later by the
background writer (or not at all while the store is locked), and because only attempts that
went through the breaker belong in it (not cache hits nor chatwatch's own refusals).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from chatwatch.store.db import write_transaction
from chatwatch.store.rollups import INSERT
from chatwatch.store.schema import breaker_events, breakers

_B = breakers.c
_E = breaker_events.c

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


def add_event(conn: sa.Connection, model: str, *, at_us: int, failed: bool, window_start_us: int) -> tuple[int, int]:
    """Book one counted attempt, drop the model's events before the window, and return
    (attempts, failures) in the window."""
    conn.execute(sa.insert(breaker_events).values(id=str(uuid.uuid4()), model=model, at_us=at_us, failed=failed))
    conn.execute(sa.delete(breaker_events).where(_E.model == model, _E.at_us < window_start_us))
    total, bad = conn.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(sa.case((_E.failed, 1), else_=0)), 0)).where(
            _E.model == model, _E.at_us >= window_start_us
        )
    ).one()
    return int(total), int(bad)


def open_models(conn: sa.Connection) -> list[BreakerRow]:
    """Circuits not closed (open or half-open), for the circuit_open alert."""
    q = sa.select(breakers).where(_B.state != CLOSED).order_by(_B.model)
    return [_row(r) for r in conn.execute(q)]
