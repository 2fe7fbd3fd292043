"""The dashboard's circuit breakers: each model's state (closed; open with "next try in N s";
half-open), its failures in a row, last error and since when it is open. Read from the store
(reports/breakers.py), so every process shows the one shared state; cached a second, since
the live dashboard redraws every few seconds and a circuit changes within seconds."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import sqlalchemy as sa
import streamlit as st

from chatwatch.i18n import t
from chatwatch.reports.breakers import BreakerView, breaker_states
from chatwatch.ui.state import runtime
from chatwatch.ui.widgets.format import fmt_time

TTL_S = 1.0


@st.cache_data(ttl=TTL_S, max_entries=8, show_spinner=False)
def _states(url: str, models: tuple[str, ...], at: datetime) -> list[BreakerView]:
    """Cached per store URL (the key only: the runtime's store is the one for it), models and second."""
    return breaker_states(runtime().store.engine, models, at)


def state_text(view: BreakerView, lang: str) -> str:
    if view.state == "open":
        if not view.retry_in_s:
            return t("breakers.state.open_now", lang)
        return t("breakers.state.open", lang, seconds=math.ceil(view.retry_in_s))
    return t(f"breakers.state.{view.state}", lang)


def breakers_table(views: list[BreakerView], lang: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                t("breakers.col.model", lang): v.model,
                t("breakers.col.state", lang): state_text(v, lang),
                t("breakers.col.failures", lang): v.failures,
                t("breakers.col.last_error", lang): v.last_error or "—",
                t("breakers.col.since", lang): fmt_time(v.since) if v.since else "—",
            }
            for v in views
        ]
    )


def render_breakers(lang: str, now: datetime) -> None:
    """The section (a table once a circuit is not closed or has failures); nothing when no model is configured or the store cannot be read (the
    page already says why)."""
    rt = runtime()
    models = tuple(m.id for m in rt.settings.models if m.breaker.enabled)
    if not models:
        return
    try:
        # Keyed by the next whole second: never shows a longer wait than is left.
        second = now.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1 if now.microsecond else 0)
        views = _states(rt.settings.store_url, models, second)
    except sa.exc.SQLAlchemyError:
        return
    st.subheader(t("breakers.title", lang))
    st.caption(t("breakers.caption", lang))
    if all(v.state == "closed" and not v.failures for v in views):
        st.caption(t("breakers.all_closed", lang))  # one line, not a table of "closed, 0"
        return
    st.dataframe(breakers_table(views, lang), hide_index=True, width="stretch")
