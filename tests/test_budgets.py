"""Budgets (resilience/budget.py, store/budgets.py): limits that hold across processes.

The race is real: two processes (multiprocessing, spawn) on one SQLite file and on the real
PostgreSQL reserve, wait as if a model were answering, and settle, as fast as they can,
against one small budget. The expected spend is what the workers themselves report having
settled, summed in the test, never the store's own counter."""

from __future__ import annotations

import multiprocessing as mp
import random
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from chatwatch.config import parse
from chatwatch.models.contract import GenerationSettings, Message
from chatwatch.resilience.budget import Budgets, period_bounds
from chatwatch.store import budgets as db
from chatwatch.store.records import Store
from chatwatch.telemetry.pricing import Pricer
from tests.fixtures.db import make_record

MESSAGES = [Message("user", "Say hello in one short sentence, please.")]
GEN = GenerationSettings(max_tokens=100)


def settings_with(budgets: list[dict], url: str | None = None):
    raw = {
        "models": [
            {
                "id": "paid",
                "kind": "openai",
                "base_url": "http://127.0.0.1:9/v1",
                "model": "m1",
                "price": {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0},  # $0.2 per 100 output tokens
            },
            {"id": "free", "kind": "llama_cpp"},
            {"id": "mystery", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "unknown-xyz"},
        ],
        "budgets": budgets,
    }
    if url:
        raw["store"] = {"url": url}
    return parse(raw)


def budgets_for(settings, store, *, clock=time.time, notices=None, instance="test"):
    return Budgets(
        store.engine,
        settings,
        Pricer(settings),
        instance=instance,
        clock=clock,
        on_threshold=notices.append if notices is not None else None,
    )


def record_costing(usd: Decimal, model="paid", tokens=(10, 90)):
    return make_record(model=model, cost_usd=usd, input_tokens=tokens[0], output_tokens=tokens[1])


def test_a_block_budget_refuses_once_the_next_attempt_could_pass_it_and_names_budget_and_reset(store):
    settings = settings_with([{"name": "daily paid", "period": "day", "model": "paid", "limit_usd": 0.5}])
    at = datetime(2026, 12, 2, 15, 0, tzinfo=UTC).timestamp()
    budgets = budgets_for(settings, store, clock=lambda: at)
    paid = settings.model("paid")
    nanousd, tokens = budgets.estimate(paid, MESSAGES, GEN)
    worst = Decimal(nanousd).scaleb(-9)
    assert worst > Decimal("0.2")  # 100 output tokens at $2000/M, plus the prompt
    allowed = 0
    while True:
        check = budgets.check(paid, MESSAGES, GEN)
        if not check.allowed:
            break
        allowed += 1
        budgets.settle(check, record_costing(worst))  # the attempt cost its worst case
    assert allowed == int(Decimal("0.5") / worst)  # computed from the limit, not the store
    assert check.refused_by == "daily paid" and check.fallback is None
    assert "budget 'daily paid' (day) is used up" in check.message
    assert "resets at 2026-12-03 00:00 UTC" in check.message
    (status,) = budgets.status()
    assert status.spent_usd == worst * allowed and status.reserved_usd == 0
    # Other models are not under this budget; a free local model is never blocked by dollars.
    assert budgets.check(settings.model("free"), MESSAGES, GEN).allowed
    # The next UTC day starts from zero.
    tomorrow = Budgets(store.engine, settings, Pricer(settings), instance="t", clock=lambda: at + 86400)
    assert tomorrow.check(paid, MESSAGES, GEN).allowed


def test_fallback_and_warn_actions_and_unpriced_models(store):
    settings = settings_with(
        [
            {"name": "all", "period": "month", "limit_usd": 0.0000001, "action": "fallback", "fallback": "free"},
            {"name": "watch", "period": "day", "limit_usd": 0.0000001, "action": "warn"},
        ]
    )
    budgets = budgets_for(settings, store)
    check = budgets.check(settings.model("paid"), MESSAGES, GEN)
    assert not check.allowed and check.refused_by == "all" and check.fallback == "free"
    # An unpriced model reserves no dollars (its cost is unknown, not $0) and is let through.
    mystery = budgets.check(settings.model("mystery"), MESSAGES, GEN)
    assert mystery.allowed
    budgets.settle(mystery, record_costing(None, model="mystery"))
    by_name = {s.name: s for s in budgets.status()}
    assert by_name["all"].spent_usd == 0 and by_name["all"].spent_tokens == 100


