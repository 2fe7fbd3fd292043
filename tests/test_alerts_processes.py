"""Several processes sharing one store notify each firing once: real subprocesses on one
SQLite file and on one PostgreSQL schema race to evaluate the same rule; the claim in the
database lets exactly one of them notify the firing and one the resolution."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chatwatch import config
from chatwatch.alerts import store as alert_store
from chatwatch.alerts.service import AlertService
from chatwatch.store.records import Store, to_us
from tests.fixtures.db import make_record

ROOT = Path(__file__).resolve().parents[1]
RULE = {
    "name": "model down",
    "kind": "consecutive_failures",
    "threshold": 2,
    "model": "smollm2",
    "severity": "critical",
    "window_minutes": 60,
}
PROCESSES = 3
ROUNDS = 15


def _settings(webhook_url: str) -> config.Settings:
    return config.parse({"app": {"language": "en"}, "alerts": {"notify": [webhook_url], "rules": [RULE]}})


def worker(url: str, webhook_url: str, folder: str, n: int) -> None:
    """Run in a subprocess: evaluate ROUNDS times as soon as the parent says go, twice
    (phase 1: the rule should fire; phase 2: it should resolve)."""
    from chatwatch.alerts.notify import DeliveryPolicy

    sync = Path(folder)
    store = Store.open(url)
    svc = AlertService(
        _settings(webhook_url), store.engine, instance=f"proc-{n}", policy=DeliveryPolicy(timeout_s=5, attempts=1)
    )
    svc.seed()  # all processes seed at once too
    claimed: dict[str, list[str]] = {}
    for phase in ("1", "2"):
        (sync / f"ready-{phase}-{n}").touch()
        while not (sync / f"go-{phase}").exists():
            time.sleep(0.0005)
        events = []
        for _ in range(ROUNDS):
            events += svc.evaluate_now()
        assert svc.flush(10)
        claimed[phase] = [e.state for e in events]
    svc.close()
    store.close()
    print(json.dumps(claimed))


def _wait_files(folder: Path, names: list[str], procs: list[subprocess.Popen], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not all((folder / n).exists() for n in names):
        for p in procs:
            if p.poll() is not None and p.returncode != 0:
                pytest.fail(f"worker exited with {p.returncode}: {p.stderr.read()}")
        assert time.monotonic() < deadline, f"workers not ready: {names}"
        time.sleep(0.01)


def _race(url: str, webhook, tmp_path: Path) -> list[dict]:
    store = Store.open(url)
    now = datetime.now(UTC)
    for i in range(3):
        store.write(make_record(status="error", started_at=now - timedelta(seconds=10 - i)))
    code = "from tests.test_alerts_processes import worker; worker(*{args})"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code.replace("{args}", repr((url, webhook.url(), str(tmp_path), n)))],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(PROCESSES)
    ]
    try:
        _wait_files(tmp_path, [f"ready-1-{n}" for n in range(PROCESSES)], procs)
        (tmp_path / "go-1").touch()
        _wait_files(tmp_path, [f"ready-2-{n}" for n in range(PROCESSES)], procs)
        store.write(make_record(status="ok", started_at=datetime.now(UTC) - timedelta(seconds=1)))
        (tmp_path / "go-2").touch()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        store.close()
    return results


def _check(url: str, webhook, results: list[dict]) -> None:
    phase1 = [s for r in results for s in r["1"]]
    phase2 = [s for r in results for s in r["2"]]
    assert phase1 == ["firing"] and phase2 == ["resolved"], results
    titles = [r.body["title"] for r in webhook.wait_for(2, timeout=5)]
    time.sleep(0.3)  # anything extra would have arrived by now
    assert (
        [r.body["title"] for r in webhook.received]
        == titles
        == ["[chatwatch] CRITICAL ALERT: model down", "[chatwatch] RESOLVED: model down"]
    )
    store = Store.open(url)
    with store.engine.connect() as conn:
        events = list(reversed(alert_store.history(conn)))
        rules = alert_store.load_rules(conn)
    store.close()
    assert [e.state for e in events] == ["firing", "resolved"]
    assert events[0].firing_since_us == events[1].firing_since_us
    assert [r.name for r in rules] == ["model down"]


@pytest.mark.slow
def test_processes_sharing_sqlite_notify_once(sqlite_url, webhook, tmp_path):
    results = _race(sqlite_url, webhook, tmp_path)
    _check(sqlite_url, webhook, results)


@pytest.mark.slow
def test_processes_sharing_postgresql_notify_once(pg_url, webhook, tmp_path):
    results = _race(pg_url, webhook, tmp_path)
    _check(pg_url, webhook, results)


def test_a_stale_claim_loses(store):
    """Two evaluators that read the same state: the second transition finds the version
    moved and neither updates the state nor stores an event."""
    svc = AlertService(config.parse({"alerts": {"rules": [RULE]}}), store.engine, instance="a")
    svc.seed()
    t0 = datetime(2026, 1, 5, 12, tzinfo=UTC)
    for i in range(2):
        store.write(make_record(status="error", started_at=t0 + timedelta(seconds=i)))
    now = to_us(t0) + 5_000_000
    with store.engine.connect() as conn:
        state = alert_store.load_states(conn)["model down"]
        rule = alert_store.get_rule(conn, "model down")
    m = svc.engine.measure(rule, now)
    first = svc.engine.step(rule, state, m, now)
    second = svc.engine.step(rule, state, m, now + 1)
    assert first is not None and second is not None
    won = alert_store.claim_transition(store.engine, state, first.changes, first.event)
    lost = alert_store.claim_transition(store.engine, state, second.changes, second.event)
    assert won.state == "firing" and won.id is not None
    assert lost is False
    assert [e.id for e in svc.history()] == [won.id]
    svc.close()
