"""Circuit breakers (resilience/breaker.py, store/breakers.py) on SQLite and the real
PostgreSQL: the state machine with an injected clock, the failure-ratio window, the
transitions on the `chatwatch.resilience` logger, and two real processes (multiprocessing,
spawn) on one store that see one state and admit exactly one half-open probe between them.

Expected values are counted by the tests themselves (how many failures were booked, how
many probes each process was granted), not read back from the breaker's own arithmetic."""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from chatwatch.config import BreakerConfig, ModelConfig
from chatwatch.resilience.breaker import Breakers
from chatwatch.store.records import Store
from tests.fixtures.db import make_record


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def model(model_id: str = "remote", **breaker) -> ModelConfig:
    return ModelConfig(id=model_id, kind="openai", base_url="http://127.0.0.1:9/v1", breaker=BreakerConfig(**breaker))


@pytest.fixture
def engine(store_url):
    with Store.open(store_url) as store:
        yield store.engine


def breakers_for(engine, *configs, clock=None) -> Breakers:
    return Breakers(engine, configs, instance="test", clock=clock or Clock(), cache_s=0.0)


def fail(b: Breakers, cfg: ModelConfig, n: int, error_type: str = "connection") -> None:
    for _ in range(n):
        adm = b.admit(cfg)
        assert adm.allowed
        b.record(cfg, ok=False, error_type=error_type, probe=adm.probe)


def test_opens_after_consecutive_failures_then_one_probe_decides(engine):
    clock = Clock()
    cfg = model(failures=3, cooldown_s=30, min_requests=1000)
    b = breakers_for(engine, cfg, clock=clock)
    fail(b, cfg, 2)
    assert b.states()["remote"].state == "closed" and b.states()["remote"].failures == 2
    b.record(cfg, ok=True, error_type=None, probe=False)  # a success resets the run
    assert b.states()["remote"].failures == 0
    fail(b, cfg, 3)
    st = b.states()["remote"]
    assert (st.state, st.failures, st.last_error) == ("open", 3, "connection")
    assert st.opened_at is not None and abs(st.opened_at.timestamp() - clock.t) < 1e-3
    assert "3 consecutive failures" in st.cause

    clock.t += 10
    adm = b.admit(cfg)
    assert (adm.allowed, adm.state, adm.probe) == (False, "open", False)
    assert adm.retry_in_s == pytest.approx(20.0)

    clock.t += 20
    probe = b.admit(cfg)
    assert (probe.allowed, probe.state, probe.probe) == (True, "half_open", True)
    other = b.admit(cfg)  # only one probe at a time
    assert (other.allowed, other.state) == (False, "half_open")
    b.record(cfg, ok=True, error_type=None, probe=True)
    st = b.states()["remote"]
    assert (st.state, st.failures, st.opened_at, st.retry_in_s) == ("closed", 0, None, None)
    assert b.admit(cfg).allowed


def test_a_failed_probe_reopens_for_another_cooldown(engine):
    clock = Clock()
    cfg = model(failures=1, cooldown_s=5)
    b = breakers_for(engine, cfg, clock=clock)
    fail(b, cfg, 1, "timeout")
    clock.t += 5
    probe = b.admit(cfg)
    assert probe.probe
    b.record(cfg, ok=False, error_type="provider_error", probe=True)
    st = b.states()["remote"]
    assert (st.state, st.last_error, st.retry_in_s) == ("open", "provider_error", pytest.approx(5.0))
    clock.t += 4.9
    assert not b.admit(cfg).allowed
    clock.t += 0.1
    assert b.admit(cfg).probe


def test_a_probe_that_never_reports_expires_after_the_cooldown(engine):
    clock = Clock()
    cfg = model(failures=1, cooldown_s=5)
    b = breakers_for(engine, cfg, clock=clock)
    fail(b, cfg, 1)
    clock.t += 5
    assert b.admit(cfg).probe  # ... and its process dies
    clock.t += 4
    assert not b.admit(cfg).allowed
    clock.t += 1
    assert b.admit(cfg).probe


