"""Memory: RSS growth of one process after storing N requests through the production write
path (a scratch SQLite store). Records are made one at a time so the benchmark itself
holds none; RSS is read after a warm-up so start-up allocations do not count."""

from __future__ import annotations

import argparse
import gc
import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from chatwatch.bench.ingest import synthetic_record
from chatwatch.store.records import Store

if TYPE_CHECKING:
    from chatwatch.config import Settings

HELP = "RSS growth (MB) after recording N requests in one process (target <= 10)"
WARMUP = 2_000
MB = 1024 * 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=100_000, help="requests to record (default 100000)")


def run(args: argparse.Namespace, settings: Settings | None = None) -> dict[str, Any]:
    process = psutil.Process()
    rng = random.Random(11)
    start = datetime.now(UTC) - timedelta(days=1)
    step = timedelta(days=1) / max(args.rows + WARMUP, 1)
    with tempfile.TemporaryDirectory(prefix="chatwatch-bench-memory-") as scratch:
        with Store.open(f"sqlite:///{Path(scratch) / 'chatwatch.db'}") as store:
            for i in range(WARMUP):
                store.write(synthetic_record(rng, start + step * i, i))
            gc.collect()
            before = process.memory_info().rss
            for i in range(WARMUP, WARMUP + args.rows):
                store.write(synthetic_record(rng, start + step * i, i))
                if (i - WARMUP + 1) % 20_000 == 0:
                    grown = (process.memory_info().rss - before) / MB
                    print(f"{i - WARMUP + 1:,} requests: RSS +{grown:.1f} MB", flush=True)
            gc.collect()
            after = process.memory_info().rss
    return {
        "rows": args.rows,
        "rss_before_mb": round(before / MB, 1),
        "rss_after_mb": round(after / MB, 1),
        "rss_growth_mb": round((after - before) / MB, 2),
    }


def main() -> None:
    import json

    parser = argparse.ArgumentParser(description=HELP)
    add_arguments(parser)
    print(json.dumps(run(parser.parse_args())))


if __name__ == "__main__":
    main()
