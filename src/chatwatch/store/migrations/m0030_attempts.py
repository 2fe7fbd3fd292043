"""Attempts: one user request may take several model calls (retries, fallbacks), each its
own record sharing `request_id`; compare and arena rounds tie their answers by
`compare_id`. Rollups count user requests and their rescue so the dashboard can show the
user-facing error rate next to the model error rate over any range.

Existing rows were single attempts of plain chat requests: request_id = id, attempt 1,
and each rollup row's first_attempts = its requests."""

from __future__ import annotations

import sqlalchemy as sa

VERSION = 30
NAME = "attempts"


def upgrade(conn: sa.Connection) -> None:
    ddl = [
        "ALTER TABLE requests ADD COLUMN request_id VARCHAR(36) NOT NULL DEFAULT ''",
        "ALTER TABLE requests ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE requests ADD COLUMN retry_reason VARCHAR(32)",
        "ALTER TABLE requests ADD COLUMN fallback_from VARCHAR(200)",
        "ALTER TABLE requests ADD COLUMN mode VARCHAR(16) NOT NULL DEFAULT 'chat'",
        "ALTER TABLE requests ADD COLUMN compare_id VARCHAR(36)",
        "UPDATE requests SET request_id = id",
        "CREATE INDEX ix_requests_request_id ON requests (request_id)",
        "CREATE INDEX ix_requests_compare_id ON requests (compare_id)",
        "ALTER TABLE rollups ADD COLUMN first_attempts INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE rollups ADD COLUMN retries INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE rollups ADD COLUMN rescued INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE rollups ADD COLUMN fallback_served INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE rollups ADD COLUMN refused INTEGER NOT NULL DEFAULT 0",
        "UPDATE rollups SET first_attempts = requests",
    ]
    for statement in ddl:
        conn.execute(sa.text(statement))
