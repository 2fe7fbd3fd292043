"""Broken storage, for real (issue #9, item 6): the chat keeps answering while the store
cannot take records, says why, keeps the records in its bounded buffer, writes them when the
store is back and counts any it had to drop.

Every fault is the real thing, not a mock:
- another PROCESS holds SQLite's write lock for seconds (BEGIN IMMEDIATE in a subprocess);
- the data folder unwritable at start-up: a read-only tmpfs (as root, file permissions would
  not stop the writes; and Linux refuses to remount a filesystem read-only while the store
  holds its files open for writing, so "unwritable while running" is the full disk below);
- a full disk: a small tmpfs filled to the last byte;
- PostgreSQL stopped and started again: a cluster of our own (initdb + pg_ctl from Debian's
  postgresql package, on a free port), so the shared server of the other tests stays up.
Replies come from the real SmolLM2 in-process (a handful of tokens each).
Mounting needs root (CAP_SYS_ADMIN), as on this project's machines and CI; elsewhere those
tests are skipped with that reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chatwatch.config import parse
from chatwatch.models.contract import GenerationSettings, Message
from chatwatch.runtime import Runtime
from chatwatch.store.losses import read_losses
from chatwatch.store.records import Store
from tests.fixtures.paths import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
GEN = GenerationSettings(max_tokens=4, temperature=0.0, seed=1)


def settings_for(data_dir: Path, log_dir: Path, store_url: str | None = None, **store):
    if store_url:
        store["url"] = store_url
    return parse(
        {
            "app": {"data_dir": str(data_dir), "log_dir": str(log_dir), "language": "en", "instance": "test"},
            "store": store,
            "alerts": {"evaluate_every_s": 3600},
        }
    )


def ask(rt: Runtime, text: str = "Hi"):
    reply = rt.chat(rt.settings.default_model.id, [Message("user", text)], GEN, session_id="broken-storage")
    for _ in reply:
        pass
    return reply


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the timeout")
        time.sleep(0.05)


def stored_ids(url: str) -> set[str]:
    with Store.open(url) as store, store.engine.connect() as conn:
        return set(conn.exec_driver_sql("SELECT id FROM requests").scalars())


def _can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


needs_mount = pytest.mark.skipif(not _can_mount(), reason="mounting a tmpfs needs root (CAP_SYS_ADMIN)")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """mount(size_kb) -> a fresh tmpfs of that size; unmounted at the end."""
    mounted: list[Path] = []

    def mount(size_kb: int) -> Path:
        point = tmp_path / f"fs{len(mounted)}"
        point.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(point)], check=True)
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)


def remount(point: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(point)], check=True)


# --- the database locked by another process ------------------------------------------------


def test_a_database_locked_by_another_process_for_seconds_never_holds_up_a_reply(tmp_path):
    cfg = settings_for(tmp_path / "data", tmp_path / "logs")
    db_file = cfg.app.data_dir / "chatwatch.db"
    with Runtime(cfg, role="app") as rt:
        first = ask(rt)  # loads the model; the store is healthy
        assert first.store_error is None
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sqlite3, sys, time\n"
                f"c = sqlite3.connect({str(db_file)!r}, isolation_level=None)\n"
                "c.execute('BEGIN IMMEDIATE')\n"
                "print('locked', flush=True)\n"
                "time.sleep(float(sys.argv[1]))\n"
                "c.execute('ROLLBACK')\n",
                "4",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout.readline().strip() == "locked"
            held, kept = [], []
            for i in range(2):
                t0 = time.monotonic()
                reply = ask(rt, f"Hello {i}")
                held.append(time.monotonic() - t0)
                kept.append(reply)
                assert reply.text  # the user got the answer
                assert reply.store_error and "database is locked" in reply.store_error
            health = rt.monitor.health()
            assert health.degraded and health.unsaved == 2 and "database is locked" in health.reason
            # A reply waits at most [store] request_lock_wait_s (1 s) for the store, never the
            # 10 s busy timeout of background writes: generation itself is well under a second.
            assert max(held) < cfg.store.request_lock_wait_s + 1.5, held
        finally:
            holder.wait(30)
        wait_for(lambda: rt.monitor.unsaved_count() == 0)
        assert not rt.monitor.health().degraded
    assert stored_ids(cfg.store_url) == {first.record.id, *(r.record.id for r in kept)}


# --- an unwritable folder --------------------------------------------------------------------


@needs_mount
def test_the_app_starts_and_answers_with_an_unwritable_data_folder_and_saves_once_it_is_writable(tmp_path, tmpfs):
    point = tmpfs(64 * 1024)
    remount(point, "ro")  # no database yet, and none can be created
    cfg = settings_for(point / "data", tmp_path / "logs")
    try:
        rt = Runtime(cfg, role="app")
    except BaseException:
        remount(point, "rw")
        raise
    with rt:
        assert rt.store.unavailable and "Read-only file system" in rt.store.unavailable
        reply = ask(rt)
        assert reply.text and reply.store_error
        assert rt.monitor.health().degraded
        remount(point, "rw")
        wait_for(lambda: rt.monitor.unsaved_count() == 0)
        assert rt.store.unavailable is None
        assert ask(rt, "Again").store_error is None
    assert len(stored_ids(cfg.store_url)) == 2


# --- a full disk ------------------------------------------------------------------------------


def _fill(point: Path) -> Path:
    """Write zeros until the filesystem is full (unbuffered, down to 512-byte writes);
    returns the filler file."""
    filler = point / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 65536, 4096, 512):
            block = b"\0" * size
            try:
                while True:
                    os.write(fd, block)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


@needs_mount
def test_a_full_disk_keeps_the_records_and_writes_them_when_space_is_back(tmp_path, tmpfs):
    point = tmpfs(8 * 1024)
    cfg = settings_for(point / "data", tmp_path / "logs")
    with Runtime(cfg, role="app") as rt:
        ok = ask(rt)
        assert ok.store_error is None
        filler = _fill(point)
        kept = []
        for i in range(40):  # until a commit finds no room (SQLite pages are reused at first)
            reply = ask(rt, f"Full {i}")
            assert reply.text
            kept.append(reply)
            if reply.store_error:
                break
        assert kept[-1].store_error and "full" in kept[-1].store_error.lower(), kept[-1].store_error
        assert rt.monitor.health().degraded
        filler.unlink()
        wait_for(lambda: rt.monitor.unsaved_count() == 0)
        assert not rt.monitor.health().degraded
        expected = {ok.record.id, *(r.record.id for r in kept)}
    assert stored_ids(cfg.store_url) == expected


# --- PostgreSQL stopped and started again ---------------------------------------------------------


class PgCluster:
    """A PostgreSQL cluster of this test's own (Debian's binaries), so stopping it leaves the
    shared server of the other tests alone. initdb refuses to run as root: it runs as the
    `postgres` user, and the data folder is theirs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "pgdata"
        self.port = free_port()
        self.log = root / "pg.log"
        root.mkdir(parents=True, exist_ok=True)
        shutil.chown(root, "postgres", "postgres")
        self._as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8"])

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, argv: list[str]) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(prefix + argv, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self._as_postgres(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start"]
        )

    def stop(self) -> None:
        self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])


