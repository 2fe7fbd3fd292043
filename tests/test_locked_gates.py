"""The attempt chain's own writes (breaker outcomes, rate-limit events, budget reservations)
run on the request's thread: with the SQLite database locked by another process for 4 s
they wait no longer than the request's own commit ([store] request_lock_wait_s), then the
gates let the request through and the breaker skips its bookkeeping; the reply is never held
for the 10 s busy timeout. Real fault: another process holding BEGIN IMMEDIATE."""

from __future__ import annotations

import subprocess
import sys
import time

from chatwatch.config import parse
from chatwatch.models.contract import GenerationSettings, Message
from chatwatch.runtime import Runtime

GEN = GenerationSettings(max_tokens=4, temperature=0.0, seed=1)
HOLD_S = 4.0


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
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sqlite3, sys, time\n"
                f"c = sqlite3.connect({str(db_file)!r}, isolation_level=None)\n"
                "c.execute('BEGIN IMMEDIATE')\n"
                "print('locked', flush=True)\n"
                f"time.sleep({HOLD_S})\n"
                "c.execute('ROLLBACK')\n",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout.readline().strip() == "locked"
            t0 = time.monotonic()
            with rt.chat("smollm2", [Message("user", "Hello")], GEN, session_id="s") as reply:
                text = "".join(reply)
            took = time.monotonic() - t0
            assert text and reply.answered_by == "smollm2"
            assert reply.store_error and "database is locked" in reply.store_error
            # The gates' reservation, the commit, the breaker: each waits at most the bound,
            # and together they stay well under the holder's 4 s.
            bound = settings.store.request_lock_wait_s
            assert took < 3 * bound + 0.5 < HOLD_S, took
        finally:
            holder.wait(30)
