"""The dashboard's spend forecast: spend so far this month and today, projected day-end and
month-end with their 95 % band and the method in words, a cumulative chart, and the same
per model. Reads reports/forecast.py through a short cache shared by sessions.

Budgets ([[budgets]]) that apply to a chart's scope are drawn on it as horizontal lines at
their limit, named: a monthly budget for all models on the total's cumulative chart, one
for a model on that model's; a daily budget on a chart of each day's spend (with today's
projected day-end), since a day's limit is compared with one day, not with the month's sum.
Budgets limited only in tokens have no line on a chart in dollars."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import plotly.graph_objects as go
import sqlalchemy as sa
import streamlit as st

from chatwatch.config import BudgetConfig
from chatwatch.i18n import t
from chatwatch.reports.forecast import Forecast, cost_forecast
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


def applicable(budgets: Sequence[BudgetConfig], scope: str, period: str) -> list[BudgetConfig]:
    """The dollar budgets of `period` whose scope is the chart's: all models for "total",
    the model's own for a model."""
    model = None if scope == "total" else scope
    return [b for b in budgets if b.period == period and b.model == model and b.limit_usd is not None]


def _budget_lines(fig: go.Figure, budgets: Sequence[BudgetConfig]) -> None:
    for b in budgets:
        fig.add_hline(
            y=b.limit_usd,
            line=dict(dash="dot", color="firebrick"),
            annotation_text=f"{b.name} ({fmt_usd(Decimal(str(b.limit_usd)))})",
            annotation_position="top left",
        )


def cumulative_chart(
    forecast: Forecast, lang: str, scope: str = "total", budgets: Sequence[BudgetConfig] = ()
) -> go.Figure:
    """The month's cumulative spend per day, then a dashed line to the projected month-end
    with its band; `budgets` (monthly, of this scope) as lines at their limits."""
    p = forecast.projection(scope)
    days, running, cum = [], 0.0, []
    for day, usd in forecast.days(scope):
        running += float(usd)
        days.append(datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1))
        cum.append(running)
    days[-1] = forecast.at  # today: spent so far, at now
    end = forecast.month_end
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=days, y=cum, mode="lines+markers", name=t("forecast.actual", lang)))
    low, high = p.month_end_band
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
            y=[cum[-1], p.month_end_usd],
            mode="lines",
            line=dict(dash="dash"),
            name=t("forecast.projected", lang),
        )
    )
    _budget_lines(fig, applicable(budgets, scope, "month"))
    title = t("forecast.chart", lang) if scope == "total" else t("forecast.chart_model", lang, model=scope)
    fig.update_layout(title=title, margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.2))
    fig.update_xaxes(tickformat="%d/%m")
    return fig


def daily_chart(forecast: Forecast, lang: str, scope: str, budgets: Sequence[BudgetConfig]) -> go.Figure:
    """Each day's spend this month (today so far), today's projected day-end with its band,
    and the daily budgets of this scope as lines at their limits."""
    p = forecast.projection(scope)
    days = [datetime(d.year, d.month, d.day, tzinfo=UTC) for d, _ in forecast.days(scope)]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=days, y=[float(usd) for _, usd in forecast.days(scope)], name=t("forecast.daily", lang)))
    low, high = p.day_end_band
    fig.add_trace(
        go.Scatter(
            x=[days[-1]],
            y=[p.day_end_usd],
            mode="markers",
            marker=dict(symbol="diamond", size=10),
            error_y=dict(type="data", symmetric=False, array=[high - p.day_end_usd], arrayminus=[p.day_end_usd - low]),
            name=t("forecast.day_end_point", lang, low=_usd(low), high=_usd(high)),
        )
    )
    _budget_lines(fig, applicable(budgets, scope, "day"))
    title = t("forecast.daily_chart", lang) if scope == "total" else t("forecast.daily_chart_model", lang, model=scope)
    fig.update_layout(title=title, margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.2))
    fig.update_xaxes(tickformat="%d/%m")
    return fig


def _charts(forecast: Forecast, lang: str, scope: str, budgets: Sequence[BudgetConfig], key: str) -> None:
    st.plotly_chart(cumulative_chart(forecast, lang, scope, budgets), width="stretch", key=key)
    if applicable(budgets, scope, "day"):
        st.plotly_chart(daily_chart(forecast, lang, scope, budgets), width="stretch", key=f"{key}_daily")


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
    budgets = list(runtime().settings.budgets)
    _charts(forecast, lang, "total", budgets, "chart_forecast")
    with st.expander(t("forecast.per_model", lang)):
        st.dataframe(projection_table(forecast, lang), hide_index=True, width="stretch", key="table_forecast")
        # A model's own chart where it has a budget of its own to compare with.
        for p in forecast.per_model:
            if applicable(budgets, p.scope, "month") or applicable(budgets, p.scope, "day"):
                _charts(forecast, lang, p.scope, budgets, f"chart_forecast_{p.scope}")
