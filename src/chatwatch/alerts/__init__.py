"""Alerts: rules over the recorded requests, evaluated after each request and on a timer,
notified once per firing (claimed in the store) to the log, the app and apprise channels.

    model.py      the data passed around: Rule, Measurement, AlertState, AlertEvent
    defaults.py   the rules a fresh install starts with (frequent errors, slow responses)
    rules.py      what each rule kind measures and when it holds; rule validation
    text.py       words for alerts (es/en): titles, bodies, values with units, "no data"
    engine.py     the ok -> pending -> firing -> resolved state machine and its claims
    store.py      the alert tables
    channels.py   the log line, apprise URLs (masked), the Notification per event
    notify.py     delivery: a worker and bounded queue per channel, timeouts, retries
    evaluator.py  the background timer thread
    service.py    AlertService: the wiring (built and closed by chatwatch.runtime.Runtime)

Import what you need from its module (`from chatwatch.alerts.service import
AlertService`): this package re-exports nothing, so importing one submodule never drags
in the others and no submodule can import this package half-initialised.
"""
