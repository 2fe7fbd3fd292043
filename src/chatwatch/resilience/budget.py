"""Budgets ([[budgets]] in config): what an attempt may spend, decided before it runs.

For each attempt the chain calls `check()`: every budget the model falls under (its own, and
those for all models) gets a reservation of the attempt's worst case -- the prompt's
estimated input tokens plus max_tokens of output, at the model's price -- atomically in the
store (store/budgets.py), so processes and replicas share one limit. A "block" budget that
would be passed refuses the attempt (error type budget_exceeded, the message naming the
budget, its spend and when it resets); "fallback" names the model to use instead; "warn"
lets it through and only counts. After the attempt `settle()` books the real cost and
announces each notify_at fraction crossed, once per period across all processes.

A model whose price is unknown ("unpriced") reserves and books no dollars (its cost is
unknown, not $0) but still counts tokens; the budget's page says how many such requests
there were. A local model costs $0 and never hits a USD limit.

    check = budgets.check(model_config, messages, settings)
    if not check.allowed: ...  # check.message, check.fallback
    budgets.settle(check, record)
"""

from __future__ import annotations

import calendar
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from chatwatch.config import BudgetConfig, ModelConfig, Settings
from chatwatch.models.contract import GenerationSettings, Message
from chatwatch.models.token_estimate import estimate_prompt_tokens
from chatwatch.store import budgets as db
from chatwatch.store.record import RequestRecord, exact_usd, to_nanousd
from chatwatch.store.records import nanousd_to_usd
from chatwatch.telemetry.pricing import Pricer

log = logging.getLogger("chatwatch.resilience")

RESERVATION_TTL_S = 900  # a reservation whose process died is reclaimed after this


@dataclass(frozen=True)
class BudgetCheck:
    """The verdict for one attempt. `claims` and `reservation_id` go back to `settle`."""

    allowed: bool
    claims: tuple[db.Claim, ...] = ()
    reservation_id: str | None = None
    refused_by: str | None = None  # the budget's name
    message: str | None = None  # plain words: which budget, how much, when it resets
    fallback: str | None = None  # action = "fallback": the model to use instead
    resets_at: datetime | None = None


@dataclass(frozen=True)
class BudgetNotice:
    """A notify_at threshold crossed, for the alert channels."""

    budget: str
    fraction: float
    spent_usd: Decimal
    limit_usd: float | None
    spent_tokens: int
    limit_tokens: int | None
    period: str
    resets_at: datetime


@dataclass(frozen=True)
class BudgetStatus:
    """One budget's current period, for the dashboard and `chatwatch stats`."""

    name: str
    period: str
    model: str | None
    action: str
    limit_usd: float | None
    limit_tokens: int | None
    spent_usd: Decimal
    reserved_usd: Decimal
    spent_tokens: int
    period_start: datetime
    resets_at: datetime

    @property
    def used(self) -> float | None:
        """Spent share of the limit (dollars, else tokens)."""
        if self.limit_usd:
            return float(self.spent_usd) / self.limit_usd
        if self.limit_tokens:
            return self.spent_tokens / self.limit_tokens
        return None


def period_bounds(period: str, at: datetime) -> tuple[datetime, datetime]:
    """The UTC day or month holding `at`: (start, next start)."""
    at = at.astimezone(UTC)
    if period == "day":
        start = datetime(at.year, at.month, at.day, tzinfo=UTC)
        return start, start + timedelta(days=1)
    start = datetime(at.year, at.month, 1, tzinfo=UTC)
    return start, start + timedelta(days=calendar.monthrange(at.year, at.month)[1])


def _nanos(usd: Decimal | None) -> int:
    """Nano-dollars to book: an unknown cost books nothing (it is not $0, it is unknown)."""
    return to_nanousd(usd) or 0


def _money(usd: Decimal | float) -> str:
    """Dollars as a person reads them: cents from $1 up, every digit below (never "$0.00"
    for a real spend of a fraction of a cent)."""
    d = Decimal(str(usd))
    return f"${d:,.2f}" if abs(d) >= 1 else f"${exact_usd(d)}"


