"""Rules against normal with the other baseline and the other score (alerts/baseline.py):
`baseline = "recent"` compares the window with the `baseline_windows` windows right before
it, `score = "z"` fires at `threshold` standard deviations from their mean.

Traffic without a daily cycle (steady Poisson arrivals, lognormal latency, 2 % errors) is
written to a real store and evaluated by the real engine (AlertService.evaluate_now with an
injected clock): "recent" needs no week of history, fires on a step change within the
window plus for_minutes, and stays quiet over a whole simulated day of noise; "z" fires at
the first minute whose z, recomputed here with numpy from the generated values (not read
back through chatwatch), reaches the threshold. Then the thresholds each score accepts, the
config keys from TOML and the Alerts page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats  # an independent binomial (scipy comes with choix)
from streamlit.testing.v1 import AppTest

from chatwatch import config
from chatwatch.alerts import text
from chatwatch.alerts.baseline import measure as measure_baseline
from chatwatch.alerts.model import Rule
from chatwatch.alerts.rules import validate
from chatwatch.alerts.service import config_errors
from chatwatch.store.record import RequestRecord
from chatwatch.store.records import Store, to_us
from tests.fixtures.db import make_record
from tests.test_alerts_anomaly import Alerts, minutes
from tests.test_alerts_ui import BANNER_SCRIPT, NEW, PAGE, _service, app_config  # noqa: F401  (a fixture)

DAY0 = datetime(2026, 11, 20, tzinfo=UTC)  # a store with no history before DAY0 - 3 h
WINDOW = 20  # minutes
N = 6  # baseline windows
FOR = 5  # minutes
MIN_REQUESTS = 8
RATIOS = {"latency_p95_anomaly": 1.5, "ttft_p95_anomaly": 1.5, "error_rate_anomaly": 3.0, "traffic_drop": 0.5}


def steady(
    start: datetime,
    end: datetime,
    *,
    seed: int,
    step_at: datetime | None = None,
    step: str | float | None = None,
    sigma: float = 0.15,
):
    """12 requests per 5 minutes (Poisson) at every hour of the day; latency lognormal
    around 1 s (log standard deviation `sigma`), TTFT a fifth of it; 2 % errors. From `step_at` on: "slow" multiplies latency
    by 3, "errors" fails 40 %, "drop" sends nothing, or a number multiplies latency by it."""
    rng = np.random.default_rng(seed)
    records, t = [], start
    while t < end:
        stepped = step_at is not None and t >= step_at
        n = 0 if stepped and step == "drop" else int(rng.poisson(12))
        for _ in range(n):
            at = t + timedelta(seconds=float(rng.uniform(0, 300)))
            on = step_at is not None and at >= step_at
            factor = 3.0 if on and step == "slow" else float(step) if on and isinstance(step, float) else 1.0
            latency = float(rng.lognormal(0, sigma)) * factor
            error = rng.random() < (0.4 if on and step == "errors" else 0.02)
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


def rule_config(kind: str, **fields) -> dict:
    return {
        "name": kind,
        "kind": kind,
        "threshold": RATIOS[kind],
        "window_minutes": WINDOW,
        "min_requests": MIN_REQUESTS,
        "for_minutes": FOR,
        "baseline": "recent",
        "baseline_windows": N,
        **fields,
    }


@pytest.fixture
def alerts():
    made: list[Alerts] = []

    def make(store, rules: list[dict]) -> Alerts:
        made.append(Alerts(store, rules))
        return made[-1]

    yield make
    for a in made:
        a.service.close()


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


def previous_windows(kind: str, records: list[RequestRecord], end: datetime) -> list[float]:
    """The values of the N windows right before the one ending at `end`, each with min_requests."""
    ends = [end - k * timedelta(minutes=WINDOW) for k in range(1, N + 1)]
    return [value_of(kind, rows) for rows in (window_of(records, e) for e in ends) if len(rows) >= MIN_REQUESTS]


def latency_z(records: list[RequestRecord], end: datetime) -> float:
    """The latency p95's z against the previous windows: numpy's mean and sample standard
    deviation, the deviation floored at 5 % of the mean (latency has no chance floor)."""
    past = previous_windows("latency_p95_anomaly", records, end)
    mean, sd = float(np.mean(past)), float(np.std(past, ddof=1))
    return (value_of("latency_p95_anomaly", window_of(records, end)) - mean) / max(sd, 0.05 * mean)


# --- (a) recent: a step change fires within the window plus for_minutes -----------------------

STEP_AT = DAY0 + timedelta(hours=9)


@pytest.mark.parametrize(
    ("kind", "step"),
    [
        ("latency_p95_anomaly", "slow"),
        ("ttft_p95_anomaly", "slow"),
        ("error_rate_anomaly", "errors"),
        ("traffic_drop", "drop"),
    ],
)
def test_recent_fires_on_a_step_change_without_any_past_day(store, alerts, kind, step):
    # Three hours of history in all: the previous 6 windows and a little more, no past day.
    records = steady(STEP_AT - timedelta(hours=3), STEP_AT + timedelta(hours=1), seed=50, step_at=STEP_AT, step=step)
    store.write_many(records)
    a = alerts(store, [rule_config(kind), rule_config(kind, name="daily", baseline="daily")])
    states = {}
    for t in minutes(STEP_AT - timedelta(minutes=30), STEP_AT + timedelta(minutes=WINDOW + FOR + 5)):
        events = a.at(t)
        states[t] = a.state(kind)
        if t <= STEP_AT:
            assert events == [] and states[t] == "ok", t
    pending = min(t for t, s in states.items() if s == "pending")
    fired = min(t for t, s in states.items() if s == "firing")
    assert STEP_AT < pending < fired <= STEP_AT + timedelta(minutes=WINDOW + FOR)
    assert fired - pending == timedelta(minutes=FOR)
    event = a.service.history(states=["firing"])[0]
    assert (event.rule, event.at_us, event.score) == (kind, to_us(fired), "ratio")
    assert event.value == pytest.approx(value_of(kind, window_of(records, fired)))
    m = a.measure(kind, fired)
    past = previous_windows(kind, records, fired)
    assert len(past) == N and m.baseline == pytest.approx(np.mean(past))
    if kind == "traffic_drop":
        assert event.value <= RATIOS[kind] * m.baseline and event.value < m.band[0]
    else:
        assert event.value >= RATIOS[kind] * m.baseline and event.value > m.band[1]
    # The same rule against the past days has nothing to compare with yet, and says so.
    daily = a.service.rule("daily")
    dm = a.measure("daily", fired)
    assert dm.no_data and text.current_text(daily, dm, "en").startswith("no data: not yet 3 of the past 7 days")
    assert a.state("daily") == "ok"


# --- (b) recent: steady traffic with noise never fires over a whole day --------------------------


def test_recent_never_fires_on_steady_noisy_traffic_over_a_day(sqlite_store, alerts):
    records = steady(DAY0 - timedelta(hours=3), DAY0 + timedelta(days=1), seed=60)
    sqlite_store.write_many(records)
    noon = DAY0 + timedelta(hours=12)
    # The noise is real: over the day the windows' latency p95 spans more than 10 %, their
    # traffic more than a third.
    ends = list(minutes(DAY0, DAY0 + timedelta(days=1) - timedelta(minutes=5), every=5))
    p95 = [value_of("latency_p95_anomaly", window_of(records, t)) for t in ends]
    counts = [len(window_of(records, t)) for t in ends]
    assert max(p95) / min(p95) > 1.1 and max(counts) / min(counts) > 1.33
    a = alerts(sqlite_store, [rule_config(kind, for_minutes=0) for kind in RATIOS])
    fired = []
    for t in minutes(DAY0, DAY0 + timedelta(days=1) - timedelta(minutes=5), every=5):
        fired += [(name, state, t.strftime("%H:%M")) for name, state in a.at(t)]
    assert fired == []
    # Measured throughout, not silently "no data": every kind had a baseline at noon, the
    # mean of the previous 6 windows recomputed here.
    for kind in RATIOS:
        m = a.measure(kind, noon)
        assert not m.no_data and m.baseline == pytest.approx(np.mean(previous_windows(kind, records, noon)))


def test_too_few_usable_recent_windows_is_no_data_and_says_which(sqlite_store):
    """Half the windows (3 of 6) need min_requests: with 2 there is no baseline."""
    end = DAY0 + timedelta(hours=1)
    w = timedelta(minutes=WINDOW)
    # The current window and the 2 windows before it are busy; the 4 before those empty.
    sqlite_store.write_many(
        make_record(started_at=end - k * w - timedelta(seconds=30 + 60 * i)) for k in range(3) for i in range(10)
    )
    r = Rule(name="r", kind="latency_p95_anomaly", threshold=2.0, window_minutes=WINDOW, min_requests=10)
    r = r.with_settings(baseline="recent", baseline_windows=N)
    with sqlite_store.engine.connect() as conn:
        m = measure_baseline(conn, r, to_us(end))
        assert (m.no_data, m.usable, m.samples) == (True, 2, 10)
        assert text.current_text(r, m, "en") == (
            "no data: only 2 of the previous 6 20 min windows have 10+ request(s) (3 needed)"
        )
        assert text.current_text(r, m, "es").startswith("sin datos: solo 2 de las 6 ventanas de 20 min anteriores")
    # One more busy window before them and there is a baseline.
    sqlite_store.write_many(make_record(started_at=end - 3 * w - timedelta(seconds=30 + 60 * i)) for i in range(10))
    with sqlite_store.engine.connect() as conn:
        assert not measure_baseline(conn, r, to_us(end)).no_data


# --- (c) z: fires at the computed z -------------------------------------------------------------


def test_z_fires_at_the_first_minute_its_z_reaches_the_threshold(store, alerts):
    step_at = DAY0 + timedelta(hours=2)
    # Noisy latency (the windows' own spread, not the 5 % floor, is the deviation) grows by
    # 80 %: the p95 climbs as the window fills, so the z crosses 4 part way.
    records = steady(
        step_at - timedelta(hours=3), step_at + timedelta(hours=1), seed=70, step_at=step_at, step=1.8, sigma=0.5
    )
    store.write_many(records)
    kind, threshold = "latency_p95_anomaly", 4.0
    a = alerts(store, [rule_config(kind, score="z", threshold=threshold, for_minutes=0)])
    checked = list(minutes(step_at - timedelta(minutes=10), step_at + timedelta(minutes=WINDOW + 5)))
    expected = {t: latency_z(records, t) for t in checked}
    first = min(t for t in checked if expected[t] >= threshold)
    past = previous_windows(kind, records, first)
    assert np.std(past, ddof=1) > 0.05 * np.mean(past)
    assert first > step_at and expected[first - timedelta(minutes=1)] < threshold
    for t in (t for t in checked if t <= first):
        events = a.at(t)
        assert a.measure(kind, t).z == pytest.approx(expected[t]), t
        assert events == ([(kind, "firing")] if t == first else []), t
    event = a.service.history(states=["firing"])[0]
    assert (event.at_us, event.score, event.threshold) == (to_us(first), "z", threshold)
    # The band is where it fires: mean + 4 deviations.
    m = a.measure(kind, first)
    mean, sd = float(np.mean(past)), max(float(np.std(past, ddof=1)), 0.05 * float(np.mean(past)))
    assert m.band == pytest.approx((mean - threshold * sd, mean + threshold * sd))
    assert text.fmt_threshold(kind, threshold, "en", "z") == "z ≥ 4"
    assert text.fmt_threshold("traffic_drop", 3.0, "en", "z") == "z ≤ −3"


def _flat(store, end: datetime, *, past_latency: float, now_latency: float, errors_now: int = 0) -> None:
    """N + 1 windows of 20 requests each: the past ones identical, the current one as given."""
    w = timedelta(minutes=WINDOW)
    store.write_many(
        make_record(
            started_at=end - k * w - timedelta(seconds=30 + 50 * i),
            latency_s=past_latency if k else now_latency,
            status="error" if k == 0 and i < errors_now else "ok",
            error_type="provider_error" if k == 0 and i < errors_now else None,
        )
        for k in range(N + 1)
        for i in range(20)
    )


def test_a_flat_baseline_does_not_make_every_wiggle_an_infinite_z(sqlite_store):
    end = DAY0 + timedelta(hours=5)
    _flat(sqlite_store, end, past_latency=1.0, now_latency=1.04, errors_now=2)
    latency = Rule(name="l", kind="latency_p95_anomaly", threshold=3.0, window_minutes=WINDOW, min_requests=10)
    latency = latency.with_settings(baseline="recent", baseline_windows=N, score="z")
    errors = latency.with_settings(name="e", kind="error_rate_anomaly")
    with sqlite_store.engine.connect() as conn:
        lm, em = measure_baseline(conn, latency, to_us(end)), measure_baseline(conn, errors, to_us(end))
    # Every past window is exactly 1 s (standard deviation 0): the deviation is 5 % of it.
    assert (lm.baseline, lm.z, lm.holds) == (pytest.approx(1.0), pytest.approx(0.04 / 0.05), False)
    # No past error at all: the deviation is the band's chance floor, a third of the way from
    # the baseline floor (1 %) to the fewest errors of 20 that 1 % gives less than 0.1 % of
    # the time (scipy's binomial, not chatwatch's).
    k = next(k for k in range(21) if stats.binom.sf(k - 1, 20, 0.01) < 0.001)
    assert em.baseline == 0.0 and em.z == pytest.approx((2 / 20) / ((k / 20) / 3))
    assert em.holds == (em.z >= 3.0)


# --- (d) thresholds, config, words ------------------------------------------------------------


def test_each_score_validates_its_own_threshold():
    z = Rule(name="r", kind="latency_p95_anomaly", threshold=3.0, score="z")
    assert validate(z) == {} and validate(z.with_settings(kind="traffic_drop")) == {}  # z 3 below normal
    assert validate(z.with_settings(threshold=0.5)) == {}  # half a deviation: allowed, if noisy
    for bad in (0.0, -2.0, float("inf"), 101.0):
        assert list(validate(z.with_settings(threshold=bad))) == ["threshold"], bad
    assert validate(z.with_settings(threshold=0.0))["threshold"].text("en") == (
        "with score 'z' the threshold is a number of standard deviations above 0 and at most 100 "
        "(3 = the usual band's edge), not 0"
    )
    ratio = z.with_settings(score="ratio")
    assert list(validate(ratio.with_settings(threshold=0.5))) == ["threshold"]  # a ratio must exceed 1
    assert list(validate(ratio.with_settings(kind="traffic_drop"))) == ["threshold"]  # 3x is no drop
    recent = ratio.with_settings(threshold=2.0, baseline="recent")
    assert validate(recent) == {}
    assert list(validate(recent.with_settings(baseline_windows=1))) == ["baseline_windows"]
    # 8 windows of a day reach back further than the raw rows a daily baseline reads (7 days).
    too_far = recent.with_settings(window_minutes=1440, baseline_windows=8)
    assert validate(too_far)["baseline_windows"].text("en") == "8 windows of 1440 min reach back more than 7 days"
    assert validate(too_far.with_settings(baseline_windows=7)) == {}
    assert list(validate(recent.with_settings(baseline="weekly", score="sigma"))) == ["baseline", "score"]


def test_config_loads_baseline_and_score_and_refuses_bad_ones_by_name(tmp_path):
    path = tmp_path / "chatwatch.toml"
    path.write_text("""
