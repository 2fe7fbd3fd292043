"""Each configured model's circuit breaker as the store has it, for the dashboard: read from
the breakers table (store/breakers.py) so every process's page shows the one shared state,
without building the breakers' policy (resilience/ is above reports/ in the layers).

A model with no row has never failed: closed, no failures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from chatwatch.store.breakers import CLOSED, closed_row, read_all


@dataclass(frozen=True)
class BreakerView:
    model: str
    state: str  # "closed" | "open" | "half_open"
    failures: int  # consecutive counted failures
    retry_in_s: float | None  # open: seconds until a probe may go (0: at the next request)
    last_error: str | None
    since: datetime | None  # when the circuit opened (None when closed)
    cause: str | None


def breaker_states(engine: sa.Engine, models: Sequence[str], now: datetime) -> list[BreakerView]:
    """One view per model in `models` (in that order)."""
    rows = read_all(engine, list(models))
    now_us = int(now.timestamp() * 1e6)
    out = []
    for model in models:
        row = rows.get(model) or closed_row(model)
        open_ = row.state != CLOSED
        retry = max(0.0, (row.until_us - now_us) / 1e6) if open_ and row.until_us is not None else None
        since = datetime.fromtimestamp(row.opened_us / 1e6, UTC) if open_ and row.opened_us is not None else None
        out.append(BreakerView(model, row.state, row.failures, retry, row.last_error, since, row.cause))
    return out
