"""Blind arena votes: which of two answers (two request records) a user judged better.

Kept apart from the request records because a vote is about a pair of them, given after
both were written. One vote per pair of answers, enforced by a unique constraint on the
pair in sorted order (so "a vs b" and "b vs a" are the same pair): a second vote, from any
process or replica, is refused with `VoteRefused` naming the first one, and nothing
already stored changes. The verdict is seen from answer A: "a" (A better), "b", "tie" or
"both_bad". The leaderboard (reports/arena.py) reads them back with `list_votes`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from chatwatch.store.records import Store, from_us, to_us
from chatwatch.store.schema import votes

VERDICTS = ("a", "b", "tie", "both_bad")
_V = votes.c


class VoteRefused(ValueError):
    """The vote cannot be stored (a second vote for the same pair, a bad verdict or pair)."""


@dataclass(frozen=True)
class Vote:
    id: str
    created_at: datetime
    session_id: str
    record_a: str
    record_b: str
    model_a: str
    model_b: str
    verdict: str


def pair_key(record_a: str, record_b: str) -> str:
    return "|".join(sorted((record_a, record_b)))


def cast_vote(
    store: Store,
    *,
    record_a: str,
    record_b: str,
    model_a: str,
    model_b: str,
    verdict: str,
    session_id: str,
    at: datetime | None = None,
) -> Vote:
    """Store one vote; raises VoteRefused if the pair already has one or the input is bad."""
    if verdict not in VERDICTS:
        raise VoteRefused(f"a vote's verdict is one of {', '.join(VERDICTS)}, not {verdict!r}")
    if not record_a or not record_b or record_a == record_b:
        raise VoteRefused(f"a vote needs two different answers, got {record_a!r} and {record_b!r}")
    vote = Vote(
        id=str(uuid.uuid4()),
        created_at=at or datetime.now(UTC),
        session_id=session_id,
        record_a=record_a,
        record_b=record_b,
        model_a=model_a,
        model_b=model_b,
        verdict=verdict,
    )
    pair = pair_key(record_a, record_b)
    try:
        with store.transaction() as conn:
            earlier = conn.execute(sa.select(_V.created_us).where(_V.pair == pair)).scalar()
            if earlier is None:
                conn.execute(
                    votes.insert().values(
                        id=vote.id,
                        created_us=to_us(vote.created_at),
                        session_id=session_id,
                        record_a=record_a,
                        record_b=record_b,
                        model_a=model_a,
                        model_b=model_b,
                        verdict=verdict,
                        pair=pair,
                    )
                )
    except sa.exc.IntegrityError:  # another process voted on this pair between the check and the insert
        earlier = _created_us(store, pair)
    if earlier is not None:
        raise VoteRefused(
            f"these two answers ({record_a}, {record_b}) already have a vote, cast at "
            f"{from_us(earlier):%Y-%m-%d %H:%M:%S} UTC: one vote per pair"
        )
    return vote


def _created_us(store: Store, pair: str) -> int | None:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(_V.created_us).where(_V.pair == pair)).scalar()


def vote_for(store: Store, record_a: str, record_b: str) -> Vote | None:
    """The vote on this pair of answers, if any."""
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(votes).where(_V.pair == pair_key(record_a, record_b))).first()
    return None if row is None else _vote(row)


def list_votes(
    store: Store, since: datetime | None = None, until: datetime | None = None, models: Sequence[str] = ()
) -> list[Vote]:
    """Votes cast in [since, until), oldest first; with `models`, those where both models are in it."""
    cond = []
    if since is not None:
        cond.append(_V.created_us >= to_us(since))
    if until is not None:
        cond.append(_V.created_us < to_us(until))
    if models:
        cond += [_V.model_a.in_(list(models)), _V.model_b.in_(list(models))]
    q = sa.select(votes).where(*cond).order_by(_V.created_us, _V.id)
    with store.engine.connect() as conn:
        return [_vote(row) for row in conn.execute(q)]


def _vote(row) -> Vote:
    return Vote(
        id=row.id,
        created_at=from_us(row.created_us),
        session_id=row.session_id,
        record_a=row.record_a,
        record_b=row.record_b,
        model_a=row.model_a,
        model_b=row.model_b,
        verdict=row.verdict,
    )
