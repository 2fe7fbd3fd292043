"""Counts of request records a process had to drop while the store was down (see
store/losses.py): losses are recorded, never silent."""

from __future__ import annotations

import sqlalchemy as sa

VERSION = 13
NAME = "record_losses"


def upgrade(conn: sa.Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "record_losses",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("instance", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("first_started_us", sa.BigInteger, nullable=False),
        sa.Column("last_started_us", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Index("ix_record_losses_last_started", "last_started_us"),
    )
    md.create_all(conn)
