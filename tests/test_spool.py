"""Records a process could not store before it ended are spooled to disk and stored by the
next process (telemetry/spool.py), never lost silently (issue #9).

The faults are real: another process holding SQLite's write lock (BEGIN IMMEDIATE) for the
whole run of a `chatwatch ask` subprocess, a data folder on a read-only tmpfs, a tmpfs
filled to the last byte, the `requests` table moved away under a running store. Replies
come from the stub server (a real HTTP model, the fastest). What the store holds after an
ingest is compared field by field with what the spool file itself says (parsed here with
json and Decimal, not with the spool module's reader), and the rollups with aggregates
recomputed from the raw rows.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from chatwatch.config import load, parse
from chatwatch.models.registry import ModelRegistry
from chatwatch.runtime import Runtime
from chatwatch.store.losses import Loss, read_losses
from chatwatch.store.record import RequestRecord
from chatwatch.store.records import Store
from chatwatch.telemetry.monitor import Monitor
from chatwatch.telemetry.spool import Spool
from tests import test_broken_storage as broken_storage
from tests.fixtures.db import assert_rollups_match_raw, make_record
from tests.fixtures.locks import hold_lock, release
from tests.stub_openai_server import Script
from tests.test_broken_storage import _fill, needs_mount, remount, wait_for
from tests.test_unsaved import ask

tmpfs = broken_storage.tmpfs  # the fixture: mount(size_kb) -> a fresh tmpfs, unmounted after the test
PRICE = {"input_per_mtok": 0.15, "output_per_mtok": 0.6}
SPOOLED_LINE = re.compile(
    r"^chatwatch: the store was unavailable \((?P<cause>.+)\): 1 record saved to (?P<path>\S+); "
    r"it will be stored by the next chatwatch process$"
)


def settings_for(data_dir: Path, log_dir: Path, stub_url: str, **store):
    return parse(
        {
            "app": {"data_dir": str(data_dir), "log_dir": str(log_dir), "language": "en", "instance": "test"},
            "store": store,
            "alerts": {"evaluate_every_s": 3600},
            "models": [{"id": "hosted", "kind": "openai", "base_url": stub_url, "model": "m1", "price": PRICE}],
        }
    )


def spooled_records(path: Path) -> dict[str, dict]:
    """The records a spool file holds, read as plain JSON lines (id -> fields)."""
    out = {}
    for line in path.read_text().splitlines()[1:]:
        obj = json.loads(line, parse_float=float)
        if "record" in obj:
            out[obj["record"]["id"]] = obj["record"]
    return out


def assert_same(stored: RequestRecord, spooled: dict) -> None:
    """Field by field: times to the microsecond, costs as exact decimals."""
    for name, value in spooled.items():
        if name == "extra":
            continue  # not a column: the store keeps no `extra`
        got = getattr(stored, name)
        if name == "started_at":
            assert got == datetime.fromisoformat(value), name
        elif name in ("cost_usd", "saved_usd"):
            assert got == (None if value is None else Decimal(value)), name
            assert value is None or isinstance(got, Decimal)
        else:
            assert got == value, name


def spool_files(*folders: Path) -> list[Path]:
    return sorted(p for f in folders if f.exists() for p in f.iterdir())


@pytest.fixture
def registry():
    models = ModelRegistry()
    yield models
    models.close()


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """The system temp dir (the spool's last fallback) for this test alone."""
    folder = tmp_path / "systemp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


# --- (a) `chatwatch ask` while another process holds the lock for its whole run ---------------


def test_ask_with_the_database_locked_spools_the_record_exits_3_and_the_next_process_stores_it(
    tmp_path, stub_server, private_tmp
):
    config = tmp_path / "chatwatch.toml"
    config.write_text(
        '[app]\nlanguage = "en"\ndata_dir = "data"\nlog_dir = "logs"\ninstance = "spooltest"\n'
        "[alerts]\nevaluate_every_s = 3600\n"
        f'[[models]]\nid = "hosted"\nkind = "openai"\nbase_url = "{stub_server.base_url}"\nmodel = "m1"\n'
        "[models.price]\ninput_per_mtok = 0.15\noutput_per_mtok = 0.6\n"
    )
    cfg = load(config)
    Store.open(cfg.store_url).close()  # the database exists, migrated
    stub_server.script = Script(first_byte_s=3.0)
    env = {**os.environ, "TMPDIR": str(private_tmp)}
    ask_cli = subprocess.Popen(
        [sys.executable, "-m", "chatwatch", "ask", "--config", str(config), "Hello"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    # Take the lock while the request is in flight: the stub holds its answer 3 s.
    wait_for(lambda: bool(stub_server.chat_requests()), 120)
    holder = hold_lock(cfg.app.data_dir / "chatwatch.db")
    try:
        out, err = ask_cli.communicate(timeout=180)
        assert ask_cli.returncode == 3, err
        assert out == "Hello, world!\n"  # the reply itself is printed
        (line,) = err.splitlines()  # one line on stderr
        m = SPOOLED_LINE.match(line)
        assert m, line
        assert "database is locked" in m["cause"]
        path = Path(m["path"])
        assert path.parent == cfg.app.data_dir / "spool" and path.exists()
        (record_id,) = records = spooled_records(path)
        spooled = records[record_id]
        assert spooled["instance"] == "spooltest" and spooled["status"] == "ok"
        assert Decimal(spooled["cost_usd"]) > 0 and spooled["price_source"] == "config"
        with sqlite3.connect(cfg.app.data_dir / "chatwatch.db") as reader:  # WAL: reading is not locked
            assert reader.execute("SELECT count(*) FROM requests WHERE id = ?", (record_id,)).fetchone() == (0,)
    finally:
        release(holder)

    with Runtime(cfg, role="cli") as rt:  # the next process: ingests the spool on start
        wait_for(lambda: rt.store.get(record_id) is not None)
        assert_same(rt.store.get(record_id), spooled)
        assert_rollups_match_raw(rt.store)
    assert not path.exists() and spool_files(cfg.app.data_dir / "spool") == []
    logged = [
        json.loads(line)["message"] for f in cfg.app.log_dir.glob("*.jsonl") for line in f.read_text().splitlines()
    ]
    assert any(m.startswith("ingested 1 records spooled by spooltest") for m in logged)


def test_ask_with_a_store_locked_for_a_moment_exits_0_and_spools_nothing(tmp_path, stub_server, private_tmp):
    """The lock outlasts the request's own commit (1 s) but not the CLI's wait for the store:
    the record goes through the kept backlog, is written before the exit, and all is well."""
    config = tmp_path / "chatwatch.toml"
    config.write_text(
        '[app]\nlanguage = "en"\ndata_dir = "data"\nlog_dir = "logs"\ninstance = "slowtest"\n'
        "[alerts]\nevaluate_every_s = 3600\n"
        f'[[models]]\nid = "hosted"\nkind = "openai"\nbase_url = "{stub_server.base_url}"\nmodel = "m1"\n'
    )
    cfg = load(config)
    Store.open(cfg.store_url).close()
    stub_server.script = Script(first_byte_s=3.0)
    ask_cli = subprocess.Popen(
        [sys.executable, "-m", "chatwatch", "ask", "--config", str(config), "Hello"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "TMPDIR": str(private_tmp)},
    )
    wait_for(lambda: bool(stub_server.chat_requests()), 120)
    holder = hold_lock(cfg.app.data_dir / "chatwatch.db")
    try:
        assert os.read(ask_cli.stdout.fileno(), 100).startswith(b"Hello")  # the reply is streaming
        time.sleep(2.5)  # the request's own commit gave up after 1 s: its record is kept
    finally:
        release(holder)
    out, err = ask_cli.communicate(timeout=120)
    assert ask_cli.returncode == 0, err
    assert err == b""
    with Store.open(cfg.store_url) as store:
        assert store.count() == 1
    logged = [json.loads(line)["message"] for line in (cfg.app.log_dir / "chatwatch-cli-slowtest.jsonl").open()]
    assert any(m.startswith("could not save request records (1 kept in memory)") for m in logged), logged
    assert "wrote 1 kept request records (0 still kept)" in logged, logged
    assert spool_files(cfg.app.data_dir / "spool", cfg.app.log_dir / "spool", private_tmp) == []


def test_ask_with_a_store_that_is_only_slow_exits_0_and_spools_nothing(tmp_path, stub_server, registry):
    """A lock held shorter than the close deadline: the record is kept, then written."""
    cfg = settings_for(tmp_path / "data", tmp_path / "logs", stub_server.base_url)
    with Store.open(cfg.store_url) as store:
        monitor = Monitor(cfg, store, instance="test")
        holder = hold_lock(cfg.app.data_dir / "chatwatch.db")
        try:
            reply = ask(monitor, registry, cfg)
            assert reply.store_error and "database is locked" in reply.store_error
        finally:
            threading.Timer(0.5, release, (holder,)).start()
        started = time.monotonic()
        assert monitor.close(timeout=3) is None and monitor.spooled is None
        assert time.monotonic() - started < 3
        assert store.get(reply.record.id) == reply.record and monitor.dropped_count == 0
    assert spool_files(cfg.app.data_dir / "spool", cfg.app.log_dir / "spool") == []


def test_close_waits_for_a_locked_store_no_longer_than_its_timeout(tmp_path, stub_server, registry, private_tmp):
    cfg = settings_for(tmp_path / "data", tmp_path / "logs", stub_server.base_url)
    with Store.open(cfg.store_url) as store:
        monitor = Monitor(cfg, store, instance="test")
        holder = hold_lock(cfg.app.data_dir / "chatwatch.db")
        try:
            reply = ask(monitor, registry, cfg)
            time.sleep(0.2)  # the unsaved writer is now inside a write, waiting for the lock
            started = time.monotonic()
            spooled = monitor.close(timeout=2)
            took = time.monotonic() - started
        finally:
            release(holder)
        assert took < 2 + 0.5, took
        assert spooled is monitor.spooled and spooled.records == 1 and spooled.dropped == 0
        assert set(spooled_records(spooled.path)) == {reply.record.id}
        assert monitor.unsaved_count() == 0 and monitor.dropped_count == 0


# --- (b) the data folder unwritable: the fallback folders -------------------------------------


@needs_mount
def test_a_read_only_data_folder_spools_to_the_log_folder_and_is_ingested_once_writable(
    tmp_path, tmpfs, stub_server, registry, private_tmp
):
    point = tmpfs(16 * 1024)
    remount(point, "ro")
    cfg = settings_for(point / "data", tmp_path / "logs", stub_server.base_url)
    try:
        with Store.open(cfg.store_url, wait_for_database=True) as store:
            assert store.unavailable and "Read-only file system" in store.unavailable
            monitor = Monitor(cfg, store, instance="test")
            reply = ask(monitor, registry, cfg)
            assert reply.store_error
            spooled = monitor.close(timeout=2)
    finally:
        remount(point, "rw")
    assert spooled.path.parent == cfg.app.log_dir / "spool"  # the data folder refused it
    assert "Read-only file system" in spooled.cause
    (spooled_fields,) = spooled_records(spooled.path).values()
    with Store.open(cfg.store_url) as store:
        monitor = Monitor(cfg, store, instance="next")
        try:
            wait_for(lambda: store.get(reply.record.id) is not None)
        finally:
            monitor.close()
        assert_same(store.get(reply.record.id), spooled_fields)
        assert store.get(reply.record.id) == reply.record
    assert not spooled.path.exists()


@needs_mount
def test_a_full_disk_spools_to_the_temp_folder_and_is_ingested_once_there_is_room(
    tmp_path, tmpfs, stub_server, registry, private_tmp
):
    point = tmpfs(8 * 1024)
    cfg = settings_for(point / "data", point / "logs", stub_server.base_url)  # logs on the full disk too
    with Store.open(cfg.store_url) as store:
        monitor = Monitor(cfg, store, instance="test")
        assert ask(monitor, registry, cfg).store_error is None
        filler = _fill(point)
        kept = []
        for i in range(40):  # until a commit finds no room (SQLite pages are reused at first)
            reply = ask(monitor, registry, cfg, f"Full {i}")
            if reply.store_error:
                kept.append(reply)
                break
        assert kept and "full" in kept[-1].store_error.lower()
        spooled = monitor.close(timeout=2)
    user = os.getuid()
    assert spooled.path.parent.parent == private_tmp / f"chatwatch-spool-{user}"
    assert (spooled.path.stat().st_mode & 0o777, spooled.path.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    assert set(spooled_records(spooled.path)) == {kept[-1].record.id}
    filler.unlink()
    with Store.open(cfg.store_url) as store:
        monitor = Monitor(cfg, store, instance="next")
        try:
            wait_for(lambda: store.get(kept[-1].record.id) is not None)
        finally:
            monitor.close()
        assert store.get(kept[-1].record.id) == kept[-1].record
    assert spool_files(spooled.path.parent) == []


@needs_mount
def test_with_no_folder_writable_the_records_are_counted_and_logged_as_lost(
    tmp_path, tmpfs, stub_server, registry, monkeypatch, caplog
):
    point = tmpfs(1024)
    (point / "systemp").mkdir()
    remount(point, "ro")
    monkeypatch.setattr(tempfile, "tempdir", str(point / "systemp"))
    cfg = settings_for(point / "data", point / "logs", stub_server.base_url)
    try:
        with Store.open(cfg.store_url, wait_for_database=True) as store:
            monitor = Monitor(cfg, store, instance="test")
            ask(monitor, registry, cfg)
            assert monitor.close(timeout=2) is None
    finally:
        remount(point, "rw")
    assert monitor.dropped_count == 1 and monitor.unsaved_count() == 0
    (line,) = [r for r in caplog.records if "could not be written and are lost" in r.getMessage()]
    assert line.levelno == logging.ERROR and "no spool folder could be written" in line.getMessage()


# --- (c) two processes ingesting the same spool at once -----------------------------------------

INGEST = """
import os, sys, time
from chatwatch.config import parse
from chatwatch.store.records import Store
from chatwatch.telemetry.spool import Spool
url, data, logs, go = sys.argv[1:5]
cfg = parse({"app": {"data_dir": data, "log_dir": logs}, "store": {"url": url}})
store = Store.open(url)
spool = Spool(cfg, store)
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.001)
done = spool.ingest(store)
print(sum(d.stored for d in done), sum(d.losses for d in done), flush=True)
store.close()
"""


def test_two_processes_ingesting_the_same_records_at_once_store_each_once(tmp_path, store_url, private_tmp):
    cfg = parse(
        {"app": {"data_dir": str(tmp_path / "data"), "log_dir": str(tmp_path / "logs")}, "store": {"url": store_url}}
    )
    records = [make_record(cost_usd=Decimal("0.000000123") * (i + 1)) for i in range(300)]
    t0 = records[0].started_at
    loss = Loss(t0, "host:9", "smollm2", 7, t0, records[-1].started_at, "unsaved backlog full")
    with Store.open(store_url) as store:
        first = Spool(cfg, store).write(records, [loss], instance="host:9", cause="database is locked")
    # The same records in a second file too: what a takeover of a live claim, or a re-ingest
    # after a crash between the insert and the delete, would read.
    copy = first.path.with_name(first.path.name.replace(".jsonl", "0.jsonl"))
    shutil.copy(first.path, copy)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", INGEST, store_url, str(cfg.app.data_dir), str(cfg.app.log_dir), str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    go.touch()
    results = [tuple(map(int, p.communicate(timeout=120)[0].split())) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(stored for stored, _ in results) == 300 and sum(losses for _, losses in results) == 1
    with Store.open(store_url) as store:
        assert store.count() == 300
        assert all(store.get(r.id) == r for r in records)
        assert_rollups_match_raw(store)  # each record folded into the rollups once
        assert read_losses(store) == [loss]
    assert spool_files(cfg.app.data_dir / "spool") == []


# --- (d) a torn last line ----------------------------------------------------------------------


def test_a_torn_last_line_is_skipped_and_reported_and_the_other_lines_are_ingested(
    tmp_path, stub_server, private_tmp, caplog
):
    cfg = settings_for(tmp_path / "data", tmp_path / "logs", stub_server.base_url)
    records = [make_record() for _ in range(3)]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())
    with Store.open(cfg.store_url) as store:
        spool = Spool(cfg, store)
        written = spool.write(records, [], instance="crashed:1", cause="disk full").path
        # A process killed while writing: its file still has the .writing name, and the
        # last line is cut in the middle.
        data = written.read_bytes()
        cut = data[: len(data) - len(data.splitlines()[-1]) // 2 - 1]
        torn = written.with_name(f"{written.name}.writing-{dead_pid}@{host}")
        torn.write_bytes(cut)
        written.unlink()
        # A file another live process (this one) is still writing is left alone.
        live = written.with_name(f"{written.name.replace('.jsonl', 'x.jsonl')}.writing-{os.getpid()}@{host}")
        live.write_bytes(data)
        caplog.set_level(logging.INFO, logger="chatwatch.requests")
        monitor = Monitor(cfg, store, instance="next")
        try:
            wait_for(lambda: store.count() == 2)
        finally:
            monitor.close()
        assert [store.get(r.id) for r in records] == [records[0], records[1], None]
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("ingested 2 records spooled by crashed:1") for m in messages)
    (warning,) = [r for r in caplog.records if "cut-off line" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert spool_files(cfg.app.data_dir / "spool") == [live]


def test_a_claim_whose_process_died_or_that_went_stale_is_taken_over_and_a_live_one_is_not(tmp_path, private_tmp):
    from chatwatch.telemetry.spool import STALE_CLAIM_S

    cfg = settings_for(tmp_path / "data", tmp_path / "logs", "http://127.0.0.1:9/v1")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())
    claims = {
        "dead": f"ingesting-{int(dead.stdout)}@{host}",  # its process is gone
        "stale": "ingesting-1@elsewhere",  # another host's, untouched for too long
        "live": "ingesting-1@elsewhere",  # another host's, being ingested right now
    }
    records = {}
    with Store.open(cfg.store_url) as store:
        spool = Spool(cfg, store)
        for kind, claim in claims.items():
            records[kind] = make_record()
            path = spool.write([records[kind]], [], instance=kind, cause="test").path
            claimed = path.with_name(f"{path.name}.{claim}")
            path.rename(claimed)
            if kind == "stale":
                old = time.time() - STALE_CLAIM_S - 60
                os.utime(claimed, (old, old))
        done = spool.ingest(store)
        assert sorted(d.spooled_by for d in done) == ["dead", "stale"]
        assert store.get(records["dead"].id) == records["dead"] and store.get(records["stale"].id) == records["stale"]
        assert store.get(records["live"].id) is None
    (left,) = spool_files(cfg.app.data_dir / "spool")
    assert left.name.endswith(".ingesting-1@elsewhere")


# --- (e) counted drops become a loss row -----------------------------------------------------------


def move_table(store: Store, old: str, new: str) -> None:
    with store.transaction() as conn:
        conn.exec_driver_sql(f"ALTER TABLE {old} RENAME TO {new}")


def test_spooled_counted_drops_become_a_loss_row_after_ingest(tmp_path, stub_server, registry, private_tmp, caplog):
    cfg = settings_for(tmp_path / "data", tmp_path / "logs", stub_server.base_url, unsaved_max_records=1)
    caplog.set_level(logging.INFO, logger="chatwatch.requests")
    with Store.open(cfg.store_url) as store:
        monitor = Monitor(cfg, store, instance="test")
        move_table(store, "requests", "requests_away")
        replies = [ask(monitor, registry, cfg, f"message {i}") for i in range(3)]
        assert monitor.dropped_count == 2 and monitor.unsaved_count() == 1
        spooled = monitor.close(timeout=2)
        assert (spooled.records, spooled.dropped) == (1, 2)
        assert monitor.unsaved_count() == 0 and monitor.dropped_count == 2  # counted, not lost again
        (line,) = [r for r in caplog.records if r.getMessage().startswith("closing with the store failing")]
        assert "1 kept request records and 2 counted drops spooled to" in line.getMessage()
        assert read_losses(store) == []
        move_table(store, "requests_away", "requests")

        monitor = Monitor(cfg, store, instance="next")
        try:
            wait_for(lambda: bool(read_losses(store)) and store.get(replies[2].record.id) is not None)
        finally:
            monitor.close()
        (loss,) = read_losses(store)
        assert (loss.model, loss.count, loss.instance) == ("hosted", 2, "test")
        assert (loss.first_started, loss.last_started) == (replies[0].record.started_at, replies[1].record.started_at)
        assert "unsaved_max_records = 1" in loss.reason
        assert store.get(replies[2].record.id) == replies[2].record
        assert store.get(replies[0].record.id) is None and store.get(replies[1].record.id) is None
    assert not spooled.path.exists()


# --- the app after a restart ---------------------------------------------------------------------


def test_the_dashboard_shows_the_spooled_records_once_the_app_has_ingested_them(tmp_path, monkeypatch, private_tmp):
    from streamlit.testing.v1 import AppTest

    dashboard = Path(__file__).resolve().parents[1] / "src" / "chatwatch" / "ui" / "views" / "dashboard.py"
    config = tmp_path / "chatwatch.toml"
    config.write_text('[app]\nlanguage = "en"\ndata_dir = "data"\nlog_dir = "logs"\n[dashboard]\nrefresh_seconds = 1\n')
    monkeypatch.setenv("CHATWATCH_CONFIG", str(config))
    cfg = load(config)
    now = datetime.now().astimezone()
    records = [make_record(started_at=now - timedelta(minutes=m)) for m in (3, 2)]
    with Store.open(cfg.store_url) as store:
        spooled = Spool(cfg, store).write(records, [], instance="gone:1", cause="database is locked")
    at = AppTest.from_file(str(dashboard), default_timeout=60).run()  # the app's first page: its runtime starts
    assert not at.exception
    with Store.open(cfg.store_url) as store:
        wait_for(lambda: store.count() == 2)
    assert not spooled.path.exists()
    time.sleep(1.1)  # past the dashboard's cache lifetime (refresh_seconds)
    at.run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Requests"] == "2"


def test_a_spooled_record_keeps_every_field_exactly(tmp_path, private_tmp):
    from chatwatch.telemetry.spool import record_from_json

    cfg = settings_for(tmp_path / "data", tmp_path / "logs", "http://127.0.0.1:9/v1")
    started = datetime(2026, 3, 1, 12, 0, 0, 123456).astimezone()
    record = make_record(
        started_at=started,
        cost_usd=Decimal("0.000000001"),
        saved_usd=Decimal("12.345678901"),
        cache_hit=True,
        price_source="cache",
        request_id="first-attempt",
        attempt=3,
        retry_reason="timeout",
        fallback_from="other",
        mode="compare",
        compare_id="round-1",
        saved_s=0.1 + 0.2,  # a float that is not short in decimal
        prompt_text="añadir ✓ \U0001f600",
        response_text=None,
        error_message="bad byte \udcff kept as is",
        extra={"notices": ["trimmed 2 turns"]},
    )
    with Store.open(cfg.store_url) as store:
        path = Spool(cfg, store).write([record], [], instance="h:1", cause="disk full").path
    (line,) = [json.loads(x)["record"] for x in path.read_text().splitlines()[1:]]
    assert line["cost_usd"] == "0.000000001" and line["saved_usd"] == "12.345678901"
    assert line["started_at"] == started.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert line["saved_s"] == 0.30000000000000004 and line["extra"] == {"notices": ["trimmed 2 turns"]}
    back = record_from_json(line)
    assert back == record and back.extra == record.extra
    assert isinstance(back.cost_usd, Decimal) and back.started_at.utcoffset().total_seconds() == 0
