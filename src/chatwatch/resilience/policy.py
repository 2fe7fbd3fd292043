"""The retry policy of one model's attempts (#9 item 1).

Why a module of its own: which failures are worth another attempt, how long to wait and
whether the wait still fits the request's deadline are decisions the attempt chain asks
about, and tests need them exact, so the random source and the clock are injected here and
nothing else in it touches time.

Retried: connection errors, timeouts, rate limits (429) and provider errors with status
500/502/503/504/529 or with no status (a dropped connection before any token). Never:
invalid requests (incl. 401/403), context length, or anything once a chunk reached the caller.
Waits use exponential backoff with FULL jitter, `uniform(0, min(max_s, base_s * 2**(n-1)))`,
and are at least the provider's Retry-After (parsed from its headers by
models/openai_compat.py into `ModelError.retry_after_s`); a wait that would pass the deadline means no retry.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from chatwatch.models.contract import ModelError

RETRYABLE_TYPES = frozenset({"connection", "timeout", "rate_limit"})
RETRYABLE_STATUS = frozenset({500, 502, 503, 504, 529})


def is_retryable(error: ModelError, *, chunks_sent: int = 0) -> bool:
    """True when another attempt of the same model may help and nothing reached the caller."""
    if chunks_sent > 0:
        return False
    if error.error_type in RETRYABLE_TYPES:
        return True
    if error.error_type == "provider_error":
        return error.status_code is None or error.status_code in RETRYABLE_STATUS
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """How many retries, the backoff bounds and the injected random source and sleep."""

    retries: int
    base_s: float
    max_s: float
    rng: random.Random | None = None
    sleep: Callable[[float], None] = time.sleep

    def backoff(self, n: int) -> float:
        """The full-jitter wait before retry n (1-based)."""
        cap = min(self.max_s, self.base_s * 2 ** (n - 1))
        return (self.rng or random).uniform(0.0, cap)

    def next_wait(
        self, error: ModelError, n: int, *, chunks_sent: int = 0, deadline: float | None = None, now: float
    ) -> float | None:
        """Seconds to wait before retry n, or None: no retry (not retryable, out of retries, or
        the wait would pass the deadline, so the chain goes to the fallbacks)."""
        if n > self.retries or not is_retryable(error, chunks_sent=chunks_sent):
            return None
        wait = self.backoff(n)
        if error.retry_after_s is not None:
            wait = max(wait, error.retry_after_s)
        if deadline is not None and now + wait >= deadline:
            return None
        return wait
