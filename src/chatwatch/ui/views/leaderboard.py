"""Leaderboard: Bradley-Terry ratings of the arena's votes in the chosen range, next to each
model's measured speed, cost, errors and thumbs in the same range; charts of rating against
cost and latency; the table as CSV and JSON."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from chatwatch.i18n.arena import t
from chatwatch.reports.arena import leaderboard
from chatwatch.ui.state import lang, runtime, settings
from chatwatch.ui.widgets import arena
from chatwatch.ui.widgets.filters import View, range_widgets

TTL_S = 30  # the bootstrap refits a few hundred times: reruns within this share one answer

L = lang()
cfg = settings()


@st.cache_data(ttl=TTL_S, show_spinner=False)
def _rows(url: str, since, until, min_votes: int, rounds: int, _store):
    return leaderboard(_store, since, until, min_votes=min_votes, bootstrap_rounds=rounds)


st.title(t("lb.title", L))
range_key, custom_from, custom_to = range_widgets(L, "lb")
since, until = View(range_key, custom_from, custom_to).bounds(datetime.now(UTC), align_s=TTL_S)
store = runtime().store
rows = _rows(cfg.store_url, since, until, cfg.arena.min_votes, cfg.arena.bootstrap_rounds, store)
st.caption(t("lb.method", L, rounds=cfg.arena.bootstrap_rounds, min_votes=cfg.arena.min_votes))
if not rows:
    st.info(t("lb.empty", L))
    st.stop()

st.dataframe(arena.leaderboard_table(rows, L), hide_index=True)
csv_col, json_col = st.columns(2)
csv_col.download_button(t("lb.export.csv", L), arena.export_csv(rows), "leaderboard.csv", "text/csv", key="lb_csv")
json_col.download_button(
    t("lb.export.json", L), arena.export_json(rows), "leaderboard.json", "application/json", key="lb_json"
)
cost_fig, priced = arena.rating_chart(rows, L, x="cost")
if priced:
    st.plotly_chart(cost_fig, key="lb_cost")
else:
    st.caption(t("lb.chart.no_cost", L))
latency_fig, _ = arena.rating_chart(rows, L, x="latency")
st.plotly_chart(latency_fig, key="lb_latency")
