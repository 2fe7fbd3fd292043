"""The blind arena's round: two models drawn at random, answers labelled "A" and "B", the
vote, then the reveal.

Why the names live only in session state until the vote: session state stays on the server,
so a model's name is never in the page's HTML (nor in its websocket messages) before the
user has voted; not even an error text, which may name the model, is shown before. After
the vote both names are revealed with their measurements.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import streamlit as st

from chatwatch.i18n.arena import t
from chatwatch.store.votes import VERDICTS, VoteRefused, cast_vote
from chatwatch.ui.widgets.compare import Answer, render_answer

SIDES = ("A", "B")
_rng = random.SystemRandom()  # who is A is not predictable from earlier rounds


@dataclass
class Round:
    id: str
    models: tuple[str, str]  # (A, B): never rendered before `verdict` is set
    prompt: str = ""
    answers: list[Answer] = field(default_factory=list)
    verdict: str | None = None
    refusal: str | None = None


def eligible(settings) -> list[str]:
    """The configured models the arena may draw ([arena] models; empty: all)."""
    ids = [m.id for m in settings.models]
    wanted = settings.arena.models
    return [m for m in ids if m in wanted] if wanted else ids


def new_round(models: Sequence[str]) -> Round:
    a, b = _rng.sample(list(models), 2)
    return Round(id=str(uuid.uuid4()), models=(a, b))


def votable(r: Round) -> bool:
    return len(r.answers) == 2 and all(a.error is None and a.record is not None for a in r.answers)


def render_hidden(r: Round, lang: str) -> None:
    """The two answers before the vote: text only, under "A" and "B"."""
    st.chat_message("user").markdown(r.prompt)
    for col, side, answer in zip(st.columns(2), SIDES, r.answers, strict=True):
        with col:
            st.subheader(t("arena.answer", lang, side=side))
            if answer.text:
                st.markdown(answer.text)
    if not votable(r):
        st.warning(t("arena.failed", lang))


def vote_buttons(r: Round, store, session_id: str, lang: str) -> str | None:
    """The four verdict buttons; stores the clicked vote and returns the verdict."""
    for col, verdict in zip(st.columns(len(VERDICTS)), VERDICTS, strict=True):
        if col.button(t(f"arena.vote.{verdict}", lang), key=f"arena_vote_{verdict}", use_container_width=True):
            a, b = r.answers
            try:
                cast_vote(
                    store,
                    record_a=a.record.id,
                    record_b=b.record.id,
                    model_a=r.models[0],
                    model_b=r.models[1],
                    verdict=verdict,
                    session_id=session_id,
                )
            except VoteRefused as exc:
                r.refusal = str(exc)
            return verdict
    return None


def render_revealed(r: Round, lang: str) -> None:
    """After the vote: the verdict, both names and the measurements."""
    verdict = t(f"arena.vote.{r.verdict}", lang)
    st.chat_message("user").markdown(r.prompt)
    if r.refusal:
        st.warning(t("arena.refused", lang, reason=r.refusal))
    else:
        st.success(t("arena.voted", lang, verdict=verdict))
    for col, side, model, answer in zip(st.columns(2), SIDES, r.models, r.answers, strict=True):
        with col:
            render_answer(answer, lang, title=t("arena.revealed", lang, side=side, model=model))


# --- the leaderboard ------------------------------------------------------------------------


def leaderboard_table(rows, lang: str):
    """The leaderboard as shown: a rank or "too few votes", the interval, the measurements."""
    import pandas as pd

    from chatwatch.ui.widgets.format import NONE, fmt_pct, fmt_rate, fmt_seconds, fmt_usd

    too_few = t("lb.too_few", lang)
    out = []
    for row in rows:
        r = row.rating
        cost = NONE
        if row.cost_per_1k_usd is not None:
            cost = fmt_usd(row.cost_per_1k_usd)
        elif row.unpriced:
            cost = t("cmp.unpriced", lang)
        out.append(
            {
                t("lb.col.rank", lang): str(r.rank) if r.enough else too_few,
                t("lb.col.model", lang): r.model,
                t("lb.col.rating", lang): f"{r.rating:.0f}",
                t("lb.col.ci", lang): f"{r.ci_low:.0f} – {r.ci_high:.0f}" if r.enough else too_few,
                t("lb.col.votes", lang): r.votes,
                t("lb.col.win_rate", lang): fmt_pct(r.win_rate),
                t("lb.col.p50_latency", lang): fmt_seconds(row.latency_p50_s),
                t("lb.col.p50_ttft", lang): fmt_seconds(row.ttft_p50_s),
                t("lb.col.speed", lang): fmt_rate(row.output_tokens_per_s),
                t("lb.col.cost_1k", lang): cost,
                t("lb.col.error_rate", lang): fmt_pct(row.error_rate),
                t("lb.col.thumbs_up", lang): fmt_pct(row.thumbs_up_rate),
            }
        )
    return pd.DataFrame(out)


def rating_chart(rows, lang: str, *, x: str):
    """Rating (with its interval where there is one) against cost per 1,000 requests
    (x="cost") or p50 latency (x="latency"); models without that figure are left out."""
    import plotly.graph_objects as go

    def value(row):
        if x == "cost":
            return None if row.cost_per_1k_usd is None else float(row.cost_per_1k_usd)
        return row.latency_p50_s

    shown = [row for row in rows if value(row) is not None]
    fig = go.Figure()
    for row in shown:
        r = row.rating
        error_y = None
        if r.enough:
            error_y = dict(type="data", symmetric=False, array=[r.ci_high - r.rating], arrayminus=[r.rating - r.ci_low])
        fig.add_trace(
            go.Scatter(
                x=[value(row)],
                y=[r.rating],
                mode="markers+text",
                text=[r.model],
                textposition="top center",
                name=r.model,
                error_y=error_y,
            )
        )
    axis = t("lb.col.cost_1k", lang) + " (USD)" if x == "cost" else t("lb.col.p50_latency", lang) + " (s)"
    title = t("lb.chart.cost", lang) if x == "cost" else t("lb.chart.latency", lang)
    fig.update_layout(title=title, xaxis_title=axis, yaxis_title=t("lb.col.rating", lang), showlegend=False)
    return fig, len(shown)


def export_csv(rows) -> str:
    import pandas as pd

    return pd.DataFrame([row.as_dict() for row in rows]).to_csv(index=False)


def export_json(rows) -> str:
    from chatwatch.reports.export import json_object

    return "[" + ", ".join(json_object(row.as_dict(), decimals=("cost_per_1k_requests_usd",)) for row in rows) + "]"
