"""Rules that compare with normal, end to end: the four baseline kinds configured like any
rule, evaluated by the real engine (AlertService.evaluate_now with an injected clock) on
generated traffic with a daily cycle written to a real store. Every day at noon traffic
triples and latency grows by half: a fixed threshold trips on that peak, the baseline
kinds never do; a step change (slower, failing, or no traffic) fires within the window
plus for_minutes. Then each `no_data` choice, for a plain kind and a baseline kind, and
the config: rules of the new kinds load from TOML, a bad ratio is refused by name.

Expected values (p95, error rate, counts, baselines) are recomputed here from the
generated records with numpy and plain Python, not read back through chatwatch."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from chatwatch import config
from chatwatch.alerts import text
from chatwatch.alerts.baseline import measure as measure_baseline
from chatwatch.alerts.model import Measurement, Rule
from chatwatch.alerts.rules import validate
from chatwatch.alerts.service import AlertService, config_errors
from chatwatch.store.record import RequestRecord
from chatwatch.store.records import to_us
from tests.fixtures.db import make_record
from tests.test_alerts_rules import Recorder

DAY = timedelta(days=1)
EVAL_DAY = datetime(2026, 11, 20, tzinfo=UTC)  # the day evaluated; the 8 days before it are history
WINDOW = 20  # minutes
FOR = 5  # minutes
MIN_REQUESTS = 8
# Ratios that a doubled p95, a tripled error rate or a halved traffic reach, and the normal
# noon peak (x1.5 latency, x3 traffic, on every day) does not once compared with the same hour.
THRESHOLDS = {"latency_p95_anomaly": 1.5, "ttft_p95_anomaly": 1.5, "error_rate_anomaly": 3.0, "traffic_drop": 0.5}


def cycle(t: datetime) -> float:
    """0 at night, 1 at noon (UTC), every day."""
    h = t.hour + t.minute / 60
    return math.exp(-(((h - 12) / 2.5) ** 2))


def traffic(
    start: datetime, end: datetime, *, seed: int, step_at: datetime | None = None, step: str | None = None
) -> list[RequestRecord]:
    """Poisson arrivals, 6 per 5 minutes at night and 18 at noon; latency lognormal around
    1 s at night and 1.5 s at noon, TTFT a fifth of it; 2 % errors. From `step_at` on:
    "slow" triples latency, "errors" fails 40 %, "drop" sends nothing, "stop" too."""
    rng = np.random.default_rng(seed)
    records, t = [], start
    while t < end:
        stepped = step_at is not None and t >= step_at
        n = 0 if stepped and step in ("drop", "stop") else int(rng.poisson(6 * (1 + 2 * cycle(t))))
        for _ in range(n):
            at = t + timedelta(seconds=float(rng.uniform(0, 300)))
            latency = (1 + 0.5 * cycle(at)) * float(rng.lognormal(0, 0.15)) * (3 if stepped and step == "slow" else 1)
            error = rng.random() < (0.4 if stepped and step == "errors" else 0.02)
            records.append(
                make_record(
                    started_at=at,
                    latency_s=latency,
                    ttft_s=latency / 5,
                    status="error" if error else "ok",
                    error_type="provider_error" if error else None,
                )
            )
        t += timedelta(minutes=5)
    return records


def history_around(first: datetime, last: datetime, *, seed: int, **step) -> list[RequestRecord]:
    """The hours first..last of the evaluated day and of each of the 8 days before it (all
    a baseline reads), the step (if any) on the evaluated day only."""
    records = []
    for day in range(8, -1, -1):
        shift = day * DAY
        records += traffic(first - shift, last - shift, seed=seed + day, **(step if day == 0 else {}))
    return records


def rule_config(kind: str, **fields) -> dict:
    return {
        "name": kind,
        "kind": kind,
        "threshold": THRESHOLDS.get(kind, 0.5),
        "window_minutes": WINDOW,
        "min_requests": MIN_REQUESTS,
        "for_minutes": FOR,
        **fields,
    }


class Alerts:
    """AlertService on a store, with a clock the test moves."""

    def __init__(self, store, rules: list[dict], *, renotify_minutes: float = 60):
        self.now = 0
        self.channel = Recorder()
        settings = config.parse(
            {"app": {"language": "en"}, "alerts": {"renotify_minutes": renotify_minutes, "rules": rules}}
        )
        self.service = AlertService(
            settings, store.engine, instance="test:1", clock=lambda: self.now, channels=[self.channel]
        )
        assert self.service.config_problems == []
        self.service.seed()

    def at(self, t: datetime) -> list[tuple[str, str]]:
        self.now = to_us(t)
        return [(e.rule, e.state) for e in self.service.evaluate_now()]

    def state(self, name: str) -> str:
        return {a.rule.name: a.state.state for a in self.service.active(include_pending=True)}.get(name, "ok")

    def measure(self, name: str, t: datetime):
        return self.service.engine.measure(self.service.rule(name), to_us(t))


@pytest.fixture
def alerts():
    made: list[Alerts] = []

    def make(store, rules: list[dict], **kw) -> Alerts:
        made.append(Alerts(store, rules, **kw))
        return made[-1]

    yield make
    for a in made:
        a.service.close()


def minutes(start: datetime, end: datetime, every: int = 1):
    t = start
    while t <= end:
        yield t
        t += timedelta(minutes=every)


# --- independent recomputation ---------------------------------------------------------------


def window_of(records: list[RequestRecord], end: datetime) -> list[RequestRecord]:
    return [r for r in records if end - timedelta(minutes=WINDOW) < r.started_at <= end]


def value_of(kind: str, rows: list[RequestRecord]) -> float:
    if kind == "latency_p95_anomaly":
        return float(np.percentile([r.latency_s for r in rows], 95))
    if kind == "ttft_p95_anomaly":
        return float(np.percentile([r.ttft_s for r in rows], 95))
    if kind == "error_rate_anomaly":
        return sum(r.status == "error" for r in rows) / len(rows)
    return float(len(rows))


def baseline_of(kind: str, records: list[RequestRecord], end: datetime) -> float:
    past = [window_of(records, end - d * DAY) for d in range(1, 8)]
    return statistics.mean(value_of(kind, rows) for rows in past if len(rows) >= MIN_REQUESTS)


# --- (a) a step change fires within the window plus for_minutes ---------------------------------

STEP_AT = EVAL_DAY + timedelta(hours=10)


@pytest.mark.parametrize(
    ("kind", "step"),
    [
        ("latency_p95_anomaly", "slow"),
        ("ttft_p95_anomaly", "slow"),
        ("error_rate_anomaly", "errors"),
        ("traffic_drop", "drop"),
    ],
)
def test_a_step_change_fires_within_for_minutes(store, alerts, kind, step):
    first, last = STEP_AT - timedelta(hours=1), STEP_AT + timedelta(hours=1)
    records = history_around(first, last, seed=10, step_at=STEP_AT, step=step)
    store.write_many(records)
    a = alerts(store, [rule_config(kind)])
    states = {}
    for t in minutes(STEP_AT - timedelta(minutes=30), STEP_AT + timedelta(minutes=WINDOW + FOR + 5)):
        events = a.at(t)
        states[t] = a.state(kind)
        if t <= STEP_AT:
            assert events == [] and states[t] == "ok", t  # normal traffic before the step
    pending = min(t for t, s in states.items() if s == "pending")
    fired = min(t for t, s in states.items() if s == "firing")
    # The window fills with the change, then the condition must hold for_minutes.
    assert STEP_AT < pending < fired <= STEP_AT + timedelta(minutes=WINDOW + FOR)
    assert fired - pending == timedelta(minutes=FOR)  # evaluated every minute: fires at the first chance
    event = a.service.history(states=["firing"])[0]
    assert (event.rule, event.at_us, event.reason) == (kind, to_us(fired), None)
    assert event.value == pytest.approx(value_of(kind, window_of(records, fired)))
    m = a.measure(kind, fired)
    assert m.baseline == pytest.approx(baseline_of(kind, records, fired))
    low, high = m.band
    if kind == "traffic_drop":
        assert event.value <= THRESHOLDS[kind] * m.baseline and event.value < low
    else:
        assert event.value >= THRESHOLDS[kind] * m.baseline and event.value > high
    assert a.service.notifier.drain(5)
    assert a.channel.messages[0].title == f"[chatwatch] WARNING ALERT: {kind}"


# --- (b) the normal daily peak never fires -------------------------------------------------------


def test_the_normal_daily_peak_never_fires_over_a_whole_day(sqlite_store, alerts):
    records = traffic(EVAL_DAY - 8 * DAY, EVAL_DAY + DAY, seed=20)
    sqlite_store.write_many(records)
    noon, night = EVAL_DAY + timedelta(hours=12, minutes=10), EVAL_DAY + timedelta(hours=3, minutes=10)
    # The peak is real: about 3x the requests and 1.5x the p95 latency of the night.
    assert 2.4 < len(window_of(records, noon)) / len(window_of(records, night)) < 3.6
    p95 = [value_of("latency_p95_anomaly", window_of(records, t)) for t in (noon, night)]
    assert 1.3 < p95[0] / p95[1] < 1.7
    rules = [rule_config(kind, for_minutes=0) for kind in THRESHOLDS]
    # A fixed threshold between night and noon p95 fires on that peak, which is why these
    # kinds exist.
    rules.append({"name": "fixed", "kind": "latency_p95", "threshold": 1.6, "window_minutes": WINDOW})
    a = alerts(sqlite_store, rules)
    fired = []
    for t in minutes(EVAL_DAY, EVAL_DAY + DAY - timedelta(minutes=5), every=5):
        fired += [(name, state, t.strftime("%H:%M")) for name, state in a.at(t)]
    assert [f for f in fired if f[0] != "fixed"] == []
    fixed = [f for f in fired if f[0] == "fixed"]
    assert fixed and fixed[0][1] == "firing" and "09:00" < fixed[0][2] < "12:00"
    # Measured throughout (not silently "no data"): every baseline kind had a value and a band at noon.
    for kind in THRESHOLDS:
        m = a.measure(kind, noon)
        assert not m.no_data and m.baseline == pytest.approx(baseline_of(kind, records, noon))


# --- (c) no_data, for a plain kind and a baseline kind ---------------------------------------

T = EVAL_DAY + timedelta(hours=10)
ERRORS = {"name": "errors", "kind": "error_rate", "threshold": 0.5, "window_minutes": 5, "min_requests": 4}


def _write_at(store, t: datetime, *statuses: str) -> None:
    store.write_many([make_record(started_at=t + timedelta(seconds=i), status=s) for i, s in enumerate(statuses)])


# What a firing alert does once its window empties: (event, state after, reason, value).
EMPTIED = {
    "keep": ([], "firing", None, None),
    "notify": ([], "firing", None, None),
    "resolve": (["resolved"], "resolved", "no_data", None),
    "zero": (["resolved"], "resolved", "recovered", 0.0),
}


@pytest.mark.parametrize("mode", list(EMPTIED))
def test_no_data_when_a_firing_error_rate_empties(store, alerts, mode):
    _write_at(store, T - timedelta(minutes=2), "error", "error", "error", "ok")
    a = alerts(store, [{**ERRORS, "no_data": mode}])
    assert a.at(T) == [("errors", "firing")]  # 3/4
    events, state, reason, value = EMPTIED[mode]
    assert [s for _, s in a.at(T + timedelta(minutes=10))] == events
    assert a.state("errors") == ("ok" if state == "resolved" else state)
    if events:
        e = a.service.history()[0]
        assert (e.reason, e.value) == (reason, value)
    else:  # kept: the re-notification says why there is no fresh value
        assert a.at(T + timedelta(minutes=62)) == [("errors", "renotify")]
        assert a.service.history()[0].reason == "no_data"


def test_notify_fires_on_no_data_for_for_minutes_then_recovers(store, alerts):
    a = alerts(store, [{**ERRORS, "no_data": "notify", "for_minutes": 5}])
    assert a.at(T) == [] and a.state("errors") == "pending"  # no requests at all
    assert a.at(T + timedelta(minutes=4)) == []
    assert a.at(T + timedelta(minutes=5)) == [("errors", "firing")]
    fired = a.service.history()[0]
    assert (fired.reason, fired.value, fired.samples, fired.window_minutes) == ("no_data", None, 0, 5)
    assert a.service.notifier.drain(5)
    message = a.channel.messages[0]
    assert message.title == "[chatwatch] WARNING NO DATA: errors"
    assert message.body.startswith("Error rate on all models: no data: no requests in the last 5 min.")
    shown = [r for r in a.service.active() if r.rule.name == "errors"][0]
    assert a.service.latest("errors").no_data and shown.state.value is None
    _write_at(store, T + timedelta(minutes=6), "ok", "ok", "ok", "ok")
    assert a.at(T + timedelta(minutes=7)) == [("errors", "resolved")]
    assert (a.service.history()[0].reason, a.service.history()[0].value) == ("recovered", 0.0)


@pytest.mark.parametrize("mode", ["keep", "resolve", "zero"])
def test_other_choices_never_fire_on_no_data(store, alerts, mode):
    a = alerts(store, [{**ERRORS, "no_data": mode}])
    assert [a.at(T + timedelta(minutes=m)) for m in (0, 5, 30)] == [[], [], []]
    m = a.measure("errors", T)
    assert (m.no_data, m.value) == ((False, 0.0) if mode == "zero" else (True, None))


SLOW_AT = EVAL_DAY + timedelta(hours=10)
STOP_AT = SLOW_AT + timedelta(minutes=40)


@pytest.mark.parametrize("mode", list(EMPTIED))
def test_no_data_when_a_firing_latency_anomaly_empties(sqlite_store, alerts, mode):
    first, last = SLOW_AT - timedelta(hours=1), SLOW_AT + timedelta(hours=2)
    records = [r for r in history_around(first, last, seed=30, step_at=SLOW_AT, step="slow") if r.started_at < STOP_AT]
    sqlite_store.write_many(records)
    kind = "latency_p95_anomaly"
    a = alerts(sqlite_store, [rule_config(kind, for_minutes=0, no_data=mode)])
    assert a.at(SLOW_AT) == []
    assert a.at(SLOW_AT + timedelta(minutes=WINDOW)) == [(kind, "firing")]
    empty = STOP_AT + timedelta(minutes=WINDOW + 1)
    events, state, reason, value = EMPTIED[mode]
    assert [s for _, s in a.at(empty)] == events
    assert a.state(kind) == ("ok" if state == "resolved" else state)
    if events:
        e = a.service.history()[0]
        assert (e.reason, e.value) == (reason, value)
    else:
        latest = a.service.latest(kind)
        assert latest.no_data and latest.samples == 0
        assert a.service.history()[0].state == "firing"


def test_notify_on_a_baseline_kind_fires_when_traffic_stops(sqlite_store, alerts):
    stop = EVAL_DAY + timedelta(hours=10)
    sqlite_store.write_many(
        history_around(stop - timedelta(hours=1), stop + timedelta(hours=1), seed=40, step_at=stop, step="stop")
    )
    kind = "latency_p95_anomaly"
    a = alerts(sqlite_store, [rule_config(kind, no_data="notify")])
    states = {t: (a.at(t), a.state(kind))[1] for t in minutes(stop, stop + timedelta(minutes=WINDOW + FOR + 2))}
    pending = min(t for t, s in states.items() if s == "pending")
    fired = min(t for t, s in states.items() if s == "firing")
    assert fired - pending == timedelta(minutes=FOR) and fired <= stop + timedelta(minutes=WINDOW + FOR)
    e = a.service.history()[0]
    assert (e.state, e.reason, e.value, e.min_requests) == ("firing", "no_data", None, MIN_REQUESTS)
    assert e.samples < MIN_REQUESTS


def test_zero_without_a_baseline_is_still_no_data(sqlite_store):
    """0 against nothing says nothing: a baseline kind with no past days stays no data."""
    sqlite_store.write_many([make_record(started_at=T - timedelta(minutes=i)) for i in range(3)])
    r = Rule(
        name="r", kind="latency_p95_anomaly", threshold=2.0, window_minutes=WINDOW, min_requests=10, no_data="zero"
    )
    with sqlite_store.engine.connect() as conn:
        m = measure_baseline(conn, r, to_us(T))
    assert (m.no_data, m.value, m.holds, m.clear) == (True, None, False, False)


# --- (e) config -------------------------------------------------------------------------------


def test_config_loads_the_new_kinds_and_refuses_a_bad_ratio_by_name(tmp_path):
    path = tmp_path / "chatwatch.toml"
    path.write_text("""
