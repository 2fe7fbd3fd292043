"""Strings of cost control: the response cache, budgets and rate limits."""

from __future__ import annotations

COST_STRINGS: dict[str, dict[str, str]] = {
    "price_source.cache": {"es": "caché (sin llamada)", "en": "cache (no call)"},
}
