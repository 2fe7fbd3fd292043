"""RequestRecord: the one record type that flows from a model call to the store, the
dashboard, alerts and exporters. Its field names are also the export schema."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

Status = Literal["ok", "error", "cancelled"]
PriceSource = Literal["genai-prices", "config", "local", "unpriced", "cache"]

NANO = Decimal("1e-9")

# Error types of requests chatwatch refused itself, before any model call: they count as
# failed user requests but not as failed model attempts (the model was never asked).
LOCAL_REFUSALS = ("circuit_open", "budget_exceeded", "rate_limited")


def exact_usd(cost: Decimal) -> str:
    """The exact stored sum as plain decimal text ("0.000123456", "12"): no exponent, no
    rounding. Every place that writes a cost as text (exports, CLI, pages) uses this."""
    text = format(cost.normalize(), "f")
    return text if text != "-0" else "0"


@dataclass
class RequestRecord:
    id: str
    started_at: datetime  # timezone-aware UTC
    instance: str
    session_id: str
    conversation_id: str | None
    model: str
    provider: str
    provider_model: str
    response_model: str | None
    stream: bool
    status: Status
    error_type: str | None
    error_message: str | None
    queue_s: float
    latency_s: float | None
    ttft_s: float | None
    output_tokens_per_s: float | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    reasoning_tokens: int | None
    token_source: str | None
    prompt_chars: int
    response_chars: int
    cost_usd: Decimal | None
    price_source: PriceSource
    rss_before_bytes: int | None
    rss_after_bytes: int | None
    system_available_bytes: int | None
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    finish_reason: str | None
    app_version: str
    # One user request may take several attempts (retries, fallbacks): each attempt is one
    # record with its own `id`; they share `request_id` (the first attempt's id). `attempt`
    # counts from 1 across the whole chain; `retry_reason` is the error type of the attempt
    # before this one; `fallback_from` the model whose failure moved the request here.
    request_id: str = ""
    attempt: int = 1
    retry_reason: str | None = None
    fallback_from: str | None = None
    # "chat", "compare" or "arena"; compare_id ties the answers of one compare or arena round.
    mode: str = "chat"
    compare_id: str | None = None
    # Answered from the response cache (resilience/cache.py): no model call, cost 0, and
    # what the original call cost and took (saved_usd None: the original was unpriced).
    cache_hit: bool = False
    saved_usd: Decimal | None = None
    saved_s: float | None = None
    # Only filled when [privacy] capture_content = true (after redaction).
    prompt_text: str | None = None
    response_text: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.request_id:
            self.request_id = self.id

    @property
    def cost_nanousd(self) -> int | None:
        """Cost in integer nano-dollars: how it is stored, so sums are exact."""
        return to_nanousd(self.cost_usd)

    @property
    def saved_nanousd(self) -> int | None:
        return to_nanousd(self.saved_usd)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready export form: ISO 8601 time, cost as a decimal string."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        d["started_at"] = iso(self.started_at)
        d["cost_usd"] = None if self.cost_usd is None else exact_usd(self.cost_usd)
        d["saved_usd"] = None if self.saved_usd is None else exact_usd(self.saved_usd)
        return d


def to_nanousd(usd: Decimal | None) -> int | None:
    return None if usd is None else int((usd / NANO).to_integral_value())


EXPORT_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RequestRecord) if f.name != "extra")


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def utcnow() -> datetime:
    return datetime.now(UTC)
