"""kill -9 durability: two writer processes print each id only after its commit returned;
killed at random points, every printed id must be in the database, the file must pass
PRAGMA integrity_check and the rollups must still equal the raw rows."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

import chatwatch
from chatwatch.store.records import Store
from chatwatch.store.schema import requests
from tests.fixtures.db import assert_rollups_match_raw

ROUNDS = 20
WRITERS = 2
# Deliberately light imports (no pandas/pytest) so each round starts writing quickly.
WRITER = """
import random, sys
from datetime import datetime, timezone
from chatwatch.bench.ingest import synthetic_record
from chatwatch.store.records import Store

store = Store.open(sys.argv[1])
rng = random.Random()
i = 0
while True:
    record = synthetic_record(rng, datetime.now(timezone.utc), i)
    store.write(record)
    sys.stdout.write(record.id + "\\n")  # only after the commit returned
    sys.stdout.flush()
    i += 1
"""


def _env() -> dict[str, str]:
    src = str(Path(chatwatch.__file__).resolve().parents[1])
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, root, os.environ.get("PYTHONPATH", "")])}


def _lines(path: Path) -> list[str]:
    text = path.read_text() if path.exists() else ""
    return [line for line in text.split("\n")[:-1] if line]  # a cut-off last line never counted


@pytest.mark.slow
def test_kill_9_loses_no_committed_request(sqlite_url: str, tmp_path: Path) -> None:
    rng = random.Random(1234)
    env = _env()
    reported: set[str] = set()
    for round_ in range(ROUNDS):
        outs = [tmp_path / f"round{round_}-{w}.out" for w in range(WRITERS)]
        procs = []
        for out in outs:
            with out.open("w") as fh:
                procs.append(subprocess.Popen([sys.executable, "-c", WRITER, sqlite_url], stdout=fh, env=env))
        if rng.random() < 0.2:
            time.sleep(rng.uniform(0.0, 1.0))  # maybe during start-up, migrations or the first write
        else:
            deadline = time.monotonic() + 30
            while not all(_lines(o) for o in outs) and time.monotonic() < deadline:
                if any(p.poll() is not None for p in procs):
                    break
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))
        assert all(p.poll() is None for p in procs), "a writer exited by itself"
        for p in procs:
            p.send_signal(signal.SIGKILL)
        for p in procs:
            p.wait(timeout=30)
        for out in outs:
            reported.update(_lines(out))

    assert len(reported) > ROUNDS  # the rounds did write
    store = Store.open(sqlite_url)
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
            stored = set(conn.execute(sa.select(requests.c.id)).scalars())
        assert reported <= stored
        assert_rollups_match_raw(store)
    finally:
        store.close()
