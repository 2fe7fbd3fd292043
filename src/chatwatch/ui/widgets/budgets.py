"""The dashboard's budgets: each [[budgets]] entry's current period (its UTC day or month),
what was spent against its limit, how much of it is used, what happens at the limit and
when it resets, with a bar per budget that turns into a warning once a notify_at threshold
is crossed and into an error at the limit.

The spend is the store's own booking (store/budgets.py: every attempt under the budget
settles its exact cost there), read through `Budgets.status`, so every process and replica
shows the same figure the request path enforces; it does not follow the dashboard's time
filter, because a budget's period is fixed. A model without a price books no dollars (its
cost is unknown, not $0): the section says how many of the period's requests were unpriced.
Cached a few seconds: the live dashboard redraws often and a budget moves with each request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import sqlalchemy as sa
import streamlit as st

from chatwatch.config import BudgetConfig
from chatwatch.i18n import t
from chatwatch.reports.queries import Filters, summary
from chatwatch.resilience.budget import BudgetStatus
from chatwatch.ui.state import runtime
from chatwatch.ui.widgets.format import NONE, fmt_pct, fmt_time, fmt_usd

TTL_S = 2.0


@dataclass(frozen=True)
class BudgetView:
    status: BudgetStatus
    config: BudgetConfig
    unpriced: int  # the period's requests under the budget without a price (no dollars booked)

    @property
    def level(self) -> str:
        """ "over" at the limit, "warn" past the lowest notify_at fraction, else "ok"."""
        used = self.status.used
        if used is None:
            return "ok"
        if used >= 1:
            return "over"
        if self.config.notify_at and used >= min(self.config.notify_at):
            return "warn"
        return "ok"


@st.cache_data(ttl=TTL_S, max_entries=8, show_spinner=False)
def _views(url: str, at: datetime) -> list[BudgetView]:
    """Cached per store URL (the key only: the runtime's store is the one for it) and second."""
    rt = runtime()
    configs = {b.name: b for b in rt.settings.budgets}
    out = []
    for s in rt.budgets.status(at):  # the request path's own budgets, read from the store
        models = (s.model,) if s.model else ()
        unpriced = summary(rt.store, Filters(since=s.period_start, until=at, models=models)).unpriced
        out.append(BudgetView(s, configs[s.name], unpriced))
    return out


def spent_text(s: BudgetStatus) -> str:
    return fmt_usd(s.spent_usd)


def limit_text(s: BudgetStatus) -> str:
    return NONE if s.limit_usd is None else fmt_usd(Decimal(str(s.limit_usd)))


def tokens_text(s: BudgetStatus) -> str:
    return f"{s.spent_tokens:,}" if s.limit_tokens is None else f"{s.spent_tokens:,} / {s.limit_tokens:,}"


def action_text(c: BudgetConfig, lang: str) -> str:
    if c.action == "fallback":
        return t("budgets.action.fallback", lang, model=c.fallback)
    return t(f"budgets.action.{c.action}", lang)


def scope_text(s: BudgetStatus, lang: str) -> str:
    return s.model or t("budgets.all_models", lang)


def budgets_table(views: list[BudgetView], lang: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                t("budgets.col.name", lang): v.status.name,
                t("budgets.col.period", lang): t(f"budgets.period.{v.status.period}", lang),
                t("budgets.col.model", lang): scope_text(v.status, lang),
                t("budgets.col.spent", lang): spent_text(v.status),
                t("budgets.col.limit", lang): limit_text(v.status),
                t("budgets.col.tokens", lang): tokens_text(v.status),
                t("budgets.col.used", lang): fmt_pct(v.status.used),
                t("budgets.col.action", lang): action_text(v.config, lang),
                t("budgets.col.resets", lang): fmt_time(v.status.resets_at),
                t("budgets.col.reserved", lang): fmt_usd(v.status.reserved_usd),
                t("budgets.col.unpriced", lang): f"{v.unpriced:,}",
            }
            for v in views
        ]
    )


def render_budgets(lang: str, now: datetime) -> None:
    """The section; nothing when no budget is configured or the store cannot be read (the
    page already says why)."""
    rt = runtime()
    if not rt.settings.budgets:
        return
    try:
        second = now.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1 if now.microsecond else 0)
        views = _views(rt.settings.store_url, second)
    except sa.exc.SQLAlchemyError:
        return
    st.subheader(t("budgets.title", lang))
    for v in views:
        s = v.status
        used = s.used or 0.0
        text = t(
            "budgets.bar",
            lang,
            name=s.name,
            period=t(f"budgets.period.{s.period}", lang),
            model=scope_text(s, lang),
            spent=spent_text(s) if s.limit_usd is not None else t("budgets.tokens", lang, n=f"{s.spent_tokens:,}"),
            limit=limit_text(s) if s.limit_usd is not None else t("budgets.tokens", lang, n=f"{s.limit_tokens:,}"),
            used=fmt_pct(s.used),
        )
        st.progress(min(max(used, 0.0), 1.0), text=text)
        if v.level == "over":
            st.error(
                t("budgets.over", lang, name=s.name, action=action_text(v.config, lang), resets=fmt_time(s.resets_at))
            )
        elif v.level == "warn":
            crossed = max(f for f in v.config.notify_at if f <= used)
            st.warning(t("budgets.warn", lang, name=s.name, used=fmt_pct(s.used), threshold=fmt_pct(crossed)))
    st.dataframe(budgets_table(views, lang), hide_index=True, width="stretch", key="table_budgets")
    st.caption(t("budgets.caption", lang))
