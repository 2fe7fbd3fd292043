"""Retention of the request path's tables (store/retention.py with store/cache.py,
store/ratelimits.py, store/budgets.py) on a real SQLite file and the real PostgreSQL:
expired cached answers, rate events out of the window and budget periods that ended before
the raw cutoff go, in the same batched pass (and dry run) as the raw rows; everything else
stays. The expected fate of every seeded row is written out from calendar dates here, not
asked of the code under test."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from chatwatch import config
from chatwatch.store import budgets as budget_db
from chatwatch.store import cache as cache_db
from chatwatch.store import ratelimits
from chatwatch.store import records as store_mod
from chatwatch.store.records import Store, to_us
from chatwatch.store.retention import STAGES, RetentionTask, run_cleanup
from chatwatch.store.schema import budget_reservations, budget_usage, rate_events, response_cache
from tests.fixtures.db import make_record

NOW = datetime(2026, 6, 1, 12, 30, tzinfo=UTC)
RETENTION = config.RetentionConfig(raw_days=30, rollup_days=400, log_days=14)
RAW_BEFORE = datetime(2026, 5, 2, 12, 0, tzinfo=UTC)  # NOW - 30 days, down to the hour
BUDGETS = [
    config.BudgetConfig(name="daily", period="day", limit_usd=1.0),
    config.BudgetConfig(name="monthly", period="month", limit_usd=10.0),
]
DAY = timedelta(days=1)


def _day(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=UTC)


# (budget, period start, goes?): a period goes once it ended at or before RAW_BEFORE.
PERIODS = [
    ("daily", _day(2026, 4, 30), True),  # ended 05-01 00:00
    ("daily", _day(2026, 5, 1), True),  # ended 05-02 00:00, before 12:00
    ("daily", _day(2026, 5, 2), False),  # ends 05-03: still inside raw retention
    ("daily", _day(2026, 6, 1), False),  # today
    ("monthly", _day(2026, 3, 1), True),  # ended 04-01
    ("monthly", _day(2026, 4, 1), True),  # ended 05-01
    ("monthly", _day(2026, 5, 1), False),  # ends 06-01, after RAW_BEFORE
    ("monthly", _day(2026, 6, 1), False),
    # No longer configured: taken as a month (the longer period), so it is never cut short.
    ("retired", _day(2026, 3, 14), True),  # even as a month, ended by 04-01
    ("retired", _day(2026, 5, 1), False),  # as a day it would have ended; as a month it has not
]


def _seed_cache(store: Store, n_expired: int = 10, n_live: int = 4) -> tuple[set[str], set[str]]:
    """Answers created at various times with a one-hour TTL: `n_expired` expired before
    NOW (one exactly at NOW: expiry is inclusive), `n_live` still valid."""
    gone, kept = set(), set()
    hour = 3_600_000_000
    now = to_us(NOW)
    for i in range(n_expired + n_live):
        created = now - hour - i * 60_000_000 if i < n_expired else now - hour + (i + 1) * 60_000_000
        if i == 0:
            created = now - hour  # expires at exactly NOW
        key = f"{i:064x}"
        entry = cache_db.CacheEntry(key, "m", "text", "stop", None, 1, 1, "reported", 5, "config", 0.1, f"r{i}")
        cache_db.put(store.engine, entry, ttl_s=3600, max_entries=1000, at_us=created)
        (gone if i < n_expired else kept).add(key)
    return gone, kept


def _seed_rate_events(store: Store) -> tuple[set[str], set[str]]:
    """Events on quiet keys (admit never came back to drop them): 2 minutes and exactly one
    window old go; 30 s old stays."""
    now = to_us(NOW)
    ages = {"old": 120_000_000, "edge": 60_000_000, "young": 30_000_000}
    for name, age in ages.items():
        ok, _, _ = ratelimits.admit(store.engine, [(f"session:{name}", 100, None)], name, tokens=5, at_us=now - age)
        assert ok
    return {"old", "edge"}, {"young"}


def _seed_budgets(store: Store) -> None:
    for name, start, _ in PERIODS:
        claim = budget_db.Claim(name, to_us(start), 1_000_000_000, None)
        rid = f"{name}-{start:%Y%m%d}"
        at = to_us(start + timedelta(hours=1))
        budget_db.reserve(
            store.engine, [claim], reservation_id=rid, nanousd=7, tokens=3, ttl_s=60, instance="h", at_us=at
        )
        budget_db.settle(store.engine, [claim], reservation_id=rid, nanousd=5, tokens=2)
        # A second attempt whose process died: its reservation is left in the period.
        budget_db.reserve(
            store.engine, [claim], reservation_id=rid + "-dead", nanousd=7, tokens=3, ttl_s=60, instance="h", at_us=at
        )


def _rows(store: Store) -> dict[str, set]:
    with store.engine.connect() as conn:
        return {
            "response_cache": set(conn.execute(sa.select(response_cache.c.key)).scalars()),
            "rate_events": set(conn.execute(sa.select(rate_events.c.id)).scalars()),
            "budget_usage": {
                (r.budget, r.period_start_us)
                for r in conn.execute(sa.select(budget_usage.c.budget, budget_usage.c.period_start_us))
            },
            "budget_reservations": set(conn.execute(sa.select(budget_reservations.c.id)).scalars()),
        }


def _expected_budget_rows(kept: bool) -> tuple[set, set]:
    usage = {(name, to_us(start)) for name, start, goes in PERIODS if goes != kept}
    dead = {f"{name}-{start:%Y%m%d}-dead" for name, start, goes in PERIODS if goes != kept}
    return usage, dead


def test_expired_cache_rate_events_and_ended_budget_periods_go_and_nothing_else(store: Store, tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "_PRUNE_BATCH", 3)  # many small batches, as with real volumes
    cache_gone, cache_kept = _seed_cache(store)
    rate_gone, rate_kept = _seed_rate_events(store)
    _seed_budgets(store)
    old = make_record(started_at=RAW_BEFORE - timedelta(days=3))  # the raw rows' pass still runs
    store.write_many([old, make_record(started_at=NOW - DAY)])
    usage_gone, dead_gone = _expected_budget_rows(kept=False)
    usage_kept, dead_kept = _expected_budget_rows(kept=True)
    before = _rows(store)
    assert before["response_cache"] == cache_gone | cache_kept and before["rate_events"] == rate_gone | rate_kept
    assert before["budget_usage"] == usage_gone | usage_kept and before["budget_reservations"] == dead_gone | dead_kept

    dry = run_cleanup(store, RETENTION, tmp_path / "logs", now=NOW, dry_run=True, budget_configs=BUDGETS)
    assert _rows(store) == before
    seen: list[tuple[str, int, int]] = []
    report = run_cleanup(
        store, RETENTION, tmp_path / "logs", now=NOW, progress=lambda *a: seen.append(a), budget_configs=BUDGETS
    )

    after = _rows(store)
    assert after["response_cache"] == cache_kept
    assert after["rate_events"] == rate_kept
    assert after["budget_usage"] == usage_kept
    assert after["budget_reservations"] == dead_kept
    want = {
        "response_cache": len(cache_gone),
        "rate_events": len(rate_gone),
        "budget_usage": len(usage_gone),
        "budget_reservations": len(dead_gone),
    }
    for field, n in want.items():
        assert getattr(report, field) == getattr(dry, field) == n, field
    assert report.requests == 1 and report.rows == sum(want.values()) + 1
    # In the store's batches, in stage order, with their totals: the lease and stop checks
    # run between these batches as between the raw rows'.
    stages = [s for s, _, _ in seen]
    assert stages == sorted(stages, key=STAGES.index)
    assert stages.count("response_cache") == -(-len(cache_gone) // 3)
    last = {s: (done, total) for s, done, total in seen}
    assert last["response_cache"] == (len(cache_gone), len(cache_gone))
    assert last["budget_usage"] == (len(usage_gone), len(usage_gone))
    # What stays still works: the kept periods keep their spend (5 settled + 7 reserved each).
    with store.engine.connect() as conn:
        spent = conn.execute(sa.select(budget_usage.c.spent_nanousd, budget_usage.c.reserved_nanousd)).all()
    assert sorted(spent) == [(5, 7)] * len(usage_kept)
    again = run_cleanup(store, RETENTION, tmp_path / "logs", now=NOW, budget_configs=BUDGETS)
    assert again.rows == 0


def test_without_the_budget_config_every_budget_is_kept_as_long_as_a_month(store: Store, tmp_path):
    _seed_budgets(store)
    report = run_cleanup(store, RETENTION, tmp_path / "logs", now=NOW)
    # As months, only periods that started before May are over by RAW_BEFORE (05-02 12:00).
    gone = {(name, to_us(start)) for name, start, _ in PERIODS if start < _day(2026, 5, 1)}
    assert report.budget_usage == len(gone)
    assert _rows(store)["budget_usage"] == {(n, to_us(s)) for n, s, _ in PERIODS} - gone


def test_the_background_task_prunes_them_in_its_pass(sqlite_store: Store, tmp_path):
    settings = config.parse(
        {
            "app": {"data_dir": str(tmp_path / "data"), "log_dir": str(tmp_path / "logs")},
            "retention": {"raw_days": 30, "interval_minutes": 60},
            "budgets": [b.model_dump() for b in BUDGETS],
        }
    )
    cache_gone, cache_kept = _seed_cache(sqlite_store, n_expired=2, n_live=1)
    _seed_budgets(sqlite_store)
    report = RetentionTask(sqlite_store, settings, "host:1").run_once(now=NOW)
    usage_kept, _ = _expected_budget_rows(kept=True)
    assert report is not None and report.response_cache == len(cache_gone)
    assert _rows(sqlite_store)["response_cache"] == cache_kept
    assert _rows(sqlite_store)["budget_usage"] == usage_kept  # the daily ones by the config's periods


@pytest.mark.parametrize("dry_run", [True, False])
def test_chatwatch_cleanup_reports_them(tmp_path: Path, dry_run: bool):
    conf = tmp_path / "chatwatch.toml"
    conf.write_text(
        '[app]\ndata_dir = "data"\nlog_dir = "logs"\n\n[retention]\nraw_days = 30\n\n'
        '[[budgets]]\nname = "daily"\nperiod = "day"\nlimit_usd = 1.0\n'
    )
    settings = config.load(conf)
    now = datetime.now(UTC)
    expired = now - timedelta(hours=2)
    with Store.open(settings.store_url) as store:
        for i in range(3):
            entry = cache_db.CacheEntry(f"{i:064x}", "m", "t", "stop", None, 1, 1, "reported", 5, "config", 0.1, "r")
            cache_db.put(store.engine, entry, ttl_s=60, max_entries=100, at_us=to_us(expired))
        ratelimits.admit(store.engine, [("model:m", 10, None)], "e1", tokens=1, at_us=to_us(now - timedelta(hours=1)))
        day = datetime(now.year, now.month, now.day, tzinfo=UTC) - timedelta(days=40)
        budget_db.settle(
            store.engine, [budget_db.Claim("daily", to_us(day), 10, None)], reservation_id=None, nanousd=1, tokens=1
        )
    args = [sys.executable, "-m", "chatwatch", "cleanup", "--config", str(conf)] + (["--dry-run"] if dry_run else [])
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    counts = {line[2:22].strip(): line[22:].split()[0] for line in out.stdout.splitlines()[1:]}
    assert counts["cached answers"] == "3" and counts["rate events"] == "1" and counts["budget periods"] == "1"
    with Store.open(settings.store_url) as store:
        assert cache_db.count(store.engine) == (3 if dry_run else 0)


def test_stop_interrupts_between_cache_batches_like_raw_batches(sqlite_store: Store, tmp_path, monkeypatch):
    from chatwatch.store.retention import CleanupStopped

    monkeypatch.setattr(store_mod, "_PRUNE_BATCH", 3)
    gone, kept = _seed_cache(sqlite_store, n_expired=10, n_live=2)
    settings = config.parse({"app": {"log_dir": str(tmp_path / "logs")}, "retention": {"interval_minutes": 60}})
    stop = threading.Event()
    stop.set()
    with pytest.raises(CleanupStopped):
        RetentionTask(sqlite_store, settings, "host:1").run_once(now=NOW, stop=stop)
    assert len(_rows(sqlite_store)["response_cache"]) == len(gone) + len(kept) - 3  # one batch went, then it stopped
