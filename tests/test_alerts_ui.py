"""The Alerts page, the alert banner and toasts, driven by Streamlit's AppTest against a
real store and a real local webhook."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from chatwatch import config
from chatwatch.store.records import Store
from chatwatch.ui.state import runtimes
from tests.fixtures.db import make_record

PAGE = str(Path(__file__).resolve().parents[1] / "src" / "chatwatch" / "ui" / "views" / "alerts.py")
NEW = "\x00new"
BANNER_SCRIPT = """
import streamlit as st
from chatwatch.ui.state import lang, runtime
from chatwatch.ui.widgets.alerts import render_alert_banner, toast_new_alerts

rt = runtime()
render_alert_banner(rt, lang())
new = toast_new_alerts(rt, lang())
st.caption(f"new alert events: {len(new)}")
"""


@pytest.fixture
def app_config(tmp_path, monkeypatch, webhook):
    path = tmp_path / "chatwatch.toml"
    path.write_text(f"""
[app]
language = "en"
[alerts]
notify = ["{webhook.url("/hook")}"]
renotify_minutes = 60
[[alerts.rules]]
name = "model down"
kind = "consecutive_failures"
threshold = 2
model = "smollm2"
severity = "critical"
[[alerts.rules]]
name = "errors"
kind = "error_rate"
threshold = 0.5
min_requests = 10
""")
    monkeypatch.setenv("CHATWATCH_CONFIG", str(path))
    return path  # the runtimes the pages built are closed by the `ui_runtimes` fixture


def _service(path: Path):
    return runtimes().get(config.load(path), role="app").alerts


def _write(path: Path, *statuses: str) -> None:
    store = Store.open(f"sqlite:///{path.parent / 'data' / 'chatwatch.db'}")
    now = datetime.now(UTC)
    for i, status in enumerate(statuses):
        store.write(make_record(status=status, model="smollm2", started_at=now - timedelta(seconds=len(statuses) - i)))
    store.close()


def test_banner_and_toasts_follow_alerts(app_config):
    at = AppTest.from_string(BANNER_SCRIPT, default_timeout=30).run()
    assert not at.exception
    assert len(at.error) == 0 and len(at.warning) == 0 and len(at.toast) == 0
    _write(app_config, "error", "error")
    _service(app_config).evaluate_now()  # (the background evaluator may have done it first)
    at.run()
    assert not at.exception
    banner = at.error[0].value
    assert "1 active alert(s)" in banner and "**model down**" in banner and "2 in a row (threshold 2)" in banner
    assert [t.value for t in at.toast] == ["Alert: model down — Consecutive failures: 2 in a row · smollm2"]
    at.run()
    assert len(at.toast) == 0 and "model down" in at.error[0].value  # toasted once; banner stays
    _write(app_config, "ok")
    _service(app_config).evaluate_now()
    at.run()
    assert len(at.error) == 0
    assert [t.value for t in at.toast] == ["Resolved: model down — Consecutive failures: 0 in a row · smollm2"]


def test_banner_in_spanish_and_warning_for_non_critical(app_config, monkeypatch):
    text = app_config.read_text().replace('language = "en"', 'language = "es"').replace('"critical"', '"warning"')
    app_config.write_text(text)
    _write(app_config, "error", "error")
    _service(app_config).evaluate_now()
    at = AppTest.from_string(BANNER_SCRIPT, default_timeout=30).run()
    assert not at.exception and len(at.error) == 0
    assert "1 alerta(s) activa(s)" in at.warning[0].value and "Fallos seguidos" in at.warning[0].value


def page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=30).run()


def test_alerts_page_shows_active_alerts_and_history(app_config):
    _write(app_config, "error", "error")
    _service(app_config).evaluate_now()
    at = page()
    assert not at.exception
    assert at.title[0].value == "Alerts"
    active = at.tabs[0].dataframe[0].value
    assert active["Rule"].tolist() == ["model down"] and active["State"].tolist() == ["firing"]
    assert active["Value"].tolist() == ["2 in a row"] and active["Severity"].tolist() == ["critical"]
    history = at.tabs[1].dataframe[0].value
    assert history[["Rule", "State", "Instance"]].values.tolist()[0][:2] == ["model down", "firing"]
    # Filters: no resolved events yet.
    at.multiselect(key="alerts_hist_states").select("resolved").run()
    assert "No events match these filters." in [i.value for i in at.tabs[1].info]
    rules = at.tabs[2].dataframe[0].value
    assert rules["Rule"].tolist() == ["errors", "model down"]
    assert rules["Origin"].tolist() == ["config", "config"]
    # 2 of the 10 requests "errors" needs: no data, not a 100 % made from two requests.
    assert rules["Current value"].tolist() == ["no data: only 2 request(s) in the last 5 min (10 needed)", "2 in a row"]


def test_rule_editor_validates_and_saves(app_config):
    at = page()
    at.text_input(key=f"alerts_name:{NEW}").input("budget")
    at.selectbox(key=f"alerts_kind:{NEW}").select("daily_cost").run()
    at.number_input(key=f"alerts_threshold:{NEW}:daily_cost").set_value(-5.0)
    at.button(key="alerts_save").click().run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any(
        "The rule was not saved:" in e and "Threshold: a daily cost cannot be negative (-5)" in e for e in errors
    ), errors
    assert _service(app_config).rule("budget") is None
    at.number_input(key=f"alerts_threshold:{NEW}:daily_cost").set_value(2.5)
    at.button(key="alerts_save").click().run()
    assert "Rule 'budget' saved." in [s.value for s in at.success]
    saved = _service(app_config).rule("budget")
    assert (saved.kind, saved.threshold, saved.origin, saved.model) == ("daily_cost", 2.5, "page", None)
    assert at.selectbox(key="alerts_edit_pick").value == "budget"
    # A duplicate name is refused with a clear message.
    at.selectbox(key="alerts_edit_pick").select(NEW).run()
    at.text_input(key=f"alerts_name:{NEW}").input("budget")
    at.button(key="alerts_save").click().run()
    assert any("Name: a rule named 'budget' already exists" in e.value for e in at.error)
    # Edit a config rule: it is marked edited and can go back to its config version.
    at.selectbox(key="alerts_edit_pick").select("model down").run()
    at.number_input(key="alerts_threshold:model down:consecutive_failures").set_value(4.0)
    at.button(key="alerts_save").click().run()
    rule = _service(app_config).rule("model down")
    assert rule.threshold == 4.0 and rule.edited
    assert "config (edited here)" in at.tabs[2].dataframe[0].value["Origin"].tolist()
    at.button(key="alerts_reset").click().run()
    assert _service(app_config).rule("model down").threshold == 2.0
    assert at.number_input(key="alerts_threshold:model down:consecutive_failures").value == 2.0
    # Delete.
    at.selectbox(key="alerts_edit_pick").select("budget").run()
    at.button(key="alerts_delete").click().run()
    assert "Rule 'budget' deleted." in [s.value for s in at.success]
    assert _service(app_config).rule("budget") is None


def test_send_test_notification(app_config, webhook):
    at = page()
    at.button(key="alerts_test").click().run()
    assert not at.exception
    label = f"json://127.0.0.1:{webhook.port}/hook"
    channels = at.tabs[3].dataframe[0].value
    assert channels.values.tolist() == [["notify", label, "ready"]]
    assert f"Delivered to {label}." in [s.value for s in at.success]
    assert webhook.received[0].path == "/hook"
    assert webhook.received[0].body["title"] == "[chatwatch] Test notification"


def test_config_problems_are_shown(app_config):
    app_config.write_text(
        app_config.read_text() + '\n[[alerts.rules]]\nname = "pct"\nkind = "error_rate"\nthreshold = 5\n'
    )
    at = page()
    assert any("Config rule ignored: alerts.rules[2] (name 'pct'): threshold = 5.0" in e.value for e in at.error)


def test_live_alerts_fragment(app_config):
    _write(app_config, "error", "error")
    _service(app_config).evaluate_now()
    script = """
