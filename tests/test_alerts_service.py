"""The service's wiring: the timer evaluator (one thread, stopped cleanly), evaluation after
each recorded request, and the CLI path (a real runtime whose failed request is notified
before `flush()` returns)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from chatwatch import config
from chatwatch import runtime as runtime_mod
from chatwatch.alerts.notify import DeliveryPolicy
from chatwatch.alerts.service import AlertService
from chatwatch.models.contract import GenerationSettings, Message, ModelError
from tests.fixtures.db import make_record

RULE = {"name": "down", "kind": "consecutive_failures", "threshold": 1, "severity": "critical"}


def _alert_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "chatwatch-alert-evaluator"]


def test_timer_evaluates_without_requests_and_stops_cleanly(sqlite_store):
    settings = config.parse({"alerts": {"evaluate_every_s": 0.2, "rules": [RULE]}})
    svc = AlertService(settings, sqlite_store.engine, instance="t")
    svc.seed()
    before = len(_alert_threads())
    svc.start()
    svc.start()  # idempotent: still one thread
    assert len(_alert_threads()) == before + 1
    # Written straight to the store (no listener runs): only the timer can see it.
    sqlite_store.write(make_record(status="error", started_at=datetime.now(UTC)))
    deadline = time.monotonic() + 5
    while not svc.active() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [a.rule.name for a in svc.active()] == ["down"]
    t = time.monotonic()
    svc.close()
    assert time.monotonic() - t < 2
    assert len(_alert_threads()) == before
    assert svc.evaluator.runs >= 1


def test_on_record_evaluates_inline_when_no_timer_runs(sqlite_store):
    svc = AlertService(config.parse({"alerts": {"rules": [RULE]}}), sqlite_store.engine, instance="t")
    svc.seed()
    record = make_record(status="error", started_at=datetime.now(UTC))
    sqlite_store.write(record)
    svc.on_record(record)  # what the monitor's after-record thread calls
    assert [e.state for e in svc.history()] == ["firing"]
    svc.close()
    svc.on_record(record)  # closed: ignored


@pytest.fixture
def cli_settings(tmp_path, port, webhook):
    settings = config.parse(
        {
            "app": {"language": "en", "data_dir": str(tmp_path / "data"), "log_dir": str(tmp_path / "logs")},
            "models": [{"id": "down", "kind": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "timeout_s": 5}],
            "alerts": {"notify": [webhook.url("/cli")], "rules": [{**RULE, "model": "down"}]},
        }
    )
    return settings


def test_runtime_wiring_like_chatwatch_ask(cli_settings, webhook):
    rt = runtime_mod.Runtime(
        cli_settings, role="cli", alert_options={"policy": DeliveryPolicy(timeout_s=2, attempts=2, backoff_s=0.1)}
    )
    service = rt.alerts  # built by the runtime, one per runtime
    reply = rt.chat("down", [Message("user", "hi")], GenerationSettings(max_tokens=8), session_id="cli")
    t = time.monotonic()
    with pytest.raises(ModelError):
        list(reply)
    assert time.monotonic() - t < 5
    reply.close()
    assert rt.monitor.drain(10)
    assert service.flush(10)  # what `chatwatch ask` calls before it exits
    assert [r.body["title"] for r in webhook.received] == ["[chatwatch] CRITICAL ALERT: down"]
    assert "Consecutive failures: 1 in a row (threshold 1) on model down" in webhook.received[0].body["message"]
    rt.close()
    assert not service.evaluator.running


def test_one_timer_per_process_and_store(sqlite_store):
    settings = config.parse({"alerts": {"evaluate_every_s": 60, "rules": [RULE]}})
    old = AlertService(settings, sqlite_store.engine, instance="t")
    new = AlertService(settings, sqlite_store.engine, instance="t")
    before = len(_alert_threads())
    old.start()
    new.start()  # takes over: the older timer stops
    deadline = time.monotonic() + 2
    while old.evaluator.running and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not old.evaluator.running and new.evaluator.running
    assert len(_alert_threads()) == before + 1
    old.close()
    new.close()
    assert len(_alert_threads()) == before


# --- the default rules ----------------------------------------------------------------------


def _restart(store, rules: list[dict] | None = None) -> AlertService:
    """A new service on the same store, as the next start of the app builds."""
    svc = AlertService(config.parse({"alerts": {"rules": rules or []}}), store.engine, instance="t")
    svc.seed()
    return svc


def test_a_fresh_store_gets_the_default_rules_once(store):
    first = _restart(store)
    rules = {r.name: r for r in first.rules()}
    assert set(rules) == {"frequent errors", "slow responses"}
    errors, slow = rules["frequent errors"], rules["slow responses"]
    assert (errors.kind, errors.threshold, errors.window_minutes, errors.min_requests) == ("error_rate", 0.2, 5, 5)
    assert (slow.kind, slow.threshold, slow.window_minutes) == ("slow_response", 30.0, 5)
    assert all(r.origin == "default" and r.enabled for r in rules.values())
    # Edited, disabled and deleted defaults stay as the user left them after a restart.
    assert first.save_rule(errors.with_settings(threshold=0.5, severity="critical"), create=False) == {}
    assert first.save_rule(slow.with_settings(enabled=False), create=False) == {}
    second = _restart(store)
    assert second.seed().defaults == []
    after = {r.name: r for r in second.rules()}
    assert (after["frequent errors"].threshold, after["frequent errors"].severity) == (0.5, "critical")
    assert after["slow responses"].enabled is False
    assert second.delete_rule("slow responses")
    third = _restart(store)
    assert [r.name for r in third.rules()] == ["frequent errors"]
    for svc in (first, second, third):
        svc.close()


def test_no_default_rules_when_the_config_names_some(store):
    svc = _restart(store, [RULE])
    assert [r.name for r in svc.rules()] == ["down"]
    svc.close()
    later = _restart(store)  # the config rule removed later: a used store gets no defaults either
    assert later.rules() == []
    later.close()


def test_the_default_error_rule_fires_on_frequent_errors(store):
    svc = _restart(store)
    now = datetime.now(UTC)
    for i, status in enumerate(["error", "ok", "ok", "error", "ok"]):  # 2 of 5: 40 %
        store.write(make_record(status=status, started_at=now - timedelta(seconds=10 - i)))
    assert [(e.rule, e.state) for e in svc.evaluate_now()] == [("frequent errors", "firing")]
    svc.close()
