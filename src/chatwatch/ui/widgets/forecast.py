"""The dashboard's spend forecast: spend so far this month and today, projected day-end and
month-end with their 95 % band and the method in words, a cumulative chart, and the same
per model. Reads reports/forecast.py through a short cache shared by sessions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import plotly.graph_objects as go
import sqlalchemy as sa
import streamlit as st

from chatwatch.i18n import t
from chatwatch.reports.forecast import Forecast, Projection, cost_forecast
from chatwatch.ui.state import runtime
from chatwatch.ui.widgets.format import fmt_usd

TTL_S = 60  # a projection moves slowly; one bootstrap a minute is plenty


@st.cache_data(ttl=TTL_S, max_entries=8, show_spinner=False)
def _forecast(url: str, minute: datetime) -> Forecast:
    """Cached per store URL and minute (the URL is only the cache key: the runtime's store
    is the one for it)."""
    return cost_forecast(runtime().store, minute)


def load_forecast(now: datetime) -> Forecast:
    rt = runtime()
    return _forecast(rt.settings.store_url, now.astimezone(UTC).replace(second=0, microsecond=0))


def _usd(x: float) -> str:
    return f"${x:,.4f}" if x < 100 else f"${x:,.2f}"


def projection_table(forecast: Forecast, lang: str) -> pd.DataFrame:
    rows = []
    for p in ([forecast.total] if forecast.total else []) + forecast.per_model:
        rows.append(
            {
                t("forecast.col.scope", lang): t("forecast.col.total", lang) if p.scope == "total" else p.scope,
                t("forecast.month_spent", lang): fmt_usd(p.month_spent_usd),
                t("forecast.today_spent", lang): fmt_usd(p.today_spent_usd),
                t("forecast.day_end", lang): _usd(p.day_end_usd),
                t("forecast.month_end", lang): _usd(p.month_end_usd),
                t("forecast.col.low", lang): _usd(p.month_end_band[0]),
                t("forecast.col.high", lang): _usd(p.month_end_band[1]),
            }
        )
    return pd.DataFrame(rows)


def cumulative_chart(forecast: Forecast, lang: str) -> go.Figure:
    """The month's cumulative spend per day, then a dashed line to the projected month-end
    with its band."""
    total: Projection = forecast.total
    days, running, cum = [], 0.0, []
    for day, usd in forecast.month_days:
        running += float(usd)
        days.append(datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1))
        cum.append(running)
    days[-1] = forecast.at  # today: spent so far, at now
    end = forecast.month_end
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=days, y=cum, mode="lines+markers", name=t("forecast.actual", lang)))
    low, high = total.month_end_band
    fig.add_trace(
        go.Scatter(
            x=[forecast.at, end, end, forecast.at],
            y=[cum[-1], high, low, cum[-1]],
            fill="toself",
            line=dict(width=0),
            opacity=0.2,
            name=t("forecast.band", lang, low=_usd(low), high=_usd(high)),
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[forecast.at, end],
            y=[cum[-1], total.month_end_usd],
            mode="lines",
            line=dict(dash="dash"),
            name=t("forecast.projected", lang),
        )
    )
    fig.update_layout(
        title=t("forecast.chart", lang), margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.2)
    )
    fig.update_xaxes(tickformat="%d/%m")
    return fig


def render_forecast(lang: str, now: datetime) -> None:
    """The section; nothing when the store cannot be read (the page already says why)."""
    try:
        forecast = load_forecast(now)
    except sa.exc.SQLAlchemyError:
        return
    st.subheader(t("forecast.title", lang))
    total = forecast.total
    if total is None:
        st.info(t("forecast.none", lang))
        return
    cols = st.columns(4)
    cols[0].metric(t("forecast.month_spent", lang), fmt_usd(total.month_spent_usd))
    cols[1].metric(t("forecast.today_spent", lang), fmt_usd(total.today_spent_usd))
    cols[2].metric(
        t("forecast.day_end", lang),
        _usd(total.day_end_usd),
        help=t("forecast.band", lang, low=_usd(total.day_end_band[0]), high=_usd(total.day_end_band[1])),
    )
    cols[3].metric(
        t("forecast.month_end", lang),
        _usd(total.month_end_usd),
        help=t("forecast.band", lang, low=_usd(total.month_end_band[0]), high=_usd(total.month_end_band[1])),
    )
    st.caption(t("forecast.method", lang, days=total.days_observed))
    if total.unpriced_requests:
        st.caption(t("forecast.unpriced", lang, n=f"{total.unpriced_requests:,}"))
    if forecast.unpriced_models:
        st.caption(t("forecast.unpriced_models", lang, models=", ".join(forecast.unpriced_models)))
    st.plotly_chart(cumulative_chart(forecast, lang), width="stretch", key="chart_forecast")
    with st.expander(t("forecast.per_model", lang)):
        st.dataframe(projection_table(forecast, lang), hide_index=True, width="stretch", key="table_forecast")
