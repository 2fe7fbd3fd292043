"""One round of several models answering the same messages, streamed side by side.

Why threads and a queue: remote models should answer at the same time, but Streamlit
elements may only be written from the script thread. So each model's stream is read in a
worker thread that hands its chunks (and its place in line while a local model is busy)
to the script thread through a queue; the script thread writes every element. Each answer
is an ordinary request record through the one Monitor, tagged with the round's mode
("compare" or "arena") and compare id. The arena uses the same round with the names hidden
(the labels are "A" and "B"; nothing else naming a model is rendered before the vote).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import streamlit as st

from chatwatch.i18n.arena import t
from chatwatch.models.contract import GenerationSettings, Message
from chatwatch.store.record import RequestRecord
from chatwatch.ui.widgets.format import fmt_int, fmt_rate, fmt_seconds, fmt_usd

_POLL_S = 0.1


@dataclass(frozen=True)
class Answer:
    model_id: str
    text: str
    record: RequestRecord | None
    error: str | None  # what went wrong, None when the answer is complete


def generation_of(config) -> GenerationSettings:
    d = config.defaults
    return GenerationSettings(temperature=d.temperature, top_p=d.top_p, max_tokens=d.max_tokens, seed=d.seed)


def with_system(config, history: Sequence[Message]) -> list[Message]:
    prompt = config.defaults.system_prompt
    return ([Message("system", prompt)] if prompt and prompt.strip() else []) + list(history)


def _open(runtime, model_id: str, history, session_id: str, mode: str, compare_id: str, on_wait):
    config = runtime.settings.model(model_id)
    return runtime.chat(
        model_id,
        with_system(config, history),
        generation_of(config),
        session_id=session_id,
        on_wait=on_wait,
        mode=mode,
        compare_id=compare_id,
    )


def _worker(index: int, open_stream, events: queue.Queue) -> None:
    reply = None
    try:
        reply = open_stream(lambda place: events.put((index, "wait", place)))
        for chunk in reply:
            events.put((index, "chunk", chunk))
        events.put((index, "done", (reply.text, reply.record, None)))
    except Exception as exc:  # recorded by the monitor; the page shows it
        record = reply.record if reply is not None else None
        message = record.error_message if record is not None and record.error_message else str(exc)
        kind = getattr(exc, "error_type", type(exc).__name__)
        events.put((index, "done", (reply.text if reply else "", record, f"{kind}: {message}")))
    finally:
        if reply is not None:
            reply.close()


def stream_round(
    runtime,
    model_ids: Sequence[str],
    history: Sequence[Message],
    *,
    session_id: str,
    mode: str,
    compare_id: str,
    labels: Sequence[str],
    lang: str,
) -> list[Answer]:
    """Send `history` to every model at once and stream the answers into columns headed by
    `labels`; returns the answers (text, record, error) in the order of `model_ids`."""
    columns = st.columns(len(model_ids))
    status, body = [], []
    for col, label in zip(columns, labels, strict=True):
        with col:
            st.subheader(label)
            status.append(st.empty())
            body.append(st.empty())
    events: queue.Queue = queue.Queue()
    threads = []
    for i, model_id in enumerate(model_ids):
        status[i].caption(t("cmp.starting", lang))

        def open_stream(on_wait, model_id=model_id):
            return _open(runtime, model_id, history, session_id, mode, compare_id, on_wait)

        th = threading.Thread(target=_worker, args=(i, open_stream, events), name=f"{mode}-{i}", daemon=True)
        th.start()
        threads.append(th)
    texts = [""] * len(model_ids)
    results: list[Answer | None] = [None] * len(model_ids)
    while any(r is None for r in results):
        try:
            i, kind, value = events.get(timeout=_POLL_S)
        except queue.Empty:
            continue
        if kind == "wait":
            status[i].info(t("cmp.waiting", lang, place=value))
        elif kind == "chunk":
            if not texts[i]:
                status[i].empty()
            texts[i] += value
            body[i].markdown(texts[i])
        else:
            text, record, error = value
            results[i] = Answer(model_ids[i], text, record, error)
            status[i].empty()
    for th in threads:
        th.join()
    return [r for r in results if r is not None]


def measurement_rows(record: RequestRecord | None, lang: str) -> list[tuple[str, str]]:
    """(label, value) of an answer's measured figures; unknown stays a dash, no price says so."""
    if record is None:
        return []
    cost = t("cmp.unpriced", lang) if record.cost_usd is None else fmt_usd(record.cost_usd)
    return [
        (t("cmp.latency", lang), fmt_seconds(record.latency_s)),
        (t("cmp.ttft", lang), fmt_seconds(record.ttft_s)),
        (t("cmp.speed", lang), fmt_rate(record.output_tokens_per_s)),
        (t("cmp.tokens", lang), f"{fmt_int(record.input_tokens)} / {fmt_int(record.output_tokens)}"),
        (t("cmp.cost", lang), cost),
    ]


def record_link(record_id: str) -> str:
    """The Requests page with this request picked (its `request` query parameter)."""
    return f"./requests?request={record_id}"


def render_answer(answer: Answer, lang: str, *, title: str | None = None) -> None:
    """A finished answer: its text (or error), its measurements and the link to its record."""
    if title:
        st.subheader(title)
    if answer.text:
        st.markdown(answer.text)
    if answer.error:
        kind, _, message = answer.error.partition(": ")
        st.error(t("cmp.error", lang, kind=kind, message=message), icon="⚠️")
    rows = measurement_rows(answer.record, lang)
    if rows:
        st.markdown("\n".join(f"- **{label}:** {value}" for label, value in rows))
    if answer.record is not None:
        st.markdown(f"[{t('cmp.record', lang)}]({record_link(answer.record.id)})")
