"""The arena leaderboard: Bradley-Terry ratings from blind votes, next to the measured speed,
cost, errors and thumbs of the same models in the same store and time range.

Why its own fit rather than an Elo update per vote: Elo depends on the order of the votes;
the Bradley-Terry maximum likelihood does not, and its bootstrap gives an honest interval.

The model: P(i beats j) = sigmoid(theta_i - theta_j). Conventions, chosen once here:
* a tie counts as half a win for each side (the likelihood of a tie is
  sqrt(P(i beats j) * P(j beats i)));
* "both bad" says nothing about which of the two is better: it is counted in the model's
  votes but carries no weight in the fit;
* a weak Gaussian prior on theta (variance 1 / ALPHA, the MAP estimate) keeps a model that
  won or lost every vote finite; with it the strengths sum to zero at the optimum.
The fit is Newton's method on that concave log-posterior (a few models: an n x n solve per
step). Ratings are Elo-scaled: 400 / ln 10 points per logit, 1000 for the mean model.
The 95 % interval is the 2.5th and 97.5th percentile (reports/percentile.py) of ratings
refitted on `bootstrap_rounds` resamplings of the votes with replacement, with a seeded rng so
a page shows the same interval on every rerun. A model with fewer than `min_votes` votes gets
no rank and no interval: the table says "too few votes".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import numpy as np

from chatwatch.reports.percentile import percentiles
from chatwatch.reports.queries import Filters, feedback_by_model, per_model
from chatwatch.store.records import Store
from chatwatch.store.votes import Vote, list_votes

ALPHA = 0.1  # prior precision on theta (per logit squared)
ELO_PER_LOGIT = 400 / math.log(10)
ELO_ANCHOR = 1000.0
SEED = 20240611  # the bootstrap's rng: the same votes give the same interval
_MAX_NEWTON = 100
_TOL = 1e-10


@dataclass(frozen=True)
class Rating:
    model: str
    rating: float  # Elo-scaled
    ci_low: float | None  # None: too few votes for an interval
    ci_high: float | None
    rank: int | None  # 1 = best among models with enough votes; None: too few votes
    votes: int  # every vote the model took part in (both_bad included)
    wins: int
    ties: int
    losses: int
    both_bad: int

    @property
    def enough(self) -> bool:
        return self.rank is not None

    @property
    def win_rate(self) -> float | None:
        """(wins + ties / 2) over votes with a verdict between the two (both_bad left out)."""
        decided = self.wins + self.ties + self.losses
        return (self.wins + self.ties / 2) / decided if decided else None


@dataclass(frozen=True)
class LeaderboardRow:
    rating: Rating
    requests: int
    latency_p50_s: float | None
    ttft_p50_s: float | None
    output_tokens_per_s: float | None
    cost_per_1k_usd: Decimal | None  # per 1,000 priced requests; None: no priced request (unpriced)
    unpriced: int  # requests of the range without a price
    error_rate: float | None
    thumbs_up_rate: float | None
    thumbs: int

    @property
    def model(self) -> str:
        return self.rating.model

    def as_dict(self) -> dict:
        """The row as plain values (the export and the table): unknown stays None."""
        r = self.rating
        return {
            "rank": r.rank,
            "model": r.model,
            "rating": round(r.rating, 1),
            "ci_low": None if r.ci_low is None else round(r.ci_low, 1),
            "ci_high": None if r.ci_high is None else round(r.ci_high, 1),
            "enough_votes": r.enough,
            "votes": r.votes,
            "wins": r.wins,
            "ties": r.ties,
            "losses": r.losses,
            "both_bad": r.both_bad,
            "win_rate": r.win_rate,
            "requests": self.requests,
            "latency_p50_s": self.latency_p50_s,
            "ttft_p50_s": self.ttft_p50_s,
            "output_tokens_per_s": self.output_tokens_per_s,
            "cost_per_1k_requests_usd": self.cost_per_1k_usd,
            "unpriced_requests": self.unpriced,
            "error_rate": self.error_rate,
            "thumbs_up_rate": self.thumbs_up_rate,
            "thumbs": self.thumbs,
        }


# --- the fit ----------------------------------------------------------------------------------


def win_matrix(pairs: np.ndarray, weights_a: np.ndarray, n: int) -> np.ndarray:
    """W[i, j] = weighted wins of i over j from votes (i, j) with A's share of the win
    (1, 0, 0.5; both_bad votes are left out before)."""
    w = np.zeros((n, n))
    np.add.at(w, (pairs[:, 0], pairs[:, 1]), weights_a)
    np.add.at(w, (pairs[:, 1], pairs[:, 0]), 1.0 - weights_a)
    return w


def fit_strengths(wins: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """MAP Bradley-Terry log-strengths (sum zero) from a win matrix, by Newton's method."""
    n = wins.shape[0]
    games = wins + wins.T
    theta = np.zeros(n)
    for _ in range(_MAX_NEWTON):
        p = 1.0 / (1.0 + np.exp(theta[None, :] - theta[:, None]))  # p[i, j] = P(i beats j)
        grad = (wins - games * p).sum(axis=1) - alpha * theta
        curv = games * p * (1.0 - p)
        hess = curv - np.diag(curv.sum(axis=1) + alpha)  # negative definite for alpha > 0
        step = np.linalg.solve(hess, grad)
        theta = theta - step
        if np.max(np.abs(step)) < _TOL:
            break
    return theta


