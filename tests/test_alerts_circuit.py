"""The circuit_open alert (alerts/rules.py reading store/breakers.py): it fires once while a
model's circuit is open (a real webhook receives the one notification, through the same
apprise channel as every alert), keeps quiet on later evaluations, and resolves when the
probe closes the circuit. The circuits are opened by the real Breakers on the same store
(SQLite and PostgreSQL), as the chain opens them."""

from __future__ import annotations

from chatwatch import config
from chatwatch.alerts.notify import DeliveryPolicy
from chatwatch.alerts.rules import validate
from chatwatch.alerts.service import AlertService
from chatwatch.alerts.text import body, title
from chatwatch.config import BreakerConfig, ModelConfig
from chatwatch.resilience.breaker import Breakers


class Clock:
    def __init__(self) -> None:
        self.t = 1_900_000_000.0

    def __call__(self) -> float:
        return self.t


def model(model_id: str) -> ModelConfig:
    return ModelConfig(
        id=model_id,
        kind="openai",
        base_url="http://127.0.0.1:9/v1",
        breaker=BreakerConfig(failures=2, cooldown_s=30, min_requests=1000),
    )


def service(store, webhook, rule: dict) -> AlertService:
    settings = config.parse(
        {
            "app": {"language": "en"},
            "models": [m.model_dump(mode="json", exclude_none=True) for m in (model("remote"), model("other"))],
            "alerts": {"notify": [webhook.url("/circuit")], "rules": [rule]},
        }
    )
    svc = AlertService(
        settings, store.engine, instance="t", policy=DeliveryPolicy(timeout_s=2, attempts=1, backoff_s=0.1)
    )
    svc.seed()
    return svc


def open_circuit(b: Breakers, cfg: ModelConfig) -> None:
    for _ in range(cfg.breaker.failures):
        b.record(cfg, ok=False, error_type="connection", probe=b.admit(cfg).probe)


def test_fires_once_while_open_and_resolves_when_closed(store, webhook):
    clock = Clock()
    remote = model("remote")
    b = Breakers(store.engine, [remote, model("other")], instance="t", clock=clock, cache_s=0.0)
    svc = service(store, webhook, {"name": "circuit", "kind": "circuit_open", "severity": "critical"})
    assert svc.evaluate_now() == []  # closed: nothing

    open_circuit(b, remote)
    fired = svc.evaluate_now()
    assert [(e.state, e.model, e.value) for e in fired] == [("firing", "remote", 1.0)]
    for _ in range(3):  # still open: no second notification
        assert svc.evaluate_now() == []
    clock.t += 30
    probe = b.admit(remote)
    assert probe.probe
    assert svc.evaluate_now() == []  # half-open: still not closed, still the same alert
    assert svc.flush()
    received = webhook.wait_for(1)
    assert len(received) == 1
    assert received[0].body["title"] == title(fired[0], "en")
    assert "remote" in received[0].body["message"] and "1 open circuit(s)" in received[0].body["message"]

    b.record(remote, ok=True, error_type=None, probe=True)
    resolved = svc.evaluate_now()
    assert [(e.state, e.reason) for e in resolved] == [("resolved", "recovered")]
    assert svc.flush()
    received = webhook.wait_for(2)
    assert [r.body["title"] for r in received] == [title(fired[0], "en"), title(resolved[0], "en")]
    assert "Circuit open" in body(resolved[0], "en")
    assert svc.evaluate_now() == [] and len(webhook.received) == 2
    svc.close()
    b.close()


def test_a_rule_for_one_model_ignores_the_others(store, webhook):
    clock = Clock()
    other = model("other")
    b = Breakers(store.engine, [model("remote"), other], instance="t", clock=clock, cache_s=0.0)
    svc = service(store, webhook, {"name": "remote down", "kind": "circuit_open", "model": "remote"})
    open_circuit(b, other)
    assert svc.evaluate_now() == []
    assert svc.current(svc.rule("remote down")).value == 0.0
    svc.close()
    b.close()


def test_the_rule_needs_no_threshold_window_or_minimum(store, webhook):
    svc = service(store, webhook, {"name": "circuit", "kind": "circuit_open"})
    rule = svc.rule("circuit")
    assert validate(rule.with_settings(threshold=0.0)) == {}
    m = svc.current(rule)
    assert (m.no_data, m.value, m.holds, m.clear) == (False, 0.0, False, True)
    svc.close()
