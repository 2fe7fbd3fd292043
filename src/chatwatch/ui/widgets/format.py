"""How the dashboard writes its numbers: pure functions, so tests can format an
independently computed value the same way and compare strings.

Unknown values (no requests, nothing measured) read "—", never 0; costs are never shown as
$0 for requests without a price.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal

from chatwatch.i18n import STRINGS, t
from chatwatch.store.record import exact_usd

NONE = "—"
MB = 1024 * 1024


def fmt_int(n: int | None) -> str:
    return NONE if n is None else f"{int(n):,}"


def fmt_pct(ratio: float | None) -> str:
    """A fraction as a percentage with two decimals (0.0345 -> "3.45 %")."""
    return NONE if ratio is None else f"{ratio * 100:.2f} %"


def fmt_seconds(s: float | None) -> str:
    """Three significant digits, milliseconds under a second ("87.5 ms", "1.23 s", "312 s")."""
    if s is None:
        return NONE
    if s < 1:
        return f"{_sig3(s * 1000)} ms"
    if s < 100:
        return f"{_sig3(s)} s"
    return f"{s:,.0f} s"


def fmt_percentile(summary, field: str) -> str:
    """A summary's percentile field: its value, or "> 2 h" / "< 0.1 ms" when the histogram
    estimate lies beyond the buckets' range (the field then holds only the bound)."""
    beyond = summary.beyond.get(field)
    return beyond.text if beyond is not None else fmt_seconds(getattr(summary, field))


def _sig3(x: float) -> str:
    """Three significant digits, trailing zeros kept so values line up ("1.00", "12.5")."""
    if x <= 0:
        return "0"
    decimals = max(0, 2 - math.floor(math.log10(x)))
    return f"{x:.{decimals}f}"


def fmt_rate(tokens_per_s: float | None) -> str:
    return NONE if tokens_per_s is None else f"{tokens_per_s:,.1f} tok/s"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return NONE
    if n >= 10 * 1024 * MB:
        return f"{n / (1024 * MB):,.1f} GB"
    return f"{n / MB:,.0f} MB"


def fmt_usd(cost: Decimal) -> str:
    """Dollars: cents from $1 up, 4 decimals from a cent, full nano-dollar precision below."""
    if cost >= 1:
        return f"${cost:,.2f}"
    if cost >= Decimal("0.01"):
        return f"${cost:.4f}"
    return "$" + exact_usd(cost)


def fmt_cost(cost: Decimal, unpriced: int, requests: int, lang: str, *, note: bool = True) -> str:
    """Total cost of the priced requests, "+N unpriced" when some have no price (unless
    `note` is off: the caller shows it apart); when none has a price there is no cost to
    show (it is unknown, not $0)."""
    if requests == 0:
        return NONE
    if unpriced >= requests:
        return t("dash.all_unpriced", lang, n=f"{unpriced:,}")
    text = fmt_usd(cost)
    return f"{text} {t('dash.unpriced_suffix', lang, n=f'{unpriced:,}')}" if unpriced and note else text


def fmt_satisfaction(up: int, total: int, lang: str) -> str:
    return t("dash.no_feedback", lang) if total == 0 else f"👍 {up / total * 100:.1f} %"


def label(kind: str, value: str | None, lang: str) -> str:
    """A stored code (a status, an error type, a token or price source, a finish reason) in
    words: `t("{kind}.{value}")`, or the code itself when it is not one we know (an error
    type from a newer version, a provider's own finish reason). None reads "—"."""
    if value is None or value == "":
        return NONE
    key = f"{kind}.{value}"
    return t(key, lang) if key in STRINGS else value


def fmt_time(ts: datetime) -> str:
    """UTC wall time to the second, as every table of these pages shows it."""
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
