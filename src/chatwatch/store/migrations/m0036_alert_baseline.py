"""Alert rules against normal choose their baseline and score (see alerts/baseline.py):
`baseline` ("daily": the same window on the past 7 days, or "recent": the
`baseline_windows` windows right before), and `score` ("ratio" or "z"); each event says
which score its threshold was (`score`), so a notification words "z >= 3" and "2x normal"
apart.

Added columns, not a new table: existing rules get "daily", 6 and "ratio" (what every rule
did before), existing events no score (they were all ratios)."""

from __future__ import annotations

import sqlalchemy as sa

VERSION = 36
NAME = "alert_baseline"


def _columns() -> dict[str, list[sa.Column]]:
    """The new columns, made afresh for each upgrade (a Column belongs to one Table)."""
    return {
        "alert_rules": [
            sa.Column("baseline", sa.String(16), nullable=False, server_default="daily"),
            sa.Column("baseline_windows", sa.Integer, nullable=False, server_default="6"),
            sa.Column("score", sa.String(16), nullable=False, server_default="ratio"),
        ],
        "alert_events": [sa.Column("score", sa.String(16))],
    }


def upgrade(conn: sa.Connection) -> None:
    md = sa.MetaData()
    for table, columns in _columns().items():
        sa.Table(table, md, *columns)  # binds each column to its table for compiling
        for column in columns:
            spec = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {spec}"))
