"""Retention: delete what is past `[retention]` from the store and the log folder.

    report = run_cleanup(store, settings.retention, settings.app.log_dir)   # once, now
    Runtime builds a RetentionTask and starts it (every interval); Runtime.close stops it

* Raw rows (requests, their feedback and model loads) older than `raw_days` go in batches
  of a few thousand rows, each its own short transaction, so writers keep going.
* Rollups stay for `rollup_days`: the dashboard keeps long-range charts after the raw
  rows are gone.
* Log files whose last line is older than `log_days` go (`prune_logs`).
* The request path's own tables, in the same batches: response-cache answers past their
  expiry (`cache.prune`), rate-limit events that left the window (`ratelimits.prune`), and
  budget periods that ended before the raw cutoff (`budgets.prune`): a budget's spend is
  kept as long as the requests that made it.
* On SQLite the freed pages are handed back to the file system (WAL checkpoint, then
  incremental vacuum); PostgreSQL's autovacuum reuses the space by itself.

The raw cutoff is rounded down to a whole hour, the largest rollup grain, so every rollup
bucket is either fully backed by raw rows or has none left: rollups that still have raw
rows keep equalling their aggregates, and queries never mix a half-pruned bucket.

The background task runs in one daemon thread per runtime (the runtime starts and stops it); a lease in the
database (`leases.py`) makes one process run it per interval, the others skip that round.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from chatwatch.background import BackgroundThread
from chatwatch.logs.rotation import prune_logs
from chatwatch.store import budgets, cache, leases, ratelimits
from chatwatch.store.records import PRUNE_STAGES, Store, from_us, to_us
from chatwatch.store.rollups import HOUR_S, bucket_start

if TYPE_CHECKING:
    from collections.abc import Sequence

    from chatwatch.config import BudgetConfig, RetentionConfig, Settings

log = logging.getLogger("chatwatch.retention")

LEASE_NAME = "retention"
# Stages reported to `progress`, in the order they run (the store's table names).
STAGES = ("response_cache", "rate_events", *budgets.PRUNE_STAGES, *PRUNE_STAGES)
Progress = Callable[[str, int, int], None]  # (stage, rows deleted so far, rows to delete)

# Names this process in lease rows: the pid alone can be reused, the instance may be shared.
_PROCESS_TOKEN = uuid.uuid4().hex[:12]


class CleanupStopped(Exception):
    """A cleanup was interrupted between batches; the batches already deleted stay deleted."""


@dataclass(frozen=True)
class CleanupReport:
    dry_run: bool
    raw_before: datetime  # raw rows started before this went (or would go)
    rollups_before: datetime
    requests: int
    feedback: int
    model_loads: int
    rollups: int
    record_losses: int
    log_files: tuple[Path, ...]
    bytes_freed: int | None  # SQLite, real runs only: db + WAL size before minus after
    duration_s: float
    response_cache: int = 0  # expired cached answers
    rate_events: int = 0  # rate-limit events out of the window
    budget_usage: int = 0  # budget periods ended before raw_before
    budget_reservations: int = 0  # reservations left in those periods (their process died)

    @property
    def rows(self) -> int:
        return (
            self.requests
            + self.feedback
            + self.model_loads
            + self.rollups
            + self.record_losses
            + self.response_cache
            + self.rate_events
            + self.budget_usage
            + self.budget_reservations
        )

    def extra(self) -> dict[str, object]:
        """Fields for the log line (names that do not clash with LogRecord attributes)."""
        return {
            "dry_run": self.dry_run,
            "raw_before": self.raw_before.isoformat(),
            "rollups_before": self.rollups_before.isoformat(),
            "raw_rows": self.requests,
            "feedback_rows": self.feedback,
            "model_load_rows": self.model_loads,
            "rollup_rows": self.rollups,
            "record_loss_rows": self.record_losses,
            "cache_rows": self.response_cache,
            "rate_event_rows": self.rate_events,
            "budget_period_rows": self.budget_usage,
            "budget_reservation_rows": self.budget_reservations,
            "log_files": len(self.log_files),
            "bytes_freed": self.bytes_freed,
            "duration_s": round(self.duration_s, 3),
        }


def cutoffs(
    retention: RetentionConfig, now: datetime, older_than: timedelta | None = None
) -> tuple[datetime, datetime]:
    """(raw_before, rollups_before): raw cutoff rounded down to the hour; rollups never
    go while raw rows of their period remain (rollup_days < raw_days keeps them longer)."""
    raw_age = older_than if older_than is not None else timedelta(days=retention.raw_days)
    raw_before = _hour_floor(now - raw_age)
    rollups_before = min(_hour_floor(now - timedelta(days=retention.rollup_days)), raw_before)
    return raw_before, rollups_before


def run_cleanup(
    store: Store,
    retention: RetentionConfig,
    log_dir: str | os.PathLike[str],
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    older_than: timedelta | None = None,
    progress: Progress | None = None,
    trigger: str = "manual",
    budget_configs: Sequence[BudgetConfig] = (),
) -> CleanupReport:
    """Delete (with dry_run: only count) rows and log files past retention; logs the
    outcome on `chatwatch.retention`. `older_than` replaces raw_days for this run.
    `progress` may raise (e.g. CleanupStopped) to stop between batches. `budget_configs`
    (the config's [[budgets]]) say which budgets are daily, so when their periods ended."""
    now = now or datetime.now(UTC)
    if older_than is not None and older_than <= timedelta(0):
        raise ValueError(f"older_than must be positive (got {older_than})")
    started = time.monotonic()
    raw_before, rollups_before = cutoffs(retention, now, older_than)
    # Counted first in both modes: dry-run's answer, and the progress bar's totals.
    at_us = to_us(now)
    days = {b.name for b in budget_configs if b.period == "day"}
    counts = {
        "response_cache": cache.count_prunable(store.engine, at_us=at_us),
        "rate_events": ratelimits.count_prunable(store.engine, at_us=at_us),
        **budgets.count_prunable(store.engine, ended_before=raw_before, day_budgets=days),
        **store.count_prunable(raw_before=raw_before, rollups_before=rollups_before),
    }
    size_before = _sqlite_bytes(store)
    if dry_run:
        deleted = counts
        files = prune_logs(log_dir, retention.log_days, dry_run=True, now=now.timestamp())
        freed = None
    else:

        def on_batch(stage: str, done: int) -> None:
            if progress is not None:
                progress(stage, done, max(done, counts.get(stage, 0)))

        deleted = {
            "response_cache": cache.prune(store, at_us=at_us, progress=lambda n: on_batch("response_cache", n)),
            "rate_events": ratelimits.prune(store, at_us=at_us, progress=lambda n: on_batch("rate_events", n)),
            **budgets.prune(store, ended_before=raw_before, day_budgets=days, progress=on_batch),
        }
        own = any(deleted.values())
        deleted.update(store.prune(raw_before=raw_before, rollups_before=rollups_before, progress=on_batch))
        if own and not any(deleted.get(stage) for stage in PRUNE_STAGES):
            store.reclaim_space()  # store.prune gives the space back only after deleting rows itself
        files = prune_logs(log_dir, retention.log_days, now=now.timestamp())
        size_after = _sqlite_bytes(store)
        freed = None if size_before is None or size_after is None else size_before - size_after
    report = CleanupReport(
        dry_run=dry_run,
        raw_before=raw_before,
        rollups_before=rollups_before,
        requests=deleted.get("requests", 0),
        feedback=deleted.get("feedback", 0),
        model_loads=deleted.get("model_loads", 0),
        rollups=deleted.get("rollups", 0),
        record_losses=deleted.get("record_losses", 0),
        log_files=tuple(files),
        bytes_freed=freed,
        duration_s=time.monotonic() - started,
        response_cache=deleted.get("response_cache", 0),
        rate_events=deleted.get("rate_events", 0),
        budget_usage=deleted.get("budget_usage", 0),
        budget_reservations=deleted.get("budget_reservations", 0),
    )
    verb = "would delete" if dry_run else "deleted"
    log.info(
        "retention cleanup (%s): %s %d raw rows, %d rollup rows, %d feedback, %d model loads, %d record losses, "
        "%d cached answers, %d rate events, %d budget periods, %d budget reservations, %d log files",
        trigger,
        verb,
        report.requests,
        report.rollups,
        report.feedback,
        report.model_loads,
        report.record_losses,
        report.response_cache,
        report.rate_events,
        report.budget_usage,
        report.budget_reservations,
        len(report.log_files),
        extra={**report.extra(), "trigger": trigger},
    )
    return report


class RetentionTask(BackgroundThread):
    """Runs `run_cleanup` every `interval_minutes` in a daemon thread, first right after
    start(). Each round first takes the `retention` lease for one interval: a process that
    does not get it skips the round, so one process cleans per interval."""

    thread_name = "chatwatch-retention"

    def __init__(self, store: Store, settings: Settings, instance: str):
        super().__init__()
        self.store = store
        self.settings = settings
        self.instance = instance
        self.holder = f"{instance}/{os.getpid()}/{_PROCESS_TOKEN}"
        self.interval_s = settings.retention.interval_minutes * 60
        self.runs = 0
        self.skips = 0
        self.last_report: CleanupReport | None = None

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread; a cleanup in progress stops after its current batch."""
        super().stop(timeout)

    def run_once(self, *, now: datetime | None = None, stop: threading.Event | None = None) -> CleanupReport | None:
        """One round: the cleanup's report, or None when another process holds the lease."""
        engine = self.store.engine
        if not leases.acquire(engine, LEASE_NAME, self.holder, self.interval_s):
            self.skips += 1
            log.debug("retention cleanup skipped: another process holds the lease", extra={"holder": self.holder})
            return None
        renewed = time.monotonic()

        def between_batches(_stage: str, _done: int, _total: int) -> None:
            nonlocal renewed
            if stop is not None and stop.is_set():
                raise CleanupStopped("the retention task is stopping")
            # A first cleanup of a big backlog can outlast the interval: keep the claim.
            if time.monotonic() - renewed > self.interval_s / 2:
                if not leases.acquire(engine, LEASE_NAME, self.holder, self.interval_s):
                    raise CleanupStopped("the retention lease was lost")
                renewed = time.monotonic()

        report = run_cleanup(
            self.store,
            self.settings.retention,
            self.settings.app.log_dir,
            now=now,
            progress=between_batches,
            trigger="background",
            budget_configs=self.settings.budgets,
        )
        self.runs += 1
        self.last_report = report
        return report

    def loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.run_once(stop=stop)
            except CleanupStopped as exc:
                log.info("retention cleanup stopped: %s", exc)
            except Exception:
                log.exception("retention cleanup failed")
            if stop.wait(self.interval_s):
                return


def _hour_floor(ts: datetime) -> datetime:
    return from_us(bucket_start(to_us(ts), HOUR_S))


def _sqlite_bytes(store: Store) -> int | None:
    """Size of a SQLite store on disk (file + WAL); None on PostgreSQL."""
    if store.dialect != "sqlite":
        return None
    db = Path(store.engine.url.database or "")
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())
