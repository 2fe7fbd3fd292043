"""What an attempt must pass before its model is called, in order: the rate limits (is this
session or model over its minute?), the budgets (may it spend its worst case?) and the
response cache (has this exact request been answered already? a hit counts only against
the session's limit, and reserves no budget). The chain asks `before()`
for each attempt and tells `after()` how it went, so reservations become real costs and
complete answers are kept for the next exact repeat.

A refusal is a ModelError of chatwatch's own (error types `rate_limited` and
`budget_exceeded`, both LOCAL_REFUSALS: failed user requests, not failed model attempts),
recorded by the chain through `Monitor.refuse`. A budget whose action is "fallback" gives
the model to try instead; a cache hit gives a stored answer to replay.

When the store cannot be reached the gates let the attempt through (and log it): a chat that
keeps answering while monitoring is degraded matters more than a limit that cannot be read;
the budget then books nothing for that attempt, and the page says monitoring is degraded.

    gate = gates.before(config, messages, settings, session_id=sid)
    if gate.refusal: ...            # record it, or follow gate.fallback
    elif gate.hit: ...              # replay gate.hit.model with AttemptTags(cache_hit=True, ...)
    ... run the attempt ...
    gates.after(gate, config, messages, settings, record, text)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from chatwatch.config import ModelConfig
from chatwatch.models.contract import GenerationSettings, Message, ModelError
from chatwatch.privacy import scrub
from chatwatch.resilience.budget import BudgetCheck, Budgets
from chatwatch.resilience.cache import CacheHit, ResponseCache
from chatwatch.resilience.ratelimit import RateLimits, RateVerdict
from chatwatch.store.record import RequestRecord

log = logging.getLogger("chatwatch.resilience")


class RateLimitedError(ModelError):
    """Refused by chatwatch's own rate limit; `retry_after_s` says when to try again."""

    error_type = "rate_limited"  # type: ignore[assignment]


class BudgetExceededError(ModelError):
    """Refused by a budget; the message names it and when it resets."""

    error_type = "budget_exceeded"  # type: ignore[assignment]


@dataclass(frozen=True)
class Gate:
    refusal: ModelError | None = None
    fallback: str | None = None  # a "fallback" budget refused: try this model instead
    hit: CacheHit | None = None
    rate: RateVerdict | None = None
    budget: BudgetCheck | None = None


class Gates:
    def __init__(self, limits: RateLimits, budgets: Budgets, cache: ResponseCache) -> None:
        self.limits = limits
        self.budgets = budgets
        self.cache = cache

    def before(
        self,
        config: ModelConfig,
        messages: Sequence[Message],
        settings: GenerationSettings,
        *,
        session_id: str,
        cache: bool = True,
    ) -> Gate:
        """`cache=False`: do not look for a stored answer (one already failed to replay)."""
        try:
            return self._before(config, messages, settings, session_id, cache)
        except sa.exc.SQLAlchemyError as exc:
            log.error("rate limits, budgets and cache skipped: the store is unavailable: %s", scrub(str(exc))[:300])
            return Gate()

    def _before(
        self,
        config: ModelConfig,
        messages: Sequence[Message],
        settings: GenerationSettings,
        session_id: str,
        cache: bool,
    ) -> Gate:
        hit = self.cache.lookup(config, messages, settings) if cache else None
        # A hit never reaches the provider: only the session's limit counts it.
        rate = self.limits.admit(config, session_id, messages, settings, count_model=hit is None)
        if not rate.allowed:
            error = RateLimitedError(
                rate.message, model_id=config.id, provider=config.provider_name, retry_after_s=rate.retry_in_s
            )
            return Gate(refusal=error, rate=rate)
        if hit is not None:
            return Gate(hit=hit, rate=rate)  # costs nothing: no budget to reserve
        budget = self.budgets.check(config, messages, settings)
        if not budget.allowed:
            error = BudgetExceededError(budget.message, model_id=config.id, provider=config.provider_name)
            return Gate(refusal=error, fallback=budget.fallback, rate=rate, budget=budget)
        return Gate(rate=rate, budget=budget)

    def after(
        self,
        gate: Gate,
        config: ModelConfig,
        messages: Sequence[Message],
        settings: GenerationSettings,
        record: RequestRecord | None,
        text: str,
    ) -> None:
        """Book the attempt (its record, or None if it never ran). Never raises: the store
        being down must not fail a reply that was already given."""
        try:
            if gate.rate is not None:
                self.limits.settle(gate.rate, record)
            if gate.budget is not None and gate.budget.allowed:
                self.budgets.settle(gate.budget, record)
            if record is not None and gate.hit is None:
                self.cache.store(config, messages, settings, record, text)
        except Exception:
            log.exception("could not book the attempt's rate-limit tokens, budget spend or cache entry")
