"""AlertService: one per runtime, wiring rules, the engine, the channels and
the background evaluator together; and the operations the Alerts page needs.

chatwatch.runtime.Runtime builds and closes it (nothing attaches it from outside):

    service = AlertService(settings, store.engine, instance=...)
    service.seed()                      # config rules (and, on an empty store, the defaults)
    service.start()                     # the timer evaluator
    monitor.add_listener(service.on_record)
    service.flush(10)                   # CLI: evaluate now, deliver, then exit
    service.close()                     # threads joined, queues drained or given up
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import sqlalchemy as sa

from chatwatch.alerts import store
from chatwatch.alerts.channels import Channel, ChannelInfo, build_channels, log_event, notification_for
from chatwatch.alerts.engine import AlertEngine, Clock
from chatwatch.alerts.evaluator import Evaluator
from chatwatch.alerts.model import AlertEvent, AlertState, Measurement, Rule, now_us
from chatwatch.alerts.notify import DeliveryPolicy, Notifier, Outcome
from chatwatch.alerts.rules import validate as validate_rule
from chatwatch.alerts.text import Problem
from chatwatch.config import AlertRuleConfig, Settings

log = logging.getLogger("chatwatch.alerts")
DEFAULT_POLICY = DeliveryPolicy()


# The service whose timer evaluates each store in this process (rules live in the store,
# so one timer covers every runtime that shares it).
_timers: dict[str, AlertService] = {}
_timers_lock = threading.Lock()


def config_errors(settings: Settings) -> tuple[list[AlertRuleConfig], list[str]]:
    """The config rules that can be used, and a message for each that cannot (named like
    config errors: key, value, why)."""
    models = [m.id for m in settings.models]
    good: list[AlertRuleConfig] = []
    problems: list[str] = []
    seen: set[str] = set()
    for i, cfg in enumerate(settings.alerts.rules):
        where = f"alerts.rules[{i}] (name {cfg.name!r})"
        rule = Rule.from_config(cfg)
        errors = validate_rule(rule, known_models=models)
        if rule.name.strip() in seen:
            errors["name"] = Problem.of("err.duplicate")
        for field, why in errors.items():
            problems.append(f"{where}: {field} = {getattr(rule, field)!r}: {why.text('en')}")
        if not errors:
            good.append(cfg)
            seen.add(rule.name.strip())
    return good, problems


class AlertService:
    def __init__(
        self,
        settings: Settings,
        engine: sa.Engine,
        *,
        instance: str,
        clock: Clock = now_us,
        channels: Sequence[Channel] | None = None,
        policy: DeliveryPolicy = DEFAULT_POLICY,
        lang: str | None = None,
    ):
        self.settings = settings
        self.db = engine
        self.instance = instance
        self.clock = clock
        self.lang = lang or settings.app.language
        self.policy = policy
        built, self.channel_infos = build_channels(settings.alerts, timeout_s=policy.timeout_s)
        self.notifier = Notifier(built if channels is None else channels, policy)
        self.engine = AlertEngine(
            engine,
            instance=instance,
            renotify_minutes=settings.alerts.renotify_minutes,
            clock=clock,
            on_event=self._dispatch,
        )
        self.evaluator = Evaluator(self.evaluate_now, settings.alerts.evaluate_every_s)
        self.config_rules, self.config_problems = config_errors(settings)
        for problem in self.config_problems:
            log.error("alert rule ignored: %s", problem)
        self._closed = False
        self._seeded = False

    # --- lifecycle -----------------------------------------------------------------------

    def seed(self) -> store.SeedResult:
        result = store.seed_rules(self.db, self.config_rules, now_us=self.clock(), instance=self.instance)
        self._seeded = True
        return result

    def start(self) -> None:
        """Start the timer evaluator (idempotent). One timer per process and store: a newer
        service (a runtime rebuilt for an edited config) takes over from the older one."""
        if self._closed:
            return
        key = self.db.url.render_as_string(hide_password=True)
        with _timers_lock:
            previous = _timers.get(key)
            if previous is not None and previous is not self:
                previous.evaluator.stop()
            _timers[key] = self
            self.evaluator.start()

    def on_record(self, record) -> None:
        """Monitor listener (runs after the record is committed, off the request path):
        wake the evaluator, or evaluate here when it is not running."""
        if self._closed:
            return
        if self.evaluator.running:
            self.evaluator.wake()
        else:
            self.evaluate_now()

    def evaluate_now(self, at_us: int | None = None) -> list[AlertEvent]:
        if not self._seeded:  # the store was unavailable when the runtime started
            self.seed()
        return self.engine.evaluate(at_us)

    def flush(self, timeout: float = 10.0) -> bool:
        """Evaluate now and wait (at most `timeout` s) until notifications are delivered
        or given up: for `chatwatch ask` before it exits. True if all finished."""
        deadline = time.monotonic() + timeout
        try:
            self.evaluate_now()
        except Exception:
            log.exception("alert evaluation failed")
        return self.notifier.drain(max(0.0, deadline - time.monotonic()))

    def close(self, timeout: float = 5.0) -> None:
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        with _timers_lock:
            for key in [k for k, v in _timers.items() if v is self]:
                del _timers[key]
        self.evaluator.stop(timeout)
        self.notifier.close(max(0.0, deadline - time.monotonic()))

    def _dispatch(self, event: AlertEvent) -> None:
        log_event(event, self.lang)
        self.notifier.publish(notification_for(event, self.lang))

    # --- for the Alerts page -------------------------------------------------------------

    def rules(self, *, include_deleted: bool = False) -> list[Rule]:
        with self.db.connect() as conn:
            return store.load_rules(conn, include_deleted=include_deleted)

    def rule(self, name: str) -> Rule | None:
        with self.db.connect() as conn:
            rule = store.get_rule(conn, name)
        return None if rule is None or rule.deleted else rule

    def known_models(self) -> list[str]:
        return [m.id for m in self.settings.models]

    def validate(self, rule: Rule, *, create: bool) -> dict[str, Problem]:
        known = set(self.known_models())
        if not create:
            old = self.rule(rule.name)
            if old is not None and old.model:
                known.add(old.model)  # keep watching a model that left the config
        errors = validate_rule(rule, known_models=known)
        if create and "name" not in errors and self.rule(rule.name.strip()) is not None:
            errors["name"] = Problem.of("err.exists", value=rule.name.strip())
        return errors

    def save_rule(self, rule: Rule, *, create: bool) -> dict[str, Problem]:
        """Validate and store a rule from the page; returns problems by field (empty = saved)."""
        errors = self.validate(rule, create=create)
        if errors:
            return errors
        problem = store.save_rule(self.db, rule, create=create, now_us=self.clock(), instance=self.instance)
        if problem:
            return {"name": Problem.of(problem, value=rule.name.strip())}
        self.evaluator.wake()
        return {}

    def delete_rule(self, name: str) -> bool:
        done = store.delete_rule(self.db, name, now_us=self.clock(), instance=self.instance)
        self.evaluator.wake()
        return done

    def config_version(self, name: str) -> AlertRuleConfig | None:
        return next((c for c in self.config_rules if c.name.strip() == name), None)

    def reset_rule(self, name: str) -> bool:
        cfg = self.config_version(name)
        if cfg is None:
            return False
        store.reset_rule(self.db, cfg, now_us=self.clock(), instance=self.instance)
        self.evaluator.wake()
        return True

    def active(self, *, include_pending: bool = False) -> list[store.ActiveAlert]:
        with self.db.connect() as conn:
            return store.active(conn, include_pending=include_pending)

    def states(self) -> dict[str, AlertState]:
        with self.db.connect() as conn:
            return store.load_states(conn)

    def history(self, **filters) -> list[AlertEvent]:
        with self.db.connect() as conn:
            return store.history(conn, **filters)

    def last_event_id(self) -> int:
        with self.db.connect() as conn:
            return store.last_event_id(conn)

    def events_after(self, event_id: int, *, limit: int = 50) -> list[AlertEvent]:
        with self.db.connect() as conn:
            return store.events_after(conn, event_id, limit=limit)

    def measure(self, rule: Rule) -> Measurement:
        return self.engine.measure(rule)

    def latest(self, name: str) -> Measurement | None:
        """The rule's value from this process's last evaluation, if any (measures nothing:
        cheap enough for a banner on every page run)."""
        return self.engine.latest.get(name)

    def current(self, rule: Rule) -> Measurement:
        """The rule's value from the last evaluation (after each request and every
        evaluate_every_s); measured now only if it has none yet."""
        latest = self.engine.latest.get(rule.name)
        return latest if latest is not None else self.measure(rule)

    def channels(self) -> list[ChannelInfo]:
        return list(self.channel_infos)

    def send_test(self, timeout_s: float | None = None) -> list[Outcome]:
        """A test notification to the log and every channel now; each channel's outcome."""
        now = self.clock()
        event = AlertEvent(
            rule="test",
            kind="test",
            severity="info",
            state="test",
            value=None,
            threshold=0.0,
            model=None,
            scope=None,
            firing_since_us=now,
            at_us=now,
            instance=self.instance,
        )
        log_event(event, self.lang)
        return self.notifier.test(notification_for(event, self.lang), timeout_s)
