"""Pricing: exact Decimal costs, the order of authority, agreement with genai-prices, and
only its public API."""

from __future__ import annotations

import ast
import inspect
from datetime import UTC, datetime
from decimal import Decimal

import genai_prices
import pytest
from genai_prices import Usage

from chatwatch.config import ModelConfig, parse
from chatwatch.telemetry import pricing
from chatwatch.telemetry.pricing import Price, Pricer

M = Decimal(1_000_000)
# gpt-4o-mini at provider "openai", as read from genai_prices/data.py (genai-prices 0.2.3),
# USD per million tokens. test_catalogue_rates_unchanged says so if a data update moves them.
MINI_IN, MINI_CACHED, MINI_OUT = Decimal("0.15"), Decimal("0.075"), Decimal("0.6")


def openai_model(model: str = "gpt-4o-mini", **kw) -> ModelConfig:
    return ModelConfig(
        id=kw.pop("id", "m"), kind="openai", base_url=kw.pop("base_url", "https://api.openai.com/v1"), model=model, **kw
    )


@pytest.fixture
def pricer() -> Pricer:
    return Pricer(parse({}))


def test_catalogue_rates_unchanged():
    mp = genai_prices.calc_price(Usage(), "gpt-4o-mini", provider_id="openai").model_price
    assert (mp.input_mtok, mp.cache_read_mtok, mp.output_mtok) == (MINI_IN, MINI_CACHED, MINI_OUT)


def test_genai_prices_exact_decimal(pricer):
    p = pricer.price(openai_model(), input_tokens=1234, output_tokens=567)
    assert p == Price((1234 * MINI_IN + 567 * MINI_OUT) / M, "genai-prices")
    assert p.cost_usd == Decimal("0.0005253")  # 185.1 + 340.2 micro-dollars, by hand


def test_cache_reads_priced_at_cache_rate_not_twice(pricer):
    # input_tokens includes the 200 cached tokens (OpenAI's prompt_tokens convention).
    p = pricer.price(openai_model(), input_tokens=1000, output_tokens=500, cache_read_tokens=200)
    assert p.cost_usd == (800 * MINI_IN + 200 * MINI_CACHED + 500 * MINI_OUT) / M == Decimal("0.000435")
    uncached = pricer.price(openai_model(), input_tokens=1000, output_tokens=500)
    assert uncached.cost_usd - p.cost_usd == 200 * (MINI_IN - MINI_CACHED) / M
    # Same answer as genai-prices' own public API for the same usage.
    ref = genai_prices.calc_price(
        Usage(input_tokens=1000, output_tokens=500, cache_read_tokens=200), "gpt-4o-mini", provider_id="openai"
    )
    assert p.cost_usd == ref.total_price


def test_model_price_overrides_genai_prices(pricer):
    model = openai_model(price={"input_per_mtok": 1.1, "output_per_mtok": 2.2})
    p = pricer.price(model, input_tokens=1000, output_tokens=100)
    assert p == Price(Decimal("0.00132"), "config")  # 1100 + 220 micro-dollars


def test_settings_prices_override_genai_prices():
    settings = parse(
        {"prices": {"openai/gpt-4o-mini": {"input_per_mtok": 1, "output_per_mtok": 2, "cache_read_per_mtok": 0.5}}}
    )
    p = Pricer(settings).price(
        openai_model(provider="openai"), input_tokens=1000, output_tokens=10, cache_read_tokens=400
    )
    assert p == Price((600 * 1 + 400 * Decimal("0.5") + 10 * 2) / M, "config")


def test_config_price_for_unknown_model_is_exact():
    settings = parse({"prices": {"openai-compatible/my-model": {"input_per_mtok": 0.1, "output_per_mtok": 0.2}}})
    model = openai_model("my-model", base_url="http://127.0.0.1:9/v1")
    p = Pricer(settings).price(model, input_tokens=3, output_tokens=3, cache_read_tokens=2)
    # No cache-read rate configured: cached tokens cost the input rate. Floats would give 9.000000000000001e-07.
    assert p == Price(Decimal("9E-7"), "config")
    assert Pricer(settings).describe_price(model) == "$0.10 / $0.20 per 1M tokens (config)"


def test_model_entry_price_beats_settings_prices():
    settings = parse({"prices": {"openai-compatible/x": {"input_per_mtok": 9, "output_per_mtok": 9}}})
    model = openai_model("x", base_url="http://127.0.0.1:9/v1", price={"input_per_mtok": 1, "output_per_mtok": 1})
    assert Pricer(settings).price(model, input_tokens=1, output_tokens=1).cost_usd == Decimal(2) / M


@pytest.mark.parametrize(
    "model",
    [
        openai_model("no-such-model-xyz"),  # known provider, unknown model
        openai_model("gpt-4o-mini", provider="no-such-vendor", base_url="http://127.0.0.1:9/v1"),
        openai_model("gpt-4o-mini", base_url="http://127.0.0.1:8080/v1"),  # self-hosted: not OpenAI's bill
    ],
)
def test_unknown_stays_unpriced_never_zero(pricer, model):
    assert pricer.price(model, input_tokens=100, output_tokens=100) == Price(None, "unpriced")
    assert pricer.describe_price(model) == "unpriced"


