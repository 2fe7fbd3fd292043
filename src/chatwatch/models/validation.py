"""The checks every request passes before any model sees it, whatever the model's kind:
a conversation that ends with a non-empty user message, and generation settings inside
the ranges every provider accepts. Each failure raises InvalidRequestError naming the
field and the value, so the chat, `chatwatch ask` and the record all say the same thing.

The Monitor runs `check_request` at the start of every attempt (so a refused request is
still one error record); the resilience chain fits long conversations to a model's window
before the first attempt."""

from __future__ import annotations

import math
from collections.abc import Sequence

from chatwatch.models.contract import GenerationSettings, InvalidRequestError, Message

MAX_TOKENS_LIMIT = 1_000_000
TEMPERATURE_MAX = 2.0
SEED_MAX = 2**32 - 1


def check_request(messages: Sequence[Message], settings: GenerationSettings, *, model_id: str | None = None) -> None:
    """Raise InvalidRequestError for a conversation or settings no model can answer."""
    check_settings(settings, model_id=model_id)
    check_conversation(messages, model_id=model_id)


def check_conversation(messages: Sequence[Message], *, model_id: str | None = None) -> None:
    if not messages or messages[-1].role != "user":
        raise InvalidRequestError("the conversation must end with a user message", model_id=model_id)
    if not messages[-1].content.strip():
        raise InvalidRequestError("the prompt is empty", model_id=model_id)


def check_settings(settings: GenerationSettings, *, model_id: str | None = None) -> None:
    def bad(text: str) -> InvalidRequestError:
        return InvalidRequestError(text, model_id=model_id)

    t, p, n, seed = settings.temperature, settings.top_p, settings.max_tokens, settings.seed
    if not _number(t) or not 0.0 <= t <= TEMPERATURE_MAX:
        raise bad(f"temperature must be between 0 and {TEMPERATURE_MAX:g} (got {t!r})")
    if not _number(p) or not 0.0 < p <= 1.0:
        raise bad(f"top_p must be above 0 and at most 1 (got {p!r})")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_TOKENS_LIMIT:
        raise bad(f"max_tokens must be a whole number from 1 to {MAX_TOKENS_LIMIT:,} (got {n!r})")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX):
        raise bad(f"seed must be a whole number from 0 to {SEED_MAX} (got {seed!r})")


def _number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