def test_a_cancelled_probe_frees_its_slot_and_neutral_errors_do_not_count(engine):
    clock = Clock()
    cfg = model(failures=2, cooldown_s=5, min_requests=100)
    b = breakers_for(engine, cfg, clock=clock)
    for error_type in ("invalid_request", "context_length", "cancelled", "circuit_open", "budget_exceeded"):
        b.record(cfg, ok=False, error_type=error_type, probe=False)
    b.record(cfg, ok=None, error_type="cancelled", probe=False)
    st = b.states()["remote"]
    assert (st.state, st.failures) == ("closed", 0)
    fail(b, cfg, 2)
    clock.t += 5
    assert b.admit(cfg).probe
    b.record(cfg, ok=None, error_type="cancelled", probe=True)
    assert b.admit(cfg).probe  # at once, no second cool-down


def test_failure_ratio_over_the_window_with_a_minimum_of_requests(store):
    """The window is the attempts' own records (as the chain writes them: the record, then
    the breaker's outcome); cache hits, cancellations and other models do not count."""
    clock = Clock(datetime(2026, 12, 1, tzinfo=UTC).timestamp())
    cfg = model(failures=1000, failure_ratio=0.5, window_s=60, min_requests=10, cooldown_s=30)
    b = breakers_for(store.engine, cfg, clock=clock)

    def attempt(ok: bool, error_type: str | None = None, **extra) -> None:
        at = datetime.fromtimestamp(clock(), UTC)
        status = "ok" if ok else "error"
        store.write(make_record(model="remote", started_at=at, status=status, error_type=error_type, **extra))
        b.record(cfg, ok=ok, error_type=error_type, probe=False)

    for ok in [True, False] * 4:  # 8 attempts, half failed: under min_requests
        attempt(ok, None if ok else "rate_limit")
        clock.t += 1
    assert b.states()["remote"].state == "closed"
    # Old attempts leave the window: 61 s later the 8 above no longer count.
    clock.t += 61
    for _ in range(6):
        attempt(True)
    store.write(make_record(model="remote", started_at=datetime.fromtimestamp(clock(), UTC), cache_hit=True))
    store.write(make_record(model="remote", started_at=datetime.fromtimestamp(clock(), UTC), status="cancelled"))
    store.write(
        make_record(
            model="other", started_at=datetime.fromtimestamp(clock(), UTC), status="error", error_type="timeout"
        )
    )
    for _ in range(3):
        attempt(False, "timeout")
    assert b.states()["remote"].state == "closed"  # 3 of 9: too few attempts and too few failures
    attempt(False, "timeout")  # 4 of 10 = 0.4 < 0.5
    assert b.states()["remote"].state == "closed"
    attempt(False, "invalid_request")  # says nothing about the model: not in the window
    attempt(False, "timeout")  # 5 of 11 = 0.45
    assert b.states()["remote"].state == "closed"
    attempt(False, "timeout")  # 6 of 12 = 0.5: opens
    st = b.states()["remote"]
    assert st.state == "open" and "6 of 12 attempts failed" in st.cause


def test_a_success_on_a_healthy_circuit_writes_nothing(store):
    cfg = model(failures=2)
    b = breakers_for(store.engine, cfg)
    b.record(cfg, ok=True, error_type=None, probe=False)
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM breakers")).scalar_one() == 0
    fail(b, cfg, 1)
    b.record(cfg, ok=True, error_type=None, probe=False)  # resets the consecutive count: one write
    assert b.states()["remote"].failures == 0


def test_disabled_breaker_always_admits_and_models_are_independent(engine):
    off = model("off", enabled=False, failures=1)
    on = model("on", failures=1)
    b = breakers_for(engine, off, on)
    fail(b, off, 5)
    fail(b, on, 1)
    states = b.states()
    assert states["off"].state == "closed" and b.admit(off).allowed
    assert states["on"].state == "open" and not b.admit(on).allowed


def test_every_transition_is_logged(engine, caplog):
    clock = Clock()
    cfg = model(failures=2, cooldown_s=5)
    b = breakers_for(engine, cfg, clock=clock)
    caplog.set_level(logging.INFO, logger="chatwatch.resilience")
    fail(b, cfg, 2)
    clock.t += 5
    b.admit(cfg)
    b.record(cfg, ok=False, error_type="timeout", probe=True)
    clock.t += 5
    b.admit(cfg)
    b.record(cfg, ok=True, error_type=None, probe=True)
    seen = [(r.from_state, r.to_state) for r in caplog.records if r.name == "chatwatch.resilience"]
    assert seen == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    first = next(r for r in caplog.records if r.name == "chatwatch.resilience")
    assert "2 consecutive failures (last: connection)" in first.getMessage()