def test_local_model_costs_zero(pricer):
    local = ModelConfig(id="smol", kind="llama_cpp")
    assert pricer.price(local, input_tokens=10, output_tokens=20) == Price(Decimal(0), "local")
    assert pricer.price(local, input_tokens=None, output_tokens=None) == Price(Decimal(0), "local")
    assert pricer.describe_price(local) == "free (local)"


def test_unknown_tokens_are_unpriced(pricer):
    assert pricer.price(openai_model(), input_tokens=None, output_tokens=5).source == "unpriced"
    cfg = openai_model("x", base_url="http://127.0.0.1:9/v1", price={"input_per_mtok": 1, "output_per_mtok": 1})
    assert pricer.price(cfg, input_tokens=5, output_tokens=None) == Price(None, "unpriced")


def test_inconsistent_usage_is_unpriced(pricer):
    assert pricer.price(openai_model(), input_tokens=10, output_tokens=5, cache_read_tokens=11).cost_usd is None
    assert pricer.price(openai_model(), input_tokens=-1, output_tokens=5).cost_usd is None


def test_provider_name_resolves_without_known_url(pricer):
    model = openai_model(provider="OpenAI", base_url="https://my-proxy.example/v1")
    assert pricer.price(model, input_tokens=1000, output_tokens=0).cost_usd == 1000 * MINI_IN / M


def test_tiered_prices_match_genai_prices(pricer):
    # Gemini 2.5 Pro costs more once the prompt exceeds 200K tokens.
    model = openai_model("gemini-2.5-pro", provider="google", base_url="https://generativelanguage.googleapis.com/v1")
    when = datetime(2026, 1, 1, tzinfo=UTC)
    for n in (200_000, 200_001):
        got = pricer.price(model, input_tokens=n, output_tokens=1000, cache_read_tokens=5000, when=when)
        ref = genai_prices.calc_price(
            Usage(input_tokens=n, output_tokens=1000, cache_read_tokens=5000),
            "gemini-2.5-pro",
            provider_id="google",
            genai_request_timestamp=when,
        )
        assert got == Price(ref.total_price, "genai-prices")
    small = pricer.price(model, input_tokens=200_000, output_tokens=0, when=when).cost_usd
    big = pricer.price(model, input_tokens=200_001, output_tokens=0, when=when).cost_usd
    assert big / 200_001 > small / 200_000
    assert "tiered above 200,000 prompt tokens" in pricer.describe_price(model)


def test_naive_when_is_treated_as_utc(pricer):
    naive = pricer.price(openai_model(), input_tokens=10, output_tokens=10, when=datetime(2026, 1, 1))
    aware = pricer.price(openai_model(), input_tokens=10, output_tokens=10, when=datetime(2026, 1, 1, tzinfo=UTC))
    assert naive == aware


def test_describe_price(pricer):
    assert pricer.describe_price(openai_model()) == "$0.15 / $0.60 per 1M tokens, cached input $0.075 (genai-prices)"


def test_config_price_and_same_catalogue_rates_agree(pricer):
    """A config price with gpt-4o-mini's rates costs exactly what the catalogue says."""
    rates = {"input_per_mtok": 0.15, "output_per_mtok": 0.6, "cache_read_per_mtok": 0.075}
    configured = openai_model("mine", base_url="http://127.0.0.1:9/v1", price=rates)
    for i, o, c in [(0, 0, 0), (1, 1, 0), (1000, 500, 200), (123_457, 98_765, 100_000)]:
        ours = pricer.price(configured, input_tokens=i, output_tokens=o, cache_read_tokens=c)
        theirs = pricer.price(openai_model(), input_tokens=i, output_tokens=o, cache_read_tokens=c)
        assert ours.source == "config" and theirs.source == "genai-prices"
        assert ours.cost_usd == theirs.cost_usd == ((i - c) * MINI_IN + c * MINI_CACHED + o * MINI_OUT) / M


def test_a_miss_is_looked_up_once(pricer):
    model = openai_model("no-such-model-abc", provider="openai")
    before = pricing.catalogue_key.cache_info()
    for _ in range(3):
        assert pricer.price(model, input_tokens=1, output_tokens=1) == Price(None, "unpriced")
    after = pricing.catalogue_key.cache_info()
    assert after.misses - before.misses == 1 and after.hits - before.hits == 2


def test_only_public_genai_prices_names_are_used():
    tree = ast.parse(inspect.getsource(pricing))
    imported = [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("genai_prices")
        for alias in node.names
    ]
    assert imported and all(
        not name.startswith("_") and module in ("genai_prices", "genai_prices.types") for module, name in imported
    ), imported
    private = [
        n.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute)
        and n.attr.startswith("_")
        and not (isinstance(n.value, ast.Name) and n.value.id == "self")  # our own attributes
    ]
    assert private == [], private  # no _get_registry, no __dict__