from chatwatch.ui.state import lang, runtime
from chatwatch.ui.widgets.alerts import render_live_alerts
render_live_alerts(lang(), every_s=60)
"""
    at = AppTest.from_string(script, default_timeout=30).run()
    assert not at.exception
    assert "**model down**" in at.error[0].value


def test_a_rule_against_normal_shows_value_baseline_and_band(app_config):
    app_config.write_text(
        app_config.read_text()
        + '\n[[alerts.rules]]\nname = "slow vs normal"\nkind = "latency_p95_anomaly"\nthreshold = 2.0\n'
        + "window_minutes = 30\nmin_requests = 5\n"
    )
    # The same half hour on each of the past 7 days (about 1 s, a little slower each day
    # back) and now (about 5 s), well inside the window however long the page takes.
    now = datetime.now(UTC)
    latencies = {day: [(5.0 if day == 0 else 1.0 + 0.1 * day) + 0.01 * i for i in range(10)] for day in range(8)}
    store = Store.open(f"sqlite:///{app_config.parent / 'data' / 'chatwatch.db'}")
    store.write_many(
        make_record(started_at=now - timedelta(days=day, minutes=2 + 2 * i), latency_s=latency, model="smollm2")
        for day, values in latencies.items()
        for i, latency in enumerate(values)
    )
    store.close()
    _service(app_config).evaluate_now()
    # Recomputed with numpy and statistics: the past days' p95, their mean and 3 standard deviations.
    p95 = {day: float(np.percentile(values, 95)) for day, values in latencies.items()}
    past = [p95[day] for day in range(1, 8)]
    mean, sd = statistics.mean(past), statistics.stdev(past)
    value, baseline = f"{p95[0]:.3g} s", f"{mean:.3g} s"
    band = f"{mean - 3 * sd:.3g} s – {mean + 3 * sd:.3g} s"
    at = page()
    assert not at.exception
    rules = at.tabs[2].dataframe[0].value.set_index("Rule")
    row = rules.loc["slow vs normal"]
    assert (row["Current value"], row["Baseline"], row["Band"], row["Threshold"]) == (
        value,
        baseline,
        band,
        "2× normal",
    )
    assert (rules.loc["errors", "Baseline"], rules.loc["errors", "Band"]) == ("—", "—")  # a plain kind has none
    active = at.tabs[0].dataframe[0].value.set_index("Rule")
    assert active.loc["slow vs normal", "State"] == "firing"
    assert (active.loc["slow vs normal", "Value"], active.loc["slow vs normal", "Baseline"]) == (value, baseline)
    assert active.loc["slow vs normal", "Band"] == band
    # The editor offers the new kinds with their own default ratio and every no_data choice.
    at.selectbox(key=f"alerts_kind:{NEW}").select("traffic_drop").run()
    assert at.number_input(key=f"alerts_threshold:{NEW}:traffic_drop").value == 0.5
    assert at.selectbox(key=f"alerts_no_data:{NEW}").options == [
        "keep firing",
        "resolve as 'no data'",
        "treat as zero (rate 0, traffic 0)",
        "notify: no data is the alert",
    ]
