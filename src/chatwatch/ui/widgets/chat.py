"""What the chat page writes under a reply, as pure functions of the reply and the language
(no Streamlit), so a test can build a record and compare the words.

`meta_caption` is the reply's one-line receipt: model, latency, tokens in → out and cost. A
request without a price reads "unpriced", never $0; a local model reads "local"; a cost
priced on estimated token counts says so. `reply_notices` is what the user should know about
how the answer came: turns dropped to fit the context window, the model's own notices, who
answered when the model asked failed or needed retries (`rescue_notice`, in the page's
language rather than the chain's English), a cache hit and what it saved, and a reply cut by
the token limit."""

from __future__ import annotations

from collections.abc import Mapping

from chatwatch.i18n import t
from chatwatch.resilience.chain import ChatReply
from chatwatch.store.record import RequestRecord
from chatwatch.ui.widgets.format import label


def meta_caption(record: RequestRecord | None, lang: str) -> str:
    """The reply's receipt ("" when no request was recorded)."""
    if record is None:
        return ""
    latency = f"{record.latency_s:.2f}s" if record.latency_s is not None else "–"

    def n(v):
        return "–" if v is None else str(v)

    tokens = f"{n(record.input_tokens)}→{n(record.output_tokens)}"
    if record.cost_usd is None:
        cost = t("chat.unpriced", lang)
    elif record.price_source == "local":
        cost = t("chat.local", lang)
    else:
        cost = f"${record.cost_usd:f}"
    if record.token_source == "estimated" and record.cost_usd is not None and record.price_source != "local":
        cost = t("chat.cost_estimated", lang, cost=cost)  # priced on estimated token counts
    return t("chat.meta", lang, model=record.model, latency=latency, tokens=tokens, cost=cost)


def rescue_notice(reply: ChatReply, names: Mapping[str, str], lang: str) -> str | None:
    """Who answered and why not the model asked, in the page's language (None if the first
    attempt answered, or none did); `names` maps model ids to their display names."""
    if reply.answered_by is None or not reply.failures:
        return None

    def words(types: list[str]) -> str:
        return ", ".join(label("error_type", e, lang) for e in types)

    reasons = reply.failed_models()
    name = names.get(reply.answered_by, reply.answered_by)
    others = [m for m in reasons if m != reply.answered_by]
    if not others:
        own = words(reasons[reply.answered_by])
        return t("chat.answered_after_retries", lang, model=name, n=reply.answering_attempt(), reasons=own)
    failed = "; ".join(t("chat.model_failed", lang, model=names.get(m, m), reasons=words(reasons[m])) for m in others)
    return t("chat.answered_by", lang, failed=failed, model=name)


def reply_notices(reply: ChatReply, names: Mapping[str, str], max_tokens: int, lang: str) -> list[str]:
    """The notices under an answered reply, in the order the page shows them."""
    record = reply.record
    notices = reply.model_notices()
    rescued = rescue_notice(reply, names, lang)
    if rescued:
        notices.append(rescued)
    if record is not None and record.cache_hit:
        saved = t("chat.unpriced", lang) if record.saved_usd is None else f"${record.saved_usd:f}"
        seconds = "–" if record.saved_s is None else f"{record.saved_s:.2f}"
        notices.append(t("chat.cache_hit", lang, saved=saved, s=seconds))
    if record is not None and record.finish_reason == "length":
        notices.append(t("chat.truncated", lang, n=max_tokens))
    return notices
