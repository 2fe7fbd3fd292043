"""Blind arena votes (store/votes.py): one row per voted pair of answers, unique per pair, so
the leaderboard's ratings rest on one verdict per round."""

from __future__ import annotations

import sqlalchemy as sa

VERSION = 32
NAME = "votes"


def upgrade(conn: sa.Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "votes",
        md,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("record_a", sa.String(36), nullable=False),
        sa.Column("record_b", sa.String(36), nullable=False),
        sa.Column("model_a", sa.String(200), nullable=False),
        sa.Column("model_b", sa.String(200), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("pair", sa.String(73), nullable=False),
        sa.UniqueConstraint("pair", name="uq_votes_pair"),
        sa.Index("ix_votes_created", "created_us"),
    )
    md.create_all(conn)
