"""Compare: one prompt (or this session's chat conversation) to 2 to 4 models at once, the
answers streamed side by side with their measured latency, TTFT, speed, tokens and cost."""

from __future__ import annotations

import uuid

import streamlit as st

from chatwatch.i18n.arena import t
from chatwatch.models.contract import Message
from chatwatch.ui.state import lang, runtime, session_id, settings
from chatwatch.ui.widgets.compare import render_answer, stream_round

L = lang()
cfg = settings()
state = st.session_state

st.title(t("cmp.title", L))
ids = [m.id for m in cfg.models]
chosen = st.multiselect(t("cmp.models", L), ids, default=ids[:2], max_selections=4, key="cmp_models")
source = st.radio(
    t("cmp.source", L),
    ["prompt", "chat"],
    format_func=lambda s: t(f"cmp.source.{s}", L),
    horizontal=True,
    key="cmp_source",
)
if source == "prompt":
    prompt = st.text_area(t("cmp.prompt", L), key="cmp_prompt")
    history = [Message("user", prompt)] if prompt.strip() else []
else:
    history = [
        Message(m["role"], m["content"]) for m in state.get("messages", []) if m["content"] and not m.get("error")
    ]
    if not history:
        st.info(t("cmp.no_chat", L))
ready = 2 <= len(chosen) <= 4 and bool(history)
if len(chosen) < 2:
    st.caption(t("cmp.pick_range", L))
send = st.button(t("cmp.send", L), type="primary", key="cmp_send")
if send and not ready:
    st.warning(t("cmp.pick_range", L) if len(chosen) < 2 else t("cmp.prompt_needed", L))
elif send:
    compare_id = str(uuid.uuid4())
    answers = stream_round(
        runtime(),
        chosen,
        history,
        session_id=session_id(),
        mode="compare",
        compare_id=compare_id,
        labels=chosen,
        lang=L,
    )
    state.cmp_last = (compare_id, answers)
    st.rerun()  # the finished round below, with its measurements

if "cmp_last" in state:
    compare_id, answers = state.cmp_last
    st.caption(t("cmp.round", L, id=compare_id))
    for col, answer in zip(st.columns(len(answers)), answers, strict=True):
        with col:
            render_answer(answer, L, title=answer.model_id)