@pytest.fixture
def pg_cluster(tmp_path: Path) -> Iterator[PgCluster]:
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL's server binaries are not installed")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("runuser is needed to run initdb as the postgres user")
    root = Path("/tmp") / f"chatwatch-pg-{os.getpid()}-{free_port()}"  # short: a socket path fits
    cluster = PgCluster(root)
    cluster.start()
    try:
        yield cluster
    finally:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(cluster.data),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)


def test_postgresql_stopped_and_started_again_loses_nothing_and_counts_the_drops(tmp_path, pg_cluster):
    cfg = settings_for(tmp_path / "data", tmp_path / "logs", pg_cluster.url, unsaved_max_records=3)
    with Runtime(cfg, role="app") as rt:
        before = ask(rt)
        assert before.store_error is None
        pg_cluster.stop()
        during = []
        for i in range(5):
            t0 = time.monotonic()
            reply = ask(rt, f"Down {i}")
            assert time.monotonic() - t0 < 8  # refused connections fail fast
            assert reply.text and reply.store_error
            during.append(reply)
        health = rt.monitor.health()
        assert health.degraded and health.unsaved == 3 and health.lost == 2
        assert "connection" in health.reason.lower()
        pg_cluster.start()
        wait_for(lambda: rt.monitor.unsaved_count() == 0 and not rt.monitor.health().degraded, 60)
        after = ask(rt, "Back")
        assert after.store_error is None
    ids = stored_ids(cfg.store_url)
    # The oldest two kept records were dropped (bound 3); the rest, and the loss, are stored.
    assert ids == {before.record.id, *(r.record.id for r in during[2:]), after.record.id}
    with Store.open(cfg.store_url) as store:
        (loss,) = read_losses(store)
        assert loss.count == 2 and loss.model == cfg.default_model.id
        assert loss.first_started == during[0].record.started_at and loss.last_started == during[1].record.started_at


# --- what the pages say ------------------------------------------------------------------------


def test_the_dashboard_says_monitoring_is_degraded_while_postgresql_is_down(tmp_path, pg_cluster, monkeypatch):
    from streamlit.testing.v1 import AppTest

    dashboard = Path(__file__).resolve().parents[1] / "src" / "chatwatch" / "ui" / "views" / "dashboard.py"
    config = tmp_path / "chatwatch.toml"
    config.write_text(
        f'[app]\nlanguage = "en"\ndata_dir = "data"\nlog_dir = "logs"\n[store]\nurl = "{pg_cluster.url}"\n'
        "[dashboard]\nrefresh_seconds = 1\n"
    )
    monkeypatch.setenv("CHATWATCH_CONFIG", str(config))

    def degraded(at: AppTest) -> list[str]:
        return [w.value for w in at.warning if w.value.startswith("Monitoring degraded")]

    at = AppTest.from_file(str(dashboard), default_timeout=60).run()
    assert not at.exception and degraded(at) == []
    pg_cluster.stop()
    time.sleep(1.1)  # past the dashboard's cache lifetime (refresh_seconds)
    at.run()
    assert not at.exception
    (banner,) = degraded(at)
    assert banner.startswith("Monitoring degraded: the store cannot be read (") and "connect" in banner.lower()
    pg_cluster.start()
    time.sleep(1.1)
    at.run()
    assert not at.exception and degraded(at) == []
