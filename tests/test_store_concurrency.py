"""Several processes writing to one store at once: nothing lost, nothing double-counted,
migrations applied once although every process opens the fresh database together."""

from __future__ import annotations

import multiprocessing as mp
from datetime import timedelta

import pytest
import sqlalchemy as sa

from chatwatch.store import migrations
from chatwatch.store.records import Store
from chatwatch.store.schema import requests, schema_migrations
from tests.fixtures.db import BASE_TIME, assert_rollups_match_raw, make_record

PROCESSES = 4


def _writer(url: str, k: int, n: int, go) -> None:
    """Runs in a spawned process: waits for the start signal, then writes n records."""
    go.wait()
    store = Store.open(url)
    for i in range(n):
        # Same timestamps in every process: all of them fight over the same rollup rows.
        store.write(
            make_record(session_id=f"proc-{k}", model=f"m{i % 3}", started_at=BASE_TIME + timedelta(seconds=i // 10))
        )
    store.close()


@pytest.mark.slow
@pytest.mark.parametrize("backend,per_process", [("sqlite", 2500), ("postgresql", 250)])
def test_processes_write_concurrently(request: pytest.FixtureRequest, backend: str, per_process: int) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(url, k, per_process, go)) for k in range(PROCESSES)]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * PROCESSES

    store = Store.open(url)
    try:
        assert store.migrations_applied == []
        with store.engine.connect() as conn:
            versions = conn.execute(sa.select(schema_migrations.c.version)).scalars().all()
            per_session = dict(
                conn.execute(sa.select(requests.c.session_id, sa.func.count()).group_by(requests.c.session_id)).all()
            )
            if backend == "sqlite":
                assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        assert sorted(versions) == [m.VERSION for m in migrations.discover()]
        assert store.count() == PROCESSES * per_process
        assert per_session == {f"proc-{k}": per_process for k in range(PROCESSES)}
        assert_rollups_match_raw(store)
    finally:
        store.close()
