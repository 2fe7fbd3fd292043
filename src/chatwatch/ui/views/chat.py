"""Chat page: pick a model, tune it, talk to it; every reply goes through the monitor.

Between sending and the first token the reply shows what the model is doing (loading,
queued with its place, thinking); a reply cut by the token limit says so; a thumbs vote
stays selected across page switches (the widget's state is kept for the session). The words
under a reply (its receipt and notices) come from ui/widgets/chat.py; this is the page flow."""

from __future__ import annotations

import uuid

import streamlit as st

from chatwatch.i18n import t
from chatwatch.models.contract import GenerationSettings, Message
from chatwatch.ui.state import lang, runtime, session_id, settings
from chatwatch.ui.widgets.alerts import render_live_alerts
from chatwatch.ui.widgets.chat import meta_caption, reply_notices
from chatwatch.ui.widgets.format import label

L = lang()
cfg = settings()
rt = runtime()
state = st.session_state
state.setdefault("messages", [])
state.setdefault("conversation_id", str(uuid.uuid4()))
render_live_alerts(L)
health = rt.monitor.health()  # records the store could not take yet, and records lost
if health.degraded:
    st.warning(t("chat.monitoring_degraded", L, unsaved=health.unsaved, reason=health.reason, lost=health.lost))

# -- sidebar: model and its settings ------------------------------------------------------
ids = [m.id for m in cfg.models]
names = {m.id: m.display_name for m in cfg.models}
try:
    circuits = rt.breakers.states()  # shared by every process on the store (resilience/breaker.py)
except Exception:  # the store is down: the page already says monitoring is degraded
    circuits = {}
marks = {"open": " ⛔", "half_open": " ◐"}


def _pick_label(model: str) -> str:
    circuit = circuits.get(model)
    return names[model] + (marks.get(circuit.state, "") if circuit else "")


model_id = st.sidebar.selectbox(t("sidebar.model", L), ids, format_func=_pick_label, key="model_id")
model_cfg = cfg.model(model_id)
if model_cfg.cache:  # the cache keeps answer text in the store: say so where it is on
    st.sidebar.caption(t("sidebar.cache_on", L, hours=f"{model_cfg.cache_ttl_s / 3600:g}"))
circuit = circuits.get(model_id)
if circuit is not None and circuit.state in marks:
    wait = "–" if circuit.retry_in_s is None else f"{circuit.retry_in_s:.0f}"
    st.sidebar.warning(
        t(f"sidebar.circuit_{circuit.state}", L, s=wait, fallbacks=", ".join(model_cfg.fallbacks) or "–")
    )
st.sidebar.caption(f"{t('sidebar.price', L)}: {rt.monitor.pricer.describe_price(model_cfg, L)}")
d = model_cfg.defaults
with st.sidebar.expander(t("sidebar.settings", L), expanded=False):
    # Keys per model, so each model starts from its own defaults.
    temperature = st.slider(t("sidebar.temperature", L), 0.0, 2.0, d.temperature, 0.05, key=f"temperature:{model_id}")
    top_p = st.slider(t("sidebar.top_p", L), 0.05, 1.0, d.top_p, 0.05, key=f"top_p:{model_id}")
    max_tokens = st.number_input(t("sidebar.max_tokens", L), 1, 32768, d.max_tokens, key=f"max_tokens:{model_id}")
    seed_text = st.text_input(t("sidebar.seed", L), "" if d.seed is None else str(d.seed), key=f"seed:{model_id}")
    system_prompt = st.text_area(t("sidebar.system", L), d.system_prompt, key=f"system:{model_id}")
seed = None
if seed_text.strip():
    try:
        seed = int(seed_text)
    except ValueError:
        st.sidebar.error(t("sidebar.seed_invalid", L))
if st.sidebar.button(t("sidebar.new_chat", L), icon="🧹", use_container_width=True):
    state.messages = []
    state.conversation_id = str(uuid.uuid4())
    st.rerun()


