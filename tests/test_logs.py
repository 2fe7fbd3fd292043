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

from chatwatch.logs import configure as logs
from chatwatch.logs.configure import (
    configure_logging,
    content_for_log,
    get_logger,
    log_context,
    prune_logs,
)
from chatwatch.privacy import register_secret

SRC = Path(__file__).resolve().parents[1] / "src"
ROTATED = re.compile(r"^(?P<stem>.+)\.(?P<day>\d{4}-\d{2}-\d{2})\.(?P<seq>\d{3})\.jsonl\.gz$")
DAY = 86400


@pytest.fixture(autouse=True)
def _no_leftover_setup():
    yield
    setup = logs.current_setup()
    if setup is not None:
        setup.close()


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


def test_configure_once_per_process(tmp_path: Path) -> None:
    first = configure_logging(tmp_path, role="app", instance="h:1")
    assert configure_logging(tmp_path / "other", role="cli", level="DEBUG") is first
    assert len(chatwatch_handlers()) == 1
    assert first.path == tmp_path / "chatwatch-app-h-1.jsonl"
    first.close()
    assert chatwatch_handlers() == []
    assert logging.getLogger("chatwatch").propagate is True
    second = configure_logging(tmp_path, role="app", instance="h:1")
    assert second is not first and len(chatwatch_handlers()) == 1


RELOADER = r"""
import importlib, logging, sys
from chatwatch.logs import configure as logs
first = logs.configure_logging(sys.argv[1], role="app", instance="h:1", console=False)
importlib.reload(logs)  # Streamlit's watcher reloads edited modules...
assert logs.configure_logging(sys.argv[1], role="app", instance="h:1") is first
del sys.modules["chatwatch.logs.configure"]  # ...or drops them and imports them afresh
fresh = importlib.import_module("chatwatch.logs.configure")
assert fresh is not logs and fresh.configure_logging(sys.argv[1], role="app", instance="h:1") is first
assert len(logging.getLogger("chatwatch").handlers) == 1
with fresh.log_context(request_id="r-fresh"):  # reaches the filter installed by the first import
    logging.getLogger("chatwatch.t").warning("after reload")
"""


def test_reloaded_module_reuses_the_setup(tmp_path: Path) -> None:
    # In a child process: reloading here would leave two versions of the module in the suite.
    subprocess.run([sys.executable, "-c", RELOADER, str(tmp_path)], check=True, env=_env(), timeout=60)
    (line,) = read_lines(tmp_path / "chatwatch-app-h-1.jsonl")
    assert line["request_id"] == "r-fresh" and line["message"] == "after reload"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}


def test_console_is_human_readable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    setup = configure_logging(tmp_path, role="app", instance="i")
    with log_context(request_id="r-1"):
        get_logger("t").info("hello %s", "world")
    get_logger("t").debug("hidden at INFO")
    setup.flush()
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} INFO +chatwatch\.t \[r-1\] hello world", err[0])


def test_json_lines_carry_each_threads_context(tmp_path: Path) -> None:
    setup = configure_logging(tmp_path, role="app", instance="i", console=False)
    log = get_logger("chatwatch.sessions")
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
    log = get_logger("t")
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
from chatwatch.logs.configure import configure_logging, get_logger, log_context

log_dir, instance, total, per_day, max_mb = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
day = [0]
setup = configure_logging(log_dir, role="worker", instance=instance, max_mb=max_mb, log_days=14,
                          console=False, today=lambda: date(2024, 1, 1) + timedelta(days=day[0]))
print(setup.path.name, flush=True)
sys.stdin.readline()  # start gate: every writer begins together
log = get_logger("writer")
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
    get_logger("t").info("still here")
    setup.flush()
    os.utime(setup.path, (time.time() - 30 * DAY,) * 2)
    assert prune_logs(tmp_path, 14) == []

    # A rotation prunes too.
    late = make("chatwatch-app-h-9.2024-01-02.001.jsonl.gz", 15)
    today[0] = date(2031, 5, 2)
    get_logger("t").info("next day")
    setup.flush()
    assert not late.exists()
    assert all(p.exists() for p in kept)


def test_registered_secret_never_reaches_the_logs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = "sk-test-" + os.urandom(12).hex()
    other = "xq-" + os.urandom(10).hex()  # no known shape: only registration protects it
    register_secret(key)
    register_secret(other)
    setup = configure_logging(tmp_path, role="app", instance="i")
    log = get_logger("chatwatch.models.openai")
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


def test_prompt_text_only_with_capture_content(tmp_path: Path) -> None:
    prompt = "my mail is ana@example.org and my card 4111 1111 1111 1111"
    assert content_for_log(prompt, False) is None
    assert content_for_log(prompt) is None  # not configured: off

    setup = configure_logging(tmp_path / "off", role="app", instance="i", console=False)
    get_logger("t").info("prompt received", extra={"prompt": content_for_log(prompt), "chars": len(prompt)})
    setup.flush()
    line = read_lines(setup.path)[-1]
    assert line["prompt"] is None and line["chars"] == len(prompt)
    assert "ana@example.org" not in setup.path.read_text()
    setup.close()

    setup = configure_logging(tmp_path / "on", role="app", instance="i", console=False, capture_content=True)
    get_logger("t").info("prompt received", extra={"prompt": content_for_log(prompt)})
    setup.flush()
    assert read_lines(setup.path)[-1]["prompt"] == "my mail is [email] and my card [number]"
    assert content_for_log("y" * 50, True, max_chars=10) == "y" * 10 + "… [+40 chars]"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_configures_its_own_file(tmp_path: Path) -> None:
    parent = configure_logging(tmp_path, role="app", instance="parent", console=False)
    pid = os.fork()
    if pid == 0:  # child: must not inherit the parent's (threadless) setup
        code = 1
        try:
            child = configure_logging(tmp_path, role="app", instance="child", console=False)
            if child is not parent and len(chatwatch_handlers()) == 1:
                get_logger("t").info("from child")
                child.close()
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    get_logger("t").info("from parent")
    parent.flush()
    assert [ln["message"] for ln in read_lines(tmp_path / "chatwatch-app-child.jsonl")] == ["from child"]
    assert [ln["message"] for ln in read_lines(parent.path)] == ["from parent"]