[[alerts.rules]]
name = "slow vs the last two hours"
kind = "latency_p95_anomaly"
threshold = 3
window_minutes = 20
baseline = "recent"
baseline_windows = 6
score = "z"
[[alerts.rules]]
name = "quiet"
kind = "traffic_drop"
threshold = 0.5
baseline = "recent"
[[alerts.rules]]
name = "as before"
kind = "error_rate_anomaly"
threshold = 2
[[alerts.rules]]
name = "z too small"
kind = "error_rate_anomaly"
threshold = 0
score = "z"
""")
    good, problems = config_errors(config.load(path))
    assert [(c.name, c.baseline, c.baseline_windows, c.score, c.threshold) for c in good] == [
        ("slow vs the last two hours", "recent", 6, "z", 3.0),
        ("quiet", "recent", 6, "ratio", 0.5),
        ("as before", "daily", 6, "ratio", 2.0),
    ]
    assert problems == [
        "alerts.rules[3] (name 'z too small'): threshold = 0.0: with score 'z' the threshold is a number of "
        "standard deviations above 0 and at most 100 (3 = the usual band's edge), not 0"
    ]
    rule = {"name": "x", "kind": "traffic_drop", "threshold": 0.5}
    for key, bad in (("baseline_windows", 1), ("baseline", "weekly"), ("score", "sigma")):
        with pytest.raises(config.ConfigError, match=key):
            config.parse({"alerts": {"rules": [{**rule, key: bad}]}})


# --- (e) the Alerts page and the banner ---------------------------------------------------------


def test_the_page_shows_baseline_and_score_and_the_editor_saves_them(app_config):  # noqa: F811
    app_config.write_text(
        app_config.read_text()
        + '\n[[alerts.rules]]\nname = "slow vs recent"\nkind = "latency_p95_anomaly"\nthreshold = 3\n'
        + 'window_minutes = 10\nmin_requests = 5\nbaseline = "recent"\nbaseline_windows = 4\nscore = "z"\n'
    )
    # Four 10-minute windows of about 1 s before now, and 5 s now: far beyond z 3.
    now = datetime.now(UTC)
    values = {k: [(5.0 if k == 0 else 1.0 + 0.05 * k) + 0.01 * i for i in range(8)] for k in range(5)}
    store = Store.open(f"sqlite:///{app_config.parent / 'data' / 'chatwatch.db'}")
    store.write_many(
        make_record(started_at=now - timedelta(minutes=10 * k + 1 + i), latency_s=v, model="smollm2")
        for k, vs in values.items()
        for i, v in enumerate(vs)
    )
    store.close()
    _service(app_config).evaluate_now()
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    rules = at.tabs[2].dataframe[0].value.set_index("Rule")
    row = rules.loc["slow vs recent"]
    assert (row["Compared with"], row["Score"], row["Threshold"]) == ("previous 4 windows", "z-score", "z ≥ 3")
    assert row["Current value"].startswith("5.") and ", z = " in row["Current value"]
    assert (rules.loc["errors", "Compared with"], rules.loc["errors", "Score"]) == ("—", "—")
    # The banner says which normal and which score.
    shown = AppTest.from_string(BANNER_SCRIPT, default_timeout=30).run()
    banner = shown.warning[0].value
    assert "(previous 4 windows, by z-score)" in banner and "threshold z ≥ 3" in banner
    # The editor shows the rule's choices ...
    at.selectbox(key="alerts_edit_pick").select("slow vs recent").run()
    pick = "slow vs recent"
    assert at.selectbox(key=f"alerts_baseline:{pick}").value == "recent"
    assert at.selectbox(key=f"alerts_score:{pick}").value == "z"
    assert at.number_input(key=f"alerts_baseline_windows:{pick}").value == 4
    # ... and a new rule scored by z starts at 3, refuses 0 and saves 2.5 with "recent".
    at.selectbox(key="alerts_edit_pick").select(NEW).run()
    at.text_input(key=f"alerts_name:{NEW}").input("drop vs recent")
    at.selectbox(key=f"alerts_kind:{NEW}").select("traffic_drop").run()
    at.selectbox(key=f"alerts_score:{NEW}").select("z").run()
    at.selectbox(key=f"alerts_baseline:{NEW}").select("recent").run()
    assert at.number_input(key=f"alerts_threshold:{NEW}:traffic_drop:z").value == 3.0
    assert not at.number_input(key=f"alerts_baseline_windows:{NEW}").disabled
    at.number_input(key=f"alerts_threshold:{NEW}:traffic_drop:z").set_value(0.0)
    at.button(key="alerts_save").click().run()
    assert "with score 'z' the threshold is a number of standard deviations" in at.error[-1].value
    at.number_input(key=f"alerts_threshold:{NEW}:traffic_drop:z").set_value(2.5)
    at.number_input(key=f"alerts_baseline_windows:{NEW}").set_value(8)
    at.button(key="alerts_save").click().run()
    assert not at.exception
    saved = _service(app_config).rule("drop vs recent")
    assert (saved.baseline, saved.baseline_windows, saved.score, saved.threshold) == ("recent", 8, "z", 2.5)
    rules = at.tabs[2].dataframe[0].value.set_index("Rule")
    assert (rules.loc["drop vs recent", "Compared with"], rules.loc["drop vs recent", "Threshold"]) == (
        "previous 8 windows",
        "z ≤ −2.5",
    )
