"""Records the store cannot take are kept, written by the monitor's background thread once
the store is back (never replayed inside a user's request), bounded, and every drop is
logged, counted and recorded in the store.

Failures are real SQLite ones: another connection holding the write lock (BEGIN IMMEDIATE,
"database is locked" once the busy timeout runs out) or the `requests` table moved away
under the running store ("no such table"). Replies come from the stub server (the fastest
real HTTP model); the store is watched through its public write methods, recording which
thread called them with which records.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable

import pytest

from chatwatch.config import ConfigError, parse
from chatwatch.models.contract import GenerationSettings, Message
from chatwatch.models.registry import ModelRegistry
from chatwatch.reports.aggregate import Filters
from chatwatch.reports.losses import losses
from chatwatch.store import db
from chatwatch.store.losses import read_losses
from chatwatch.store.records import Store
from chatwatch.telemetry.monitor import Monitor, UnsavedWriter

WRITER = UnsavedWriter.thread_name


def settings_for(tmp_path, stub_url: str, **store):
    return parse(
        {
            "app": {"data_dir": str(tmp_path / "data"), "log_dir": str(tmp_path / "logs")},
            "store": store,
            "models": [{"id": "hosted", "kind": "openai", "base_url": stub_url, "model": "m1"}],
        }
    )


class WriteLog:
    """Which thread wrote which record ids, through the store's public write methods."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.in_store = 0  # calls inside the store right now
        self.most_in_store = 0
        self._lock = threading.Lock()
        write, write_many = store.write, store.write_many

        def watched(real: Callable, ids: Callable) -> Callable:
            def call(arg, **kw):
                with self._lock:
                    self.in_store += 1
                    self.most_in_store = max(self.most_in_store, self.in_store)
                    self.calls.append((threading.current_thread().name, ids(arg)))
                try:
                    return real(arg, **kw)
                finally:
                    with self._lock:
                        self.in_store -= 1

            return call

        monkeypatch.setattr(store, "write", watched(write, lambda r: (r.id,)))
        monkeypatch.setattr(store, "write_many", watched(write_many, lambda rs: tuple(r.id for r in rs)))

    def threads_writing(self, record_id: str) -> set[str]:
        return {name for name, ids in self.calls if record_id in ids}


def ask(monitor: Monitor, registry: ModelRegistry, cfg, text: str = "Hello"):
    mc = cfg.model("hosted")
    reply = monitor.chat(
        registry.get(mc), mc, [Message("user", text)], GenerationSettings(max_tokens=16), session_id="s1"
    )
    for _ in reply:
        pass
    return reply


def wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the timeout")
        time.sleep(0.02)


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == WRITER and t.is_alive()]


@pytest.fixture
def registry():
    models = ModelRegistry()
    yield models
    models.close()


def move_table(store: Store, old: str, new: str) -> None:
    with store.transaction() as conn:
        conn.exec_driver_sql(f"ALTER TABLE {old} RENAME TO {new}")


