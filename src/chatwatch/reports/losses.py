"""Records lost in a dashboard range: the dashboard's counts are only as complete as the
store, so a range where a process had to drop records (its unsaved backlog was full while
the store was down, see telemetry/monitor.py) says so and by how much."""

from __future__ import annotations

from dataclasses import dataclass

from chatwatch.reports.aggregate import Filters
from chatwatch.store.losses import Loss, read_losses
from chatwatch.store.records import Store


@dataclass(frozen=True)
class Losses:
    count: int  # records lost in the range, all instances
    instances: tuple[str, ...]
    reasons: tuple[str, ...]  # distinct reasons, oldest first
    losses: tuple[Loss, ...]

    def __bool__(self) -> bool:
        return self.count > 0


NO_LOSSES = Losses(count=0, instances=(), reasons=(), losses=())


def losses(store: Store, filters: Filters) -> Losses:
    """Losses of the filters' models whose records started in the filters' time range.
    Status, session, error type and text filters do not apply: a lost record's status and
    content are unknown beyond its model and start time."""
    found = read_losses(store, since=filters.since, until=filters.until, models=filters.models)
    return Losses(
        count=sum(loss.count for loss in found),
        instances=tuple(dict.fromkeys(loss.instance for loss in found)),
        reasons=tuple(dict.fromkeys(loss.reason for loss in found)),
        losses=tuple(found),
    )
