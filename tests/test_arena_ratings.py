"""Arena ratings (reports/arena.py) against an independent computation: the `choix`
package's MAP Bradley-Terry fit (scipy's Newton-CG, another algorithm than our Newton
solve), on seeded votes; the bootstrap interval's coverage on generated data; too few votes;
and the votes table (one vote per pair) with the leaderboard's measurements, on SQLite and
PostgreSQL."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import choix
import numpy as np
import pytest

from chatwatch.reports import arena
from chatwatch.reports.queries import Filters, feedback_by_model
from chatwatch.store.votes import Vote, VoteRefused, cast_vote, list_votes, vote_for
from tests.fixtures.db import BASE_TIME, make_record

MODELS = ["alpha", "beta", "gamma", "delta"]
# Agreement with choix, in Elo points: choix stops at a gradient norm of 1e-5 (about 1e-5
# logit, 0.002 Elo); 0.05 leaves room for that and nothing more.
TOLERANCE_ELO = 0.05


def generated_votes(rng: np.random.Generator, theta: np.ndarray, n: int, *, ties=0.1, both_bad=0.05) -> list[Vote]:
    """Votes drawn from the Bradley-Terry model with strengths `theta` (plus ties and both_bad)."""
    out = []
    for k in range(n):
        i, j = rng.choice(len(theta), 2, replace=False)
        u = rng.random()
        if u < both_bad:
            verdict = "both_bad"
        elif u < both_bad + ties:
            verdict = "tie"
        else:
            verdict = "a" if rng.random() < 1 / (1 + math.exp(theta[j] - theta[i])) else "b"
        out.append(
            Vote(
                id=str(k),
                created_at=BASE_TIME + timedelta(seconds=k),
                session_id="s",
                record_a=f"ra{k}",
                record_b=f"rb{k}",
                model_a=MODELS[i],
                model_b=MODELS[j],
                verdict=verdict,
            )
        )
    return out


def choix_elo(votes: list[Vote], models: list[str]) -> np.ndarray:
    """The same convention through choix: ties as half a win each, both_bad left out. choix
    takes whole (winner, loser) pairs, so every vote is doubled (a win twice, a tie once each
    way), which doubles the log-likelihood. choix's penalty is alpha * ||theta||^2 (its code;
    our log-prior is ALPHA / 2 * ||theta||^2), so with the doubled data the same alpha gives the
    same optimum."""
    idx = {m: i for i, m in enumerate(models)}
    data = []
    for v in votes:
        a, b = idx[v.model_a], idx[v.model_b]
        if v.verdict == "a":
            data += [(a, b), (a, b)]
        elif v.verdict == "b":
            data += [(b, a), (b, a)]
        elif v.verdict == "tie":
            data += [(a, b), (b, a)]
    params = choix.opt_pairwise(len(models), data, alpha=arena.ALPHA, tol=1e-9)
    return 1000 + 400 / math.log(10) * (params - params.mean())


def test_ratings_equal_choix_on_seeded_votes():
    votes = generated_votes(np.random.default_rng(1), np.array([0.8, 0.2, -0.3, -0.7]), 400)
    got = {r.model: r.rating for r in arena.ratings(votes, min_votes=1, bootstrap_rounds=10)}
    want = choix_elo(votes, sorted(MODELS))
    for m, w in zip(sorted(MODELS), want, strict=True):
        assert got[m] == pytest.approx(w, abs=TOLERANCE_ELO)
    assert sum(got.values()) / len(got) == pytest.approx(1000)


def test_intervals_equal_a_bootstrap_through_choix():
    votes = generated_votes(np.random.default_rng(2), np.array([0.5, 0.0, 0.0, -0.5]), 200)
    rounds = 40
    rated = {r.model: r for r in arena.ratings(votes, min_votes=1, bootstrap_rounds=rounds, seed=99)}
    # The same resamples (the documented seeded rng, one integers() draw per round), each
    # fitted by choix, and numpy's percentile of them.
    rng = np.random.default_rng(99)
    boot = np.array(
        [choix_elo([votes[k] for k in rng.integers(0, len(votes), len(votes))], sorted(MODELS)) for _ in range(rounds)]
    )
    for i, m in enumerate(sorted(MODELS)):
        lo, hi = np.percentile(boot[:, i], [2.5, 97.5])
        assert rated[m].ci_low == pytest.approx(lo, abs=TOLERANCE_ELO)
        assert rated[m].ci_high == pytest.approx(hi, abs=TOLERANCE_ELO)
        assert rated[m].ci_low < rated[m].rating < rated[m].ci_high


def test_bootstrap_interval_covers_the_true_strengths_at_about_95_percent():
    theta = np.array([0.6, 0.2, -0.2, -0.6])
    true_elo = 1000 + 400 / math.log(10) * (theta - theta.mean())
    rng = np.random.default_rng(3)
    hits = total = 0
    for _ in range(40):
        votes = generated_votes(rng, theta, 600, ties=0.0, both_bad=0.0)
        seed = int(rng.integers(1 << 31))
        for r in arena.ratings(votes, min_votes=1, bootstrap_rounds=200, seed=seed):
            hits += r.ci_low <= true_elo[MODELS.index(r.model)] <= r.ci_high
            total += 1
    # 160 intervals: at a true 95 % the count lies in [145, 158] with probability > 99 %;
    # the weak prior pulls strengths slightly toward 0, so the band is a little wider below.
    assert 0.88 <= hits / total <= 0.99, (hits, total)


def test_too_few_votes_gives_no_rank_and_no_interval():
    votes = generated_votes(np.random.default_rng(4), np.array([0.5, 0.0, -0.5, 0.0]), 60)
    votes = [v for v in votes if "delta" not in (v.model_a, v.model_b)]
    # delta takes part in exactly two votes
    votes += [
        Vote("d1", BASE_TIME, "s", "x1", "y1", "delta", "alpha", "a"),
        Vote("d2", BASE_TIME, "s", "x2", "y2", "beta", "delta", "tie"),
    ]
    rated = {r.model: r for r in arena.ratings(votes, min_votes=5, bootstrap_rounds=20)}
    d = rated["delta"]
    assert d.votes == 2 and d.wins == 1 and d.ties == 1 and d.losses == 0
    assert d.rank is None and d.ci_low is None and d.ci_high is None and not d.enough
    assert d.win_rate == pytest.approx(0.75)
    assert sorted(r.rank for r in rated.values() if r.rank) == [1, 2, 3]
    order = arena.ratings(votes, min_votes=5, bootstrap_rounds=20)
    assert order[-1].model == "delta"  # unranked last
    assert [r.rank for r in order[:3]] == [1, 2, 3]
    assert order[0].rating >= order[1].rating >= order[2].rating


def test_all_votes_too_few_and_no_votes():
    assert arena.ratings([], min_votes=1, bootstrap_rounds=10) == []
    one = [Vote("v", BASE_TIME, "s", "x", "y", "alpha", "beta", "both_bad")]
    rated = arena.ratings(one, min_votes=10, bootstrap_rounds=10)
    assert [r.rank for r in rated] == [None, None]
    assert all(r.rating == pytest.approx(1000) and r.win_rate is None for r in rated)


def test_one_vote_per_pair_and_the_leaderboard_from_the_store(store):
    a = make_record(model="alpha", latency_s=1.0, ttft_s=0.1, cost_usd=Decimal("0.002"), mode="arena")
    b = make_record(model="beta", latency_s=3.0, ttft_s=0.3, cost_usd=None, price_source="unpriced", mode="arena")
    c = make_record(model="beta", status="error", mode="arena", cost_usd=None, price_source="unpriced")
    store.write_many([a, b, c])
    store.add_feedback(a.id, 1, "alpha", "s")
    vote = cast_vote(
        store,
        record_a=a.id,
        record_b=b.id,
        model_a="alpha",
        model_b="beta",
        verdict="a",
        session_id="s",
        at=BASE_TIME + timedelta(minutes=1),
    )
    with pytest.raises(VoteRefused, match="already have a vote"):
        cast_vote(store, record_a=b.id, record_b=a.id, model_a="beta", model_b="alpha", verdict="a", session_id="t")
    with pytest.raises(VoteRefused, match="verdict"):
        cast_vote(store, record_a=a.id, record_b=c.id, model_a="alpha", model_b="beta", verdict="A", session_id="s")
    assert list_votes(store) == [vote] and vote_for(store, b.id, a.id) == vote

    since, until = BASE_TIME - timedelta(days=1), datetime.now(UTC) + timedelta(days=1)  # thumbs are given now
    rows = {r.model: r for r in arena.leaderboard(store, since, until, min_votes=1, bootstrap_rounds=20)}
    assert rows["alpha"].rating.wins == 1 and rows["beta"].rating.losses == 1
    assert rows["alpha"].rating.rank == 1 and rows["alpha"].rating.rating > rows["beta"].rating.rating
    assert rows["alpha"].latency_p50_s == pytest.approx(1.0) and rows["alpha"].ttft_p50_s == pytest.approx(0.1)
    assert rows["alpha"].cost_per_1k_usd == Decimal("2.000")  # 0.002 USD per request
    assert rows["beta"].cost_per_1k_usd is None and rows["beta"].unpriced == 2  # unpriced, never $0
    assert rows["beta"].error_rate == pytest.approx(0.5) and rows["beta"].latency_p50_s == pytest.approx(
        np.percentile([b.latency_s, c.latency_s], 50)
    )
    thumbs = {f.model: f.up_ratio for f in feedback_by_model(store, Filters())}
    assert rows["alpha"].thumbs_up_rate == thumbs["alpha"] == 1.0 and rows["beta"].thumbs_up_rate is None
    assert arena.leaderboard(store, until, None, min_votes=1, bootstrap_rounds=20) == []  # no votes in range
