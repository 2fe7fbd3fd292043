"""Rate limits (resilience/ratelimit.py, store/ratelimits.py): per model and per session,
sliding minutes, one limit across processes (a real race of two processes on SQLite and on
the real PostgreSQL)."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from chatwatch.config import parse
from chatwatch.models.contract import GenerationSettings, Message
from chatwatch.models.token_estimate import estimate_prompt_tokens
from chatwatch.resilience.ratelimit import RateLimits
from chatwatch.store.records import Store
from tests.fixtures.db import make_record

MESSAGES = [Message("user", "Hello there")]
GEN = GenerationSettings(max_tokens=50)
T0 = 1_800_000_000.0


def settings_for(url=None, model_limit=None, session_limit=None):
    raw = {"models": [{"id": "m", "kind": "llama_cpp", "rate_limit": model_limit or {}}]}
    if session_limit:
        raw["limits"] = {"per_session": session_limit}
    if url:
        raw["store"] = {"url": url}
    return parse(raw)


def test_requests_per_minute_slide_and_say_when_to_retry(store):
    settings = settings_for(model_limit={"requests_per_minute": 3})
    now = [T0]
    limits = RateLimits(store.engine, settings, clock=lambda: now[0])
    m = settings.model("m")
    for i in range(3):
        now[0] = T0 + i * 10  # at 0 s, 10 s, 20 s
        assert limits.admit(m, "s1", MESSAGES, GEN).allowed
    now[0] = T0 + 25
    refused = limits.admit(m, "s2", MESSAGES, GEN)  # another session: the model's limit is shared
    assert not refused.allowed
    assert refused.retry_in_s == 35  # the first request leaves the window at 60 s
    assert refused.message == "rate limit: model m takes 3 requests per minute; retry in 35 s"
    now[0] = T0 + 60.5
    assert limits.admit(m, "s2", MESSAGES, GEN).allowed


def test_tokens_per_minute_count_the_estimate_then_the_real_tokens(store):
    per_request = estimate_prompt_tokens(MESSAGES) + GEN.max_tokens
    settings = settings_for(model_limit={"tokens_per_minute": per_request * 2 + 20})
    now = [T0]
    limits = RateLimits(store.engine, settings, clock=lambda: now[0])
    m = settings.model("m")
    first = limits.admit(m, "s", MESSAGES, GEN)
    assert first.allowed
    assert limits.admit(m, "s", MESSAGES, GEN).allowed
    assert not limits.admit(m, "s", MESSAGES, GEN).allowed
    # The first request really used only 10 tokens: 10 + 2 estimates fit, 3 estimates did not.
    limits.settle(first, make_record(input_tokens=4, output_tokens=6))
    assert limits.admit(m, "s", MESSAGES, GEN).allowed


def test_the_session_limit_is_per_session(store):
    settings = settings_for(session_limit={"requests_per_minute": 1})
    limits = RateLimits(store.engine, settings, clock=lambda: T0)
    m = settings.model("m")
    assert limits.admit(m, "a", MESSAGES, GEN).allowed
    refused = limits.admit(m, "a", MESSAGES, GEN)
    assert not refused.allowed and "this session may send 1 requests per minute" in refused.message
    assert limits.admit(m, "b", MESSAGES, GEN).allowed


def _race(url: str, tries: int, out) -> None:
    settings = settings_for(url, model_limit={"requests_per_minute": 25})
    with Store.open(url) as store:
        limits = RateLimits(store.engine, settings)
        m = settings.model("m")
        out.put(sum(limits.admit(m, "s", MESSAGES, GEN).allowed for _ in range(tries)))


@pytest.mark.slow
def test_two_processes_share_one_limit(store_url):
    Store.open(store_url).close()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(store_url, 20, out)) for _ in range(2)]
    for p in procs:
        p.start()
    admitted = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert sum(admitted) == 25  # 40 tries within the minute, 25 allowed between both
