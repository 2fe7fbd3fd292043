"""Request records that were never stored, counted in the store itself.

The monitor keeps records the store could not take in memory and writes them once it can
(telemetry/monitor.py); past `[store] unsaved_max_records` it drops the oldest. Each drop
is then written here as soon as the store is back (one row per model and burst), so every
process and page can tell that a range is incomplete, and by how much, instead of showing
a silently lower count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from chatwatch.store.records import Store, from_us, to_us
from chatwatch.store.schema import record_losses


@dataclass(frozen=True)
class Loss:
    at: datetime  # when the last of these records was dropped
    instance: str
    model: str
    count: int
    first_started: datetime  # start times of the dropped records span [first, last]
    last_started: datetime
    reason: str

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"a loss counts at least one record, not {self.count!r}")
        if self.last_started < self.first_started:
            raise ValueError(f"last_started {self.last_started} is before first_started {self.first_started}")


def loss_row(loss: Loss) -> dict:
    """A Loss as a `record_losses` row."""
    return {
        "at_us": to_us(loss.at),
        "instance": loss.instance,
        "model": loss.model,
        "count": loss.count,
        "first_started_us": to_us(loss.first_started),
        "last_started_us": to_us(loss.last_started),
        "reason": loss.reason,
    }


def write_losses(store: Store, losses: Sequence[Loss]) -> None:
    """Insert the losses in one transaction (nothing written if any fails)."""
    if not losses:
        return
    rows = [loss_row(loss) for loss in losses]
    with store.transaction() as conn:
        conn.execute(record_losses.insert(), rows)


def read_losses(
    store: Store,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    models: Sequence[str] = (),
) -> list[Loss]:
    """Losses whose dropped records started within [since, until) (overlapping it), oldest
    first; `models` empty means every model."""
    t = record_losses.c
    query = sa.select(record_losses).order_by(t.first_started_us, t.id)
    if since is not None:
        query = query.where(t.last_started_us >= to_us(since))
    if until is not None:
        query = query.where(t.first_started_us < to_us(until))
    if models:
        query = query.where(t.model.in_(list(models)))
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        Loss(
            at=from_us(r.at_us),
            instance=r.instance,
            model=r.model,
            count=r.count,
            first_started=from_us(r.first_started_us),
            last_started=from_us(r.last_started_us),
            reason=r.reason,
        )
        for r in rows
    ]
