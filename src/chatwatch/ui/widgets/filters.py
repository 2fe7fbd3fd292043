"""The filters of the dashboard and the requests explorer.

`View` is what the sidebar chose (a relative range is kept as its name); `View.filters(now)`
turns it into `queries.Filters` at each refresh, so a live view keeps moving forward. The
start of a relative range is aligned down to `align_s`, so every session refreshing in
the same interval asks the same question and shares one cached answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import streamlit as st

from chatwatch.i18n import t
from chatwatch.reports.queries import Filters
from chatwatch.store.records import from_us, to_us
from chatwatch.ui.widgets.format import label

RANGES: dict[str, timedelta | None] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "custom": None,
}
DEFAULT_RANGE = "7d"
STATUSES = ("ok", "error", "cancelled")
SCOPES = ("all", "mine")


@dataclass(frozen=True)
class View:
    range_key: str = DEFAULT_RANGE
    custom_from: datetime | None = None  # timezone-aware UTC, for range_key "custom"
    custom_to: datetime | None = None
    models: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    session_id: str | None = None
    error_type: str | None = None
    text: str | None = None

    def filters(self, now: datetime, align_s: float = 1.0) -> Filters:
        since, until = self.bounds(now, align_s)
        return Filters(
            since=since,
            until=until,
            models=self.models,
            statuses=self.statuses,
            session_id=self.session_id or None,
            error_type=self.error_type or None,
            text=(self.text or "").strip() or None,
        )

    def bounds(self, now: datetime, align_s: float = 1.0) -> tuple[datetime | None, datetime | None]:
        """[since, until) of the range; a relative range is open-ended (up to the newest)."""
        span = RANGES.get(self.range_key)
        if span is None:
            return self.custom_from, self.custom_to
        return align(now, align_s) - span, None

    def label(self, lang: str) -> str:
        if self.range_key != "custom":
            return t(f"dash.range.{self.range_key}", lang)
        start = "…" if self.custom_from is None else self.custom_from.strftime("%Y-%m-%d %H:%M")
        end = "…" if self.custom_to is None else self.custom_to.strftime("%Y-%m-%d %H:%M")
        return f"{start} – {end}"


def align(now: datetime, step_s: float) -> datetime:
    """`now` rounded down to a whole number of `step_s` seconds since the epoch."""
    step_us = max(1, int(step_s * 1_000_000))
    us = to_us(now)
    return from_us(us - us % step_us)


def as_utc(value: datetime | None) -> datetime | None:
    """The naive wall time of a datetime widget, read as UTC (the pages show UTC)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- widgets --------------------------------------------------------------------------------


def choose(lang: str) -> dict:
    """Multiselect options in `lang`: Streamlit's own placeholder ("Choose options") and its
    "Select all" entry are English only; an empty filter already means "all"."""
    return dict(placeholder=t("common.choose", lang), select_all=False)


def range_widgets(lang: str, prefix: str, container=st.sidebar) -> tuple[str, datetime | None, datetime | None]:
    """Range picker; "custom" adds From/To (UTC). Returns (range_key, from, to)."""
    keys = list(RANGES)
    choice = container.selectbox(
        t("dash.range", lang),
        keys,
        index=keys.index(DEFAULT_RANGE),
        format_func=lambda k: t(f"dash.range.{k}", lang),
        key=f"{prefix}_range",
    )
    if choice != "custom":
        return choice, None, None
    today = datetime.now(UTC).replace(tzinfo=None)
    midnight = datetime.combine(today.date(), time())
    start = container.datetime_input(
        t("dash.range.from", lang), midnight - timedelta(days=1), key=f"{prefix}_from", step=timedelta(minutes=15)
    )
    end = container.datetime_input(
        t("dash.range.to", lang), midnight + timedelta(days=1), key=f"{prefix}_to", step=timedelta(minutes=15)
    )
    since, until = as_utc(start), as_utc(end)
    if since is not None and until is not None and until <= since:
        container.error(t("dash.range.invalid", lang))
        until = None
    return choice, since, until


def model_status_widgets(
    lang: str, prefix: str, models: Sequence[str], container=st.sidebar
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    chosen = container.multiselect(t("dash.models", lang), list(models), key=f"{prefix}_models", **choose(lang))
    statuses = container.multiselect(
        t("dash.statuses", lang),
        list(STATUSES),
        key=f"{prefix}_statuses",
        format_func=lambda s: t(f"status.{s}", lang),
        **choose(lang),
    )
    return tuple(chosen), tuple(statuses)


def dashboard_view(lang: str, models: Sequence[str], session: str) -> View:
    """The dashboard's sidebar: range, models, this session / all sessions, status."""
    st.sidebar.header(t("dash.filters", lang))
    range_key, since, until = range_widgets(lang, "dash")
    chosen, statuses = model_status_widgets(lang, "dash", models)
    scope = st.sidebar.radio(
        t("dash.scope", lang),
        SCOPES,
        key="dash_scope",
        horizontal=True,
        format_func=lambda s: t(f"dash.scope.{s}", lang),
    )
    return View(range_key, since, until, chosen, statuses, session if scope == "mine" else None)


def requests_view(lang: str, models: Sequence[str], error_types: Sequence[str], session: str) -> View:
    """The explorer's sidebar: the dashboard's filters plus error type, session and search."""
    st.sidebar.header(t("dash.filters", lang))
    range_key, since, until = range_widgets(lang, "req")
    chosen, statuses = model_status_widgets(lang, "req", models)
    kinds = [""] + [e for e in error_types if e]
    error_type = st.sidebar.selectbox(
        t("req.error_type", lang),
        kinds,
        key="req_error_type",
        format_func=lambda e: label("error_type", e, lang) if e else t("req.any", lang),
    )
    mine = st.sidebar.toggle(t("req.session.mine", lang), key="req_mine")
    typed = st.sidebar.text_input(t("req.session", lang), key="req_session", disabled=mine).strip()
    text = st.sidebar.text_input(t("req.search", lang), key="req_text", help=t("req.search.help", lang))
    return View(
        range_key,
        since,
        until,
        chosen,
        statuses,
        session if mine else (typed or None),
        error_type or None,
        text.strip() or None,
    )
