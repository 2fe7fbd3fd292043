"""Alerts page: active alerts, the history of alert events with filters, the rule editor
(with validation) and the notification channels with a "send test notification" button.
Rules compared with normal (alerts/baseline.py) show their baseline and band beside the
value, from the last evaluation, so a user sees what "normal" the alert compared with, and
which baseline (the same time on the past 7 days, or the previous N windows) and score
(ratio or z) they use, in the rule list and the editor.

The page only sets itself up, shows the config's problems and the editor's last outcome,
and lays out the four tabs; each tab is a widget (ui/widgets/alert_*.py) given the alert
service and the language."""

from __future__ import annotations

import streamlit as st

from chatwatch.i18n import t
from chatwatch.ui.state import lang, runtime
from chatwatch.ui.widgets.alert_channels import render_channels
from chatwatch.ui.widgets.alert_history import render_active, render_history
from chatwatch.ui.widgets.alert_rules import render_rules
from chatwatch.ui.widgets.alerts import toast_new_alerts

L = lang()
rt = runtime()
svc = rt.alerts

st.title(t("alerts.title", L))
toast_new_alerts(rt, L)
for message in svc.config_problems:
    st.error(t("alerts.config_problem", L, message=message))
flash = st.session_state.pop("alerts_flash", None)  # set by the rule editor's buttons
if flash:
    st.success(flash)
tabs = st.tabs([t(f"alerts.tab.{name}", L) for name in ("active", "history", "rules", "channels")])
with tabs[0]:
    render_active(svc, L)
with tabs[1]:
    render_history(svc, L)
with tabs[2]:
    render_rules(svc, L)
with tabs[3]:
    render_channels(svc, rt.settings.alerts, L)
