"""The alert state machine, shared by every process through the store.

    ok ──holds──▶ pending ──held for_minutes──▶ firing ──clear──▶ resolved ──holds──▶ ...
       (for_minutes = 0 goes straight to firing)     └─ every renotify interval: renotify

`holds` needs enough data (min_requests); `clear` needs the value back below the threshold
by a margin (hysteresis, see rules.HYSTERESIS), so a value hovering at the threshold does
not flap. A disabled or deleted rule resolves (reason "off").

No data (the window holds fewer than min_requests requests, or none) is not a recovery: a
quiet night must not read "error rate back to normal". Like Grafana's "No Data" handling,
each rule says what a firing alert does then (`no_data`):

* "keep" (default): it stays firing with its last measured value; re-notifications say
  "no data: no requests in the last N min" instead of a value. It resolves only once
  enough requests come back and are clear.
* "resolve": it resolves at once as "resolved: no data" (reason no_data, no value).
* "zero": the window measures 0 instead (rules.py, baseline.py): error rate 0, latency 0,
  traffic 0, so traffic_drop can fire and every other kind clears (a firing alert resolves
  as recovered). An anomaly rule with no baseline yet still has no data: it keeps.
* "notify": no data is itself the condition: it goes pending, fires after for_minutes
  ("no data: no requests in the last N min", reason no_data) and stays firing until
  requests come back and are clear. Data that holds keeps it firing as usual.

A pending alert that loses its data goes back to ok (nothing was notified yet), except
under "notify", where no data holds.

Each transition is claimed in the database (store.claim_transition): of several processes
or replicas evaluating the same rule at once, one moves it and stores the event, and only
that one notifies. Evaluation only reads unless a rule changes state.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from chatwatch.alerts import store
from chatwatch.alerts.model import BASELINE_KINDS, US_PER_MIN, AlertEvent, AlertState, Measurement, Rule, now_us
from chatwatch.alerts.rules import measure as measure_rule

log = logging.getLogger("chatwatch.alerts")

Clock = Callable[[], int]  # microseconds since the epoch (UTC)
EventSink = Callable[[AlertEvent], None]


@dataclass(frozen=True)
class Step:
    """What one evaluation wants to do with one rule's state."""

    changes: dict
    event: AlertEvent | None


