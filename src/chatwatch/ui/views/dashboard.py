"""Monitoring dashboard: KPIs, charts and tables over the shared store (every session and
process), with the response cache's savings, the circuits and the budgets, refreshed live in
a fragment while the page is shown; the spend forecast and exports of the view, drawn outside
that fragment (a refresh never swaps a download button under the user's click)."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from chatwatch.i18n import t
from chatwatch.ui.data import dashboard, model_options
from chatwatch.ui.state import lang, runtime, session_id, settings
from chatwatch.ui.widgets.alerts import render_live_alerts
from chatwatch.ui.widgets.breakers import render_breakers
from chatwatch.ui.widgets.budgets import render_budgets
from chatwatch.ui.widgets.cache import render_cache_savings
from chatwatch.ui.widgets.dashboard import render_dashboard, render_export
from chatwatch.ui.widgets.filters import dashboard_view
from chatwatch.ui.widgets.forecast import render_forecast
from chatwatch.ui.widgets.store_health import readable_store, store_health_banner

L = lang()
cfg = settings()
every_s = cfg.dashboard.refresh_seconds

st.title(t("dash.title", L))
render_live_alerts(L)
view = dashboard_view(L, model_options(cfg), session_id())
live = st.sidebar.toggle(t("dash.live", L, seconds=every_s), value=True, key="dash_live", help=t("dash.live.help", L))


# A fragment reruns alone on its timer, and only while this page is the one shown.
@st.fragment(run_every=every_s if live else None)
def board() -> None:
    now = datetime.now(UTC)
    filters = view.filters(now, align_s=every_s)
    store_health_banner(runtime(), L)
    with readable_store(L) as readable:
        data = dashboard(settings(), filters, now)  # a tick does not rerun the page: the config may have changed
    if not readable:
        return
    label = view.label(L) if live else f"{view.label(L)} · {t('dash.paused', L)}"
    render_dashboard(data, L, now, label)
    render_cache_savings(settings(), filters, L)  # over the same filters as the board
    render_breakers(L, now)  # inside the fragment: a circuit changes within seconds
    render_budgets(L, now)  # this period's spend, whatever the range: it moves with each request


board()
render_forecast(L, datetime.now(UTC))  # this month, whatever the range: outside the live fragment
render_export(lambda: runtime().store, lambda: view.filters(datetime.now(UTC), align_s=every_s), L, datetime.now(UTC))
