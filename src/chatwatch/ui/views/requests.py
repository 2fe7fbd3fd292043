"""Requests explorer: every stored request newest first, filtered and paginated, with the
detail of one request (all fields, its log lines and its feedback)."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from chatwatch.i18n import t
from chatwatch.ui.data import TTL_S, error_type_options, model_options, requests_page
from chatwatch.ui.state import lang, session_id, settings
from chatwatch.ui.widgets.charts import requests_table
from chatwatch.ui.widgets.dashboard import EMPTY_CELL, render_request_detail
from chatwatch.ui.widgets.filters import requests_view
from chatwatch.ui.widgets.format import fmt_time, label

PAGE_SIZES = (25, 50, 100, 200)

L = lang()
cfg = settings()

st.title(t("req.title", L))
if linked := st.query_params.get("request"):  # a link from another page (compare, arena)
    render_request_detail(cfg, linked, L)
view = requests_view(L, model_options(cfg), error_type_options(cfg), session_id())
size = st.sidebar.selectbox(t("req.page_size", L), PAGE_SIZES, index=1, key="req_page_size")
# Aligned to the cache's lifetime, so reruns within it share one answer (a 1 s alignment
# changed the cache key every second).
filters = view.filters(datetime.now(UTC), align_s=TTL_S)

# The pager's key follows the filters (not the moving clock), so changing a filter goes
# back to page 1 while a plain rerun keeps the page.
pager_key = f"req_page:{hash((view, size))}"
page_no = st.session_state.get(pager_key, 1)
page = requests_page(cfg, filters, page_no, size)
if page_no > page.pages:  # fewer rows than when that page was picked: show the last one
    page_no = st.session_state[pager_key] = page.pages
    page = requests_page(cfg, filters, page_no, size)
if page.total == 0:
    st.info(t("req.empty", L))
    st.stop()
st.caption(t("req.count", L, total=f"{page.total:,}", page=page_no, pages=f"{page.pages:,}"))
st.dataframe(requests_table(page.records, L), hide_index=True, placeholder=EMPTY_CELL)
st.pagination(page.pages, key=pager_key)  # its value is read from session state above


@st.fragment  # picking a request reruns only this part, not the page's queries
def detail(records) -> None:
    st.subheader(t("req.detail", L))
    labels = {r.id: f"{fmt_time(r.started_at)} · {r.model} · {label('status', r.status, L)} · {r.id}" for r in records}
    picked = st.selectbox(
        t("req.pick", L),
        list(labels),
        index=None,
        format_func=labels.__getitem__,
        placeholder=t("req.pick.placeholder", L),
        key=f"req_pick:{pager_key}:{page_no}",
    )
    if picked:
        render_request_detail(cfg, picked, L)


detail(page.records)