[[alerts.rules]]
name = "slow vs normal"
kind = "latency_p95_anomaly"
threshold = 2.0
window_minutes = 30
min_requests = 10
no_data = "notify"
[[alerts.rules]]
name = "quiet"
kind = "traffic_drop"
threshold = 0.5
no_data = "zero"
[[alerts.rules]]
name = "errors vs normal"
kind = "error_rate_anomaly"
threshold = 0.5
[[alerts.rules]]
name = "ttft vs normal"
kind = "ttft_p95_anomaly"
threshold = 1.5
[[alerts.rules]]
name = "more traffic?"
kind = "traffic_drop"
threshold = 2
""")
    settings = config.load(path)
    good, problems = config_errors(settings)
    assert [(c.name, c.kind, c.no_data) for c in good] == [
        ("slow vs normal", "latency_p95_anomaly", "notify"),
        ("quiet", "traffic_drop", "zero"),
        ("ttft vs normal", "ttft_p95_anomaly", "keep"),
    ]
    assert problems == [
        "alerts.rules[2] (name 'errors vs normal'): threshold = 0.5: against normal the threshold is a ratio above "
        "1 (2 = twice the baseline), not 0.5",
        "alerts.rules[4] (name 'more traffic?'): threshold = 2.0: a traffic drop is a fraction of normal between 0 "
        "and 1, both excluded (0.5 = half), not 2",
    ]
    with pytest.raises(config.ConfigError, match="no_data"):
        config.parse(
            {"alerts": {"rules": [{"name": "x", "kind": "traffic_drop", "threshold": 0.5, "no_data": "never"}]}}
        )


def test_the_page_refuses_a_bad_ratio_too():
    for kind, bad in (("latency_p95_anomaly", 1.0), ("traffic_drop", 0.0), ("traffic_drop", float("inf"))):
        errors = validate(Rule(name="r", kind=kind, threshold=bad))
        assert list(errors) == ["threshold"], (kind, bad)
    assert validate(Rule(name="r", kind="error_rate_anomaly", threshold=3.0)) == {}
    spanish = validate(Rule(name="r", kind="traffic_drop", threshold=1.5))["threshold"].text("es")
    assert spanish.startswith("una caída del tráfico se mide como fracción de lo normal")


# --- words -------------------------------------------------------------------------------------


def test_words_for_a_missing_baseline_and_a_band_beyond_what_a_value_can_be():
    r = Rule(name="r", kind="error_rate_anomaly", threshold=3.0, window_minutes=30, min_requests=10)
    no_baseline = Measurement(value=None, samples=12, holds=False, clear=False, no_data=True)
    assert text.current_text(r, no_baseline, "en") == (
        "no data: not yet 3 of the past 7 days with 10+ request(s) in this 30 min window"
    )
    few_now = Measurement(value=None, samples=4, holds=False, clear=False, no_data=True)
    assert text.current_text(r, few_now, "en") == "no data: only 4 request(s) in the last 30 min (10 needed)"
    assert text.current_text(r.with_settings(kind="traffic_drop"), few_now, "es").startswith(
        "sin datos: aún no hay 3 de los últimos 7 días"
    )  # traffic_drop never lacks a current value: no data is the baseline's
    # A band is shown within what the value can be: no error rate below 0 % or above 100 %.
    m = Measurement(value=0.5, samples=20, holds=True, clear=False, baseline=0.02, band=(-0.03, 1.05))
    assert (text.baseline_text(r, m, "en"), text.band_text(r, m, "en")) == ("2 %", "0 % – 100 %")
    assert text.normal_text(r, m, "es") == "lo normal 2 %, banda 0 % – 100 %"
    assert text.fmt_threshold("error_rate_anomaly", 3.0, "en") == "3× normal"
    assert text.fmt_value("traffic_drop", 47.2857, "en") == "47.3 request(s)"
    plain = Rule(name="p", kind="error_rate", threshold=0.1)
    assert text.normal_text(plain, Measurement(value=0.5, samples=20, holds=True, clear=False), "en") is None
