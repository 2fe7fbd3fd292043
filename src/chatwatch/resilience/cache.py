"""The response cache (opt-in per model: `cache = true`): an exact repeat of a request --
same model, settings and messages -- is answered from the store at once, without calling
the provider, on any replica.

By default only reproducible requests are cached (temperature 0, or a seed): for a sampled
request a stored answer is one of many the model could give, and reusing it would change
what the user asked for (`cache_any_settings = true` allows it anyway). Only complete
answers are stored (finish reason known, not cancelled, no error). The key is a SHA-256 of
the request: no prompt text is stored; the answer text is, which is why config refuses
`cache = true` unless [privacy] capture_content is on.

A hit is recorded like any attempt, through the Monitor replaying the stored answer
(models/cached.py): cost 0 (price source "cache"), `cache_hit`, `saved_usd` = what the
original call cost (None when it was unpriced: unknown, not $0) and `saved_s` = the original
latency minus the hit's.

    hit = cache.lookup(config, messages, settings)   # CacheHit or None
    cache.store(config, messages, settings, record, text)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from chatwatch.config import ModelConfig
from chatwatch.models.cached import CachedReply
from chatwatch.models.contract import GenerationSettings, Message, Usage
from chatwatch.store import cache as db
from chatwatch.store.record import RequestRecord, to_nanousd
from chatwatch.store.records import nanousd_to_usd


@dataclass(frozen=True)
class CacheHit:
    model: CachedReply  # replay it through the Monitor
    saved_usd: Decimal | None
    original_latency_s: float | None
    source_request_id: str


def cacheable(config: ModelConfig, settings: GenerationSettings) -> bool:
    if not config.cache:
        return False
    return config.cache_any_settings or settings.temperature == 0 or settings.seed is not None


def cache_key(config: ModelConfig, messages: Sequence[Message], settings: GenerationSettings) -> str:
    """SHA-256 of everything that shapes the answer: the model entry's identity, the
    generation settings and the whole conversation."""
    body = {
        "model": config.id,
        "provider": config.provider_name,
        "provider_model": config.provider_model,
        "base_url": config.base_url,
        "settings": [settings.temperature, settings.top_p, settings.max_tokens, settings.seed, list(settings.stop)],
        "messages": [[m.role, m.content] for m in messages],
    }
    return hashlib.sha256(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()


class ResponseCache:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def lookup(self, config: ModelConfig, messages: Sequence[Message], settings: GenerationSettings) -> CacheHit | None:
        if not cacheable(config, settings):
            return None
        entry = db.lookup(self.engine, cache_key(config, messages, settings))
        if entry is None:
            return None
        reply = CachedReply(
            id=config.id,
            provider=config.provider_name,
            provider_model=config.provider_model,
            text=entry.text,
            finish_reason=entry.finish_reason,
            usage=Usage(entry.input_tokens, entry.output_tokens, entry.token_source or "reported"),
            response_model=entry.response_model,
        )
        return CacheHit(reply, nanousd_to_usd(entry.cost_nanousd), entry.latency_s, entry.source_request_id)

    def store(
        self,
        config: ModelConfig,
        messages: Sequence[Message],
        settings: GenerationSettings,
        record: RequestRecord,
        text: str,
    ) -> bool:
        """Keep a complete answer of a real call; True if stored."""
        if not cacheable(config, settings) or record.cache_hit:
            return False
        if record.status != "ok" or record.finish_reason is None or not text:
            return False
        db.put(
            self.engine,
            db.CacheEntry(
                key=cache_key(config, messages, settings),
                model=config.id,
                text=text,
                finish_reason=record.finish_reason,
                response_model=record.response_model,
                input_tokens=record.input_tokens,
                output_tokens=record.output_tokens,
                token_source=record.token_source,
                cost_nanousd=to_nanousd(record.cost_usd),
                price_source=record.price_source,
                latency_s=record.latency_s,
                source_request_id=record.id,
            ),
            ttl_s=config.cache_ttl_s,
            max_entries=config.cache_max_entries,
        )
        return True
