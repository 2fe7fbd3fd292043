"""Tables of the store (SQLAlchemy Core), identical on SQLite and PostgreSQL.

Times are integer microseconds since the Unix epoch (UTC) so that range queries, bucketing
and indexes behave the same on both backends; costs are integer nano-dollars so sums are
exact. Migrations (store/migrations/) create and change these tables in order.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

requests = sa.Table(
    "requests",
    metadata,
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
    # Attempts of one user request share request_id (see store/record.py).
    sa.Column("request_id", sa.String(36), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False, server_default="1"),
    sa.Column("retry_reason", sa.String(32)),
    sa.Column("fallback_from", sa.String(200)),
    sa.Column("mode", sa.String(16), nullable=False, server_default="chat"),
    sa.Column("compare_id", sa.String(36)),
    sa.Column("cache_hit", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("saved_nanousd", sa.BigInteger),
    sa.Column("saved_s", sa.Float),
    sa.Index("ix_requests_started", "started_us"),
    sa.Index("ix_requests_model_started", "model", "started_us"),
    sa.Index("ix_requests_session_started", "session_id", "started_us"),
    sa.Index("ix_requests_status_started", "status", "started_us"),
    sa.Index("ix_requests_request_id", "request_id"),
    sa.Index("ix_requests_compare_id", "compare_id"),
)

model_loads = sa.Table(
    "model_loads",
    metadata,
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

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("request_id", sa.String(36), primary_key=True),
    sa.Column("score", sa.SmallInteger, nullable=False),  # 1 = thumbs up, 0 = thumbs down
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Index("ix_feedback_created", "created_us"),
)

# Short-lived exclusive claims between processes and replicas (retention runs,
# alert notifications): a row is held by `holder` until `expires_us`.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("expires_us", sa.BigInteger, nullable=False),
)

# Request records a process could not keep until the store took them again (its unsaved
# backlog was full, or it closed with the store still down): one row per model and burst,
# written once the store is back, so the dashboard can say a range is incomplete instead
# of silently undercounting it. first/last_started_us bound the lost records' start times.
record_losses = sa.Table(
    "record_losses",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at_us", sa.BigInteger, nullable=False),  # when the last of them was dropped
    sa.Column("instance", sa.String(200), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("first_started_us", sa.BigInteger, nullable=False),
    sa.Column("last_started_us", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Index("ix_record_losses_last_started", "last_started_us"),
)

# Budgets (store/budgets.py): per budget and period (its UTC day or month start), the
# settled spend and what attempts in flight have reserved; a row is locked while an attempt
# reserves, so processes racing for the last dollars queue on it. `notified` is the highest
# notify_at fraction already announced this period (each is announced once, by one process).
budget_usage = sa.Table(
    "budget_usage",
    metadata,
    sa.Column("budget", sa.String(200), primary_key=True),
    sa.Column("period_start_us", sa.BigInteger, primary_key=True),
    sa.Column("spent_nanousd", sa.BigInteger, nullable=False),
    sa.Column("spent_tokens", sa.BigInteger, nullable=False),
    sa.Column("reserved_nanousd", sa.BigInteger, nullable=False),
    sa.Column("reserved_tokens", sa.BigInteger, nullable=False),
    sa.Column("notified", sa.Float, nullable=False),
)

# One row per budget an attempt in flight holds a reservation on; settled (deleted) when the
# attempt ends, or reclaimed after expires_us if its process died.
budget_reservations = sa.Table(
    "budget_reservations",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("budget", sa.String(200), primary_key=True),
    sa.Column("period_start_us", sa.BigInteger, nullable=False),
    sa.Column("nanousd", sa.BigInteger, nullable=False),
    sa.Column("tokens", sa.BigInteger, nullable=False),
    sa.Column("expires_us", sa.BigInteger, nullable=False),
    sa.Column("instance", sa.String(200), nullable=False),
    sa.Index("ix_budget_reservations_expires", "budget", "expires_us"),
)

# Sliding-minute rate limits (store/ratelimits.py): one row per admitted request and limit
# key ("model:<id>", "session:<id>"), with its tokens (estimated, then the real count).
rate_events = sa.Table(
    "rate_events",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("at_us", sa.BigInteger, nullable=False),
    sa.Column("tokens", sa.BigInteger, nullable=False),
    sa.Index("ix_rate_events_key_at", "key", "at_us"),
)

# The response cache (store/cache.py): an answer per exact request key (a hash of model,
# settings and messages: no prompt text), with what the original call cost and took.
response_cache = sa.Table(
    "response_cache",
    metadata,
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

# Blind arena votes (store/votes.py): one per pair of answers (`pair` is both record ids in
# sorted order, unique, so neither order can be voted twice), with the models and the verdict
# as seen from answer A ("a" | "b" | "tie" | "both_bad"), the session and the time.
votes = sa.Table(
    "votes",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("created_us", sa.BigInteger, nullable=False),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("record_a", sa.String(36), nullable=False),
    sa.Column("record_b", sa.String(36), nullable=False),
    sa.Column("model_a", sa.String(200), nullable=False),
    sa.Column("model_b", sa.String(200), nullable=False),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("pair", sa.String(73), nullable=False),
    sa.UniqueConstraint("pair", name="uq_votes_pair"),
    sa.Index("ix_votes_created", "created_us"),
)

# Circuit breakers (store/breakers.py): one row per model with its state ("closed" | "open" |
# "half_open"), consecutive counted failures, the last error type, when it opened, `until_us`
# (open: end of the cool-down; half-open: when the probe in flight expires) and why it opened.
breakers = sa.Table(
    "breakers",
    metadata,
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("last_error", sa.String(32)),
    sa.Column("opened_us", sa.BigInteger),
    sa.Column("until_us", sa.BigInteger),
    sa.Column("changed_us", sa.BigInteger, nullable=False),
    sa.Column("cause", sa.Text),
)


schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("applied_us", sa.BigInteger, nullable=False),
)

# Pre-aggregated request metrics per time bucket (grain_s = 60 or 3600), model and status,
# updated in the same transaction as each request row (store/rollups.py). Sums let the
# dashboard compute means, rates and tokens/s over long ranges without scanning raw rows;
# the latency and TTFT histograms (store/histogram.py) give percentiles. A histogram is
# a blob of sparse (bucket, count) pairs in the row itself, so a 7-day view reads one row
# per hour, model and status instead of one per occupied histogram bucket.
# WITHOUT ROWID on SQLite: the primary key is the table, so range scans by (grain, time)
# read contiguous pages and each upsert touches one B-tree instead of two.
rollups = sa.Table(
    "rollups",
    metadata,
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
    # Decode phase (latency - ttft) of requests that have both, with their output tokens:
    # tokens/s = decode_output_tokens / decode_s.
    sa.Column("decode_s", sa.Float, nullable=False),
    sa.Column("decode_output_tokens", sa.BigInteger, nullable=False),
    sa.Column("cost_nanousd", sa.BigInteger, nullable=False),
    sa.Column("unpriced", sa.Integer, nullable=False),
    # User requests and their rescue (store/record.py): first_attempts counts attempt-1
    # records (one per user request), retries the later attempts, rescued the answers that
    # came after at least one failed attempt, fallback_served those answered by a fallback.
    sa.Column("first_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("retries", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rescued", sa.Integer, nullable=False, server_default="0"),
    sa.Column("fallback_served", sa.Integer, nullable=False, server_default="0"),
    # Refused by chatwatch before any model call (store/record.py LOCAL_REFUSALS).
    sa.Column("refused", sa.Integer, nullable=False, server_default="0"),
    # Memory gauge: worst values seen in the bucket.
    sa.Column("rss_after_max_bytes", sa.BigInteger),
    sa.Column("system_available_min_bytes", sa.BigInteger),
    sa.Column("latency_hist", sa.LargeBinary),
    sa.Column("ttft_hist", sa.LargeBinary),
    sqlite_with_rowid=False,
)