class Budgets:
    def __init__(
        self,
        engine: sa.Engine,
        settings: Settings,
        pricer: Pricer,
        *,
        instance: str,
        clock: Callable[[], float] = time.time,
        on_threshold: Callable[[BudgetNotice], None] | None = None,
    ) -> None:
        self.engine = engine
        self.budgets: tuple[BudgetConfig, ...] = tuple(settings.budgets)
        self.pricer = pricer
        self.instance = instance
        self.clock = clock
        self.on_threshold = on_threshold

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def applicable(self, model_id: str) -> list[BudgetConfig]:
        return [b for b in self.budgets if b.model is None or b.model == model_id]

    def _claims(self, model_id: str, now: datetime) -> list[tuple[BudgetConfig, db.Claim, datetime]]:
        out = []
        for b in self.applicable(model_id):
            start, end = period_bounds(b.period, now)
            limit = None if b.limit_usd is None else _nanos(Decimal(str(b.limit_usd)))
            claim = db.Claim(b.name, int(start.timestamp() * 1_000_000), limit, b.limit_tokens, b.action != "warn")
            out.append((b, claim, end))
        return out

    def estimate(
        self, config: ModelConfig, messages: Sequence[Message], settings: GenerationSettings
    ) -> tuple[int, int]:
        """(nano-dollars, tokens) the attempt may cost at most: the estimated prompt and
        max_tokens of reply at the model's price; 0 dollars when the price is unknown."""
        input_tokens = estimate_prompt_tokens(messages)
        price = self.pricer.price(config, input_tokens=input_tokens, output_tokens=settings.max_tokens)
        return _nanos(price.cost_usd), input_tokens + settings.max_tokens

    def check(self, config: ModelConfig, messages: Sequence[Message], settings: GenerationSettings) -> BudgetCheck:
        now = self._now()
        found = self._claims(config.id, now)
        if not found:
            return BudgetCheck(True)
        nanousd, tokens = self.estimate(config, messages, settings)
        rid = str(uuid.uuid4())
        claims = [c for _, c, _ in found]
        usage, refused = db.reserve(
            self.engine,
            claims,
            reservation_id=rid,
            nanousd=nanousd,
            tokens=tokens,
            ttl_s=RESERVATION_TTL_S,
            instance=self.instance,
            at_us=int(now.timestamp() * 1_000_000),
        )
        if refused is None:
            return BudgetCheck(True, tuple(claims), rid)
        budget, _, resets = next((b, c, e) for b, c, e in found if c.budget == refused.budget)
        u = usage[refused.budget]
        message = self._refusal_text(budget, u, resets)
        log.warning(
            "budget %r refused a request to %s: %s",
            budget.name,
            config.id,
            message,
            extra={"budget": budget.name, "model": config.id},
        )
        return BudgetCheck(
            False,
            refused_by=budget.name,
            message=message,
            fallback=budget.fallback if budget.action == "fallback" else None,
            resets_at=resets,
        )

    @staticmethod
    def _refusal_text(budget: BudgetConfig, u: db.Usage, resets: datetime) -> str:
        when = resets.strftime("%Y-%m-%d %H:%M UTC")
        if budget.limit_usd is not None:
            spent = nanousd_to_usd(u.spent_nanousd + u.reserved_nanousd)
            used = f"{_money(spent)} of {_money(budget.limit_usd)} spent or reserved"
        else:
            used = f"{u.spent_tokens + u.reserved_tokens:,} of {budget.limit_tokens:,} tokens used or reserved"
        return f"budget '{budget.name}' ({budget.period}) is used up: {used}; it resets at {when}"

    def settle(self, check: BudgetCheck, record: RequestRecord | None) -> None:
        """Book an attempt's real cost (none when it never ran) and announce thresholds."""
        if not check.claims:
            return
        cost = _nanos(record.cost_usd) if record is not None else 0
        tokens = ((record.input_tokens or 0) + (record.output_tokens or 0)) if record is not None else 0
        usage = db.settle(self.engine, check.claims, reservation_id=check.reservation_id, nanousd=cost, tokens=tokens)
        for budget in self.budgets:
            u = usage.get(budget.name)
            if u is not None:
                self._announce(budget, u)

    def _announce(self, budget: BudgetConfig, u: db.Usage) -> None:
        used = []
        if budget.limit_usd:
            used.append(u.spent_nanousd / _nanos(Decimal(str(budget.limit_usd))))
        if budget.limit_tokens:
            used.append(u.spent_tokens / budget.limit_tokens)
        if not used:
            return
        crossed = [f for f in budget.notify_at if f <= max(used) and f > u.notified]
        if not crossed:
            return
        top = max(crossed)
        if not db.mark_notified(self.engine, budget.name, u.period_start_us, top):
            return  # another process announced it
        start = datetime.fromtimestamp(u.period_start_us / 1e6, UTC)
        notice = BudgetNotice(
            budget=budget.name,
            fraction=top,
            spent_usd=nanousd_to_usd(u.spent_nanousd),
            limit_usd=budget.limit_usd,
            spent_tokens=u.spent_tokens,
            limit_tokens=budget.limit_tokens,
            period=budget.period,
            resets_at=period_bounds(budget.period, start)[1],
        )
        log.warning("budget %r reached %.0f %% of its limit", budget.name, top * 100, extra={"budget": budget.name})
        if self.on_threshold is not None:
            try:
                self.on_threshold(notice)
            except Exception:
                log.exception("budget notification failed")

    def status(self, at: datetime | None = None) -> list[BudgetStatus]:
        now = (at or self._now()).astimezone(UTC)
        bounds = {b.name: period_bounds(b.period, now) for b in self.budgets}
        keys = [(b.name, int(bounds[b.name][0].timestamp() * 1_000_000)) for b in self.budgets]
        usage = db.read_usage(self.engine, keys)
        out = []
        for b in self.budgets:
            u = usage.get(b.name)
            start, end = bounds[b.name]
            out.append(
                BudgetStatus(
                    name=b.name,
                    period=b.period,
                    model=b.model,
                    action=b.action,
                    limit_usd=b.limit_usd,
                    limit_tokens=b.limit_tokens,
                    spent_usd=nanousd_to_usd(u.spent_nanousd if u else 0),
                    reserved_usd=nanousd_to_usd(u.reserved_nanousd if u else 0),
                    spent_tokens=u.spent_tokens if u else 0,
                    period_start=start,
                    resets_at=end,
                )
            )
        return out
