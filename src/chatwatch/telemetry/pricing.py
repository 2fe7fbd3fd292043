"""What a request cost, in exact USD, through genai-prices' public API only.

Order of authority: a price in our own config (on the model entry, else in `[prices]`
under "provider/model") -> a local llama.cpp model costs 0 -> genai-prices' bundled
catalogue (offline, no network) -> unpriced. Unpriced means "we do not know", stored as
None; it is never reported as $0.

Token convention (same as OpenAI's usage and genai-prices' `Usage`): `input_tokens` is the
whole prompt *including* cache reads, and `cache_read_tokens` is the cached part of it.
So the input rate applies to `input - cache_read` and the cache-read rate to
`cache_read`; a cached token is never charged twice. When no cache-read rate is known,
cached tokens are charged at the full input rate. Usage where cache reads exceed the input
is inconsistent and is left unpriced rather than guessed. Reasoning tokens are part of
`output_tokens` and billed as output.

One arithmetic for both sources: a config price becomes a genai-prices `ModelPrice` and is
computed by its public `calc_price`, so a config price and a catalogue price of the same
rates give the same Decimal. Catalogue prices go through `genai_prices.calc_price`; which
identifier (our provider name or the base URL) finds the model is looked up once per
(provider, URL, model) and cached, misses included, because genai-prices scans its whole
catalogue on every miss. We use its bundled data only (no auto-update), so a cached answer
never goes stale within a process. A call costs ~0.1 ms, nothing next to a chat request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache

import genai_prices
from genai_prices import Usage
from genai_prices.types import ModelPrice, TieredPrices

from chatwatch import i18n
from chatwatch.config import ModelConfig, PriceConfig, Settings
from chatwatch.store.record import PriceSource

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Price:
    cost_usd: Decimal | None
    source: PriceSource


UNPRICED = Price(None, "unpriced")
LOCAL = Price(Decimal(0), "local")


@lru_cache(maxsize=256)
def config_model_price(p: PriceConfig) -> ModelPrice:
    """Our config's per-million-token rates as a genai-prices ModelPrice. Through str() so
    0.15 is exactly 0.15, not 0.1499999999999999944488848768742172978818416595458984375."""
    return ModelPrice(
        input_mtok=Decimal(str(p.input_per_mtok)),
        output_mtok=Decimal(str(p.output_per_mtok)),
        cache_read_mtok=None if p.cache_read_per_mtok is None else Decimal(str(p.cache_read_per_mtok)),
    )


@lru_cache(maxsize=512)
def catalogue_key(provider_id: str | None, api_url: str | None, model_ref: str) -> tuple[str, str] | None:
    """Which `calc_price` keyword finds this model in genai-prices' catalogue:
    ("provider_id", our provider name) or ("provider_api_url", the base URL); None when
    neither does. The provider name is tried first: it is what the user said."""
    attempts = [("provider_id", provider_id), ("provider_api_url", api_url)]
    for keyword, value in attempts:
        if not value:
            continue
        try:
            genai_prices.calc_price(Usage(), model_ref, **{keyword: value})
        except LookupError:
            continue
        return keyword, value
    return None


class Pricer:
    """Prices requests for one Settings. Thread-safe: it holds only read-only dicts, and
    the caches it uses are functools.lru_cache."""

    def __init__(self, settings: Settings) -> None:
        self._prices = dict(settings.prices)
        self._prices_ci = {k.lower(): v for k, v in self._prices.items()}

    def price(
        self,
        model: ModelConfig,
        *,
        input_tokens: int | None,
        output_tokens: int | None,
        cache_read_tokens: int | None = None,
        when: datetime | None = None,
    ) -> Price:
        configured = self.config_price(model)
        if configured is None and model.kind == "llama_cpp":
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
        usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cached or None)
        if configured is not None:
            return Price(configured.calc_price(usage)["total_price"], "config")
        key = self._catalogue_key(model)
        if key is None:
            return UNPRICED
        try:
            calc = genai_prices.calc_price(
                usage, model.provider_model, genai_request_timestamp=_aware(when), **{key[0]: key[1]}
            )
        except (LookupError, ValueError) as exc:
            log.warning("genai-prices could not price %s: %s", model.id, exc)
            return UNPRICED
        return Price(calc.total_price, "genai-prices")

    def describe_price(self, model: ModelConfig, lang: str = "en") -> str:
        """One line for the UI in `lang`, e.g. "$0.15 / $0.60 per 1M tokens (genai-prices)"."""
        configured = self.config_price(model)
        if configured is not None:
            return _describe(configured, "config", lang)
        if model.kind == "llama_cpp":
            return i18n.t("price.free_local", lang)
        key = self._catalogue_key(model)
        if key is None:
            return i18n.t("price.unpriced", lang)
        calc = genai_prices.calc_price(Usage(), model.provider_model, **{key[0]: key[1]})
        return _describe(calc.model_price, "genai-prices", lang)

    def config_price(self, model: ModelConfig) -> ModelPrice | None:
        """The price our config gives this model, or None when it gives none."""
        if model.price is not None:
            return config_model_price(model.price)
        key = f"{model.provider_name}/{model.provider_model}"
        p = self._prices.get(key) or self._prices_ci.get(key.lower())
        return None if p is None else config_model_price(p)

    def _catalogue_key(self, model: ModelConfig) -> tuple[str, str] | None:
        if model.kind != "openai":
            return None
        # Only the provider name the user gave (not the "openai-compatible" default, which
        # genai-prices would match to OpenAI) and the base URL identify the vendor, so a
        # self-hosted server (localhost) stays unpriced instead of borrowing OpenAI's prices.
        return catalogue_key(model.provider, model.base_url, model.provider_model)


def _aware(when: datetime | None) -> datetime:
    if when is None:
        return datetime.now(UTC)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _base(rate: Decimal | TieredPrices | None) -> Decimal | None:
    return rate.base if isinstance(rate, TieredPrices) else rate


def _usd(x: Decimal) -> str:
    """$0.15, $0.60, $10.00, $0.075: cents always, more digits only when they exist."""
    x = x.normalize()
    return f"${x:.2f}" if x.as_tuple().exponent >= -2 else f"${x:f}"


def _describe(mp: ModelPrice, source: str, lang: str = "en") -> str:
    """The rates a chat pays (input, output, cached input, per-request fee), base tier."""
    text = i18n.t(
        "price.per_mtok",
        lang,
        input=_usd(_base(mp.input_mtok) or Decimal(0)),
        output=_usd(_base(mp.output_mtok) or Decimal(0)),
    )
    if mp.cache_read_mtok is not None:
        text += i18n.t("price.cached", lang, rate=_usd(_base(mp.cache_read_mtok)))
    if mp.requests_kcount is not None:
        text += i18n.t("price.per_krequests", lang, rate=_usd(_base(mp.requests_kcount)))
    tiers = [
        t.start
        for r in (mp.input_mtok, mp.output_mtok, mp.cache_read_mtok, mp.requests_kcount)
        if isinstance(r, TieredPrices)
        for t in r.tiers
    ]
    if tiers:
        text += i18n.t("price.tiered_above", lang, tokens=f"{min(tiers):,}")
    return i18n.t("price.source", lang, text=text, source=i18n.t(f"price_source.{source}", lang))
