"""Logging against real files, real threads and real processes."""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from chatwatch import config
from chatwatch.logs.configure import (
    close_logging,
    configure_logging,
    current_setup,
    log_context,
    prune_logs,
)
from chatwatch.models.contract import GenerationSettings, Message
from chatwatch.privacy import register_secret
from chatwatch.runtime import Runtime

SRC = Path(__file__).resolve().parents[1] / "src"
ROTATED = re.compile(r"^(?P<stem>.+)\.(?P<day>\d{4}-\d{2}-\d{2})\.(?P<seq>\d{3})\.jsonl\.gz$")
DAY = 86400


@pytest.fixture(autouse=True)
def _no_leftover_setup():
    yield
    close_logging()


def strict_json(line: str) -> dict:
    def no_constants(name: str) -> None:
        raise ValueError(f"non-JSON constant {name}")

    return json.loads(line, parse_constant=no_constants)


def read_lines(path: Path) -> list[dict]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [strict_json(line) for line in f]


def chatwatch_handlers() -> list[logging.Handler]:
    # pytest's own capture handlers may sit on the logger too; they are not ours to count.
    return [h for h in logging.getLogger("chatwatch").handlers if not type(h).__module__.startswith("_pytest")]


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "chatwatch-log-writer"]


def test_reconfigure_replaces_the_previous_setup(tmp_path: Path) -> None:
    first = configure_logging(tmp_path, role="app", instance="h:1", console=False)
    assert first.path == tmp_path / "chatwatch-app-h-1.jsonl"
    logging.getLogger("chatwatch.t").info("to the first")
    logging.getLogger("chatwatch.t").debug("below the first's level")

    second = configure_logging(tmp_path / "other", role="cli", instance="h:1", level="DEBUG", console=False)
    assert first.closed and current_setup() is second
    assert len(chatwatch_handlers()) == 1 and len(writer_threads()) == 1
    logging.getLogger("chatwatch.t").debug("to the second")
    second.flush()
    assert [ln["message"] for ln in read_lines(first.path)] == ["to the first"]  # written before it closed
    assert [ln["message"] for ln in read_lines(second.path)] == ["to the second"]

    # The same role and folder again: the file is taken over, not duplicated as `-2`.
    third = configure_logging(tmp_path / "other", role="cli", instance="h:1", console=False)
    assert third.path == second.path and second.closed
    logging.getLogger("chatwatch.t").info("to the third")
    first.close()  # a replaced setup's close (its runtime closing late) changes nothing
    assert current_setup() is third and len(chatwatch_handlers()) == 1
    third.close()
    assert [ln["message"] for ln in read_lines(third.path)] == ["to the second", "to the third"]
    assert chatwatch_handlers() == [] and writer_threads() == []
    assert logging.getLogger("chatwatch").propagate is True
    third.close()  # idempotent


RELOADER = r"""
import importlib, logging, sys
from chatwatch.logs import configure as logs
from chatwatch.logs.configure import log_context as first_module_context
first = logs.configure_logging(sys.argv[1], role="app", instance="h:1", console=False)
logging.getLogger("chatwatch.t").warning("before reload")
importlib.reload(logs)  # Streamlit's watcher reloads edited modules...
second = logs.configure_logging(sys.argv[1], role="app", instance="h:1", console=False)
assert first.closed and second.path == first.path
del sys.modules["chatwatch.logs.configure"]  # ...or drops them and imports them afresh
fresh = importlib.import_module("chatwatch.logs.configure")
third = fresh.configure_logging(sys.argv[1], role="app", instance="h:1", console=False)
assert fresh is not logs and second.closed and fresh.current_setup() is third
assert len(logging.getLogger("chatwatch").handlers) == 1
with first_module_context(request_id="r-fresh"):  # the context of the first import reaches the new filter
    logging.getLogger("chatwatch.t").warning("after reload")
"""


def test_reloaded_module_replaces_the_setup(tmp_path: Path) -> None:
    # In a child process: reloading here would leave two versions of the module in the suite.
    subprocess.run([sys.executable, "-c", RELOADER, str(tmp_path)], check=True, env=_env(), timeout=60)
    lines = read_lines(tmp_path / "chatwatch-app-h-1.jsonl")
    assert [ln["message"] for ln in lines] == ["before reload", "after reload"]
    assert lines[1]["request_id"] == "r-fresh"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}


def test_console_is_human_readable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup = configure_logging(tmp_path, role="app", instance="i")
    with log_context(request_id="r-1"):
        logging.getLogger("chatwatch.t").info("hello %s", "world")
    logging.getLogger("chatwatch.t").debug("hidden at INFO")
    setup.flush()
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO +chatwatch\.t \[r-1\] hello world", err[0])


