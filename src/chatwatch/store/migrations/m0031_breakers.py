"""Circuit breakers (store/breakers.py): the per-model state shared by every process on the
store, and the window of counted attempts its failure ratio is computed from."""

from __future__ import annotations

import sqlalchemy as sa

VERSION = 31
NAME = "breakers"


def upgrade(conn: sa.Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "breakers",
        md,
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("last_error", sa.String(32)),
        sa.Column("opened_us", sa.BigInteger),
        sa.Column("until_us", sa.BigInteger),
        sa.Column("changed_us", sa.BigInteger, nullable=False),
        sa.Column("cause", sa.Text),
    )
    sa.Table(
        "breaker_events",
        md,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("failed", sa.Boolean, nullable=False),
        sa.Index("ix_breaker_events_model_at", "model", "at_us"),
    )
    md.create_all(conn)
