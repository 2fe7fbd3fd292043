"""Cross-process leases on the real backends: claim, renew, expiry, release, and real
processes racing for the same lease."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from chatwatch.store import leases
from chatwatch.store.records import Store

T0 = 1_800_000_000_000_000  # a fixed "now" in microseconds
TTL_S = 60.0
TTL_US = int(TTL_S * 1_000_000)


def test_a_held_lease_excludes_others_until_it_expires(store: Store) -> None:
    db = store.engine
    assert leases.acquire(db, "job", "a", TTL_S, at_us=T0)
    assert not leases.acquire(db, "job", "b", TTL_S, at_us=T0 + 1)
    assert leases.current(db, "job", at_us=T0 + 1) == leases.Lease("job", "a", T0 + TTL_US)
    # The holder renews (and extends) its own claim; others still cannot take it.
    assert leases.acquire(db, "job", "a", TTL_S, at_us=T0 + TTL_US // 2)
    assert not leases.acquire(db, "job", "b", TTL_S, at_us=T0 + TTL_US)
    # Expired: taken over by another holder, which now excludes the first one.
    expired = T0 + TTL_US // 2 + TTL_US
    assert leases.acquire(db, "job", "b", TTL_S, at_us=expired)
    assert leases.current(db, "job", at_us=expired).holder == "b"
    assert not leases.acquire(db, "job", "a", TTL_S, at_us=expired + 1)
    assert leases.current(db, "job", at_us=expired + TTL_US) is None  # past its expiry
    # Other names are independent.
    assert leases.acquire(db, "other", "a", TTL_S, at_us=expired)


def test_release_frees_the_lease_only_for_its_holder(store: Store) -> None:
    db = store.engine
    assert leases.acquire(db, "job", "a", TTL_S, at_us=T0)
    assert not leases.release(db, "job", "b")
    assert leases.current(db, "job", at_us=T0).holder == "a"
    assert leases.release(db, "job", "a")
    assert leases.current(db, "job", at_us=T0) is None
    assert leases.acquire(db, "job", "b", TTL_S, at_us=T0 + 1)


def test_ttl_must_be_positive(store: Store) -> None:
    with pytest.raises(ValueError, match="positive TTL"):
        leases.acquire(store.engine, "job", "a", 0)


# Each racer opens the store, waits for a shared instant, then tries every round at the
# same wall-clock moment as the others, with "now" one TTL further each round (so each
# round is a new interval in which the previous lease has just expired).
_RACER = r"""
import json, sys, time
from chatwatch.store import leases
from chatwatch.store.records import Store

url, holder = sys.argv[1], sys.argv[2]
start, rounds, ttl_us, t0 = float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
store = Store.open(url)
store.count()  # connect before the race
for k in range(rounds):
    time.sleep(max(0.0, start + 0.25 * k - time.time()))
    won = leases.acquire(store.engine, "retention", holder, ttl_us / 1e6, at_us=t0 + k * ttl_us + 1)
    print(json.dumps({"round": k, "holder": holder, "won": won}), flush=True)
store.close()
"""


def test_racing_processes_get_one_winner_per_interval(store_url: str) -> None:
    Store.open(store_url).close()  # migrate once, so the racers only race for the lease
    racers, rounds = 4, 6
    start = time.time() + 4.0  # time for every interpreter to start and connect
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, store_url, f"p{i}", str(start), str(rounds), str(TTL_US), str(T0)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(racers)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        results += [json.loads(line) for line in out.splitlines()]
    assert len(results) == racers * rounds
    for k in range(rounds):
        winners = [r["holder"] for r in results if r["round"] == k and r["won"]]
        assert len(winners) == 1, (k, winners)
