"""Ingest: the production write path (`Store.write`: one SQLAlchemy Core transaction and
commit per record, rollups included) against raw sqlite3 inserting the same rows one commit
each with the same PRAGMAs, interleaved in rounds so both see the same machine noise. Each
side has its own scratch database.

The figure is the ratio (target >= 0.3), not records/s: what a user needs is that recording
costs a small constant factor over the database's own commit, on any machine; a chat app
writes a few records a second, far below either side's rate."""

from __future__ import annotations

import argparse
import random
import sqlite3
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from chatwatch.store.db import BUSY_TIMEOUT_MS
from chatwatch.store.record import RequestRecord
from chatwatch.store.records import Store, record_to_row
from chatwatch.store.schema import requests

if TYPE_CHECKING:
    from chatwatch.config import Settings

HELP = "records/s of the store's write path vs raw sqlite3, one commit per record each (target ratio >= 0.3)"
TARGET_RATIO = 0.3
ROUNDS = 10
MODELS = ("smollm2", "gpt-4o-mini", "llama-3.1-8b", "qwen2.5-7b", "mistral-small")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=20_000, help="records per side (default 20000)")


def run(args: argparse.Namespace, settings: Settings | None = None) -> dict[str, Any]:
    if args.rows < ROUNDS:
        raise ValueError(f"--rows must be at least {ROUNDS} (one per round), got {args.rows}")
    records = synthetic_records(args.rows)
    chunks = [records[i::ROUNDS] for i in range(ROUNDS)]
    store_s = raw_s = 0.0
    done = 0
    with tempfile.TemporaryDirectory(prefix="chatwatch-bench-ingest-") as scratch:
        with Store.open(f"sqlite:///{Path(scratch) / 'store' / 'chatwatch.db'}") as store:
            raw = _raw_connection(Path(scratch) / "raw.db")
            try:
                for i, chunk in enumerate(chunks):
                    rows = [tuple(row[c.name] for c in requests.columns) for row in map(record_to_row, chunk)]
                    # Alternate who goes first so neither side always gets the warmer cache.
                    if i % 2 == 0:
                        store_s += _time_store(store, chunk)
                        raw_s += _time_raw(raw, rows)
                    else:
                        raw_s += _time_raw(raw, rows)
                        store_s += _time_store(store, chunk)
                    done += len(chunk)
                    print(
                        f"round {i + 1}/{ROUNDS}: store {done / store_s:,.0f}/s, raw sqlite3 {done / raw_s:,.0f}/s, "
                        f"ratio {raw_s / store_s:.3f}",
                        flush=True,
                    )
            finally:
                raw.close()
    ratio = raw_s / store_s  # = (rows / store_s) / (rows / raw_s)
    print(f"ratio {ratio:.3f} (target >= {TARGET_RATIO})")
    return {
        "bench": "ingest",
        "rows": args.rows,
        "records_per_s": round(args.rows / store_s),
        "baseline_records_per_s": round(args.rows / raw_s),
        "ratio": round(ratio, 3),
    }


def _time_store(store: Store, records: list[RequestRecord]) -> float:
    t = time.perf_counter()
    for record in records:
        store.write(record)
    return time.perf_counter() - t


def _time_raw(conn: sqlite3.Connection, rows: list[tuple]) -> float:
    sql = f"INSERT INTO requests VALUES ({', '.join('?' * len(rows[0]))})"
    t = time.perf_counter()
    for row in rows:
        conn.execute(sql, row)
        conn.commit()
    return time.perf_counter() - t


def _raw_connection(path: Path) -> sqlite3.Connection:
    """sqlite3 with the store's PRAGMAs and the same `requests` table and indexes."""
    conn = sqlite3.connect(path)
    for pragma in (
        f"busy_timeout = {BUSY_TIMEOUT_MS}",
        "auto_vacuum = INCREMENTAL",
        "journal_mode = WAL",
        "synchronous = NORMAL",
    ):
        conn.execute(f"PRAGMA {pragma}")
    dialect = sa.create_engine("sqlite://").dialect
    conn.execute(str(sa.schema.CreateTable(requests).compile(dialect=dialect)))
    for index in requests.indexes:
        conn.execute(str(sa.schema.CreateIndex(index).compile(dialect=dialect)))
    conn.commit()
    return conn


def synthetic_records(
    n: int, *, seed: int = 7, days: float = 1.0, start: datetime | None = None
) -> list[RequestRecord]:
    """Plausible records spread over `days` ending at `start` (default now): 5 models, ~3 %
    errors, log-normal latencies, a few sessions. Shared with bench.memory and the tests."""
    rng = random.Random(seed)
    end = start or datetime.now(UTC)
    span_us = int(days * 86_400e6)
    return [synthetic_record(rng, end - timedelta(microseconds=span_us * (n - i) // max(n, 1)), i) for i in range(n)]


def synthetic_record(rng: random.Random, started: datetime, i: int) -> RequestRecord:
    model = MODELS[i % len(MODELS)]
    error = rng.random() < 0.03
    latency = rng.lognormvariate(0.0, 0.8)
    ttft = None if error else latency * rng.uniform(0.05, 0.3)
    out = None if error else rng.randint(5, 600)
    priced = model != "smollm2"
    return RequestRecord(
        id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        started_at=started,
        instance="bench:1",
        session_id=f"session-{rng.randrange(50)}",
        conversation_id=None,
        model=model,
        provider="bench",
        provider_model=model,
        response_model=None,
        stream=True,
        status="error" if error else "ok",
        error_type="timeout" if error else None,
        error_message="timed out" if error else None,
        queue_s=0.0,
        latency_s=latency,
        ttft_s=ttft,
        output_tokens_per_s=None if error else out / max(latency - ttft, 1e-6),
        input_tokens=rng.randint(10, 2000),
        output_tokens=out,
        cache_read_tokens=0,
        reasoning_tokens=None,
        token_source="reported",
        prompt_chars=300,
        response_chars=1200,
        cost_usd=Decimal(rng.randint(1, 50_000)).scaleb(-9) if priced else None,
        price_source="config" if priced else "local",
        rss_before_bytes=400_000_000,
        rss_after_bytes=400_000_000 + rng.randrange(10_000_000),
        system_available_bytes=4_000_000_000,
        temperature=0.7,
        top_p=0.95,
        max_tokens=512,
        finish_reason=None if error else "stop",
        app_version="bench",
    )


def main() -> None:
    import json

    parser = argparse.ArgumentParser(description=HELP)
    add_arguments(parser)
    print(json.dumps(run(parser.parse_args())))


if __name__ == "__main__":
    main()
