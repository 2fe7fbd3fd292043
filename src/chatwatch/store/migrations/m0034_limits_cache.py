"""Rate limits and the response cache: the sliding-minute request log, the cached answers,
and on each request record whether it came from the cache and what that saved."""

from __future__ import annotations

import sqlalchemy as sa

VERSION = 34
NAME = "limits_cache"


def upgrade(conn: sa.Connection) -> None:
    false = "false" if conn.dialect.name == "postgresql" else "0"
    for statement in (
        f"ALTER TABLE requests ADD COLUMN cache_hit BOOLEAN NOT NULL DEFAULT {false}",
        "ALTER TABLE requests ADD COLUMN saved_nanousd BIGINT",
        "ALTER TABLE requests ADD COLUMN saved_s FLOAT",
    ):
        conn.execute(sa.text(statement))
    md = sa.MetaData()
    sa.Table(
        "rate_events",
        md,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("key", sa.String(300), primary_key=True),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.Index("ix_rate_events_key_at", "key", "at_us"),
    )
    sa.Table(
        "response_cache",
        md,
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("expires_us", sa.BigInteger, nullable=False),
        sa.Column("last_hit_us", sa.BigInteger, nullable=False),
        sa.Column("hits", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("finish_reason", sa.String(32)),
        sa.Column("response_model", sa.String(300)),
        sa.Column("input_tokens", sa.Integer),
        sa.Column("output_tokens", sa.Integer),
        sa.Column("token_source", sa.String(16)),
        sa.Column("cost_nanousd", sa.BigInteger),
        sa.Column("price_source", sa.String(16), nullable=False),
        sa.Column("latency_s", sa.Float),
        sa.Column("source_request_id", sa.String(36), nullable=False),
        sa.Index("ix_response_cache_model_hit", "model", "last_hit_us"),
        sa.Index("ix_response_cache_expires", "expires_us"),
    )
    md.create_all(conn)
