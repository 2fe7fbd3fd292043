"""The retry policy, pure: which errors retry, full-jitter bounds with a seeded rng, the
deadline, and each Retry-After header form (expected values computed by hand)."""

import email.utils
import random

import pytest

from chatwatch.models.contract import (
    ContextLengthError,
    InvalidRequestError,
    ModelConnectionError,
    ModelTimeoutError,
    ProviderError,
    RateLimitError,
)
from chatwatch.models.openai_compat import parse_duration, retry_after_from_headers
from chatwatch.resilience.policy import RetryPolicy, is_retryable


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ModelConnectionError("x"), True),
        (ModelTimeoutError("x"), True),
        (RateLimitError("x", status_code=429), True),
        (ProviderError("x", status_code=503), True),
        (ProviderError("x", status_code=529), True),
        (ProviderError("x"), True),
        (ProviderError("x", status_code=501), False),
        (InvalidRequestError("x", status_code=401), False),
        (InvalidRequestError("x", status_code=403), False),
        (ContextLengthError("x"), False),
    ],
)
def test_which_errors_retry(error, expected):
    assert is_retryable(error) is expected


def test_never_after_a_chunk():
    assert not is_retryable(ModelConnectionError("x"), chunks_sent=1)


def test_full_jitter_matches_a_seeded_rng_and_bounds():
    policy = RetryPolicy(retries=5, base_s=0.5, max_s=3.0, rng=random.Random(7))
    twin = random.Random(7)
    for n, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (5, 3.0)]:
        wait = policy.backoff(n)
        assert wait == twin.uniform(0.0, cap)
        assert 0.0 <= wait <= cap


def test_retry_after_is_a_floor_and_the_deadline_stops_retries():
    policy = RetryPolicy(retries=2, base_s=0.5, max_s=8.0, rng=random.Random(1))
    err = RateLimitError("x", status_code=429, retry_after_s=2.0)
    assert policy.next_wait(err, 1, now=100.0, deadline=110.0) >= 2.0
    assert policy.next_wait(err, 1, now=100.0, deadline=101.0) is None
    assert policy.next_wait(err, 3, now=100.0) is None
    assert policy.next_wait(InvalidRequestError("x"), 1, now=100.0) is None


def test_retry_after_header_forms():
    assert retry_after_from_headers({"Retry-After": "3"}) == 3.0
    assert retry_after_from_headers({"retry-after-ms": "250"}) == 0.25
    date = email.utils.formatdate(1_000_030.0, usegmt=True)
    assert retry_after_from_headers({"Retry-After": date}, now=lambda: 1_000_000.0) == 30.0
    headers = {"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s"}
    assert retry_after_from_headers(headers) == 360.0
    assert retry_after_from_headers({"x-ratelimit-reset-tokens": "120ms"}) == pytest.approx(0.12)
    assert retry_after_from_headers({}) is None
    assert parse_duration("1h2m3.5s") == 3723.5
    assert parse_duration("soon") is None


# -- the errors the model layer hands the policy (the stub: a real server cannot be made to
# answer 429/503/529 with Retry-After on demand) -------------------------------------------


def _error_from(stub_server, status: int, headers=()):
    from chatwatch.config import ModelConfig
    from chatwatch.models.contract import GenerationSettings, Message, ModelError
    from chatwatch.models.openai_compat import OpenAICompatModel
    from tests.stub_openai_server import Script

    stub_server.script = Script(status=status, headers=tuple(headers))
    m = OpenAICompatModel(ModelConfig(id="m", kind="openai", base_url=stub_server.base_url, timeout_s=10.0))
    try:
        with pytest.raises(ModelError) as info:
            with m.chat([Message("user", "hi")], GenerationSettings(max_tokens=8)) as st:
                list(st)
    finally:
        m.close()
    return info.value


def test_status_and_retry_after_reach_the_error(stub_server):
    err = _error_from(stub_server, 429, [("Retry-After", "2")])
    assert (err.error_type, err.status_code, err.retry_after_s) == ("rate_limit", 429, 2.0)
    assert is_retryable(err)
    err = _error_from(stub_server, 529, [("x-ratelimit-reset-requests", "1s500ms")])
    assert (err.error_type, err.status_code, err.retry_after_s) == ("provider_error", 529, 1.5)
    assert is_retryable(err)
    err = _error_from(stub_server, 401)
    assert (err.error_type, err.status_code) == ("invalid_request", 401)
    assert not is_retryable(err)


def test_the_request_deadline_cuts_before_timeout_s(stub_server):
    """The stub trickles (a real server answers this prompt too fast to show a cut)."""
    import time

    from chatwatch.config import ModelConfig
    from chatwatch.models.contract import GenerationSettings, Message, ModelError
    from chatwatch.models.openai_compat import OpenAICompatModel
    from tests.stub_openai_server import Script

    stub_server.script = Script(chunks=("a",) * 20, interval_s=0.2)
    m = OpenAICompatModel(ModelConfig(id="m", kind="openai", base_url=stub_server.base_url, timeout_s=30.0))
    started = time.monotonic()
    try:
        with pytest.raises(ModelError) as info:
            with m.chat([Message("user", "hi")], GenerationSettings(max_tokens=8), deadline=started + 0.6) as st:
                list(st)
    finally:
        m.close()
    elapsed = time.monotonic() - started
    assert info.value.error_type == "timeout"
    assert 0.55 <= elapsed < 1.5
