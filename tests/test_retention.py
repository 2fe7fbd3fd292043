"""Retention on real SQLite files and the real PostgreSQL: what goes, what stays, dry
runs, space given back, log files, the background task across processes, and the CLI."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from chatwatch import config
from chatwatch.store import leases
from chatwatch.store import records as store_mod
from chatwatch.store.losses import Loss, write_losses
from chatwatch.store.records import Store, to_us
from chatwatch.store.retention import (
    LEASE_NAME,
    STAGES,
    CleanupStopped,
    RetentionTask,
    cutoffs,
    run_cleanup,
)
from chatwatch.store.schema import feedback, model_loads, record_losses, requests, rollups
from tests.fixtures.db import assert_rollups_match_raw, make_record

NOW = datetime(2026, 6, 1, 12, 30, tzinfo=UTC)
RETENTION = config.RetentionConfig(raw_days=30, rollup_days=400, log_days=14)
# now - 30 days = 2026-05-02 12:30, rounded down to the hour.
RAW_BEFORE = datetime(2026, 5, 2, 12, 0, tzinfo=UTC)
ROLLUPS_BEFORE = datetime(2025, 4, 27, 12, 0, tzinfo=UTC)  # now - 400 days, to the hour
TABLES = {
    "requests": requests,
    "feedback": feedback,
    "model_loads": model_loads,
    "record_losses": record_losses,
    "rollups": rollups,
}


def _counts(store: Store) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() for name, t in TABLES.items()
        }


def _ids(store: Store) -> set[str]:
    with store.engine.connect() as conn:
        return set(conn.execute(sa.select(requests.c.id)).scalars())


def _rollup_rows(store: Store, since: datetime, until: datetime) -> list[tuple]:
    t = rollups.c
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(rollups)
            .where(t.bucket_us >= to_us(since), t.bucket_us < to_us(until))
            .order_by(t.grain_s, t.bucket_us, t.model, t.status)
        ).all()
    return [tuple(r) for r in rows]


def _add_feedback(store: Store, request_id: str, at: datetime) -> None:
    with store.transaction() as conn:
        conn.execute(
            feedback.insert().values(
                request_id=request_id, score=1, model="smollm2", session_id="session-1", created_us=to_us(at)
            )
        )


def _loss(at: datetime) -> Loss:
    return Loss(at=at, instance="h:1", model="smollm2", count=3, first_started=at, last_started=at, reason="disk full")


def _seed(store: Store) -> dict[str, set[str]]:
    """Records on both sides of each cutoff; returns the ids that must go and stay."""
    ancient = [make_record(started_at=NOW - timedelta(days=500, minutes=i)) for i in range(5)]
    old = [
        make_record(started_at=NOW - timedelta(days=100, minutes=3 * i), model=m, status=s)
        for i, (m, s) in enumerate([("smollm2", "ok"), ("remote", "ok"), ("smollm2", "error")] * 8)
    ]
    edge_gone = [make_record(started_at=RAW_BEFORE - timedelta(seconds=1))]
    # Older than 30 days but in the cutoff's hour: kept, so that hour's rollups keep their raw rows.
    edge_kept = [make_record(started_at=RAW_BEFORE), make_record(started_at=RAW_BEFORE + timedelta(minutes=20))]
    recent = [make_record(started_at=NOW - timedelta(days=1, minutes=i), model="remote") for i in range(6)]
    store.write_many(ancient + old + edge_gone + edge_kept + recent)
    _add_feedback(store, old[0].id, old[0].started_at + timedelta(minutes=1))
    _add_feedback(store, ancient[0].id, ancient[0].started_at + timedelta(minutes=1))
    _add_feedback(store, recent[0].id, recent[0].started_at + timedelta(minutes=1))
    store.write_model_load(model="smollm2", instance="h:1", load_s=0.4, ok=True, loaded_at=NOW - timedelta(days=40))
    store.write_model_load(model="smollm2", instance="h:1", load_s=0.4, ok=True, loaded_at=NOW - timedelta(days=2))
    # Losses are kept as long as rollups: the 500-day-old one goes, the 100-day-old one stays.
    write_losses(store, [_loss(NOW - timedelta(days=500)), _loss(NOW - timedelta(days=100))])
    gone = {r.id for r in ancient + old + edge_gone}
    return {"gone": gone, "kept": {r.id for r in edge_kept + recent}, "feedback_kept": {recent[0].id}}


def _old_logs(folder: Path) -> tuple[list[Path], list[Path]]:
    """Log files 20 days old (past log_days) and 2 days old, plus a file that is not ours."""
    folder.mkdir(parents=True, exist_ok=True)
    old = [folder / "chatwatch-app-web1.2026-05-10.001.jsonl.gz", folder / "chatwatch-cli-web1.jsonl"]
    young = [folder / "chatwatch-app-web1.2026-05-30.001.jsonl.gz", folder / "notes-from-ops.txt"]
    for path, days in [(old[0], 20), (old[1], 20), (young[0], 2), (young[1], 90)]:
        path.write_bytes(b"{}\n")
        ts = NOW.timestamp() - days * 86400
        os.utime(path, (ts, ts))
    return old, young


def test_cutoffs_round_down_to_the_hour_and_keep_rollups_of_raw_periods() -> None:
    assert cutoffs(RETENTION, NOW) == (RAW_BEFORE, ROLLUPS_BEFORE)
    raw, _ = cutoffs(RETENTION, NOW, older_than=timedelta(days=7))
    assert raw == datetime(2026, 5, 25, 12, tzinfo=UTC)
    # rollup_days shorter than raw_days: rollups stay as long as their raw rows.
    short = config.RetentionConfig(raw_days=30, rollup_days=10)
    assert cutoffs(short, NOW) == (RAW_BEFORE, RAW_BEFORE)
    with pytest.raises(ValueError, match="positive"):
        run_cleanup(None, RETENTION, "logs", older_than=timedelta(0))  # type: ignore[arg-type]


def test_cleanup_deletes_exactly_what_is_past_retention(store: Store, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(store_mod, "_PRUNE_BATCH", 7)  # many small batches, as with real volumes
    ids = _seed(store)
    kept_rollups = _rollup_rows(store, ROLLUPS_BEFORE, RAW_BEFORE)
    ancient_rollups = len(_rollup_rows(store, datetime(2000, 1, 1, tzinfo=UTC), ROLLUPS_BEFORE))
    assert kept_rollups and ancient_rollups
    seen: list[tuple[str, int, int]] = []

    report = run_cleanup(store, RETENTION, tmp_path / "logs", now=NOW, progress=lambda *a: seen.append(a))

    assert _ids(store) == ids["kept"]
    assert (report.requests, report.feedback, report.model_loads) == (len(ids["gone"]), 2, 1)
    assert report.rollups == ancient_rollups and report.dry_run is False
    assert (report.raw_before, report.rollups_before) == (RAW_BEFORE, ROLLUPS_BEFORE)
    with store.engine.connect() as conn:
        assert set(conn.execute(sa.select(feedback.c.request_id)).scalars()) == ids["feedback_kept"]
        assert conn.execute(sa.select(sa.func.count()).select_from(model_loads)).scalar_one() == 1
    # Rollups between the two cutoffs are untouched; only those past rollup_days went.
    assert _rollup_rows(store, ROLLUPS_BEFORE, RAW_BEFORE) == kept_rollups
    assert _rollup_rows(store, datetime(2000, 1, 1, tzinfo=UTC), ROLLUPS_BEFORE) == []
    # Progress: one call per batch, in stage order, ending at the totals.
    stages = [s for s, _, _ in seen]
    assert stages == sorted(stages, key=STAGES.index)
    assert stages.count("requests") == -(-len(ids["gone"]) // 7)
    last = {s: (done, total) for s, done, total in seen}
    assert last["requests"] == (len(ids["gone"]), len(ids["gone"])) and last["rollups"][0] == ancient_rollups
    # The rollups of periods that still have raw rows equal the raw aggregates.
    store.prune(raw_before=RAW_BEFORE, rollups_before=RAW_BEFORE)  # drop the raw-less ones for the check
    assert_rollups_match_raw(store)
    # A second run finds nothing.
    again = run_cleanup(store, RETENTION, tmp_path / "logs", now=NOW)
    assert again.rows == 0 and _ids(store) == ids["kept"]


def test_dry_run_deletes_nothing_and_counts_what_a_run_deletes(store: Store, tmp_path: Path) -> None:
    _seed(store)
    old_logs, young_logs = _old_logs(tmp_path / "logs")
    before = _counts(store)

    dry = run_cleanup(store, RETENTION, tmp_path / "logs", now=NOW, dry_run=True)
    assert _counts(store) == before
    assert all(p.exists() for p in old_logs + young_logs)
    assert dry.dry_run and dry.bytes_freed is None

    real = run_cleanup(store, RETENTION, tmp_path / "logs", now=NOW)
    for field in ("requests", "feedback", "model_loads", "record_losses", "rollups", "raw_before", "rollups_before"):
        assert getattr(dry, field) == getattr(real, field), field
    assert sorted(dry.log_files) == sorted(real.log_files) == sorted(old_logs)
    assert real.record_losses == 1  # the loss older than rollup_days; the 100-day-old one stays
    after = _counts(store)
    assert {k: before[k] - after[k] for k in before} == {
        "requests": real.requests,
        "feedback": real.feedback,
        "model_loads": real.model_loads,
        "record_losses": real.record_losses,
        "rollups": real.rollups,
    }


def test_log_files_past_log_days_are_deleted(sqlite_store: Store, tmp_path: Path) -> None:
    old_logs, young_logs = _old_logs(tmp_path / "logs")
    report = run_cleanup(sqlite_store, RETENTION, tmp_path / "logs", now=NOW)
    assert sorted(report.log_files) == sorted(old_logs)
    assert not any(p.exists() for p in old_logs) and all(p.exists() for p in young_logs)
    assert report.rows == 0
    assert run_cleanup(sqlite_store, RETENTION, tmp_path / "missing", now=NOW).log_files == ()


def _db_bytes(store: Store) -> int:
    db = Path(store.engine.url.database)
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())


def test_sqlite_file_shrinks_and_writers_keep_going_during_a_big_cleanup(sqlite_store: Store, tmp_path: Path) -> None:
    store = sqlite_store
    start = NOW - timedelta(days=60)
    old = [
        make_record(started_at=start + timedelta(seconds=20 * i), prompt_text="p" * 300, response_text="r" * 600)
        for i in range(50_000)
    ]
    for i in range(0, len(old), 10_000):
        store.write_many(old[i : i + 10_000])
    size_before = _db_bytes(store)

    # A writer records requests throughout the cleanup: each write must stay quick.
    done, latencies, errors = threading.Event(), [], []

    def writer() -> None:
        while not done.is_set():
            t = time.monotonic()
            try:
                store.write(make_record(started_at=NOW - timedelta(minutes=1)))
            except Exception as exc:  # reported below
                errors.append(exc)
            latencies.append(time.monotonic() - t)
            time.sleep(0.005)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        report = run_cleanup(store, RETENTION, tmp_path / "logs", now=NOW)
    finally:
        done.set()
        thread.join()
    size_after = _db_bytes(store)

    assert report.requests == 50_000 and store.count() == len(latencies) - len(errors)
    assert not errors and len(latencies) > 20
    assert max(latencies) < 2.0, max(latencies)  # batches are short: no write waits long
    assert size_after < size_before * 0.15, (size_before, size_after)
    assert report.bytes_freed > size_before * 0.8
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA freelist_count").scalar() == 0
    print(
        f"\nSQLite db+WAL: {size_before:,} -> {size_after:,} bytes after deleting 50,000 rows "
        f"(report: {report.bytes_freed:,} freed, {report.duration_s:.2f} s; "
        f"max write latency during cleanup {max(latencies) * 1000:.0f} ms)"
    )


# --- the background task ------------------------------------------------------------------


def _settings(url: str, tmp_path: Path, interval_minutes: float) -> config.Settings:
    return config.parse(
        {
            "app": {"data_dir": str(tmp_path / "data"), "log_dir": str(tmp_path / "logs")},
            "store": {"url": url},
            "retention": {"raw_days": 30, "interval_minutes": interval_minutes},
        }
    )


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def retention_log():
    logger = logging.getLogger("chatwatch.retention")
    handler, level = _Capture(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_task_runs_every_interval_logs_and_stops(sqlite_url: str, tmp_path: Path, retention_log) -> None:
    settings = _settings(sqlite_url, tmp_path, interval_minutes=0.005)  # 0.3 s
    with Store.open(sqlite_url) as store:
        store.write(make_record(started_at=datetime.now(UTC) - timedelta(days=45)))
        task = RetentionTask(store, settings, "host:1")
        task.start()
        task.start()  # idempotent: still one thread
        deadline = time.monotonic() + 10
        while task.runs < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        task.stop()
        assert not task.running and task.runs >= 3
        assert [t.name for t in threading.enumerate()].count("chatwatch-retention") == 0
        assert store.count() == 0
        lines = [r for r in retention_log.records if r.getMessage().startswith("retention cleanup (background)")]
        assert len(lines) == task.runs
        assert lines[0].raw_rows == 1 and lines[0].levelno == logging.INFO
        assert {
            "raw_rows",
            "rollup_rows",
            "feedback_rows",
            "model_load_rows",
            "log_files",
            "bytes_freed",
            "dry_run",
            "trigger",
        } <= set(vars(lines[1]))
        assert leases.current(store.engine, LEASE_NAME).holder == task.holder


def test_a_task_skips_while_another_holds_the_lease_and_takes_over_after_expiry(store: Store, tmp_path: Path) -> None:
    settings = _settings("sqlite:///unused.db", tmp_path, interval_minutes=60)
    store.write(make_record(started_at=datetime.now(UTC) - timedelta(days=45)))
    other = "elsewhere:99/token"
    assert leases.acquire(store.engine, LEASE_NAME, other, 3600)
    task = RetentionTask(store, settings, "host:1")
    assert task.run_once() is None and task.skips == 1 and store.count() == 1
    # The other process died an hour ago: its lease expired, this one takes over.
    with store.transaction() as conn:
        conn.execute(sa.update(leases.leases).values(expires_us=leases.now_us() - 1))
    report = task.run_once()
    assert report is not None and report.requests == 1 and store.count() == 0
    assert leases.current(store.engine, LEASE_NAME).holder == task.holder


def test_stop_interrupts_a_cleanup_between_batches(sqlite_store: Store, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(store_mod, "_PRUNE_BATCH", 10)
    sqlite_store.write_many(make_record(started_at=NOW - timedelta(days=45, seconds=i)) for i in range(100))
    task = RetentionTask(sqlite_store, _settings("sqlite:///unused.db", tmp_path, 60), "host:1")
    stop = threading.Event()
    stop.set()
    with pytest.raises(CleanupStopped):
        task.run_once(now=NOW, stop=stop)
    assert sqlite_store.count() == 90  # the first batch went, then it stopped


def test_runtime_owns_one_retention_task_and_a_changed_config_replaces_it(sqlite_url: str, tmp_path: Path) -> None:
    from chatwatch.runtime import Runtime, Runtimes

    with Runtime(_settings(sqlite_url, tmp_path, 30), role="cli") as cli:
        assert cli.retention is None  # `chatwatch cleanup` is the CLI's
    with Runtimes() as runtimes:
        first = runtimes.get(_settings(sqlite_url, tmp_path, 60))
        task = first.retention
        assert task is not None and task.running
        assert runtimes.get(_settings(sqlite_url, tmp_path, 60)) is first  # same config: same runtime, same thread
        # A runtime rebuilt for an edited config takes over; the old one is closed with its thread.
        second = runtimes.get(_settings(sqlite_url, tmp_path, 30))
        assert second is not first and first.closed
        assert second.retention.running and not task.running
    assert second.closed and not second.retention.running


# Runs a RetentionTask in its own process for `duration` seconds (all processes start at
# the same instant) and prints one JSON line per cleanup it ran, then its run/skip totals.
_WORKER = r"""
import json, logging, sys, time
from chatwatch import config
from chatwatch.store.retention import RetentionTask
from chatwatch.store.records import Store

