"""Alert "no data" handling (see alerts/engine.py): each rule says what a firing alert does
when its window has too few requests (`no_data`: keep or resolve), and each event says why
it has no value or why it resolved (`reason`) and what the window held (`samples`,
`window_minutes`, `min_requests`), so "no data: no requests in the last 5 min" can be
worded later in either language instead of "back to normal".

Added columns, not a new table: existing rules get "keep" (the behaviour a firing alert
should have had), existing events no reason."""

from __future__ import annotations

import sqlalchemy as sa

VERSION = 12
NAME = "alert_no_data"


def _columns() -> dict[str, list[sa.Column]]:
    """The new columns, made afresh for each upgrade (a Column belongs to one Table)."""
    return {
        "alert_rules": [sa.Column("no_data", sa.String(16), nullable=False, server_default="keep")],
        "alert_events": [
            sa.Column("reason", sa.String(16)),
            sa.Column("samples", sa.Integer),
            sa.Column("window_minutes", sa.Float),
            sa.Column("min_requests", sa.Integer),
        ],
    }


def upgrade(conn: sa.Connection) -> None:
    md = sa.MetaData()
    for table, columns in _columns().items():
        sa.Table(table, md, *columns)  # binds each column to its table for compiling
        for column in columns:
            spec = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {spec}"))