def elo(theta: np.ndarray) -> np.ndarray:
    return ELO_ANCHOR + ELO_PER_LOGIT * (theta - theta.mean())


def ratings(
    votes: Sequence[Vote], *, min_votes: int, bootstrap_rounds: int, seed: int = SEED, alpha: float = ALPHA
) -> list[Rating]:
    """A rating per model that took part in a vote, best first (models with too few votes last)."""
    models = sorted({v.model_a for v in votes} | {v.model_b for v in votes})
    if not models:
        return []
    index = {m: i for i, m in enumerate(models)}
    n = len(models)
    pairs = np.array([(index[v.model_a], index[v.model_b]) for v in votes], dtype=np.int64).reshape(-1, 2)
    share = np.array([{"a": 1.0, "b": 0.0, "tie": 0.5}.get(v.verdict, np.nan) for v in votes])
    informative = ~np.isnan(share)
    point = elo(fit_strengths(win_matrix(pairs[informative], share[informative], n), alpha))

    counts = {m: dict(votes=0, wins=0, ties=0, losses=0, both_bad=0) for m in models}
    for v in votes:
        for me, side in ((v.model_a, "a"), (v.model_b, "b")):
            c = counts[me]
            c["votes"] += 1
            if v.verdict == "tie":
                c["ties"] += 1
            elif v.verdict == "both_bad":
                c["both_bad"] += 1
            else:
                c["wins" if v.verdict == side else "losses"] += 1

    enough = [counts[m]["votes"] >= min_votes for m in models]
    low = high = [None] * n
    if any(enough) and len(votes):
        rng = np.random.default_rng(seed)
        boot = np.empty((bootstrap_rounds, n))
        for r in range(bootstrap_rounds):
            pick = rng.integers(0, len(votes), len(votes))
            keep = pick[informative[pick]]
            boot[r] = elo(fit_strengths(win_matrix(pairs[keep], share[keep], n), alpha))
        bounds = [percentiles(boot[:, i], (2.5, 97.5)) for i in range(n)]
        low = [b[0] if ok else None for b, ok in zip(bounds, enough, strict=True)]
        high = [b[1] if ok else None for b, ok in zip(bounds, enough, strict=True)]
    ranked = sorted((i for i in range(n) if enough[i]), key=lambda i: -point[i])
    rank = {i: k + 1 for k, i in enumerate(ranked)}
    out = [
        Rating(
            model=models[i],
            rating=float(point[i]),
            ci_low=low[i],
            ci_high=high[i],
            rank=rank.get(i),
            **counts[models[i]],
        )
        for i in range(n)
    ]
    return sorted(out, key=lambda r: (r.rank is None, r.rank or 0, -r.rating))


# --- the leaderboard --------------------------------------------------------------------------


def leaderboard(
    store: Store,
    since: datetime | None,
    until: datetime | None,
    *,
    min_votes: int,
    bootstrap_rounds: int,
    models: Sequence[str] = (),
) -> list[LeaderboardRow]:
    """Ratings from the votes cast in [since, until), each next to its model's measurements
    over the requests and thumbs of the same range (the dashboard's own read side)."""
    rated = ratings(list_votes(store, since, until, models), min_votes=min_votes, bootstrap_rounds=bootstrap_rounds)
    if not rated:
        return []
    filters = Filters(since=since, until=until, models=tuple(r.model for r in rated))
    measured = {s.model: s for s in per_model(store, filters)}
    thumbs = {f.model: f for f in feedback_by_model(store, filters)}
    rows = []
    for r in rated:
        s = measured.get(r.model)
        f = thumbs.get(r.model)
        priced = (s.requests - s.unpriced) if s else 0
        rows.append(
            LeaderboardRow(
                rating=r,
                requests=s.requests if s else 0,
                latency_p50_s=s.latency_p50_s if s else None,
                ttft_p50_s=s.ttft_p50_s if s else None,
                output_tokens_per_s=s.output_tokens_per_s if s else None,
                cost_per_1k_usd=(s.cost_usd * 1000 / priced) if s and priced else None,
                unpriced=s.unpriced if s else 0,
                error_rate=s.error_rate if s else None,
                thumbs_up_rate=f.up_ratio if f else None,
                thumbs=f.total if f else 0,
            )
        )
    return rows
