"""Rate limits: requests and tokens per sliding minute, per model (`rate_limit` on the
model entry: what chatwatch sends that provider from all sessions and replicas together)
and per session ([limits] per_session), kept in the store (store/ratelimits.py).

A request over a limit is refused before any model call with a message saying which limit
and when to retry; the chain records it with error type `rate_limited` (one of the
LOCAL_REFUSALS: a failed user request, not a failed model attempt). Tokens are the prompt's
estimate plus max_tokens at admission, replaced by the real count afterwards.

    verdict = limits.admit(model_config, session_id, messages, settings)
    if not verdict.allowed: ...  # verdict.message, verdict.retry_in_s
    limits.settle(verdict, record)
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from chatwatch.config import ModelConfig, Settings
from chatwatch.models.contract import GenerationSettings, Message
from chatwatch.models.token_estimate import estimate_prompt_tokens
from chatwatch.store import ratelimits as db
from chatwatch.store.record import RequestRecord


@dataclass(frozen=True)
class RateVerdict:
    allowed: bool
    event_id: str | None = None
    retry_in_s: float | None = None
    message: str | None = None


class RateLimits:
    def __init__(self, engine: sa.Engine, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.per_session = settings.limits.per_session
        self.clock = clock

    def _limits(self, config: ModelConfig, session_id: str, count_model: bool) -> list[db.Limit]:
        out: list[db.Limit] = []
        if count_model and config.rate_limit.active:
            out.append(
                (f"model:{config.id}", config.rate_limit.requests_per_minute, config.rate_limit.tokens_per_minute)
            )
        if self.per_session.active:
            out.append(
                (f"session:{session_id}", self.per_session.requests_per_minute, self.per_session.tokens_per_minute)
            )
        return out

    def admit(
        self,
        config: ModelConfig,
        session_id: str,
        messages: Sequence[Message],
        settings: GenerationSettings,
        *,
        count_model: bool = True,
    ) -> RateVerdict:
        """`count_model=False`: a cache hit, which never reaches the provider, counts only
        against the session's limit."""
        limits = self._limits(config, session_id, count_model)
        if not limits:
            return RateVerdict(True)
        event = str(uuid.uuid4())
        tokens = estimate_prompt_tokens(messages) + settings.max_tokens
        ok, wait, key = db.admit(self.engine, limits, event, tokens=tokens, at_us=int(self.clock() * 1_000_000))
        if ok:
            return RateVerdict(True, event)
        seconds = max(1, math.ceil(wait or 0))
        if key.startswith("model:"):
            rl = config.rate_limit
            what = f"model {config.id} takes {self._describe(rl.requests_per_minute, rl.tokens_per_minute)}"
        else:
            what = f"this session may send {self._describe(self.per_session.requests_per_minute, self.per_session.tokens_per_minute)}"
        return RateVerdict(False, retry_in_s=float(seconds), message=f"rate limit: {what}; retry in {seconds} s")

    @staticmethod
    def _describe(requests: int | None, tokens: int | None) -> str:
        parts = []
        if requests:
            parts.append(f"{requests:,} requests")
        if tokens:
            parts.append(f"{tokens:,} tokens")
        return " and ".join(parts) + " per minute"

    def settle(self, verdict: RateVerdict, record: RequestRecord | None) -> None:
        if verdict.event_id is None or record is None:
            return
        if record.input_tokens is None and record.output_tokens is None:
            return  # nothing better than the estimate
        db.settle(self.engine, verdict.event_id, (record.input_tokens or 0) + (record.output_tokens or 0))
