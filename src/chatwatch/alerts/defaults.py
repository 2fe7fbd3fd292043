"""The rules a fresh install starts with, so alerts work before anyone writes a config:
frequent errors and slow responses, the two alerts a chat service needs first.

They are stored once, as ordinary rules (origin "default") the Alerts page can edit,
disable or delete, when the store holds no alert rule at all (not even a deleted one) and
the config names none. After that they are the user's: a later start never re-creates a
deleted default nor overwrites an edited or disabled one (store.seed_rules).

Thresholds: a chat model that fails one request in five over five minutes (with at least
five requests, so one unlucky request of two does not page anyone) is broken for its
users; a reply that takes more than 30 s is one a user has likely given up on. The slow
response rule resolves as "no data" when its window empties (one slow reply is an event,
not a standing condition); the error rate keeps firing until requests show it recovered.
"""

from __future__ import annotations

from chatwatch.config import AlertRuleConfig

DEFAULT_RULES: tuple[AlertRuleConfig, ...] = (
    AlertRuleConfig(
        name="frequent errors",
        kind="error_rate",
        threshold=0.2,
        window_minutes=5,
        min_requests=5,
        severity="warning",
        no_data="keep",
    ),
    AlertRuleConfig(
        name="slow responses",
        kind="slow_response",
        threshold=30.0,
        window_minutes=5,
        severity="warning",
        no_data="resolve",
    ),
)
