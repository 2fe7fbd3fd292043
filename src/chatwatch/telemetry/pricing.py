"""What a request cost, in exact USD.

Order of authority: a price in our own config (on the model entry, else in
`[prices]` under "provider/model") -> a local llama.cpp model costs 0 -> genai-prices'
bundled catalogue (offline, no network) -> unpriced. Unpriced means "we do not know",
stored as None; it is never reported as $0.

Token convention (same as OpenAI's usage and genai-prices' `Usage`): `input_tokens` is the
whole prompt *including* cache reads, and `cache_read_tokens` is the cached part of it.
So the input rate applies to `input - cache_read` and the cache-read rate to
`cache_read`; a cached token is never charged twice. When no cache-read rate is known,
cached tokens are charged at the full input rate (genai-prices does the same). Usage
where cache reads exceed the input is inconsistent and is left unpriced rather than
guessed. Reasoning tokens are part of `output_tokens` and billed as output.

Speed: genai-prices' own calculation costs ~70-100 µs a call, almost all of it generic
unit bookkeeping. For the usual shape of price (input / output / cache-read per million,
optionally tiered by prompt size, optionally a per-request fee) we read its rates once and
do the same Decimal arithmetic ourselves (a few µs); tests check the two agree exactly over
the whole bundled catalogue. Anything else (audio/image-specific prices) goes through
genai-prices unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from genai_prices import Usage as _GPUsage
from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import ModelInfo, ModelPrice, Provider, TieredPrices

from chatwatch.config import ModelConfig, PriceConfig, Settings
from chatwatch.store.record import PriceSource

log = logging.getLogger(__name__)

_MTOK = Decimal(1_000_000)
_KREQ = Decimal(1_000)
_ZERO = Decimal(0)
# genai-prices price keys our fast path computes itself. Prices for usage a chat record
# never reports (cache writes, searches, audio seconds, pixels...) apply to 0 units and add 0.
_FAST_KEYS = frozenset({"input_mtok", "output_mtok", "cache_read_mtok", "requests_kcount"})


@dataclass(frozen=True, slots=True)
class Price:
    cost_usd: Decimal | None
    source: PriceSource


UNPRICED = Price(None, "unpriced")
LOCAL = Price(_ZERO, "local")


Rate = Decimal | TieredPrices  # tiered: the rate for all tokens depends on the prompt size


@dataclass(frozen=True, slots=True)
class Rates:
    """Token prices, USD per million tokens (plus an optional per-request fee)."""

    input: Rate
    output: Rate
    cache_read: Rate | None = None  # None: cache reads cost the input rate
    requests_kcount: Rate = _ZERO  # USD per 1000 requests (genai-prices' unit)

    @classmethod
    def from_config(cls, p: PriceConfig) -> Rates:
        # Through str() so 0.15 is exactly 0.15, not 0.1499999999999999944488848768742172978818416595458984375.
        cr = None if p.cache_read_per_mtok is None else Decimal(str(p.cache_read_per_mtok))
        return cls(Decimal(str(p.input_per_mtok)), Decimal(str(p.output_per_mtok)), cr)

    @property
    def tiered(self) -> bool:
        return any(
            isinstance(r, TieredPrices) for r in (self.input, self.output, self.cache_read, self.requests_kcount)
        )

    def cost(self, input_tokens: int, output_tokens: int, cache_read_tokens: int) -> Decimal:
        # Same operations as genai-prices (price * count / per, summed), so results match it exactly.
        uncached = input_tokens - cache_read_tokens if self.cache_read is not None else input_tokens
        total = (
            _at(self.input, input_tokens) * uncached / _MTOK + _at(self.output, input_tokens) * output_tokens / _MTOK
        )
        if self.cache_read is not None:
            total += _at(self.cache_read, input_tokens) * cache_read_tokens / _MTOK
        if self.requests_kcount:
            total += _at(self.requests_kcount, input_tokens) / _KREQ
        return total


def _at(rate: Rate, prompt_tokens: int) -> Decimal:
    """The rate that applies: genai-prices picks the highest tier whose start the whole
    prompt (cache reads included) exceeds, for every token type alike."""
    if isinstance(rate, TieredPrices):
        for tier in reversed(rate.tiers):
            if prompt_tokens > tier.start:
                return tier.price
        return rate.base
    return rate


def _fast_rates(mp: ModelPrice) -> Rates | None:
    """Rates for a genai-prices ModelPrice priced only by input, output, cache-read tokens
    and requests; None otherwise (e.g. audio- or image-specific token prices), in which
    case genai-prices itself does the calculation."""
    from genai_prices.units import _get_registry  # the registry that maps price keys to units

    registry = _get_registry()
    for key, value in mp.__dict__.items():
        if value is None or key.startswith("_"):
            continue
        if key in _FAST_KEYS:
            if not isinstance(value, (Decimal, TieredPrices)):
                return None
            continue
        try:
            unit = registry.unit_for_price_key(key)
        except KeyError:
            return None
        dims = unit.dimensions
        if dims.get("family") == "tokens" and not (dims.get("token_type") == "cache_write" and "modality" not in dims):
            return None  # e.g. audio/image/text-only token prices: genai-prices splits those
    d: dict[str, Any] = mp.__dict__
    return Rates(
        input=d.get("input_mtok") or _ZERO,
        output=d.get("output_mtok") or _ZERO,
        cache_read=d.get("cache_read_mtok"),
        requests_kcount=d.get("requests_kcount") or _ZERO,
    )


@lru_cache(maxsize=512)
def _resolve(provider_id: str | None, api_url: str | None, model_ref: str) -> tuple[Provider, ModelInfo] | None:
    """genai-prices' (provider, model) for our provider name or base URL; None when unknown.
    Cached, misses included: genai-prices scans its whole catalogue on every miss. We use
    its bundled data only (no auto-update), so entries never go stale within a process."""
    snapshot = get_snapshot()
    attempts: list[tuple[str | None, str | None]] = []
    if provider_id:
        attempts.append((provider_id, None))
    if api_url:
        attempts.append((None, api_url))
    for pid, url in attempts:
        try:
            return snapshot.find_provider_model(model_ref, None, pid, url)
        except LookupError:
            continue
    return None


class Pricer:
    """Prices requests for one Settings. Thread-safe; lookups are cached."""

    def __init__(self, settings: Settings) -> None:
        self._prices = {k: Rates.from_config(v) for k, v in settings.prices.items()}
        self._prices_ci = {k.lower(): v for k, v in self._prices.items()}
        # Keyed by id(); the value keeps the object alive so the id cannot be reused.
        self._rates_by_obj: dict[int, tuple[object, Rates | None]] = {}

    # -- public -------------------------------------------------------------------

    def price(
        self,
        model: ModelConfig,
        *,
        input_tokens: int | None,
        output_tokens: int | None,
        cache_read_tokens: int | None = None,
        when: datetime | None = None,
    ) -> Price:
        rates = self.config_rates(model)
        if rates is None and model.kind == "llama_cpp":
            return LOCAL
        if input_tokens is None or output_tokens is None:
            return UNPRICED
        cached = cache_read_tokens or 0
        if min(input_tokens, output_tokens, cached) < 0 or cached > input_tokens:
            log.warning(
                "inconsistent usage for %s (input=%s cache_read=%s output=%s); left unpriced",
                model.id,
                input_tokens,
                cache_read_tokens,
                output_tokens,
            )
            return UNPRICED
        if rates is not None:
            return Price(rates.cost(input_tokens, output_tokens, cached), "config")
        return self._genai_price(model, input_tokens, output_tokens, cached, when)

    def describe_price(self, model: ModelConfig) -> str:
        """One line for the UI, e.g. "$0.15 / $0.60 per 1M tokens (genai-prices)"."""
        rates = self.config_rates(model)
        if rates is not None:
            return _describe(rates, "config")
        if model.kind == "llama_cpp":
            return "free (local)"
        found = self._lookup(model)
        if found is None:
            return "unpriced"
        mp = found[1].get_prices(datetime.now(UTC))
        rates = self._rates_for(mp)
        return _describe(rates, "genai-prices") if rates is not None else f"{mp} (genai-prices)"

    def config_rates(self, model: ModelConfig) -> Rates | None:
        if model.price is not None:
            return self._cached_rates(model.price, lambda: Rates.from_config(model.price))
        key = f"{model.provider_name}/{model.provider_model}"
        return self._prices.get(key) or self._prices_ci.get(key.lower())

    # -- internals ----------------------------------------------------------------

    def _genai_price(
        self, model: ModelConfig, input_tokens: int, output_tokens: int, cached: int, when: datetime | None
    ) -> Price:
        found = self._lookup(model)
        if found is None:
            return UNPRICED
        provider, info = found
        when = _aware(when)
        mp = info.get_prices(when)  # prices can change over time; this pick is ~0.2 µs
        rates = self._rates_for(mp)
        if rates is not None:
            return Price(rates.cost(input_tokens, output_tokens, cached), "genai-prices")
        try:  # modality-specific pricing: let genai-prices do the whole calculation (~70 µs)
            calc = info.calc_price(
                _GPUsage(input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cached or None),
                provider,
                genai_request_timestamp=when,
            )
        except ValueError as exc:
            log.warning("genai-prices could not price %s: %s", model.id, exc)
            return UNPRICED
        return Price(calc.total_price, "genai-prices")

    def _lookup(self, model: ModelConfig) -> tuple[Provider, ModelInfo] | None:
        if model.kind != "openai":
            return None
        # Only the provider name the user gave (not the "openai-compatible" default, which
        # genai-prices would match to OpenAI) and the base URL identify the vendor, so a
        # self-hosted server (localhost) stays unpriced instead of borrowing OpenAI's prices.
        return _resolve(model.provider, model.base_url, model.provider_model)

    def _rates_for(self, mp: ModelPrice) -> Rates | None:
        return self._cached_rates(mp, lambda: _fast_rates(mp))

    def _cached_rates(self, obj: object, make: Callable[[], Rates | None]) -> Rates | None:
        hit = self._rates_by_obj.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        rates = make()
        self._rates_by_obj[id(obj)] = (obj, rates)
        return rates


def _aware(when: datetime | None) -> datetime:
    if when is None:
        return datetime.now(UTC)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _usd(x: Decimal) -> str:
    """$0.15, $0.60, $10.00, $0.075: cents always, more digits only when they exist."""
    x = x.normalize()
    return f"${x:.2f}" if x.as_tuple().exponent >= -2 else f"${x:f}"


def _describe(r: Rates, source: str) -> str:
    text = f"{_usd(_at(r.input, 0))} / {_usd(_at(r.output, 0))} per 1M tokens"
    if r.cache_read is not None:
        text += f", cached input {_usd(_at(r.cache_read, 0))}"
    if r.requests_kcount:
        text += f", {_usd(_at(r.requests_kcount, 0))} per 1K requests"
    if r.tiered:
        starts = [t.start for x in (r.input, r.output, r.cache_read) if isinstance(x, TieredPrices) for t in x.tiers]
        text += f"; tiered above {min(starts):,} prompt tokens" if starts else "; tiered"
    return f"{text} ({source})"
