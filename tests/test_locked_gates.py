"""The attempt chain's own writes (breaker outcomes, rate-limit events, budget reservations)
run on the request's thread: with the SQLite database locked by another process they wait
no longer than the request's own commit ([store] request_lock_wait_s), then the gates let
the request through and the breaker skips its bookkeeping; the reply is never held for the
10 s busy timeout. Real fault: another process holding BEGIN IMMEDIATE."""

from __future__ import annotations

import subprocess
import sys
import time

from chatwatch.config import parse
from chatwatch.models.contract import GenerationSettings, Message
from chatwatch.runtime import Runtime
from tests.fixtures.locks import hold_lock, release

GEN = GenerationSettings(max_tokens=4, temperature=0.0, seed=1)


def test_a_locked_database_holds_the_gates_no_longer_than_a_commit(tmp_path):
    settings = parse(
        {
            "app": {"data_dir": str(tmp_path / "data"), "log_dir": str(tmp_path / "logs"), "instance": "t"},
            "alerts": {"evaluate_every_s": 3600},
            "limits": {"per_session": {"requests_per_minute": 1000}},
            "budgets": [{"name": "all", "period": "day", "limit_usd": 100.0}],
            "models": [{"id": "smollm2", "kind": "llama_cpp", "n_ctx": 1024, "breaker": {"failures": 3}}],
        }
    )
    db_file = settings.app.data_dir / "chatwatch.db"
    with Runtime(settings, role="app") as rt:
        with rt.chat("smollm2", [Message("user", "Hi")], GEN, session_id="s") as reply:
            assert "".join(reply)  # loaded, the store healthy
        holder = hold_lock(db_file)
        try:
            t0 = time.monotonic()
            with rt.chat("smollm2", [Message("user", "Hello")], GEN, session_id="s") as reply:
                text = "".join(reply)
            took = time.monotonic() - t0
            assert text and reply.answered_by == "smollm2"
            assert reply.store_error and "database is locked" in reply.store_error
            # The gates' reservation, the commit, the breaker: each waits at most the bound
            # (the lock is held throughout), never the 10 s busy timeout.
            bound = settings.store.request_lock_wait_s
            assert took < 3 * bound + 0.5, took
        finally:
            release(holder)


def test_ask_with_the_database_locked_throughout_answers_and_exits_within_seconds(tmp_path):
    """Start, reply and exit with another process holding the write lock the whole time: each
    write on the way (migrations check, alert rules, the model-load row, the record) waits
    its short bound, not the 10 s busy timeout; the record is spooled (exit 3). Before,
    every new SQLite connection also waited 10 s on `PRAGMA auto_vacuum` (77 s in all)."""
    conf = tmp_path / "chatwatch.toml"
    conf.write_text(f'[app]\ndata_dir = "{tmp_path / "data"}"\nlog_dir = "{tmp_path / "logs"}"\n')
    ask = [sys.executable, "-m", "chatwatch", "ask", "--config", str(conf), "--max-tokens", "4", "Hi"]
    assert subprocess.run(ask, capture_output=True, timeout=120).returncode == 0  # the store exists
    holder = hold_lock(tmp_path / "data" / "chatwatch.db")
    try:
        t0 = time.monotonic()
        done = subprocess.run(ask, capture_output=True, text=True, timeout=120)
        took = time.monotonic() - t0
    finally:
        release(holder)
    assert done.returncode == 3 and done.stdout.strip(), done
    assert "saved to" in done.stderr and "database is locked" in done.stderr
    assert took < 20, took  # measured 7.2 s (python and model start included)
