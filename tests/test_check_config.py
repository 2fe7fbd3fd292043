"""`chatwatch check-config` says when a valid config cannot be used here (issue #9, found
by trying it as a new user: it said "config ok" for a data_dir that is a file, a log_dir
under /proc, a read-only or full disk, and a PostgreSQL that is down). Real faults: a file,
/proc, a read-only and a full tmpfs (root mounts them), a closed port."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.paths import free_port


def check(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    conf = tmp_path / "chatwatch.toml"
    conf.write_text(body)
    return subprocess.run(
        [sys.executable, "-m", "chatwatch", "check-config", "--config", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def mount(tmp_path):
    points: list[Path] = []

    def make(options: str) -> Path:
        point = tmp_path / f"fs{len(points)}"
        point.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], check=True)
        points.append(point)
        return point

    yield make
    for point in reversed(points):
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_a_usable_config_is_ok(tmp_path):
    done = check(tmp_path, f'[app]\ndata_dir = "{tmp_path / "data"}"\nlog_dir = "{tmp_path / "logs"}"\n')
    assert done.returncode == 0 and done.stdout.startswith("config ok:"), done
    assert not (tmp_path / "data").exists()  # checking creates nothing that stays


def test_a_data_dir_that_is_a_file_and_a_log_dir_under_proc_are_named(tmp_path):
    (tmp_path / "afile").write_text("x")
    done = check(tmp_path, f'[app]\ndata_dir = "{tmp_path / "afile"}"\nlog_dir = "/proc/chatwatch-logs"\n')
    assert done.returncode == 1 and "config ok" not in done.stdout
    assert f"data_dir {tmp_path / 'afile'} is a file, not a folder" in done.stderr
    assert "log_dir /proc/chatwatch-logs cannot be created in /proc" in done.stderr


def test_a_read_only_and_a_full_disk_are_named(tmp_path, mount):
    read_only = mount("size=512k,ro")
    full = mount("size=64k")
    try:
        with open(full / "filler", "wb") as f:
            f.write(b"\0" * 1024 * 1024)
    except OSError:
        pass  # the disk is full now
    done = check(tmp_path, f'[app]\ndata_dir = "{read_only}"\nlog_dir = "{full}"\n')
    assert done.returncode == 1
    assert f"data_dir {read_only} is not writable (Read-only file system)" in done.stderr
    assert f"log_dir {full} is not writable (No space left on device)" in done.stderr


def test_a_postgresql_that_is_down_is_named_without_its_password(tmp_path):
    port = free_port()
    url = f"postgresql+psycopg://chatwatch:s3cret-pw@127.0.0.1:{port}/test"
    done = check(tmp_path, f'[app]\ndata_dir = "{tmp_path / "data"}"\n[store]\nurl = "{url}"\n')
    assert done.returncode == 1
    assert f"the store postgresql+psycopg://chatwatch:***@127.0.0.1:{port}/test cannot be reached" in done.stderr
    assert "s3cret-pw" not in done.stderr + done.stdout
