"""The response cache (resilience/cache.py, store/cache.py, models/cached.py): a real
model's answer stored and replayed through the one Monitor. The saved dollars are computed
in the test from the original call's reported tokens and the configured price."""

from __future__ import annotations

from decimal import Decimal

import pytest

from chatwatch.config import ConfigError, parse
from chatwatch.models.contract import GenerationSettings, Message
from chatwatch.models.registry import ModelRegistry
from chatwatch.resilience.cache import ResponseCache, cache_key, cacheable
from chatwatch.store import cache as db
from chatwatch.store.records import Store
from chatwatch.telemetry.monitor import AttemptTags, Monitor

PRICE_IN, PRICE_OUT = Decimal("3.0"), Decimal("15.0")  # USD per million tokens
MESSAGES = [Message("user", "Name one colour.")]
SEEDED = GenerationSettings(temperature=0.0, max_tokens=12, seed=7)


def settings_for(tmp_path, base_url: str, url: str, **model):
    return parse(
        {
            "app": {"data_dir": str(tmp_path / "data"), "log_dir": str(tmp_path / "logs")},
            "store": {"url": url},
            "privacy": {"capture_content": True},
            "models": [
                {
                    "id": "served",
                    "kind": "openai",
                    "base_url": base_url,
                    "model": "smollm2",
                    "cache": True,
                    "price": {"input_per_mtok": float(PRICE_IN), "output_per_mtok": float(PRICE_OUT)},
                    **model,
                }
            ],
        }
    )


def run(monitor, model, cfg, tags=None):
    reply = monitor.chat(model, cfg, MESSAGES, SEEDED, session_id="s", stream=False, tags=tags)
    text = "".join(reply)
    return reply.record, text


def test_a_hit_replays_the_answer_costs_nothing_and_saves_the_original_cost(tmp_path, llama_server, store_url):
    settings = settings_for(tmp_path, llama_server, store_url)
    cfg = settings.model("served")
    models = ModelRegistry()
    with Store.open(store_url) as store:
        monitor = Monitor(settings, store, instance="test")
        cache = ResponseCache(store.engine)
        try:
            assert cache.lookup(cfg, MESSAGES, SEEDED) is None
            original, text = run(monitor, models.get(cfg), cfg)
            assert original.status == "ok" and original.token_source == "reported"
            assert cache.store(cfg, MESSAGES, SEEDED, original, text)
            hit = cache.lookup(cfg, MESSAGES, SEEDED)
            assert hit is not None and hit.source_request_id == original.id
            tags = AttemptTags(cache_hit=True, saved_usd=hit.saved_usd, original_latency_s=hit.original_latency_s)
            again, replayed = run(monitor, hit.model, cfg, tags)
        finally:
            monitor.close()
            models.close()
        expected = (original.input_tokens * PRICE_IN + original.output_tokens * PRICE_OUT) / Decimal(1_000_000)
        assert replayed == text
        assert again.cache_hit and again.cost_usd == 0 and again.price_source == "cache"
        assert again.saved_usd == original.cost_usd == expected.quantize(Decimal("1e-9"))
        assert again.saved_s == pytest.approx(original.latency_s - again.latency_s)
        assert again.input_tokens == original.input_tokens and again.output_tokens == original.output_tokens
        assert store.get(again.id).saved_usd == again.saved_usd  # stored exactly
        assert db.lookup(store.engine, cache_key(cfg, MESSAGES, SEEDED)).hits == 2


def test_only_reproducible_complete_answers_are_cached_and_the_bound_holds(tmp_path, store_url):
    settings = settings_for(tmp_path, "http://127.0.0.1:9/v1", store_url, cache_max_entries=2)
    cfg = settings.model("served")
    assert cacheable(cfg, SEEDED) and cacheable(cfg, GenerationSettings(temperature=0.0))
    assert not cacheable(cfg, GenerationSettings(temperature=0.7))  # sampled: not a repeat
    anything = settings_for(tmp_path, "http://127.0.0.1:9/v1", store_url, cache_any_settings=True).model("served")
    assert cacheable(anything, GenerationSettings(temperature=0.7))
    assert cache_key(cfg, MESSAGES, SEEDED) != cache_key(cfg, MESSAGES, SEEDED.with_(max_tokens=13))
    with Store.open(store_url) as store:
        for i in range(3):
            db.put(
                store.engine,
                db.CacheEntry(f"k{i}", "served", "t", "stop", None, 1, 1, "reported", 5, "config", 0.1, f"r{i}"),
                ttl_s=60,
                max_entries=2,
                at_us=1_000 + i,
            )
        assert db.count(store.engine, "served") == 2 and db.lookup(store.engine, "k0", at_us=2_000) is None
        assert db.prune(store, at_us=1_000 + 61_000_000) == 2


def test_config_refuses_a_cache_where_text_may_not_be_stored(tmp_path):
    with pytest.raises(ConfigError, match="capture_content"):
        parse({"models": [{"id": "m", "kind": "llama_cpp", "cache": True}]})
