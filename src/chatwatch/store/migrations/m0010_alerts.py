"""Alert rules (seeded from config, editable on the Alerts page), their shared state
machine and the history of alert events (see alerts/)."""

from __future__ import annotations

import sqlalchemy as sa

VERSION = 10
NAME = "alerts"


def upgrade(conn: sa.Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "alert_rules",
        md,
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("model", sa.String(200)),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("window_minutes", sa.Float, nullable=False),
        sa.Column("min_requests", sa.Integer, nullable=False),
        sa.Column("for_minutes", sa.Float, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("config_hash", sa.String(64)),
        sa.Column("edited", sa.Boolean, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )
    sa.Table(
        "alert_state",
        md,
        sa.Column("rule", sa.String(200), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("pending_since_us", sa.BigInteger),
        sa.Column("firing_since_us", sa.BigInteger),
        sa.Column("last_notified_us", sa.BigInteger),
        sa.Column("notify_seq", sa.Integer, nullable=False),
        sa.Column("resolved_us", sa.BigInteger),
        sa.Column("value", sa.Float),
        sa.Column("model", sa.String(200)),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )
    sa.Table(
        "alert_events",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("model", sa.String(200)),
        sa.Column("scope", sa.String(200)),
        sa.Column("firing_since_us", sa.BigInteger, nullable=False),
        sa.Column("at_us", sa.BigInteger, nullable=False),
        sa.Column("instance", sa.String(200), nullable=False),
        # One row per notification of a firing: a second claimer's insert fails.
        sa.UniqueConstraint("rule", "firing_since_us", "state", "seq", name="uq_alert_events_claim"),
        sa.Index("ix_alert_events_at", "at_us"),
        sa.Index("ix_alert_events_rule_at", "rule", "at_us"),
    )
    md.create_all(conn)