def test_an_unreachable_store_lets_attempts_through(tmp_path, caplog):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'never-migrated.db'}")  # no breakers table
    cfg = model(failures=1)
    b = breakers_for(engine, cfg)
    caplog.set_level(logging.WARNING, logger="chatwatch.resilience")
    assert b.admit(cfg).allowed
    b.record(cfg, ok=False, error_type="timeout", probe=False)
    assert b.admit(cfg).allowed
    assert sum("cannot read the store" in r.getMessage() for r in caplog.records) == 1
    engine.dispose()


def _worker(url: str, cooldown_s: float, until: float, start, out) -> None:
    """A spawned process: its own Breakers on the shared store, admitting until `until`."""
    cfg = model(failures=1, cooldown_s=cooldown_s)
    with Store.open(url) as store:
        b = Breakers(store.engine, [cfg], instance=f"pid{mp.current_process().pid}", cache_s=0.0)
        start.wait(60)
        first = b.admit(cfg)
        probes = 0
        while time.time() < until:
            if b.admit(cfg).probe:
                probes += 1
            time.sleep(0.002)
        out.put((first.allowed, first.state, probes))
        b.close()


@pytest.mark.slow
def test_two_processes_see_one_state_and_admit_exactly_one_probe(store_url):
    cooldown = 3.0
    cfg = model(failures=1, cooldown_s=cooldown)
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    with Store.open(store_url) as store:
        b = breakers_for(store.engine, cfg, clock=time.time)
        # Spawned processes take a few seconds to import; open the circuit once they are up.
        opened = time.time() + 8.0
        procs = [ctx.Process(target=_worker, args=(store_url, cooldown, opened + 5.0, start, out)) for _ in range(2)]
        for p in procs:
            p.start()
        time.sleep(max(0.0, opened - time.time()))
        fail(b, cfg, 1)
        opened_at = time.time()
        start.set()
        results = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(30)
            assert p.exitcode == 0
        # Both saw the circuit this process opened; one probe between them (the cool-down
        # ended ~3 s in, the probe would only expire ~6 s in, after the workers stopped).
        assert all(r[:2] == (False, "open") for r in results), results
        assert sum(probes for *_, probes in results) == 1, results
        assert time.time() - opened_at < 2 * cooldown
        assert b.states()["remote"].state == "half_open"


def test_the_dashboard_shows_an_open_circuit(tmp_path, monkeypatch, ui_runtimes):
    """AppTest of the dashboard page: the open circuit with its next try, failures, last
    error and since when; the other model closed."""
    import math
    from datetime import UTC, datetime
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    config = tmp_path / "chatwatch.toml"
    config.write_text("""
[app]
language = "en"
data_dir = "data"
log_dir = "logs"
[[models]]
id = "remote"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
breaker = { failures = 3, cooldown_s = 300 }
[[models]]
id = "spare"
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
""")
    monkeypatch.setenv("CHATWATCH_CONFIG", str(config))
    url = f"sqlite:///{tmp_path / 'data' / 'chatwatch.db'}"
    remote = model(failures=3, cooldown_s=300)
    with Store.open(url) as store:
        b = breakers_for(store.engine, remote, clock=time.time)
        fail(b, remote, 3, "timeout")
        opened = time.time()
    page = Path(__file__).resolve().parents[1] / "src" / "chatwatch" / "ui" / "views" / "dashboard.py"
    at = AppTest.from_file(str(page), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert "Model circuits" in [s.value for s in at.subheader]
    (table,) = [d.value for d in at.dataframe if "Model" in d.value.columns and "State" in d.value.columns]
    rows = {r["Model"]: r for r in table.to_dict("records")}
    shown = rows["remote"]["State"]
    seconds = int(shown.removeprefix("open · next try in ").removesuffix(" s"))
    assert math.ceil(300 - (time.time() - opened)) - 1 <= seconds <= 300
    assert (rows["remote"]["Failures in a row"], rows["remote"]["Last error"]) == (3, "timeout")
    since = datetime.strptime(rows["remote"]["Open since (UTC)"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert abs(since.timestamp() - opened) < 1.5
    assert (rows["spare"]["State"], rows["spare"]["Failures in a row"], rows["spare"]["Open since (UTC)"]) == (
        "closed",
        0,
        "—",
    )