def _save_feedback(request_id: str, model: str) -> None:
    score = state.get(f"feedback:{request_id}")
    if score is not None:  # 1 = thumbs up, 0 = thumbs down; a new choice replaces the old
        rt.store.add_feedback(request_id, int(score), model, session_id())
        st.toast(t("chat.feedback_saved", L), icon="🙏")


# -- history ------------------------------------------------------------------------------
for msg in state.messages:
    with st.chat_message(msg["role"]):
        if msg.get("error"):
            st.error(msg["error"], icon="⚠️")
        if msg["content"] and msg["role"] == "assistant":
            st.markdown(msg["content"])
        elif msg["content"]:
            st.text(msg["content"])
        if msg.get("stopped"):
            st.caption(t("chat.stopped", L))
        for notice in msg.get("notices", ()):
            st.caption(notice)
        if msg.get("meta"):
            st.caption(msg["meta"])
        if msg["role"] == "assistant" and msg.get("request_id") and msg["content"]:
            st.feedback(
                "thumbs",
                key=f"feedback:{msg['request_id']}",
                persist_state="session",  # still selected after a visit to another page
                on_change=_save_feedback,
                args=(msg["request_id"], msg["model"]),
            )

# -- a new turn ---------------------------------------------------------------------------
prompt = st.chat_input(t("chat.placeholder", L))
if prompt is not None:
    if not prompt.strip():
        st.warning(t("chat.empty", L))
        st.stop()
    state.messages.append({"role": "user", "content": prompt})
    with st.chat_message("user"):
        st.text(prompt)
    history = [Message(m["role"], m["content"]) for m in state.messages if m["content"] and not m.get("error")]
    messages = ([Message("system", system_prompt)] if system_prompt.strip() else []) + history
    generation = GenerationSettings(temperature=temperature, top_p=top_p, max_tokens=int(max_tokens), seed=seed)
    # The reply is kept in the history as it streams, so a Stop (which reruns the page and
    # ends the stream) leaves the partial text visible.
    entry = {"role": "assistant", "content": "", "model": model_id, "stopped": True}
    state.messages.append(entry)
    with st.chat_message("assistant"):
        st.button(t("chat.stop", L), icon="⏹️", key="stop")  # any click reruns the page: the stream stops
        status = st.empty()
        # Until the first token: loading the model (a local model's first request), then
        # queued behind other sessions (on_wait), then thinking (prompt processing).
        model = rt.model(model_id)[0]
        working = "chat.thinking" if getattr(model, "loaded", True) else "chat.loading"
        status.info(t(working, L, model=names[model_id]), icon="⏳")

        def on_wait(place: int) -> None:
            status.info(t("chat.waiting", L, place=place), icon="⏳")

        reply = rt.chat(
            model_id,
            messages,
            generation,
            session_id=session_id(),
            conversation_id=state.conversation_id,
            on_wait=on_wait,
        )

        def chunks():
            try:
                for chunk in reply:
                    if not entry["content"]:
                        status.empty()  # the first token replaces the working indicator
                    entry["content"] += chunk
                    yield chunk
            finally:
                reply.close()

        try:
            st.write_stream(chunks())
            entry["stopped"] = False
        except Exception as exc:
            kind = label("error_type", getattr(exc, "error_type", type(exc).__name__), L)
            message = reply.record.error_message if reply.record else str(exc)
            entry["error"] = t("chat.error", L, kind=kind, message=message)
            entry["stopped"] = False
            status.error(entry["error"], icon="⚠️")
        record = reply.record
        entry["request_id"] = record.id if record else None
        entry["meta"] = meta_caption(record, L)
        if record is not None and record.status == "ok":
            entry["model"] = reply.answered_by or model_id
            entry["notices"] = reply_notices(reply, names, generation.max_tokens, L)
            for notice in entry["notices"]:
                st.caption(notice)
        if entry["meta"]:
            st.caption(entry["meta"])
        if reply.store_error:
            st.warning(t("chat.store_error", L, message=reply.store_error))
    st.rerun()