def test_a_locked_store_keeps_the_record_and_the_background_thread_writes_it(
    tmp_path, stub_server, registry, monkeypatch
):
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 300)  # a locked store fails after 0.3 s, not 10 s
    cfg = settings_for(tmp_path, stub_server.base_url)
    with Store.open(cfg.store_url) as store:
        writes = WriteLog(store, monkeypatch)
        monitor = Monitor(cfg, store, instance="test")
        try:
            blocker = sqlite3.connect(cfg.app.data_dir / "chatwatch.db", isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")  # holds the write lock
            first = ask(monitor, registry, cfg)
            assert first.text == "Hello, world!"  # the user got the answer
            assert first.store_error and "database is locked" in first.store_error
            assert monitor.unsaved_count() == 1
            health = monitor.health()
            assert health.degraded and health.unsaved == 1 and health.lost == 0
            assert "database is locked" in health.reason
            # The writer retries with backoff while the lock is held: let it fail at least twice.
            wait_for(lambda: len(writes.threads_writing(first.record.id) & {WRITER}) >= 1, 5)
            time.sleep(1.0)
            assert monitor.unsaved_count() == 1
            held = blocker.execute("SELECT count(*) FROM requests WHERE id = ?", (first.record.id,)).fetchone()
            assert held == (0,)
            blocker.execute("ROLLBACK")
            blocker.close()

            second = ask(monitor, registry, cfg)  # the store is back: this request saves only itself
            assert second.store_error is None
            wait_for(lambda: monitor.unsaved_count() == 0)
            assert store.get(first.record.id) == first.record and store.get(second.record.id) == second.record
            assert not monitor.health().degraded
        finally:
            monitor.close()
    request_thread = threading.current_thread().name
    assert writes.threads_writing(first.record.id) == {request_thread, WRITER}
    # Every write made by a request carries exactly its own record: no replayed backlog.
    mine = [ids for name, ids in writes.calls if name == request_thread]
    assert mine == [(first.record.id,), (second.record.id,)]
    retries = [ids for name, ids in writes.calls if name == WRITER]
    assert len(retries) >= 2 and all(ids == (first.record.id,) for ids in retries)


def test_two_requests_commit_at_the_same_time(tmp_path, stub_server, registry, monkeypatch):
    """The monitor's lock guards its backlog, never a commit: two requests can both be
    inside the store (here both waiting for the SQLite write lock another connection holds)."""
    cfg = settings_for(tmp_path, stub_server.base_url)
    with Store.open(cfg.store_url) as store:
        writes = WriteLog(store, monkeypatch)
        monitor = Monitor(cfg, store, instance="test")
        replies = []
        blocker = sqlite3.connect(cfg.app.data_dir / "chatwatch.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        threads = [threading.Thread(target=lambda: replies.append(ask(monitor, registry, cfg))) for _ in range(2)]
        try:
            for t in threads:
                t.start()
            wait_for(lambda: writes.in_store == 2, 8)  # both wait inside store.write at once
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
            for t in threads:
                t.join(20)
            monitor.close()
        assert writes.most_in_store == 2
        assert len(replies) == 2 and all(r.store_error is None for r in replies)
        assert all(store.get(r.record.id) == r.record for r in replies)


def test_the_bound_drops_the_oldest_and_the_loss_is_logged_counted_and_stored(tmp_path, stub_server, registry, caplog):
    cfg = settings_for(tmp_path, stub_server.base_url, unsaved_max_records=3)
    caplog.set_level(logging.INFO, logger="chatwatch.requests")
    with Store.open(cfg.store_url) as store:
        monitor = Monitor(cfg, store, instance="test")
        try:
            move_table(store, "requests", "requests_away")
            replies = [ask(monitor, registry, cfg, f"message {i}") for i in range(5)]
            assert all(r.text == "Hello, world!" and "no such table" in r.store_error for r in replies)
            assert monitor.unsaved_count() == 3 and monitor.dropped_count == 2
            health = monitor.health()
            assert (health.unsaved, health.lost) == (3, 2) and health.degraded
            drops = [r for r in caplog.records if r.getMessage().startswith("dropping request records")]
            assert len(drops) == 1 and drops[0].levelno == logging.WARNING  # once per burst
            assert "unsaved_max_records = 3" in drops[0].getMessage()

            move_table(store, "requests_away", "requests")
            after = ask(monitor, registry, cfg)  # commits itself and wakes the writer
            assert after.store_error is None
            wait_for(lambda: monitor.unsaved_count() == 0 and read_losses(store))
            kept = [r.record for r in replies[2:]] + [after.record]
            assert all(store.get(r.id) == r for r in kept)
            assert all(store.get(r.record.id) is None for r in replies[:2])  # the two oldest were dropped
            (loss,) = read_losses(store)
            assert (loss.model, loss.count, loss.instance) == ("hosted", 2, "test")
            assert (loss.first_started, loss.last_started) == (
                replies[0].record.started_at,
                replies[1].record.started_at,
            )
            assert "unsaved_max_records = 3" in loss.reason and "no such table" in loss.reason
            lost_lines = [r for r in caplog.records if r.getMessage().startswith("lost 2 request records")]
            assert len(lost_lines) == 1 and lost_lines[0].threadName == WRITER
            assert not monitor.health().degraded and monitor.health().lost == 2
        finally:
            monitor.close()

        # The dashboard's view of it: by model and by range of the lost records' start times.
        assert losses(store, Filters()).count == 2
        assert losses(store, Filters(models=["hosted"])).count == 2
        assert losses(store, Filters(models=["other"])).count == 0
        assert losses(store, Filters(since=replies[1].record.started_at)).count == 2  # overlaps
        assert not losses(store, Filters(since=after.record.started_at))
        assert not losses(store, Filters(until=replies[0].record.started_at))


def test_close_writes_the_kept_records_and_joins_its_threads(tmp_path, stub_server, registry):
    cfg = settings_for(tmp_path, stub_server.base_url)
    before = set(threading.enumerate())  # threads other tests left are not this monitor's
    with Store.open(cfg.store_url) as store:
        monitor = Monitor(cfg, store, instance="test")
        monitor.add_listener(lambda record: None)  # starts the after-record thread too
        move_table(store, "requests", "requests_away")
        reply = ask(monitor, registry, cfg)
        assert monitor.unsaved_count() == 1 and len(writer_threads()) == 1
        move_table(store, "requests_away", "requests")
        monitor.close()
        assert not set(writer_threads()) - before
        assert not [t for t in set(threading.enumerate()) - before if t.name == "chatwatch-after-record"]
        assert monitor.unsaved_count() == 0 and store.get(reply.record.id) == reply.record
        monitor.close()  # idempotent


def test_close_with_the_store_down_spools_what_it_could_not_write(tmp_path, stub_server, registry, caplog):
    """Nothing is dropped at close: the kept records go to a spool file for the next process
    (telemetry/spool.py; the loss path, with no folder writable, is in tests/test_spool.py)."""
    cfg = settings_for(tmp_path, stub_server.base_url)
    with Store.open(cfg.store_url) as store:
        monitor = Monitor(cfg, store, instance="test")
        move_table(store, "requests", "requests_away")
        ask(monitor, registry, cfg)
        ask(monitor, registry, cfg)
        started = time.monotonic()
        spooled = monitor.close(timeout=5)
        assert time.monotonic() - started < 5
        assert spooled.records == 2 and spooled.path.exists()
        assert monitor.dropped_count == 0 and monitor.unsaved_count() == 0 and not writer_threads()
        (line,) = [r for r in caplog.records if "spooled to" in r.getMessage()]
        assert line.levelno == logging.ERROR and "2 kept request records" in line.getMessage()


def test_the_bound_is_validated_and_its_error_names_the_key(tmp_path):
    for bad in (0, -5, "many"):
        with pytest.raises(ConfigError, match=r"store\.unsaved_max_records"):
            parse({"store": {"unsaved_max_records": bad}})
    assert parse({}).store.unsaved_max_records == 10_000


def test_losses_round_trip_and_filter_on_both_backends(store):
    from datetime import UTC, datetime, timedelta

    from chatwatch.store.losses import Loss, write_losses

    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    a = Loss(t0, "h:1", "alpha", 3, t0 - timedelta(hours=2), t0 - timedelta(hours=1), "backlog full")
    b = Loss(t0, "h:2", "beta", 5, t0 - timedelta(minutes=30), t0 - timedelta(minutes=10), "closed with the store down")
    write_losses(store, [a, b])
    assert read_losses(store) == [a, b]
    assert read_losses(store, models=["beta"]) == [b]
    assert read_losses(store, since=t0 - timedelta(minutes=20)) == [b]  # b's records reach into the range
    assert read_losses(store, until=t0 - timedelta(minutes=30)) == [a]  # until is exclusive
    summary = losses(store, Filters(since=t0 - timedelta(hours=3)))
    assert (summary.count, summary.instances) == (8, ("h:1", "h:2"))
    with pytest.raises(ValueError, match="at least one record"):
        Loss(t0, "h", "m", 0, t0, t0, "none")
