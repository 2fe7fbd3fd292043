"""The alerts page's two read-only tabs: the alerts active now (firing or pending, with the
value that fired and, for a rule compared with normal, its baseline and band) and the
history of alert events, filtered by period, rule, state and severity.

Both only read the alert service; the rule editor (alert_editor.py) is where rules change."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from chatwatch.alerts.model import BASELINE_KINDS, SEVERITIES, US_PER_MIN
from chatwatch.alerts.service import AlertService
from chatwatch.alerts.text import event_value, firing_value, fmt_threshold, fmt_time
from chatwatch.i18n import t
from chatwatch.ui.widgets.alert_cells import (
    current,
    normal_columns,
    scope_label,
    severity_label,
    state_label,
    threshold_text,
)
from chatwatch.ui.widgets.filters import choose

PERIODS_MIN = {"1h": 60, "24h": 24 * 60, "7d": 7 * 24 * 60, "30d": 30 * 24 * 60, "all": None}


def render_active(svc: AlertService, lang: str) -> None:
    alerts = svc.active(include_pending=True)
    if not alerts:
        st.success(t("alerts.none_active", lang), icon="✅")
        return
    normal = any(a.rule.kind in BASELINE_KINDS for a in alerts)
    rows = [
        {
            t("alerts.col.rule", lang): a.rule.name,
            t("alerts.col.severity", lang): severity_label(a.rule.severity, lang),
            t("alerts.col.state", lang): state_label(a.state.state, lang),
            t("alerts.col.value", lang): firing_value(a.rule, a.state.value, svc.latest(a.rule.name), lang)
            if a.state.state == "firing"
            else "—",
            t("alerts.col.threshold", lang): threshold_text(a.rule, lang),
            **(
                normal_columns(a.rule, current(svc, a.rule) if a.rule.kind in BASELINE_KINDS else None, lang)
                if normal
                else {}
            ),
            t("alerts.col.scope", lang): scope_label(a.rule.model, lang),
            t("alerts.col.model", lang): a.state.model or "—",
            t("alerts.col.since", lang): fmt_time(
                a.state.firing_since_us if a.state.state == "firing" else a.state.pending_since_us
            ),
            t("alerts.col.notified", lang): fmt_time(a.state.last_notified_us if a.state.state == "firing" else None),
        }
        for a in alerts
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)


def render_history(svc: AlertService, lang: str) -> None:
    names = sorted({r.name for r in svc.rules(include_deleted=True)})
    c1, c2, c3, c4 = st.columns(4)
    period = c1.selectbox(
        t("alerts.history.period", lang),
        list(PERIODS_MIN),
        index=1,
        key="alerts_hist_period",
        format_func=lambda p: t(f"alerts.period.{p}", lang),
    )
    rules = c2.multiselect(t("alerts.history.rules", lang), names, key="alerts_hist_rules", **choose(lang))
    states = c3.multiselect(
        t("alerts.history.states", lang),
        ["firing", "renotify", "resolved"],
        key="alerts_hist_states",
        format_func=lambda s: state_label(s, lang),
        **choose(lang),
    )
    severities = c4.multiselect(
        t("alerts.history.severities", lang),
        list(SEVERITIES),
        key="alerts_hist_severities",
        format_func=lambda s: severity_label(s, lang),
        **choose(lang),
    )
    minutes = PERIODS_MIN[period]
    since = None if minutes is None else svc.clock() - minutes * US_PER_MIN
    events = svc.history(since_us=since, rules=rules, states=states, severities=severities, limit=1000)
    if not events:
        st.info(t("alerts.history.empty", lang))
        return
    rows = [
        {
            t("alerts.col.time", lang): fmt_time(e.at_us),
            t("alerts.col.rule", lang): e.rule,
            t("alerts.col.state", lang): state_label(e.state, lang),
            t("alerts.col.severity", lang): severity_label(e.severity, lang),
            t("alerts.col.value", lang): event_value(e, lang),
            t("alerts.col.threshold", lang): fmt_threshold(e.kind, e.threshold, lang, e.score),
            t("alerts.col.scope", lang): scope_label(e.scope, lang),
            t("alerts.col.model", lang): e.model or "—",
            t("alerts.col.instance", lang): e.instance,
        }
        for e in events
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)
