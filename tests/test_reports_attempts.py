"""Model vs user-facing error rates, rescued requests, retries and fallbacks served (#9 item
4's read side), on SQLite and PostgreSQL. The expected figures are computed here in plain
Python from the chains the test generated (which request each attempt belongs to and how
each chain ended), never from the code under test's row counts."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import timedelta

import pytest
import sqlalchemy as sa

from chatwatch.reports import aggregate, queries
from chatwatch.reports.aggregate import Filters
from chatwatch.store import migrations
from chatwatch.store.db import create_engine
from chatwatch.store.record import LOCAL_REFUSALS
from chatwatch.store.records import Store, record_to_row
from chatwatch.store.schema import schema_migrations
from tests.fixtures.db import BASE_TIME, make_record

MODELS = ("gpt-4o-mini", "smollm2", "qwen")


def _chains(seed: int = 9, n: int = 220):
    """User requests over ~5 hours: a chain of 1-4 attempts 20-50 s apart (so chains straddle
    minutes, hours and the ranges' edges), each failed attempt retried on the same model or
    moved to a fallback; some requests refused by chatwatch itself."""
    rng = random.Random(seed)
    chains = []
    t = BASE_TIME + timedelta(seconds=17)
    for _ in range(n):
        t += timedelta(seconds=rng.randint(30, 110))
        request_id = str(uuid.uuid4())
        if rng.random() < 0.07:
            rec = make_record(
                id=request_id, started_at=t, status="error", error_type=rng.choice(LOCAL_REFUSALS), model="smollm2"
            )
            chains.append([rec])
            continue
        model, at, chain = rng.choice(MODELS), t, []
        attempts = rng.choice((1, 1, 1, 2, 2, 3, 4))
        final = rng.choice(("ok", "ok", "ok", "error", "cancelled"))
        reason, fallback_from = None, None
        for k in range(1, attempts + 1):
            status = final if k == attempts else "error"
            extra = {"error_type": rng.choice(("rate_limit", "provider_error", "timeout"))} if status == "error" else {}
            if status == "cancelled":
                extra = {"finish_reason": "cancelled"}
            rec = make_record(
                id=request_id if k == 1 else str(uuid.uuid4()),
                request_id=request_id,
                attempt=k,
                started_at=at,
                status=status,
                model=model,
                retry_reason=reason,
                fallback_from=fallback_from,
                **extra,
            )
            chain.append(rec)
            reason = rec.error_type
            if rng.random() < 0.5:  # the next attempt is a fallback
                fallback_from, model = model, rng.choice([m for m in MODELS if m != model])
            at += timedelta(seconds=rng.randint(20, 50))
        chains.append(chain)
    return chains


def _expected(chains, since, until):
    def inside(rec):
        return (since is None or rec.started_at >= since) and (until is None or rec.started_at < until)

    rows = [r for c in chains for r in c if inside(r)]
    attempts = [r for r in rows if r.error_type not in LOCAL_REFUSALS]
    mine = [c for c in chains if inside(c[0])]  # a request belongs to its first attempt's range
    per_model = defaultdict(lambda: {"retries": 0, "fallback_served": 0, "attempts": 0, "failed": 0})
    for r in attempts:
        m = per_model[r.model]
        m["attempts"] += 1
        m["failed"] += r.status == "error"
        m["retries"] += r.attempt > 1
        m["fallback_served"] += r.status == "ok" and r.fallback_from is not None
    return {
        "attempts": len(attempts),
        "failed_attempts": sum(r.status == "error" for r in attempts),
        "user_requests": len(mine),
        "failed_requests": sum(c[-1].status == "error" for c in mine),
        "rescued": sum(c[-1].status == "ok" and any(a.status == "error" for a in c[:-1]) for c in mine),
        "retries": sum(r.attempt > 1 for r in rows),
        "fallback_served": sum(r.status == "ok" and r.fallback_from is not None for r in rows),
        "refused": sum(r.error_type in LOCAL_REFUSALS for r in rows),
        "per_model": dict(per_model),
    }


def _check(store, chains, filters):
    want = _expected(chains, filters.since, filters.until)
    s = queries.summary(store, filters)
    got = s.outcomes
    for name in ("attempts", "failed_attempts", "user_requests", "failed_requests", "rescued", "retries"):
        assert getattr(got, name) == want[name], name
    assert (got.fallback_served, got.refused) == (want["fallback_served"], want["refused"])
    assert s.error_rate == pytest.approx(want["failed_attempts"] / want["attempts"])
    assert s.user_error_rate == pytest.approx(want["failed_requests"] / want["user_requests"])
    per = {p.model: p.outcomes for p in queries.per_model(store, filters)}
    for model, w in want["per_model"].items():
        assert (per[model].attempts, per[model].failed_attempts) == (w["attempts"], w["failed"]), model
        assert (per[model].retries, per[model].fallback_served) == (w["retries"], w["fallback_served"]), model
    return want


@pytest.fixture
def chains(store):
    chains = _chains()
    store.write_many([r for c in chains for r in c])
    return chains


def _edges_straddled(chains, at) -> int:
    return sum(c[0].started_at < at <= c[-1].started_at for c in chains)


def _cut(chains, near):
    """A time just after the first attempt of an answered multi-attempt chain near `near`."""
    chain = next(c for c in chains if len(c) > 1 and c[-1].status == "ok" and c[0].started_at >= near)
    return chain[0].started_at + timedelta(seconds=1, microseconds=370_000)


def test_both_rates_rescued_retries_and_fallbacks_over_raw_rows_and_rollups(store, chains):
    short = Filters(
        since=_cut(chains, BASE_TIME + timedelta(minutes=47)), until=BASE_TIME + timedelta(minutes=58, seconds=41)
    )
    long = Filters(
        since=_cut(chains, BASE_TIME + timedelta(minutes=23)),
        until=BASE_TIME + timedelta(hours=3, minutes=41, seconds=7),
    )
    # The long range's sums come from the hour and minute rollups; its edges cut chains.
    with aggregate._reading(store) as conn:
        assert aggregate._decide(conn, store, long).sums_from == "rollups"
        assert aggregate._plan(long, None).rollup
    assert _edges_straddled(chains, long.since) + _edges_straddled(chains, long.until) >= 1
    wants = [_check(store, chains, f) for f in (short, long, Filters())]
    assert wants[1]["rescued"] > 5 and wants[1]["retries"] > wants[1]["rescued"]
    assert wants[1]["failed_attempts"] / wants[1]["attempts"] > wants[1]["failed_requests"] / wants[1]["user_requests"]


def test_ranges_that_cut_chains_count_each_request_once(store, chains):
    """Adjacent ranges split at times that cut a chain: every user request is counted in
    exactly one of them, with its outcome, whatever side its answer landed on."""
    cut = next(c for c in chains if len(c) > 2 and c[-1].status == "ok")
    at = cut[1].started_at - timedelta(seconds=1)
    lo, hi = BASE_TIME, BASE_TIME + timedelta(hours=8)
    a, b = (queries.summary(store, f).outcomes for f in (Filters(since=lo, until=at), Filters(since=at, until=hi)))
    whole = queries.summary(store, Filters(since=lo, until=hi)).outcomes
    assert a.user_requests + b.user_requests == whole.user_requests == len(chains)
    assert a.failed_requests + b.failed_requests == whole.failed_requests
    assert a.rescued + b.rescued == whole.rescued
    _check(store, chains, Filters(since=lo, until=at))
    _check(store, chains, Filters(since=at, until=hi))


def test_raw_only_filters_give_the_same_definitions(store, chains):
    """A session filter reads raw sums only: the same figures."""
    f = Filters(
        since=BASE_TIME + timedelta(minutes=23, seconds=31),
        until=BASE_TIME + timedelta(hours=3),
        session_id="session-1",
    )
    assert f.needs_raw
    _check(store, chains, f)


def test_m0030_on_a_database_made_before_it(store_url):
    """Rows written before migration 30 become single first attempts: request_id = id."""
    engine = create_engine(store_url)
    old = make_record()
    with migrations.write_transaction(engine) as conn:
        schema_migrations.create(conn)
        for module in migrations.discover():
            if module.VERSION < 30:
                module.upgrade(conn)
                conn.execute(schema_migrations.insert().values(version=module.VERSION, name=module.NAME, applied_us=0))
        columns = {c["name"] for c in sa.inspect(conn).get_columns("requests")}
        assert "request_id" not in columns
        row = {k: v for k, v in record_to_row(old).items() if k in columns}
        conn.execute(sa.table("requests", *(sa.column(c) for c in row)).insert().values(**row))
    engine.dispose()
    with Store.open(store_url) as store:
        assert 30 in store.migrations_applied
        with store.engine.connect() as conn:
            got = conn.execute(
                sa.text("SELECT id, request_id, attempt, retry_reason, fallback_from FROM requests")
            ).all()
        assert [tuple(r) for r in got] == [(old.id, old.id, 1, None, None)]
        s = queries.summary(store)
        assert (s.outcomes.attempts, s.outcomes.user_requests, s.outcomes.retries) == (1, 1, 0)
