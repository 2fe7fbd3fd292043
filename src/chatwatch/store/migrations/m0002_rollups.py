"""Per-minute/per-hour rollups with latency/TTFT histograms (see store/rollups.py)."""

from __future__ import annotations

import sqlalchemy as sa

VERSION = 2
NAME = "rollups"


def upgrade(conn: sa.Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "rollups",
        md,
        sa.Column("grain_s", sa.Integer, primary_key=True),
        sa.Column("bucket_us", sa.BigInteger, primary_key=True),
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("status", sa.String(16), primary_key=True),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("latency_n", sa.Integer, nullable=False),
        sa.Column("latency_sum_s", sa.Float, nullable=False),
        sa.Column("ttft_n", sa.Integer, nullable=False),
        sa.Column("ttft_sum_s", sa.Float, nullable=False),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("cache_read_tokens", sa.BigInteger, nullable=False),
        sa.Column("decode_s", sa.Float, nullable=False),
        sa.Column("decode_output_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_nanousd", sa.BigInteger, nullable=False),
        sa.Column("unpriced", sa.Integer, nullable=False),
        sa.Column("rss_after_max_bytes", sa.BigInteger),
        sa.Column("system_available_min_bytes", sa.BigInteger),
        sa.Column("latency_hist", sa.LargeBinary),
        sa.Column("ttft_hist", sa.LargeBinary),
        sqlite_with_rowid=False,
    )
    md.create_all(conn)
