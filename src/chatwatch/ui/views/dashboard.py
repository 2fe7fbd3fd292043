"""Monitoring dashboard: KPIs, charts and tables over the shared store (every session and
process), refreshed live in a fragment while the page is shown; exports of the view."""
from __future__ import annotations

from datetime import datetime, timezone

import streamlit as st

from chatwatch.i18n import t
from chatwatch.ui import dashboard_i18n  # noqa: F401 - registers the strings
from chatwatch.ui.alerts_banner import render_live_alerts
from chatwatch.ui.common import lang, runtime, session_id, settings
from chatwatch.ui.dashboard_data import dashboard, model_options, open_store
from chatwatch.ui.dashboard_filters import dashboard_view
from chatwatch.ui.dashboard_views import render_dashboard

L = lang()
cfg = settings()
store = open_store(cfg)
every_s = cfg.dashboard.refresh_seconds

st.title(t("dash.title", L))
render_live_alerts(runtime(), L)
view = dashboard_view(L, model_options(cfg), session_id())
live = st.sidebar.toggle(t("dash.live", L, seconds=every_s), value=True, key="dash_live",
                         help=t("dash.live.help", L))


# A fragment reruns alone on its timer, and only while this page is the one shown.
@st.fragment(run_every=every_s if live else None)
def board() -> None:
    now = datetime.now(timezone.utc)
    filters = view.filters(now, align_s=every_s)
    data = dashboard(cfg, filters, now)
    label = view.label(L) if live else f"{view.label(L)} · {t('dash.paused', L)}"
    render_dashboard(data, store, L, now, label)


board()
