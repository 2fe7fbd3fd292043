"""The breakers' failure-ratio window is counted from the attempts' own records now
(store/breakers.py `window`), so the table of breaker events goes: it was one more write
per attempt for facts each attempt's record already holds."""

from __future__ import annotations

import sqlalchemy as sa

VERSION = 35
NAME = "breaker_window_from_records"


def upgrade(conn: sa.Connection) -> None:
    conn.execute(sa.text("DROP INDEX IF EXISTS ix_breaker_events_model_at"))
    conn.execute(sa.text("DROP TABLE IF EXISTS breaker_events"))