def test_json_lines_carry_each_threads_context(tmp_path: Path) -> None:
    setup = configure_logging(tmp_path, role="app", instance="i", console=False)
    log = logging.getLogger("chatwatch.sessions")
    turn = threading.Barrier(2)
    per_thread = 200

    def session(name: str) -> None:
        with log_context(session_id=f"sess-{name}"):
            for i in range(per_thread):
                turn.wait()  # strictly interleave the two sessions' lines
                with log_context(request_id=f"{name}-{i}", model=f"model-{name}"):
                    log.info("turn %d", i, extra={"who": name, "i": i})

    threads = [threading.Thread(target=session, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with log_context(session_id="outer"):
        log.info(
            "extras",
            extra={
                "when": datetime(2024, 1, 2, tzinfo=UTC),
                "cost": Decimal("0.5"),
                "nan": float("nan"),
                "obj": object(),
                "level": "shadowed",
                "request_id": "explicit",
            },
        )
    assert setup.flush()

    lines = read_lines(setup.path)
    turns = [ln for ln in lines if ln["message"].startswith("turn")]
    assert len(turns) == 2 * per_thread
    for ln in turns:
        who = ln["who"]
        assert ln["session_id"] == f"sess-{who}"
        assert ln["request_id"] == f"{who}-{ln['i']}"
        assert ln["model"] == f"model-{who}"
        assert ln["message"] == f"turn {ln['i']}"
        assert datetime.fromisoformat(ln["timestamp"]).utcoffset() == timedelta(0)
        assert ln["level"] == "INFO" and ln["logger"] == "chatwatch.sessions"
    assert {ln["who"] for ln in turns[:10]} == {"a", "b"}  # really interleaved

    extras = lines[-1]
    assert extras["session_id"] == "outer" and extras["request_id"] == "explicit" and extras["model"] is None
    assert extras["when"].startswith("2024-01-02") and extras["cost"] == "0.5" and extras["nan"] == "nan"
    assert extras["level"] == "INFO" and extras["extra_level"] == "shadowed"


def test_day_is_read_at_write_time(tmp_path: Path) -> None:
    stale = tmp_path / "chatwatch-app-i.jsonl"  # left by an earlier run of this instance, two days ago
    stale.write_text('{"message": "old"}\n')
    two_days_ago = time.time() - 2 * DAY
    os.utime(stale, (two_days_ago, two_days_ago))
    stale_day = datetime.fromtimestamp(two_days_ago, UTC).date()

    today = [date(2031, 5, 1)]
    setup = configure_logging(tmp_path, role="app", instance="i", console=False, today=lambda: today[0])
    log = logging.getLogger("chatwatch.t")
    for i in range(3):
        log.info("day one %d", i)
    setup.flush()
    today[0] = date(2031, 5, 2)
    time.sleep(0.05)
    assert not list(tmp_path.glob("*2031-05-01*"))  # nothing rotates until a line is written
    log.info("day two")
    setup.flush()

    assert [ln["message"] for ln in read_lines(tmp_path / f"chatwatch-app-i.{stale_day}.001.jsonl.gz")] == ["old"]
    rotated = tmp_path / "chatwatch-app-i.2031-05-01.001.jsonl.gz"
    assert [ln["message"] for ln in read_lines(rotated)] == [f"day one {i}" for i in range(3)]
    assert [ln["message"] for ln in read_lines(setup.path)] == ["day two"]


WRITER = r"""
import os, sys
from datetime import date, timedelta
import logging
from chatwatch.logs.configure import configure_logging, log_context

log_dir, instance, total, per_day, max_mb = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
day = [0]
setup = configure_logging(log_dir, role="worker", instance=instance, max_mb=max_mb, log_days=14,
                          console=False, today=lambda: date(2024, 1, 1) + timedelta(days=day[0]))
print(setup.path.name, flush=True)
sys.stdin.readline()  # start gate: every writer begins together
log = logging.getLogger("chatwatch.writer")
writer = os.getpid()
with log_context(session_id=f"s-{writer}"):
    for i in range(total):
        if i and i % per_day == 0:
            setup.flush()  # so each day's lines are written before the clock moves on
            day[0] += 1
        log.info("line %d", i, extra={"writer": writer, "seq": i, "day": day[0], "pad": "x" * 120})
# no close(): the atexit hook must drain the queue
"""


def test_concurrent_processes_rotate_without_loss(tmp_path: Path) -> None:
    gzip_bin = shutil.which("gzip")
    assert gzip_bin, "the gzip program is needed to verify archives"
    log_dir = tmp_path / "logs"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    total, per_day, max_mb = 2000, 700, 0.02
    max_bytes = int(max_mb * 1024 * 1024)
    # Two instances, plus a third process mistakenly given the first one's instance.
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(log_dir), inst, str(total), str(per_day), str(max_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for inst in ("p1", "p2", "p1")
    ]
    names = [p.stdout.readline().strip() for p in procs]
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        assert p.wait(timeout=60) == 0
    assert sorted(names) == ["chatwatch-worker-p1-2.jsonl", "chatwatch-worker-p1.jsonl", "chatwatch-worker-p2.jsonl"]

    files = sorted(log_dir.iterdir())
    archives = [f for f in files if f.name.endswith(".gz")]
    assert {f.name for f in files} - {f.name for f in archives} == set(names)  # no .part, no uncompressed leftovers
    subprocess.run([gzip_bin, "-t", *map(str, archives)], check=True)

    seqs: dict[int, list[int]] = defaultdict(list)
    days_seen: dict[str, set[str]] = defaultdict(set)
    for f in archives + [log_dir / n for n in names]:
        lines = read_lines(f)
        assert lines, f"{f.name} is empty"
        assert len({ln["writer"] for ln in lines}) == 1, f"{f.name} mixes processes"
        raw_size = len(gzip.decompress(f.read_bytes())) if f.name.endswith(".gz") else f.stat().st_size
        assert raw_size <= max_bytes
        m = ROTATED.match(f.name)
        if m:
            file_day = (date.fromisoformat(m["day"]) - date(2024, 1, 1)).days
            assert all(ln["day"] == file_day for ln in lines)
            days_seen[m["stem"]].add(m["day"])
        seqs[lines[0]["writer"]].extend(ln["seq"] for ln in lines)
    assert len(seqs) == 3
    for writer, got in seqs.items():
        assert sorted(got) == list(range(total)), f"process {writer} lost or duplicated lines"
    for stem in ("chatwatch-worker-p1", "chatwatch-worker-p1-2", "chatwatch-worker-p2"):
        assert days_seen[stem] == {"2024-01-01", "2024-01-02", "2024-01-03"}


def test_old_files_are_pruned(tmp_path: Path) -> None:
    def make(name: str, age_days: float) -> Path:
        path = tmp_path / name
        path.write_bytes(gzip.compress(b"{}\n") if name.endswith(".gz") else b"{}\n")
        t = time.time() - age_days * DAY
        os.utime(path, (t, t))
        return path

    old = [
        make("chatwatch-app-h-9.2024-01-01.001.jsonl.gz", 20),
        make("chatwatch-cli-h-7.jsonl", 15),  # a finished process's last file
        make("chatwatch-app-h-9.2024-01-01.002.jsonl.gz.1234.part", 20),
    ]
    kept = [
        make("chatwatch-app-h-9.2024-01-10.001.jsonl.gz", 3),
        make("notes-chatwatch.txt", 40),
        make("chatwatch.toml", 40),
    ]

    assert sorted(prune_logs(tmp_path, 14, dry_run=True)) == sorted(old)
    assert all(p.exists() for p in old)

    today = [date(2031, 5, 1)]
    setup = configure_logging(tmp_path, role="app", instance="i", log_days=14, console=False, today=lambda: today[0])
    assert not any(p.exists() for p in old)  # pruned at start-up
    assert all(p.exists() for p in kept)

    # Our own file, however quiet, is never pruned while we hold it.
    logging.getLogger("chatwatch.t").info("still here")
    setup.flush()
    os.utime(setup.path, (time.time() - 30 * DAY,) * 2)
    assert prune_logs(tmp_path, 14) == []

    # A rotation prunes too.
    late = make("chatwatch-app-h-9.2024-01-02.001.jsonl.gz", 15)
    today[0] = date(2031, 5, 2)
    logging.getLogger("chatwatch.t").info("next day")
    setup.flush()
    assert not late.exists()
    assert all(p.exists() for p in kept)


def test_registered_secret_never_reaches_the_logs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = "sk-test-" + os.urandom(12).hex()
    other = "xq-" + os.urandom(10).hex()  # no known shape: only registration protects it
    register_secret(key)
    register_secret(other)
    setup = configure_logging(tmp_path, role="app", instance="i")
    log = logging.getLogger("chatwatch.models.openai")
    log.info("using key %s", key)
    log.info("%(k)s and %(o)s", {"k": key, "o": other})
    log.warning("headers", extra={"headers": {"Authorization": f"Bearer {other}"}})
    try:
        raise PermissionError(f"401: invalid api key {other}")
    except PermissionError:
        log.exception("request failed")
    setup.flush()
    text = setup.path.read_text(encoding="utf-8") + capsys.readouterr().err
    assert key not in text and other not in text
    assert text.count("[secret]") >= 5
    assert all(strict_json(line) for line in setup.path.read_text().splitlines())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_configures_its_own_file(tmp_path: Path) -> None:
    parent = configure_logging(tmp_path, role="app", instance="parent", console=False)
    pid = os.fork()
    if pid == 0:  # child: must not inherit the parent's (threadless) setup
        code = 1
        try:
            child = configure_logging(tmp_path, role="app", instance="child", console=False)
            if child is not parent and len(chatwatch_handlers()) == 1:
                logging.getLogger("chatwatch.t").info("from child")
                child.close()
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    logging.getLogger("chatwatch.t").info("from parent")
    parent.flush()
    assert [ln["message"] for ln in read_lines(tmp_path / "chatwatch-app-child.jsonl")] == ["from child"]
    assert [ln["message"] for ln in read_lines(parent.path)] == ["from parent"]


def slow_disk(setup, seconds: float) -> None:
    """Make each write of the file handler take `seconds` (a disk that stalls)."""
    write = setup.file_handler.emit

    def stalled(record: logging.LogRecord) -> None:
        time.sleep(seconds)
        write(record)

    setup.file_handler.emit = stalled


def test_a_slow_disk_does_not_block_the_request_thread(tmp_path: Path) -> None:
    setup = configure_logging(tmp_path, role="app", instance="i", console=False)
    slow_disk(setup, 0.05)
    log = logging.getLogger("chatwatch.t")
    took = []
    for i in range(20):  # the writer needs 20 x 50 ms = 1 s for these
        t0 = time.perf_counter()
        log.info("line %d", i)
        took.append(time.perf_counter() - t0)
    assert sum(took) < 0.25, f"logging 20 lines took {sum(took):.3f} s on the request thread"
    assert len(setup.path.read_text().splitlines()) < 20  # the writer really was behind
    assert setup.flush(timeout=10)
    assert [ln["message"] for ln in read_lines(setup.path)] == [f"line {i}" for i in range(20)]


def test_a_full_queue_drops_lines_and_says_how_many(tmp_path: Path) -> None:
    setup = configure_logging(tmp_path, role="app", instance="i", console=False, queue_size=5)
    slow_disk(setup, 0.02)
    log = logging.getLogger("chatwatch.t")
    for i in range(60):
        log.info("line %d", i)
    assert setup.flush(timeout=10)
    lines = read_lines(setup.path)
    written = [ln for ln in lines if ln["message"].startswith("line ")]
    notes = [ln for ln in lines if "log lines dropped" in ln["message"]]
    assert notes and all(ln["level"] == "WARNING" for ln in notes)
    assert len(written) + sum(ln["dropped"] for ln in notes) == 60
    assert setup.dropped == 60 - len(written)
    seqs = [int(ln["message"].split()[1]) for ln in written]
    assert seqs == sorted(seqs)  # dropped, never reordered


def test_secrets_are_scrubbed_in_the_writer_thread(tmp_path: Path) -> None:
    setup = configure_logging(tmp_path, role="app", instance="i", console=False)
    slow_disk(setup, 0.2)
    log = logging.getLogger("chatwatch.t")
    log.info("first")  # the writer is now stuck on this one for 0.2 s
    key = "zz-" + os.urandom(10).hex()
    log.info("late key %s", key)  # queued unscrubbed: the key is not known yet...
    register_secret(key)  # ...and is registered before the writer reaches the line
    assert setup.flush(timeout=10)
    text = setup.path.read_text()
    assert key not in text and "late key [secret]" in text


def test_unwritable_log_dir_is_reported_and_the_chat_goes_on(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the log folder should be\n")
    setup = configure_logging(blocker / "logs", role="app", instance="i", console=False)
    err = capfd.readouterr().err
    assert f"cannot write log files in {blocker / 'logs'}" in err and "Traceback" not in err
    assert setup.path is None and setup.error
    logging.getLogger("chatwatch.t").warning("nowhere to go")
    assert setup.flush()
    setup.close()

    raw = {
        "app": {"data_dir": str(tmp_path / "data"), "log_dir": str(blocker / "logs")},
        "models": [{"id": "smollm2", "kind": "llama_cpp", "n_ctx": 1024}],
    }
    with Runtime(config.parse(raw), role="cli") as rt:
        with rt.chat(
            "smollm2", [Message("user", "Say hi.")], GenerationSettings(max_tokens=4, seed=1), session_id="t"
        ) as reply:
            text = "".join(reply)
        assert reply.record is not None and reply.record.status == "ok" and text
    err = capfd.readouterr().err
    assert err.count("cannot write log files") == 1 and "Traceback" not in err


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_is_one_clear_line_not_a_traceback_per_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "chatwatch-app-i.jsonl").symlink_to("/dev/full")  # every write: ENOSPC
    setup = configure_logging(tmp_path, role="app", instance="i", console=False)
    for i in range(5):
        logging.getLogger("chatwatch.t").info("line %d", i)
    assert setup.flush()
    setup.close()  # closing a file that cannot be flushed still closes
    err = capfd.readouterr().err
    assert err.count("No space left on device") == 1 and "Traceback" not in err, err
    assert writer_threads() == []