class AlertEngine:
    def __init__(
        self,
        engine: sa.Engine,
        *,
        instance: str,
        renotify_minutes: float,
        clock: Clock = now_us,
        on_event: EventSink | None = None,
    ):
        self.engine = engine
        self.instance = instance
        self.renotify_us = int(renotify_minutes * US_PER_MIN)
        self.clock = clock
        self.on_event = on_event
        # One evaluation at a time per process (the timer, a record and flush() may overlap);
        # other processes are kept apart by the claims.
        self._lock = threading.Lock()
        # The last evaluation's value of each rule, for pages to show without measuring again.
        self.latest: dict[str, Measurement | None] = {}

    def evaluate(self, at_us: int | None = None) -> list[AlertEvent]:
        """Evaluate every rule at `at_us` (default: the clock); returns the events this
        process claimed, after handing each to `on_event`."""
        with self._lock:
            now = self.clock() if at_us is None else at_us
            with self.engine.connect() as conn:
                rules = store.load_rules(conn, include_deleted=True)
                states = store.load_states(conn)
                missing = [r.name for r in rules if r.name not in states]
                measured = self._measure_all(conn, rules, states, now)
            self.latest = measured
            if missing:
                store.ensure_states(self.engine, missing, now_us=now)
                with self.engine.connect() as conn:
                    states = store.load_states(conn)
            claimed: list[AlertEvent] = []
            for rule in rules:
                if rule.name not in measured or rule.name not in states:
                    continue
                step = self.step(rule, states[rule.name], measured[rule.name], now)
                if step is None:
                    continue
                won = store.claim_transition(self.engine, states[rule.name], step.changes, step.event)
                if isinstance(won, AlertEvent):
                    claimed.append(won)
            # Still under the lock (handlers only log and queue): an evaluation that waited
            # for this one (flush) then finds these events already queued for delivery.
            for event in claimed:
                if self.on_event is not None:
                    try:
                        self.on_event(event)
                    except Exception:
                        log.exception("alert event handler failed for %r", event.rule)
        return claimed

    def _measure_all(
        self, conn: sa.Connection, rules: list[Rule], states: dict[str, AlertState], now: int
    ) -> dict[str, Measurement | None]:
        """Measurements of active rules, and None for inactive rules still pending or
        firing (so they resolve). A rule that cannot be measured is skipped this round."""
        out: dict[str, Measurement | None] = {}
        for rule in rules:
            state = states.get(rule.name)
            if not rule.active:
                if state is not None and state.state in ("pending", "firing"):
                    out[rule.name] = None
                continue
            try:
                out[rule.name] = measure_rule(conn, rule, now)
            except sa.exc.SQLAlchemyError:
                log.exception("alert rule %r could not be measured", rule.name)
                conn.rollback()  # PostgreSQL refuses further statements in a failed transaction
        return out

    def measure(self, rule: Rule, at_us: int | None = None) -> Measurement:
        """The rule's current value (for display; changes nothing)."""
        with self.engine.connect() as conn:
            return measure_rule(conn, rule, self.clock() if at_us is None else at_us)

    def step(self, rule: Rule, state: AlertState, m: Measurement | None, now: int) -> Step | None:
        """The transition from `state` given measurement `m` (None: the rule is off)."""
        holds = m is not None and (m.holds or (m.no_data and rule.no_data == "notify"))
        clear = m is None or m.clear
        s = state.state
        if s in ("ok", "resolved"):
            if not holds:
                return None
            if rule.for_minutes <= 0:
                return self._fire(rule, m, now)
            return Step({"state": "pending", "pending_since_us": now, "updated_us": now}, None)
        if s == "pending":
            if not holds:
                return Step({"state": "ok", "pending_since_us": None, "updated_us": now}, None)
            since = state.pending_since_us if state.pending_since_us is not None else now
            if now - since >= int(rule.for_minutes * US_PER_MIN):
                return self._fire(rule, m, now)
            return None
        if s == "firing":
            fired = state.firing_since_us if state.firing_since_us is not None else now
            model = state.model if m is None or m.model is None else m.model
            if m is None:  # disabled or deleted
                return self._resolve(rule, None, model, fired, now, reason="off")
            if m.no_data:
                if rule.no_data == "resolve":
                    return self._resolve(rule, m, model, fired, now, reason="no_data")
                return self._renotify(rule, state, m, model, fired, now)
            if clear:
                return self._resolve(rule, m, model, fired, now, reason="recovered")
            return self._renotify(rule, state, m, model, fired, now)
        return None

    def _resolve(
        self, rule: Rule, m: Measurement | None, model: str | None, fired: int, now: int, *, reason: str
    ) -> Step:
        value = None if m is None else m.value
        return Step(
            {"state": "resolved", "resolved_us": now, "value": value, "updated_us": now},
            self._event(rule, "resolved", m, model, fired, now, seq=0, reason=reason),
        )

    def _renotify(
        self, rule: Rule, state: AlertState, m: Measurement, model: str | None, fired: int, now: int
    ) -> Step | None:
        last = state.last_notified_us if state.last_notified_us is not None else fired
        if now - last < self.renotify_us:
            return None
        seq = state.notify_seq + 1
        changes = {"last_notified_us": now, "notify_seq": seq, "model": model, "updated_us": now}
        if not m.no_data:  # no data keeps the last measured value
            changes["value"] = m.value
        reason = "no_data" if m.no_data else None
        return Step(changes, self._event(rule, "renotify", m, model, fired, now, seq=seq, reason=reason))

    def _fire(self, rule: Rule, m: Measurement, now: int) -> Step:
        return Step(
            {
                "state": "firing",
                "firing_since_us": now,
                "last_notified_us": now,
                "notify_seq": 0,
                "pending_since_us": None,
                "resolved_us": None,
                "value": m.value,
                "model": m.model,
                "updated_us": now,
            },
            self._event(rule, "firing", m, m.model, now, now, seq=0, reason="no_data" if m.no_data else None),
        )

    def _event(
        self,
        rule: Rule,
        state: str,
        m: Measurement | None,
        model: str | None,
        fired: int,
        now: int,
        *,
        seq: int,
        reason: str | None = None,
    ) -> AlertEvent:
        no_data = m is not None and m.no_data
        return AlertEvent(
            rule=rule.name,
            kind=rule.kind,
            severity=rule.severity,
            state=state,
            value=None if m is None else m.value,
            threshold=rule.threshold,
            model=model,
            scope=rule.model,
            firing_since_us=fired,
            at_us=now,
            instance=self.instance,
            seq=seq,
            reason=reason,
            samples=m.samples if no_data else None,
            window_minutes=rule.window_minutes if no_data else None,
            min_requests=rule.min_requests if no_data else None,
            score=rule.score if rule.kind in BASELINE_KINDS else None,
        )