def test_thresholds_are_announced_once_per_period_by_one_process(store):
    settings = settings_with([{"name": "d", "period": "day", "limit_usd": 1.0, "notify_at": [0.5, 0.8]}])
    notices_a, notices_b = [], []
    a = budgets_for(settings, store, notices=notices_a, instance="a")
    b = budgets_for(settings, store, notices=notices_b, instance="b")
    paid = settings.model("paid")
    for who, cost in [(a, "0.3"), (b, "0.3"), (a, "0.1"), (b, "0.15"), (a, "0.01")]:
        check = who.check(paid, MESSAGES, GEN.with_(max_tokens=1))
        who.settle(check, record_costing(Decimal(cost)))
    fractions = sorted(n.fraction for n in notices_a + notices_b)
    assert fractions == [0.5, 0.8]  # 0.6 crossed 0.5 once; 0.85 crossed 0.8 once; never again
    (eighty,) = [n for n in notices_a + notices_b if n.fraction == 0.8]
    assert eighty.spent_usd == Decimal("0.85") and eighty.limit_usd == 1.0


def test_a_dead_process_reservation_is_reclaimed_after_it_expires(store):
    settings = settings_with([{"name": "d", "period": "day", "model": "paid", "limit_usd": 0.3}])
    now = [time.time()]
    budgets = budgets_for(settings, store, clock=lambda: now[0])
    paid = settings.model("paid")
    assert budgets.check(paid, MESSAGES, GEN).allowed  # reserved, never settled: its process "died"
    assert not budgets.check(paid, MESSAGES, GEN).allowed
    now[0] += 901
    assert budgets.check(paid, MESSAGES, GEN).allowed


def _race(url: str, seed: int, rounds: int, out) -> None:
    """One racing process: reserve, 'answer' for a few ms, settle a real cost."""
    settings = settings_with([{"name": "race", "period": "day", "model": "paid", "limit_usd": 2.0}], url)
    rng = random.Random(seed)
    settled, refused = Decimal(0), 0
    with Store.open(url) as store:
        budgets = Budgets(store.engine, settings, Pricer(settings), instance=f"p{seed}")
        paid = settings.model("paid")
        nanousd, _ = budgets.estimate(paid, MESSAGES, GEN)
        worst = Decimal(nanousd).scaleb(-9)
        for _ in range(rounds):
            check = budgets.check(paid, MESSAGES, GEN)
            if not check.allowed:
                refused += 1
                continue
            time.sleep(rng.uniform(0.0, 0.004))
            cost = (worst * Decimal(rng.randint(50, 100)) / 100).quantize(Decimal("1e-9"))
            budgets.settle(check, record_costing(cost))
            settled += cost
    out.put((str(settled), refused, str(worst)))


@pytest.mark.slow
def test_two_processes_racing_one_budget_never_overspend(store_url):
    Store.open(store_url).close()  # migrate once, before the race
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(store_url, seed, 40, out)) for seed in (1, 2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    spent = sum(Decimal(s) for s, _, _ in results)
    refused = sum(r for _, r, _ in results)
    worst = Decimal(results[0][2])
    assert refused > 0  # the limit was reached while both were running
    # Every attempt reserved its worst case before running and cost no more than that:
    # the budget is never passed, and no more than one worst case is left unused.
    assert spent <= Decimal("2.0")
    assert spent > Decimal("2.0") - 2 * worst
    with Store.open(store_url) as store:
        (usage,) = db.read_usage(
            store.engine, [("race", int(period_bounds("day", datetime.now(UTC))[0].timestamp() * 1e6))]
        ).values()
        assert Decimal(usage.spent_nanousd).scaleb(-9) == spent and usage.reserved_nanousd == 0


def test_period_bounds_are_utc_days_and_months():
    at = datetime(2024, 2, 29, 23, 59, tzinfo=UTC)
    assert period_bounds("day", at) == (datetime(2024, 2, 29, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC))
    assert period_bounds("month", at) == (datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC))
    assert period_bounds("month", at + timedelta(minutes=1))[0] == datetime(2024, 3, 1, tzinfo=UTC)
