"""Per-model circuit breakers (#9 item 3): stop calling a model that keeps failing, and let
one probe decide when it may come back.

A circuit opens after `failures` consecutive counted failures, or when at least
`min_requests` counted attempts in the last `window_s` seconds failed at `failure_ratio` or
more (config.py `BreakerConfig`). Failures that count say the model is unwell: connection,
timeout, rate_limit, provider_error; a bad request, a too-long context, a cancelled attempt
or chatwatch's own refusals say nothing about it. While open the chain skips the model for
`cooldown_s`; then exactly one attempt, across every process sharing the store, is admitted
as the half-open probe: its success closes the circuit, its counted failure re-opens it for
another cool-down, and a probe that never reports (its process died) expires after a
cool-down so the model is never stuck. The state is in the store (store/breakers.py) so
replicas see one state; transitions are atomic there, and each is logged on the
`chatwatch.resilience` logger.

`admit` on a closed circuit costs at most one indexed read, and usually none: rows are
cached in-process for `cache_s` (another process's change is seen that much later; this
process's own changes at once). A success on a closed circuit with no failures counted
writes nothing (the common case: the attempt's record is all the window needs); a failure
or a state change is one short write transaction; the runtime gives the breakers an engine
whose writes wait for another writer no longer than a request's own commit does
(store/db.py `request_engine`), so a locked database never holds up a reply. When the store cannot be read or written the breaker lets the
attempt through and logs why: answering matters more than a state that cannot be read.

    breakers = Breakers(engine, settings.models, instance=name)
    admission = breakers.admit(config)
    if not admission.allowed: ...          # "unavailable, next try in admission.retry_in_s"
    ... the attempt ...
    breakers.record(config, ok=record.status == "ok", error_type=record.error_type, probe=admission.probe)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from chatwatch.config import ModelConfig
from chatwatch.store import breakers as table
from chatwatch.store.breakers import CLOSED, HALF_OPEN, OPEN, BreakerRow
from chatwatch.store.db import write_transaction

log = logging.getLogger("chatwatch.resilience")

# Error types that say the model (or its provider) is failing.
COUNTED_ERRORS = frozenset({"connection", "timeout", "rate_limit", "provider_error"})

CACHE_S = 0.25


@dataclass(frozen=True)
class Admission:
    allowed: bool  # False: the circuit is open; do not call the model
    state: str  # "closed" | "open" | "half_open"
    probe: bool  # True: this request is the half-open probe; its outcome decides
    retry_in_s: float | None  # when not allowed: seconds until a probe may go


@dataclass(frozen=True)
class BreakerState:
    model: str
    state: str
    failures: int
    retry_in_s: float | None
    last_error: str | None
    opened_at: datetime | None
    cause: str | None = None


_ALLOW = Admission(True, CLOSED, False, None)


def _dt(us: int | None) -> datetime | None:
    return None if us is None else datetime.fromtimestamp(us / 1e6, UTC)


class Breakers:
    """The circuit breakers of the configured models, kept in the store behind `engine`."""

    def __init__(
        self,
        engine: sa.Engine,
        models: Sequence[ModelConfig],
        *,
        instance: str,
        clock: Callable[[], float] = time.time,
        cache_s: float = CACHE_S,
    ) -> None:
        self._engine = engine
        self._models = {m.id: m for m in models}
        self._instance = instance
        self._clock = clock
        self._cache_s = cache_s
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[BreakerRow, float]] = {}
        self._store_down = False

    # -- reading ---------------------------------------------------------------------------

    def _now_us(self) -> int:
        return int(self._clock() * 1e6)

    def _cached(self, model: str) -> BreakerRow:
        mono = time.monotonic()
        with self._lock:
            hit = self._cache.get(model)
        if hit is not None and mono - hit[1] < self._cache_s:
            return hit[0]
        row = table.read_all(self._engine, [model]).get(model) or table.closed_row(model)
        self._remember(row)
        return row

    def _remember(self, row: BreakerRow) -> None:
        with self._lock:
            self._cache[row.model] = (row, time.monotonic())

    def _reread(self, conn: sa.Connection, model: str) -> None:
        row = table.read(conn, [model]).get(model) or table.closed_row(model)
        self._remember(row)

    def _degraded(self, what: str, exc: Exception) -> None:
        if not self._store_down:
            log.warning("circuit breakers: cannot %s the store (%s); attempts go through", what, exc)
        self._store_down = True

    # -- the policy ------------------------------------------------------------------------

    def admit(self, config: ModelConfig) -> Admission:
        """May an attempt on `config`'s model go now? (see the module docstring)"""
        if not config.breaker.enabled:
            return _ALLOW
        try:
            row = self._cached(config.id)
            if row.state == CLOSED:
                self._store_down = False
                return _ALLOW
            now = self._now_us()
            if row.until_us is not None and now < row.until_us:
                return Admission(False, row.state, False, (row.until_us - now) / 1e6)
            until = now + int(config.breaker.cooldown_s * 1e6)
            won = table.take_probe(self._engine, config.id, now_us=now, probe_until_us=until)
            with self._engine.connect() as conn:
                self._reread(conn, config.id)
        except sa.exc.SQLAlchemyError as exc:
            self._degraded("read", exc)
            return _ALLOW
        self._store_down = False
        if won:
            log.info(
                "circuit of %s: %s -> half_open (probe)",
                config.id,
                row.state,
                extra={"model": config.id, "from_state": row.state, "to_state": HALF_OPEN},
            )
            return Admission(True, HALF_OPEN, True, None)
        fresh = self._cached(config.id)
        if fresh.state == CLOSED:
            return _ALLOW
        left = None if fresh.until_us is None else max(0.0, (fresh.until_us - now) / 1e6)
        return Admission(False, fresh.state, False, left)

    def record(self, config: ModelConfig, *, ok: bool | None, error_type: str | None, probe: bool) -> None:
        """Book an attempt's outcome: ok=True success, False failure (counted only for the
        COUNTED_ERRORS types), None cancelled (neutral; a probe's slot is freed)."""
        if not config.breaker.enabled:
            return
        counted_failure = ok is False and error_type in COUNTED_ERRORS
        neutral = ok is None or (ok is False and not counted_failure)
        if neutral and not probe:
            return
        try:
            if neutral:
                self._free_probe(config)
            elif ok:
                self._success(config, probe)
            else:
                self._failure(config, error_type or "provider_error", probe)
        except sa.exc.SQLAlchemyError as exc:
            self._degraded("write", exc)
            return
        self._store_down = False

    def _free_probe(self, config: ModelConfig) -> None:
        now = self._now_us()
        with write_transaction(self._engine) as conn:
            # Still half-open: the next admit may send a probe at once.
            table.update(conn, config.id, expect_state=HALF_OPEN, until_us=now, changed_us=now)
            self._reread(conn, config.id)

    def _window(self, conn: sa.Connection, config: ModelConfig, now: int) -> tuple[int, int]:
        since = now - int(config.breaker.window_s * 1e6)
        return table.window(conn, config.id, since_us=since, counted=COUNTED_ERRORS)

    def _success(self, config: ModelConfig, probe: bool) -> None:
        if not probe:
            seen = self._cached(config.id)
            if seen.state == CLOSED and not seen.failures:
                return  # nothing to reset: the attempt's record is all the window needs
        now = self._now_us()
        with write_transaction(self._engine) as conn:
            row = table.read(conn, [config.id], lock=True).get(config.id)
            if row is None:
                self._remember(table.closed_row(config.id, now))
                return
            if row.state == HALF_OPEN and probe:
                table.update(
                    conn, config.id, state=CLOSED, failures=0, opened_us=None, until_us=None, changed_us=now, cause=None
                )
                log.info(
                    "circuit of %s: half_open -> closed (the probe succeeded)",
                    config.id,
                    extra={"model": config.id, "from_state": HALF_OPEN, "to_state": CLOSED},
                )
            elif row.state == CLOSED and row.failures:
                table.update(conn, config.id, failures=0)
            self._reread(conn, config.id)

    def _failure(self, config: ModelConfig, error_type: str, probe: bool) -> None:
        now = self._now_us()
        b = config.breaker
        with write_transaction(self._engine) as conn:
            total, bad = self._window(conn, config, now)
            table.ensure(conn, config.id, now)
            row = table.read(conn, [config.id], lock=True)[config.id]
            failures = row.failures + 1
            reopen_until = now + int(b.cooldown_s * 1e6)

            def trip(from_state: str, cause: str) -> None:
                table.update(
                    conn,
                    config.id,
                    state=OPEN,
                    failures=failures,
                    last_error=error_type,
                    opened_us=now,
                    until_us=reopen_until,
                    changed_us=now,
                    cause=cause,
                )
                self._log_open(config.id, from_state, cause, b.cooldown_s)

            if row.state == HALF_OPEN and probe:
                trip(HALF_OPEN, f"the probe failed ({error_type})")
            elif row.state == CLOSED:
                cause = None
                if failures >= b.failures:
                    cause = f"{failures} consecutive failures (last: {error_type})"
                elif total >= b.min_requests and bad / total >= b.failure_ratio:
                    cause = f"{bad} of {total} attempts failed in the last {b.window_s:g} s (last: {error_type})"
                if cause is None:
                    table.update(conn, config.id, failures=failures, last_error=error_type)
                else:
                    trip(CLOSED, cause)
            else:  # an attempt admitted before the circuit opened, or not the probe
                table.update(conn, config.id, failures=failures, last_error=error_type)
            self._reread(conn, config.id)

    def _log_open(self, model: str, from_state: str, cause: str, cooldown_s: float) -> None:
        log.warning(
            "circuit of %s: %s -> open: %s; next try in %g s",
            model,
            from_state,
            cause,
            cooldown_s,
            extra={"model": model, "from_state": from_state, "to_state": OPEN, "cause": cause},
        )

    # -- for the pages and the exporters ---------------------------------------------------

    def states(self) -> dict[str, BreakerState]:
        """Every configured model's state as the store has it now (closed when it has no row)."""
        rows = table.read_all(self._engine, list(self._models))
        now = self._now_us()
        out: dict[str, BreakerState] = {}
        for model in self._models:
            row = rows.get(model) or table.closed_row(model)
            self._remember(row)
            retry = None
            if row.state != CLOSED and row.until_us is not None:
                retry = max(0.0, (row.until_us - now) / 1e6)
            out[model] = BreakerState(
                model=model,
                state=row.state,
                failures=row.failures,
                retry_in_s=retry,
                last_error=row.last_error,
                opened_at=_dt(row.opened_us) if row.state != CLOSED else None,
                cause=row.cause,
            )
        return out

    def close(self) -> None:
        """Nothing of its own to release (the engine is the store's); drops the cache."""
        with self._lock:
            self._cache.clear()
