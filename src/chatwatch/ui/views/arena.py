"""Blind arena: two models drawn at random answer one prompt as "A" and "B"; the user votes
(A better, B better, tie, both bad) and only then sees which model was which."""

from __future__ import annotations

import streamlit as st

from chatwatch.i18n.arena import t
from chatwatch.models.contract import Message
from chatwatch.ui.state import lang, runtime, session_id, settings
from chatwatch.ui.widgets import arena
from chatwatch.ui.widgets.compare import stream_round

L = lang()
cfg = settings()
state = st.session_state

st.title(t("arena.title", L))
st.caption(t("arena.intro", L))
models = arena.eligible(cfg)
if len(models) < 2:
    st.warning(t("arena.too_few_models", L))
    st.stop()
if "arena_round" not in state or state.arena_round.models[0] not in models or state.arena_round.models[1] not in models:
    state.arena_round = arena.new_round(models)
r: arena.Round = state.arena_round

if not r.answers:
    prompt = st.chat_input(t("arena.prompt", L), key="arena_prompt")
    if prompt:
        st.chat_message("user").markdown(prompt)
        r.prompt = prompt
        r.answers = stream_round(
            runtime(),
            list(r.models),
            [Message("user", prompt)],
            session_id=session_id(),
            mode="arena",
            compare_id=r.id,
            labels=[t("arena.answer", L, side=side) for side in arena.SIDES],
            lang=L,
        )
        st.rerun()
elif r.verdict is None:
    arena.render_hidden(r, L)
    if arena.votable(r):
        verdict = arena.vote_buttons(r, runtime().store, session_id(), L)
        if verdict is not None:
            r.verdict = verdict
            st.rerun()
    else:
        if st.button(t("arena.new_round", L), key="arena_new_failed"):
            state.arena_round = arena.new_round(models)
            st.rerun()
else:
    arena.render_revealed(r, L)
    if st.button(t("arena.new_round", L), type="primary", key="arena_new"):
        state.arena_round = arena.new_round(models)
        st.rerun()
