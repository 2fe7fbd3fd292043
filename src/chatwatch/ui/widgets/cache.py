"""The dashboard's response-cache savings per model over the dashboard's filters: hits, the
hit rate (hits / attempts of the model, as reports/savings.py defines it and the caption
says), the dollars the hits saved (exact; a hit whose original call was unpriced saved an
unknown amount, shown as unpriced, never $0) and the seconds they saved. Shown only when a
model has the cache on or the range holds hits (a cache turned off since then)."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import sqlalchemy as sa
import streamlit as st

from chatwatch.config import Settings
from chatwatch.i18n import t
from chatwatch.reports.aggregate import Filters
from chatwatch.reports.savings import CacheSavings, cache_savings
from chatwatch.ui.state import runtime
from chatwatch.ui.widgets.format import NONE, fmt_cost, fmt_int, fmt_pct, fmt_seconds

TTL_S = 10  # as the rest of the dashboard's queries (ui/data.py)


@st.cache_data(ttl=TTL_S, max_entries=64, show_spinner=False)
def _savings(
    url: str,
    since: datetime | None,
    until: datetime | None,
    models: tuple[str, ...],
    statuses: tuple[str, ...],
    session_id: str | None,
) -> list[CacheSavings]:
    """Cached by the filters' values (the URL is only the cache key: the runtime's store is the one for it)."""
    f = Filters(since=since, until=until, models=models, statuses=statuses, session_id=session_id)
    return cache_savings(runtime().store, f)


def shown(settings: Settings, rows: list[CacheSavings]) -> list[CacheSavings]:
    """The models to show: those with the cache on, and any with hits in the range."""
    on = {m.id for m in settings.models if m.cache}
    return [r for r in rows if r.model in on or r.hits]


def saved_usd_text(r: CacheSavings, lang: str) -> str:
    return fmt_cost(r.saved_usd, r.unpriced_hits, r.hits, lang)


def saved_s_text(r: CacheSavings) -> str:
    return fmt_seconds(r.saved_s) if r.hits else NONE


def savings_table(rows: list[CacheSavings], lang: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                t("cache.col.model", lang): r.model,
                t("cache.col.hits", lang): fmt_int(r.hits),
                t("cache.col.attempts", lang): fmt_int(r.attempts),
                t("cache.col.hit_rate", lang): fmt_pct(r.hit_rate),
                t("cache.col.saved_usd", lang): saved_usd_text(r, lang),
                t("cache.col.saved_s", lang): saved_s_text(r),
            }
            for r in rows
        ]
    )


def render_cache_savings(settings: Settings, filters: Filters, lang: str) -> None:
    """The section; nothing when no model caches and the range has no hit, or when the
    store cannot be read (the page already says why). Hits can be in range with no model
    caching now (the cache was on before), so the query runs either way."""
    try:
        rows = _savings(
            settings.store_url,
            filters.since,
            filters.until,
            tuple(filters.models),
            tuple(filters.statuses),
            filters.session_id,
        )
    except sa.exc.SQLAlchemyError:
        return
    rows = shown(settings, rows)
    if not rows:
        return
    st.subheader(t("cache.title", lang))
    st.caption(t("cache.caption", lang))
    st.dataframe(savings_table(rows, lang), hide_index=True, width="stretch", key="table_cache_savings")