url, logs, name, start, duration = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
settings = config.parse({"store": {"url": url}, "app": {"log_dir": logs},
                         "retention": {"raw_days": 30, "interval_minutes": 1 / 60}})

class Out(logging.Handler):
    def emit(self, record):
        if record.getMessage().startswith("retention cleanup (background)"):
            # When the run started (the lease was taken just before): the line is logged at its end.
            t = record.created - record.duration_s
            print(json.dumps({"t": t, "who": name, "raw_rows": record.raw_rows}), flush=True)

log = logging.getLogger("chatwatch.retention")
log.addHandler(Out())
log.setLevel(logging.INFO)
store = Store.open(url)
task = RetentionTask(store, settings, name)
time.sleep(max(0.0, start - time.time()))
task.start()
time.sleep(duration)
task.stop()
print(json.dumps({"who": name, "runs": task.runs, "skips": task.skips}), flush=True)
store.close()
"""


def test_two_processes_run_the_task_once_per_interval(store_url: str, tmp_path: Path) -> None:
    with Store.open(store_url) as store:
        store.write(make_record(started_at=datetime.now(UTC) - timedelta(days=45)))
    interval, duration = 1.0, 3.5
    start = time.time() + 3.0  # time for both interpreters to start and open the store
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, store_url, str(tmp_path / "logs"), who, str(start), str(duration)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("A", "B")
    ]
    runs, totals = [], {}
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        for line in map(json.loads, out.splitlines()):
            if "t" in line:
                runs.append(line)
            else:
                totals[line["who"]] = line
    runs.sort(key=lambda r: r["t"])
    # Both started at the same instant; the lease let one run per interval, the other skipped.
    assert 3 <= len(runs) <= duration / interval + 1, runs
    gaps = [b["t"] - a["t"] for a, b in zip(runs, runs[1:])]
    assert min(gaps) > interval * 0.9, gaps
    assert sum(t["runs"] for t in totals.values()) == len(runs)
    assert sum(t["skips"] for t in totals.values()) >= 2
    assert sum(r["raw_rows"] for r in runs) == 1  # the old record went exactly once


# --- the CLI ------------------------------------------------------------------------------


def _chatwatch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chatwatch", *args], capture_output=True, text=True, timeout=120)


def test_cli_cleanup_shows_progress_and_counts(tmp_path: Path) -> None:
    conf = tmp_path / "chatwatch.toml"
    conf.write_text(
        '[app]\ndata_dir = "data"\nlog_dir = "logs"\n\n[retention]\nraw_days = 30\nrollup_days = 400\nlog_days = 14\n'
    )
    now = datetime.now(UTC)
    settings = config.load(conf)
    with Store.open(settings.store_url) as store:
        old = [make_record(started_at=now - timedelta(days=40, seconds=i)) for i in range(12_000)]
        store.write_many(old)
        store.write_many(make_record(started_at=now - timedelta(days=3, seconds=i)) for i in range(50))
        store.write_model_load(model="smollm2", instance="h:1", load_s=0.4, ok=True, loaded_at=now - timedelta(days=31))
    logs = tmp_path / "logs"
    logs.mkdir()
    stale = logs / "chatwatch-app-web1.2020-01-01.001.jsonl.gz"
    stale.write_bytes(b"{}\n")
    os.utime(stale, (now.timestamp() - 20 * 86400,) * 2)

    dry = _chatwatch("cleanup", "--config", str(conf), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: would delete" in dry.stdout and "12,000" in dry.stdout
    assert stale.exists() and "deleting" not in dry.stderr

    out = _chatwatch("cleanup", "--config", str(conf))
    assert out.returncode == 0, out.stderr
    assert "deleting raw records: [" in out.stderr and "] 12,000/12,000" in out.stderr
    assert "deleting model loads: [" in out.stderr
    counts = {line[:15].strip(): line[15:].split()[0] for line in out.stdout.splitlines()[1:]}
    assert counts["raw records"] == "12,000" and counts["model loads"] == "1" and counts["log files"] == "1"
    assert counts["feedback"] == "0" and counts["rollup rows"] == "0"
    assert int(counts["bytes freed"].replace(",", "")) > 0
    assert not stale.exists()
    with Store.open(settings.store_url) as store:
        assert store.count() == 50
    # Logged to the CLI's own log file, with the counts as fields.
    lines = [json.loads(x) for f in logs.glob("chatwatch-cli-*.jsonl") for x in f.read_text().splitlines()]
    done = [x for x in lines if x["logger"] == "chatwatch.retention" and not x["dry_run"]]
    assert done and done[-1]["raw_rows"] == 12_000 and done[-1]["trigger"] == "cli"

    # --older-than overrides raw_days for this run only.
    newer = _chatwatch("cleanup", "--config", str(conf), "--older-than", "1d")
    assert newer.returncode == 0, newer.stderr
    assert "50" in newer.stdout.splitlines()[1]
    bad = _chatwatch("cleanup", "--config", str(conf), "--older-than", "soon")
    assert bad.returncode == 2 and "invalid duration 'soon'" in bad.stderr
