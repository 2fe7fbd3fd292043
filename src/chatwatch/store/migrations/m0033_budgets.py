"""Budgets: settled spend and in-flight reservations per budget and period, so a limit holds
across processes and replicas (store/budgets.py)."""

from __future__ import annotations

import sqlalchemy as sa

VERSION = 33
NAME = "budgets"


def upgrade(conn: sa.Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "budget_usage",
        md,
        sa.Column("budget", sa.String(200), primary_key=True),
        sa.Column("period_start_us", sa.BigInteger, primary_key=True),
        sa.Column("spent_nanousd", sa.BigInteger, nullable=False),
        sa.Column("spent_tokens", sa.BigInteger, nullable=False),
        sa.Column("reserved_nanousd", sa.BigInteger, nullable=False),
        sa.Column("reserved_tokens", sa.BigInteger, nullable=False),
        sa.Column("notified", sa.Float, nullable=False),
    )
    sa.Table(
        "budget_reservations",
        md,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("budget", sa.String(200), primary_key=True),
        sa.Column("period_start_us", sa.BigInteger, nullable=False),
        sa.Column("nanousd", sa.BigInteger, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.Column("expires_us", sa.BigInteger, nullable=False),
        sa.Column("instance", sa.String(200), nullable=False),
        sa.Index("ix_budget_reservations_expires", "budget", "expires_us"),
    )
    md.create_all(conn)
