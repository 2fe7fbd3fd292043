"""Each rule kind fires and resolves on crafted records (SQLite and PostgreSQL), with an
injected clock; min_requests, for_minutes, hysteresis and the re-notify interval hold;
config rules are seeded and page edits win until the config version changes."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from chatwatch import config
from chatwatch.alerts import text
from chatwatch.alerts.channels import Notification
from chatwatch.alerts.model import Rule
from chatwatch.alerts.rules import validate
from chatwatch.alerts.service import AlertService
from chatwatch.store.records import to_us
from tests.fixtures.db import BASE_TIME, make_record

T0 = BASE_TIME
MIN = 60


class Recorder:
    """A channel that keeps what it is sent."""

    label = "recorder://"

    def __init__(self) -> None:
        self.messages: list[Notification] = []

    def send(self, message: Notification, timeout_s: float) -> None:
        self.messages.append(message)


class Harness:
    def __init__(self, store, rules: list[dict], *, renotify_minutes: float = 60, instance: str = "test:1"):
        self.store = store
        self.now = to_us(T0)
        self.channel = Recorder()
        self.settings = config.parse(
            {
                "app": {"language": "en"},
                "models": [
                    {"id": "a", "kind": "openai", "base_url": "http://127.0.0.1:9/v1"},
                    {"id": "b", "kind": "openai", "base_url": "http://127.0.0.1:9/v1"},
                ],
                "alerts": {"renotify_minutes": renotify_minutes, "rules": rules},
            }
        )
        self.service = AlertService(
            self.settings, store.engine, instance=instance, clock=lambda: self.now, channels=[self.channel]
        )
        assert self.service.config_problems == []
        self.service.seed()

    def add(self, at_s: float, **fields) -> None:
        fields.setdefault("model", "a")
        self.store.write(make_record(started_at=T0 + timedelta(seconds=at_s), **fields))

    def eval(self, at_s: float) -> list[tuple[str, str]]:
        self.now = to_us(T0 + timedelta(seconds=at_s))
        return [(e.rule, e.state) for e in self.service.evaluate_now()]

    def state(self, rule: str) -> str:
        return {s.rule.name: s.state.state for s in self.service.active(include_pending=True)}.get(rule, "ok")

    def close(self) -> None:
        self.service.close()


@pytest.fixture
def harness(store):
    made: list[Harness] = []

    def make(rules: list[dict], **kw) -> Harness:
        h = Harness(store, rules, **kw)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def test_error_rate_respects_min_requests_then_fires_and_resolves(harness):
    h = harness([{"name": "errors", "kind": "error_rate", "threshold": 0.5, "window_minutes": 5, "min_requests": 4}])
    for i in range(3):
        h.add(i, status="error")
    assert h.eval(10) == []  # 3/3 failed, but fewer than min_requests
    h.add(11)
    assert h.eval(12) == [("errors", "firing")]  # 3/4 = 75 %
    assert h.eval(13) == []  # still firing: notified once
    for i in range(6):
        h.add(20 + i)
    assert h.eval(30) == [("errors", "resolved")]  # 3/10 = 30 %
    events = h.service.history()
    assert [(e.state, round(e.value, 2)) for e in events] == [("resolved", 0.3), ("firing", 0.75)]
    assert events[1].threshold == 0.5 and events[1].instance == "test:1" and events[1].model == "a"


def test_error_rate_hysteresis_keeps_firing_near_threshold(harness):
    h = harness([{"name": "errors", "kind": "error_rate", "threshold": 0.5, "min_requests": 2}])
    h.add(0, status="error")
    h.add(1)
    assert h.eval(2) == [("errors", "firing")]  # 50 %
    for i in range(4):  # 5/11 = 45.5 %: below 50 % but not below 45 %
        h.add(3 + i, status="error" if i < 4 else "ok")
    for i in range(5):
        h.add(10 + i)
    assert h.eval(20) == []
    assert h.state("errors") == "firing"
    h.add(21)
    h.add(22)  # 5/13 = 38 %
    assert h.eval(23) == [("errors", "resolved")]


def test_consecutive_failures_per_model(harness):
    h = harness(
        [
            {"name": "a down", "kind": "consecutive_failures", "threshold": 3, "model": "a", "severity": "critical"},
            {"name": "any down", "kind": "consecutive_failures", "threshold": 3},
        ]
    )
    h.add(0, status="error")
    h.add(1, status="error")
    h.add(2, status="error", model="b")
    h.add(3, status="cancelled")  # the user's choice: neither breaks nor extends a streak
    assert h.eval(5) == []
    h.add(6, status="error")
    assert sorted(h.eval(7)) == [("a down", "firing"), ("any down", "firing")]
    any_down = h.service.history(rules=["any down"])[0]
    assert any_down.value == 3 and any_down.model == "a" and any_down.scope is None
    h.add(8)
    assert sorted(h.eval(9)) == [("a down", "resolved"), ("any down", "resolved")]


def test_consecutive_failures_only_counts_the_window(harness):
    h = harness([{"name": "down", "kind": "consecutive_failures", "threshold": 2, "window_minutes": 5}])
    h.add(0, status="error")
    h.add(1, status="error")
    assert h.eval(2) == [("down", "firing")]
    assert h.eval(6 * MIN) == []  # no new requests: no data, not a recovery (kept firing)
    h.add(6 * MIN + 1, status="error")
    h.add(6 * MIN + 2)
    assert h.eval(6 * MIN + 3) == [("down", "resolved")]  # the window's newest request succeeded
    assert h.service.history()[0].reason == "recovered"


@pytest.mark.parametrize("kind,column", [("latency_p95", "latency_s"), ("ttft_p95", "ttft_s")])
def test_p95_rules(harness, kind, column):
    h = harness([{"name": "slow", "kind": kind, "threshold": 2.0, "window_minutes": 5, "min_requests": 20}])
    for i in range(18):
        h.add(i, **{column: 1.0})
    h.add(18, **{column: 5.0})
    assert h.eval(19) == []  # too few requests
    h.add(19, **{column: 5.0})
    assert h.eval(20) == [("slow", "firing")]  # 2 of 20 over: p95 = 5 s
    assert h.service.history()[0].value == 5.0
    h.add(21, status="error", **{column: None})  # no value: not counted
    for i in range(20):  # the slow ones leave the window; fast ones come in
        h.add(4 * MIN + i, **{column: 1.0})
    assert h.eval(5 * MIN + 30) == [("slow", "resolved")]


def test_slow_response_needs_one_request(harness):
    h = harness(
        [
            {
                "name": "one slow",
                "kind": "slow_response",
                "threshold": 10,
                "window_minutes": 2,
                "min_requests": 50,
                "no_data": "resolve",
            }
        ]
    )
    h.add(0, latency_s=3.0)
    assert h.eval(1) == []
    h.add(2, latency_s=12.5, status="cancelled")  # cancelled: not the model's slowness
    assert h.eval(3) == []
    h.add(4, latency_s=12.5)
    assert h.eval(5) == [("one slow", "firing")]
    assert h.eval(2 * MIN + 3) == []  # still in the 2-minute window
    assert h.eval(2 * MIN + 5) == [("one slow", "resolved")]  # the window emptied: resolved as no data
    resolved = h.service.history()[0]
    assert (resolved.reason, resolved.value, resolved.samples) == ("no_data", None, 0)


def test_daily_cost_total_and_per_model_resets_at_utc_midnight(harness):
    from decimal import Decimal

    h = harness(
        [
            {"name": "budget", "kind": "daily_cost", "threshold": 1.0},
            {"name": "b budget", "kind": "daily_cost", "threshold": 1.0, "model": "b"},
        ]
    )
    yesterday = -13 * 3600  # T0 is 12:00 UTC
    h.add(yesterday, cost_usd=Decimal("5"))  # yesterday's spending does not count
    h.add(0, cost_usd=Decimal("0.6"))
    assert h.eval(1) == []
    h.add(2, cost_usd=Decimal("0.6"), status="cancelled")  # money spent is spent
    assert h.eval(3) == [("budget", "firing")]
    assert h.service.history()[0].value == pytest.approx(1.2)
    h.add(4, cost_usd=Decimal("1.5"), model="b")
    assert h.eval(5) == [("b budget", "firing")]
    midnight = 12 * 3600
    assert sorted(h.eval(midnight + 1)) == [("b budget", "resolved"), ("budget", "resolved")]


def test_memory_uses_latest_rss_per_process(harness):
    mb = 1 << 20
    h = harness([{"name": "rss", "kind": "memory", "threshold": 500, "window_minutes": 10}])
    h.add(0, rss_after_bytes=300 * mb, instance="p1")
    assert h.eval(1) == []
    h.add(2, rss_after_bytes=650 * mb, instance="p2")
    assert h.eval(3) == [("rss", "firing")]
    assert h.service.history()[0].value == pytest.approx(650)
    h.add(4, rss_after_bytes=460 * mb, instance="p2")  # p2's latest is now 460 MB (< 450? no)
    assert h.eval(5) == []  # within the hysteresis band (450..500)
    h.add(6, rss_after_bytes=400 * mb, instance="p2")
    assert h.eval(7) == [("rss", "resolved")]


def test_memory_counts_model_loads(harness, store):
    h = harness([{"name": "rss", "kind": "memory", "threshold": 500}])
    store.write_model_load(model="a", instance="p1", load_s=1.0, ok=True, loaded_at=T0, rss_after_bytes=900 << 20)
    assert h.eval(1) == [("rss", "firing")]


def test_no_success(harness):
    h = harness([{"name": "nothing works", "kind": "no_success", "window_minutes": 10, "min_requests": 2}])
    assert h.eval(0) == []  # no requests at all: nothing to say
    h.add(1, status="error")
    assert h.eval(2) == []  # below min_requests
    h.add(3, status="error", model="b")
    assert h.eval(4) == []  # one each: still too few per model
    h.add(5, status="error")
    assert h.eval(6) == [("nothing works", "firing")]
    event = h.service.history()[0]
    assert event.model == "a" and event.value == 2
    h.add(7)
    assert h.eval(8) == [("nothing works", "resolved")]


# --- no data is not a recovery -----------------------------------------------------------------

ERRORS = {"name": "errors", "kind": "error_rate", "threshold": 0.2, "window_minutes": 5, "min_requests": 5}


def _fire_errors(h: Harness) -> None:
    for i in range(5):
        h.add(i, status="error" if i < 2 else "ok")  # 2/5 = 40 %
    assert h.eval(10) == [("errors", "firing")]


def test_no_data_keeps_a_firing_alert_and_says_so(harness):
    h = harness([ERRORS], renotify_minutes=10)
    _fire_errors(h)
    assert h.eval(6 * MIN) == []  # the window emptied: still firing, nothing made up
    assert h.state("errors") == "firing"
    assert h.service.active()[0].state.value == pytest.approx(0.4)  # the last measured value stays
    assert h.service.current(h.service.rule("errors")).no_data
    # What the banner and the Active tab show for it:
    shown = text.firing_value(h.service.rule("errors"), 0.4, h.service.latest("errors"), "en")
    assert shown == "40 % (last value; no data: no requests in the last 5 min)"
    assert h.eval(11 * MIN) == [("errors", "renotify")]
    renotify = h.service.history()[0]
    assert (renotify.reason, renotify.value, renotify.samples, renotify.window_minutes) == ("no_data", None, 0, 5)
    assert h.service.notifier.drain(5)
    body = h.channel.messages[-1].body
    assert "Error rate on all models (worst: a): no data: no requests in the last 5 min. Still firing" in body
    assert "back to normal" not in body and "%" not in body.split("(threshold")[0]
    # Enough requests again, and clear: now it is a recovery, with its value.
    for i in range(5):
        h.add(12 * MIN + i)
    assert h.eval(12 * MIN + 10) == [("errors", "resolved")]
    resolved = h.service.history()[0]
    assert (resolved.reason, resolved.value) == ("recovered", 0.0)
    assert h.service.notifier.drain(5)
    assert "is back to normal on all models: 0 %" in h.channel.messages[-1].body
    assert h.channel.messages[-1].kind == "success"


def test_too_few_requests_is_no_data_too(harness):
    h = harness([{**ERRORS, "no_data": "resolve"}])
    _fire_errors(h)
    for i in range(3):  # three successes now in the window, fewer than min_requests
        h.add(5 * MIN + 20 + i)
    assert h.eval(5 * MIN + 30) == [("errors", "resolved")]
    resolved = h.service.history()[0]
    assert (resolved.reason, resolved.value, resolved.samples, resolved.min_requests) == ("no_data", None, 3, 5)
    assert h.service.notifier.drain(5)
    message = h.channel.messages[-1]
    assert (message.title, message.kind) == ("[chatwatch] RESOLVED (no data): errors", "info")
    assert "resolved for lack of data, not back to normal: no data: only 3 request(s) in the last 5 min (5 needed)" in (
        message.body
    )
    assert "0 %" not in message.body and "100 %" not in message.body


def test_no_data_words_in_spanish(store):
    from chatwatch.alerts.model import AlertEvent

    event = AlertEvent(
        rule="errores",
        kind="error_rate",
        severity="warning",
        state="resolved",
        value=None,
        threshold=0.2,
        model=None,
        scope="a",
        firing_since_us=0,
        at_us=60_000_000,
        instance="t",
        reason="no_data",
        samples=0,
        window_minutes=5.0,
        min_requests=5,
    )
    assert text.title(event, "es") == "[chatwatch] RESUELTA (sin datos): errores"
    assert (
        "resuelta por falta de datos, no por volver a la normalidad: sin datos: ninguna petición en los últimos 5 min"
        in (text.body(event, "es"))
    )
    assert text.event_value(event, "es") == "sin datos: ninguna petición en los últimos 5 min"


def test_a_disabled_rule_resolves_as_off_not_as_recovered(harness):
    h = harness([ERRORS])
    _fire_errors(h)
    assert h.service.save_rule(h.service.rule("errors").with_settings(enabled=False), create=False) == {}
    assert h.eval(11) == [("errors", "resolved")]
    assert h.service.history()[0].reason == "off"
    assert h.service.notifier.drain(5)
    assert "the rule was disabled or deleted" in h.channel.messages[-1].body


def test_for_minutes_delays_firing_and_a_blip_never_fires(harness):
    h = harness(
        [
            {
                "name": "errors",
                "kind": "error_rate",
                "threshold": 0.5,
                "min_requests": 1,
                "for_minutes": 2,
                "window_minutes": 1,
            }
        ]
    )
    h.add(0, status="error")
    assert h.eval(1) == []
    assert h.state("errors") == "pending"
    assert h.eval(61) == [] and h.state("errors") == "ok"  # the error left the window: a blip
    assert h.service.history() == []
    h.add(100, status="error")
    h.eval(101)
    for t in (130, 160, 190, 220):  # errors keep coming
        h.add(t - 1, status="error")
        assert h.eval(t) == []
    h.add(220, status="error")
    assert h.eval(221) == [("errors", "firing")]  # 120 s after it started holding


def test_renotify_interval(harness):
    h = harness(
        [
            {
                "name": "down",
                "kind": "consecutive_failures",
                "threshold": 1,
                "window_minutes": 1440,
                "severity": "critical",
            }
        ],
        renotify_minutes=10,
    )
    h.add(0, status="error")
    assert h.eval(1) == [("down", "firing")]
    assert h.eval(5 * MIN) == []
    assert h.eval(10 * MIN + 1) == [("down", "renotify")]
    assert h.eval(15 * MIN) == []
    assert h.eval(20 * MIN) == []  # 10 minutes after the last notification, not the first
    assert h.eval(20 * MIN + 1) == [("down", "renotify")]
    seqs = [(e.state, e.seq) for e in reversed(h.service.history())]
    assert seqs == [("firing", 0), ("renotify", 1), ("renotify", 2)]
    assert h.service.notifier.drain(5)
    titles = [m.title for m in h.channel.messages]
    assert titles == ["[chatwatch] CRITICAL ALERT: down"] + ["[chatwatch] STILL FIRING (CRITICAL): down"] * 2
    assert [m.kind for m in h.channel.messages] == ["failure"] * 3


def test_disabled_and_deleted_rules_resolve(harness):
    h = harness([{"name": "down", "kind": "consecutive_failures", "threshold": 1}])
    h.add(0, status="error")
    assert h.eval(1) == [("down", "firing")]
    rule = h.service.rule("down")
    assert h.service.save_rule(rule.with_settings(enabled=False), create=False) == {}
    assert h.eval(2) == [("down", "resolved")]
    assert h.service.save_rule(rule, create=False) == {}
    assert h.eval(3) == [("down", "firing")]
    assert h.service.delete_rule("down")
    assert h.eval(4) == [("down", "resolved")]
    assert h.service.rule("down") is None


def test_log_line_level_follows_severity(harness):
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    logger = logging.getLogger("chatwatch.alerts")
    logger.addHandler(handler)
    try:
        h = harness(
            [
                {"name": "crit", "kind": "consecutive_failures", "threshold": 1, "severity": "critical"},
                {"name": "warn", "kind": "consecutive_failures", "threshold": 1, "severity": "warning"},
                {"name": "info", "kind": "consecutive_failures", "threshold": 1, "severity": "info"},
            ]
        )
        h.add(0, status="error")
        h.eval(1)
    finally:
        logger.removeHandler(handler)
    levels = {r.alert_rule: r.levelname for r in records if hasattr(r, "alert_rule")}
    assert levels == {"crit": "ERROR", "warn": "WARNING", "info": "WARNING"}
    crit = next(r for r in records if getattr(r, "alert_rule", None) == "crit")
    assert "CRITICAL ALERT: crit" in crit.getMessage() and "1 in a row" in crit.getMessage()


# --- config seeding and page edits ------------------------------------------------------------


def _settings(rules: list[dict]) -> config.Settings:
    return config.parse({"alerts": {"rules": rules}})


def test_page_edits_win_until_the_config_version_changes(store):
    v1 = [{"name": "slow", "kind": "slow_response", "threshold": 10}]
    svc = AlertService(_settings(v1), store.engine, instance="t")
    assert svc.seed().inserted == ["slow"]
    edited = svc.rule("slow").with_settings(threshold=20.0, severity="critical")
    assert svc.save_rule(edited, create=False) == {}
    again = AlertService(_settings(v1), store.engine, instance="t")  # a restart, same config
    assert again.seed().kept == ["slow"]
    rule = again.rule("slow")
    assert (rule.threshold, rule.severity, rule.edited, rule.origin) == (20.0, "critical", True, "config")
    v2 = [{"name": "slow", "kind": "slow_response", "threshold": 15}]
    changed = AlertService(_settings(v2), store.engine, instance="t")
    assert changed.seed().replaced == ["slow"]
    rule = changed.rule("slow")
    assert (rule.threshold, rule.severity, rule.edited) == (15.0, "warning", False)
    # Reset drops page edits; deleting a config rule lasts until its config version changes.
    changed.save_rule(rule.with_settings(threshold=99.0), create=False)
    assert changed.reset_rule("slow") and changed.rule("slow").threshold == 15.0
    assert changed.delete_rule("slow")
    assert AlertService(_settings(v2), store.engine, instance="t").seed().kept == ["slow"]
    assert changed.rule("slow") is None
    # Gone from the config: deleted; back in the config: back.
    assert AlertService(_settings([]), store.engine, instance="t").seed().removed == ["slow"]
    back = AlertService(_settings(v1), store.engine, instance="t")
    assert back.seed().replaced == ["slow"] and back.rule("slow").threshold == 10.0
    assert AlertService(_settings([]), store.engine, instance="t").seed().removed == ["slow"]
    assert back.rule("slow") is None
    for s in (svc, again, changed, back):
        s.close()


def test_page_rules_create_validate_and_clash(store):
    svc = AlertService(_settings([{"name": "cfg", "kind": "memory", "threshold": 500}]), store.engine, instance="t")
    svc.seed()
    bad = Rule(name="  ", kind="error_rate", threshold=5, window_minutes=0, min_requests=-1, model="nope")
    problems = {k: p.text("en") for k, p in svc.save_rule(bad, create=True).items()}
    assert problems == {
        "name": "the name is required",
        "threshold": "an error rate is a fraction between 0 and 1 (0.05 = 5 %), not 5",
        "window_minutes": "the window must be more than 0 and at most 1440 minutes (a day), not 0",
        "min_requests": "the minimum number of requests must be a whole number of at least 0, not -1",
        "model": "unknown model 'nope'",
    }
    assert svc.save_rule(bad, create=True)["threshold"].text("es").startswith("una tasa de errores es una fracción")
    good = Rule(name="my errors", kind="error_rate", threshold=0.1, model="smollm2")
    assert svc.save_rule(good, create=True) == {}
    assert svc.save_rule(good, create=True)["name"].text("en") == "a rule named 'my errors' already exists"
    assert svc.save_rule(Rule(name="cfg", kind="memory", threshold=1), create=True)["name"].key == "err.exists"
    assert [r.name for r in svc.rules()] == ["cfg", "my errors"]
    assert svc.rule("my errors").origin == "page"
    assert svc.delete_rule("my errors")
    assert svc.save_rule(good, create=True) == {}  # a deleted rule's name can be used again
    svc.close()


def test_invalid_config_rules_are_reported_and_skipped(store):
    settings = _settings(
        [
            {"name": "pct", "kind": "error_rate", "threshold": 5},
            {"name": "ok", "kind": "error_rate", "threshold": 0.05},
            {"name": "ok", "kind": "memory", "threshold": 100},
            {"name": "ghost", "kind": "no_success", "model": "not-configured"},
        ]
    )
    svc = AlertService(settings, store.engine, instance="t")
    assert svc.config_problems == [
        "alerts.rules[0] (name 'pct'): threshold = 5.0: an error rate is a fraction between 0 and 1 (0.05 = 5 %), not 5",
        "alerts.rules[2] (name 'ok'): name = 'ok': another rule has this name",
        "alerts.rules[3] (name 'ghost'): model = 'not-configured': unknown model 'not-configured'",
    ]
    assert svc.seed().inserted == ["ok"]
    svc.close()


def test_no_data_choice_is_validated_and_kept(store):
    svc = AlertService(_settings([]), store.engine, instance="t")
    bad = Rule(name="r", kind="error_rate", threshold=0.1, no_data="ignore")
    assert (
        svc.save_rule(bad, create=True)["no_data"].text("en")
        == "unknown no_data choice 'ignore'; one of: keep, resolve, zero, notify"
    )
    assert svc.save_rule(bad.with_settings(no_data="resolve"), create=True) == {}
    assert svc.rule("r").no_data == "resolve"
    svc.close()


def test_config_rules_keep_their_version_across_the_no_data_key():
    """Rules stored before `no_data` existed keep their config hash (and so their page
    edits) when the config does not set it; setting it is a new version."""
    import hashlib
    import json

    from chatwatch.alerts.model import config_hash

    before = {"name": "slow", "kind": "slow_response", "threshold": 10.0, "model": None, "severity": "warning"}
    before |= {"window_minutes": 5.0, "min_requests": 1, "for_minutes": 0.0, "enabled": True}
    old_hash = hashlib.sha256(json.dumps(before, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]
    assert config_hash(config.AlertRuleConfig(**before)) == old_hash
    assert config_hash(config.AlertRuleConfig(**before, no_data="resolve")) != old_hash


def test_a_store_from_before_no_data_upgrades_in_place(store_url):
    """Rules and events stored before migration 12 read as no_data "keep" and no reason."""
    import sqlalchemy as sa

    from chatwatch.store import migrations
    from chatwatch.store.db import create_engine
    from chatwatch.store.records import Store
    from chatwatch.store.schema import schema_migrations

    engine = create_engine(store_url)
    with migrations.write_transaction(engine) as conn:
        schema_migrations.create(conn)
        for module in migrations.discover():
            if module.VERSION < 12:
                module.upgrade(conn)
                conn.execute(schema_migrations.insert().values(version=module.VERSION, name=module.NAME, applied_us=0))
        old_rule = "name, kind, threshold, severity, window_minutes, min_requests, for_minutes, enabled, deleted, origin, edited"
        conn.execute(
            sa.text(
                f"INSERT INTO alert_rules ({old_rule}, updated_us, updated_by) "
                "VALUES ('old', 'error_rate', 0.1, 'warning', 5, 1, 0, true, false, 'page', false, 0, 'x')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO alert_events (rule, kind, severity, state, seq, threshold, firing_since_us, at_us, instance)"
                " VALUES ('old', 'error_rate', 'warning', 'firing', 0, 0.1, 1, 1, 'x')"
            )
        )
    engine.dispose()
    store = Store.open(store_url)
    svc = AlertService(_settings([]), store.engine, instance="t")
    try:
        assert 12 in store.migrations_applied
        assert svc.rule("old").no_data == "keep"
        assert [(e.rule, e.reason, e.samples) for e in svc.history()] == [("old", None, None)]
    finally:
        svc.close()
        store.close()


def test_alert_tables_match_the_migration(store):
    import sqlalchemy as sa

    from chatwatch.alerts.store import metadata

    inspector = sa.inspect(store.engine)
    for table in metadata.sorted_tables:
        assert {c["name"] for c in inspector.get_columns(table.name)} == {c.name for c in table.columns}, table.name
        assert {i.name for i in table.indexes} <= {i["name"] for i in inspector.get_indexes(table.name)}, table.name


def test_every_kind_is_measured_and_worded():
    from chatwatch.alerts import rules
    from chatwatch.alerts.model import KINDS
    from chatwatch.config import AlertRuleConfig

    assert set(rules._MEASURES) == set(KINDS) == set(AlertRuleConfig.model_fields["kind"].annotation.__args__)
    assert all(text.kind_label(k, lang) != k for k in KINDS for lang in ("es", "en"))


@pytest.mark.parametrize(
    "kind,threshold,ok",
    [
        ("error_rate", 0.05, True),
        ("error_rate", 0, False),
        ("error_rate", 1.5, False),
        ("consecutive_failures", 2, True),
        ("consecutive_failures", 2.5, False),
        ("consecutive_failures", 0, False),
        ("latency_p95", 0, False),
        ("ttft_p95", 1.5, True),
        ("slow_response", -1, False),
        ("daily_cost", 0, True),
        ("daily_cost", -1, False),
        ("memory", 512, True),
        ("no_success", 0, True),
    ],
)
def test_thresholds_by_kind(kind, threshold, ok):
    assert (validate(Rule(name="r", kind=kind, threshold=threshold)) == {}) is ok
