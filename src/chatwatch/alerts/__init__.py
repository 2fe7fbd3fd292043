"""Alerts: rules over the recorded requests, evaluated after each request and on a timer,
notified once per firing (claimed in the store) to the log, the app and apprise channels.

    model.py      the data passed around: Rule, Measurement, AlertState, AlertEvent
    rules.py      what each rule kind measures and when it holds; rule validation
    text.py       words for alerts (es/en): titles, bodies, values with units, errors
    engine.py     the ok -> pending -> firing -> resolved state machine and its claims
    store.py      the alert tables
    channels.py   the log line, apprise URLs (masked), message text per event
    notify.py     delivery: a worker and bounded queue per channel, timeouts, retries
    evaluator.py  the background timer thread
    service.py    AlertService and ensure_alerts(runtime): the wiring
"""

from chatwatch.alerts.model import AlertEvent, AlertState, Measurement, Rule
from chatwatch.alerts.notify import DeliveryPolicy
from chatwatch.alerts.service import AlertService, ensure_alerts

__all__ = ["AlertEvent", "AlertService", "AlertState", "DeliveryPolicy", "Measurement", "Rule", "ensure_alerts"]
