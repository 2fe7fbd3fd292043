"""Raw tables: requests, model loads, feedback and leases, with their time/model indexes."""

from __future__ import annotations

import sqlalchemy as sa

VERSION = 1
NAME = "initial"


def upgrade(conn: sa.Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "requests",
        md,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("started_us", sa.BigInteger, nullable=False),
        sa.Column("instance", sa.String(200), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("conversation_id", sa.String(64)),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(100), nullable=False),
        sa.Column("provider_model", sa.String(300), nullable=False),
        sa.Column("response_model", sa.String(300)),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_type", sa.String(32)),
        sa.Column("error_message", sa.Text),
        sa.Column("queue_s", sa.Float, nullable=False),
        sa.Column("latency_s", sa.Float),
        sa.Column("ttft_s", sa.Float),
        sa.Column("output_tokens_per_s", sa.Float),
        sa.Column("input_tokens", sa.Integer),
        sa.Column("output_tokens", sa.Integer),
        sa.Column("cache_read_tokens", sa.Integer),
        sa.Column("reasoning_tokens", sa.Integer),
        sa.Column("token_source", sa.String(16)),
        sa.Column("prompt_chars", sa.Integer, nullable=False),
        sa.Column("response_chars", sa.Integer, nullable=False),
        sa.Column("cost_nanousd", sa.BigInteger),
        sa.Column("price_source", sa.String(16), nullable=False),
        sa.Column("rss_before_bytes", sa.BigInteger),
        sa.Column("rss_after_bytes", sa.BigInteger),
        sa.Column("system_available_bytes", sa.BigInteger),
        sa.Column("temperature", sa.Float),
        sa.Column("top_p", sa.Float),
        sa.Column("max_tokens", sa.Integer),
        sa.Column("finish_reason", sa.String(32)),
        sa.Column("app_version", sa.String(32), nullable=False),
        sa.Column("prompt_text", sa.Text),
        sa.Column("response_text", sa.Text),
        sa.Index("ix_requests_started", "started_us"),
        sa.Index("ix_requests_model_started", "model", "started_us"),
        sa.Index("ix_requests_session_started", "session_id", "started_us"),
        sa.Index("ix_requests_status_started", "status", "started_us"),
    )
    sa.Table(
        "model_loads",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("loaded_us", sa.BigInteger, nullable=False),
        sa.Column("instance", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("path", sa.Text),
        sa.Column("load_s", sa.Float, nullable=False),
        sa.Column("file_bytes", sa.BigInteger),
        sa.Column("rss_before_bytes", sa.BigInteger),
        sa.Column("rss_after_bytes", sa.BigInteger),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("error_message", sa.Text),
        sa.Index("ix_model_loads_loaded", "loaded_us"),
    )
    sa.Table(
        "feedback",
        md,
        sa.Column("request_id", sa.String(36), primary_key=True),
        sa.Column("score", sa.SmallInteger, nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Index("ix_feedback_created", "created_us"),
    )
    sa.Table(
        "leases",
        md,
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("expires_us", sa.BigInteger, nullable=False),
    )
    md.create_all(conn)
