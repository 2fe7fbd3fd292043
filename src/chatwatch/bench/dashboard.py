"""Dashboard: one full refresh of the default view (7 days, all sessions) and of the "this
session" view at several store sizes, each against baselines timed in the same run,
interleaved round by round:

* raw SQL: the same aggregates in plain indexed SQL over the raw `requests` table (sums
  grouped in SQL, percentiles from the raw values), what a developer would write by hand;
* pandas (optional, slow): the seed tutorial's way, every stored row loaded into a
  DataFrame and aggregated.

Why a sweep: small stores take the exact path (raw values), large ones the rollups; a
refresh must beat the raw SQL at every size, not only at the one that flatters it. The
refresh is `reports.dashboard.load_dashboard`, the very function the page calls, and where
it says "exact" its percentiles are checked against numpy on the raw values.

Each size's store is generated once per run in a scratch folder (or kept in `--cache DIR`
and reused by later runs), oldest request first, as the requests would have arrived.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from chatwatch.reports.dashboard import bucket_for, load_dashboard
from chatwatch.reports.queries import Filters
from chatwatch.store.record import RequestRecord
from chatwatch.store.records import Store, from_us, to_us
from chatwatch.store.schema import feedback, requests

if TYPE_CHECKING:
    from chatwatch.config import Settings

HELP = "dashboard refresh at several store sizes vs plain indexed SQL (and the seed's load-everything pandas)"
SIZES = (10_000, 100_000, 200_000, 1_000_000)
TARGET_S = 0.3  # a refresh must take at most this, and no longer than the raw SQL
MODELS = ("smollm2", "gpt-4o-mini", "llama-3.1-8b", "qwen2.5-7b", "mistral-small")
ERROR_TYPES = ("timeout", "connection", "rate_limit", "provider_error", "context_length")
DAYS = 30
VIEW = timedelta(days=7)
BATCH = 50_000  # records per write_many transaction
FEEDBACK_SHARE = 0.05
CANCEL_SHARE = 0.01
LOCAL = "smollm2"  # priced at 0 ("local"), never unpriced


def sizes(text: str) -> list[int]:
    """`--rows`: one size or a comma-separated list (e.g. 10000,100000)."""
    try:
        out = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--rows takes whole numbers separated by commas, not {text!r}") from None
    if not out or any(n < 1 for n in out):
        raise argparse.ArgumentTypeError(f"--rows takes positive sizes, not {text!r}")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rows",
        type=sizes,
        default=list(SIZES),
        metavar="N[,N...]",
        help=f"store sizes to sweep (default {','.join(str(n) for n in SIZES)})",
    )
    parser.add_argument("--sessions", type=int, default=3_000, help="distinct sessions (default 3000)")
    parser.add_argument("--runs", type=int, default=5, help="timed rounds per size; medians are reported (default 5)")
    parser.add_argument(
        "--pandas-runs", type=int, default=0, help="rounds of the slow load-everything pandas baseline (default 0)"
    )
    parser.add_argument("--cache", metavar="DIR", help="keep the generated stores here and reuse them next time")


def run(args: argparse.Namespace, settings: Settings | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="chatwatch-bench-dashboard-") as scratch:
        folder = Path(args.cache) if args.cache else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        results = []
        for rows in args.rows:
            with Store.open(f"sqlite:///{folder / f'dashboard-{rows}.db'}") as store:
                results.append(_run_size(store, rows, args))
    for r in results:
        print(_line(r), flush=True)
    met = all(r["refresh_s"] <= TARGET_S and r["refresh_s"] <= r["raw_sql_s"] for r in results)
    print(f"target (refresh <= {TARGET_S} s and <= raw SQL at every size): {'met' if met else 'NOT met'}", flush=True)
    return {"sizes": results, "target_s": TARGET_S, "met": met}


def _line(r: dict[str, Any]) -> str:
    pandas_part = f", pandas {r['pandas_s']:.2f} s" if "pandas_s" in r else ""
    return (
        f"{r['rows']:>9,} rows | {r['view_requests']:>7,} in view | {r['percentile_method']:<9} | "
        f"refresh {r['refresh_s']:.3f} s | raw SQL {r['raw_sql_s']:.3f} s | raw/refresh {r['raw_sql_ratio']:.1f}x | "
        f"session view {r['session_view_s']:.3f} s{pandas_part}"
    )


def _run_size(store: Store, rows: int, args: argparse.Namespace) -> dict[str, Any]:
    now = datetime.now(UTC)
    have = store.count()
    if have != rows:
        if have:
            raise SystemExit(f"{store.engine.url} holds {have} requests, not {rows}: use another --cache")
        t = time.perf_counter()
        generate(store, rows, args.sessions, now)
        print(f"generated {rows:,} requests in {time.perf_counter() - t:.1f} s", flush=True)
    end = _newest(store) + timedelta(microseconds=1)  # a reused store: its own "now"
    view = Filters(since=end - VIEW)
    session = _busiest_session(store, view)
    session_view = Filters(since=end - VIEW, session_id=session)
    data = load_dashboard(store, view)
    method = data.overview.summary.percentile_method
    if method == "exact":
        check_exact(store, view, data.overview.summary)
    print(
        f"{rows:,} rows: default view {data.overview.summary.requests:,} requests, percentiles {method}"
        f"{' (checked against numpy)' if method == 'exact' else ''}; "
        f"session view {load_dashboard(store, session_view).overview.summary.requests} requests",
        flush=True,
    )

    timed: dict[str, list[float]] = {"refresh": [], "session": [], "raw_sql": [], "pandas": []}
    sides: list[tuple[str, Callable[[], Any]]] = [
        ("refresh", lambda: load_dashboard(store, view)),
        ("session", lambda: load_dashboard(store, session_view)),
        ("raw_sql", lambda: raw_sql_dashboard(store, view)),
        ("pandas", lambda: pandas_dashboard(store, view)),
    ]
    for i in range(max(args.runs, args.pandas_runs)):
        # Rotate who goes first so no side always gets the warmest cache.
        for name, fn in sides[i % len(sides) :] + sides[: i % len(sides)]:
            if i >= (args.pandas_runs if name == "pandas" else args.runs):
                continue
            t = time.perf_counter()
            fn()
            timed[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in timed.items() if v}
    out = {
        "rows": rows,
        "view_requests": data.overview.summary.requests,
        "percentile_method": method,
        "refresh_s": round(med["refresh"], 4),
        "session_view_s": round(med["session"], 4),
        "raw_sql_s": round(med["raw_sql"], 4),
        "raw_sql_ratio": round(med["raw_sql"] / med["refresh"], 2),
    }
    if "pandas" in med:
        out["pandas_s"] = round(med["pandas"], 3)
        out["pandas_ratio"] = round(med["pandas"] / med["refresh"], 1)
    return out


def check_exact(store: Store, view: Filters, summary: Any) -> None:
    """An "exact" summary's percentiles equal numpy's on the raw values of the view, read
    here with plain SQL (raises AssertionError if not)."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(requests.c.latency_s, requests.c.ttft_s).where(requests.c.started_us >= view.since_us)
        ).all()
    latency = [v for v, _ in rows if v is not None]
    ttft = [v for _, v in rows if v is not None]
    want = [
        *(float(np.percentile(latency, q)) for q in (50, 95, 99)),
        *(float(np.percentile(ttft, q)) for q in (50, 95)),
    ]
    got = [summary.latency_p50_s, summary.latency_p95_s, summary.latency_p99_s, summary.ttft_p50_s, summary.ttft_p95_s]
    if got != want:
        raise AssertionError(f"the page says exact but its percentiles {got} differ from numpy's {want}")


# --- data -----------------------------------------------------------------------------------


def generate(store: Store, rows: int, sessions: int, now: datetime, *, seed: int = 42) -> None:
    """`rows` requests evenly over the last DAYS days (oldest first, as they would arrive)
    and a thumb on FEEDBACK_SHARE of the successful ones."""
    rng = random.Random(seed)
    start = now - timedelta(days=DAYS)
    step_us = DAYS * 86_400_000_000 // max(rows, 1)
    thumbs: list[dict[str, Any]] = []
    for lo in range(0, rows, BATCH):
        batch = [
            synthetic(rng, start + timedelta(microseconds=step_us * i), i, sessions)
            for i in range(lo, min(rows, lo + BATCH))
        ]
        store.write_many(batch)
        for r in batch:
            if r.status == "ok" and rng.random() < FEEDBACK_SHARE:
                created = r.started_at + timedelta(seconds=30)
                thumbs.append(
                    {
                        "request_id": r.id,
                        "score": int(rng.random() < 0.8),
                        "model": r.model,
                        "session_id": r.session_id,
                        "created_us": to_us(created),
                    }
                )
        print(f"  {min(rows, lo + BATCH):,}/{rows:,}", flush=True)
    with store.transaction() as conn:
        if thumbs:
            conn.execute(feedback.insert(), thumbs)


def synthetic(rng: random.Random, started: datetime, i: int, sessions: int) -> RequestRecord:
    """A plausible request: ~3 % errors, ~1 % cancelled, log-normal latencies per model,
    ~4 % unpriced."""
    model = MODELS[rng.randrange(len(MODELS))]
    error = rng.random() < 0.03
    speed = 1.0 + MODELS.index(model) * 0.4
    latency = rng.lognormvariate(0.0, 0.7) * speed
    ttft = None if error else latency * rng.uniform(0.05, 0.3)
    out = None if error else rng.randint(5, 600)
    inp = rng.randint(10, 2000)
    if model == LOCAL:
        cost, source = Decimal(0), "local"
    elif rng.random() < 0.04:
        cost, source = None, "unpriced"
    else:
        cost, source = Decimal(inp * 150 + (out or 0) * 600).scaleb(-9), "config"
    kind = ERROR_TYPES[rng.randrange(len(ERROR_TYPES))] if error else None
    cancelled = not error and rng.random() < CANCEL_SHARE
    return RequestRecord(
        id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        started_at=started,
        instance=f"bench:{i % 3}",
        session_id=f"session-{rng.randrange(sessions)}",
        conversation_id=None,
        model=model,
        provider="bench",
        provider_model=model,
        response_model=None,
        stream=True,
        status="error" if error else "cancelled" if cancelled else "ok",
        error_type=kind,
        error_message=f"{kind}: request {i} failed" if error else None,
        queue_s=0.0,
        latency_s=latency,
        ttft_s=ttft,
        output_tokens_per_s=None if error else out / max(latency - ttft, 1e-6),
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=0,
        reasoning_tokens=None,
        token_source="reported",
        prompt_chars=300,
        response_chars=0 if error else 1200,
        cost_usd=cost,
        price_source=source,
        rss_before_bytes=400_000_000 + (i % 1000) * 100_000,
        rss_after_bytes=400_000_000 + (i % 1000) * 100_000 + rng.randrange(10_000_000),
        system_available_bytes=4_000_000_000 - rng.randrange(500_000_000),
        temperature=0.7,
        top_p=0.95,
        max_tokens=512,
        finish_reason=None if error or cancelled else "stop",
        app_version="bench",
    )


def _newest(store: Store) -> datetime:
    with store.engine.connect() as conn:
        us = conn.execute(sa.select(sa.func.max(requests.c.started_us))).scalar_one()
    return from_us(us)


def _busiest_session(store: Store, view: Filters) -> str:
    """A session with requests in the view (the one with the most: the worst case)."""
    r = requests.c
    q = (
        sa.select(r.session_id)
        .where(r.started_us >= view.since_us)
        .group_by(r.session_id)
        .order_by(sa.func.count().desc())
        .limit(1)
    )
    with store.engine.connect() as conn:
        return conn.execute(q).scalar_one()


# --- baselines ------------------------------------------------------------------------------

_SUMS = """
SELECT started_us - started_us % :step AS ts, model, status, count(*) AS requests,
       count(latency_s) AS latency_n, coalesce(sum(latency_s), 0) AS latency_sum_s,
       coalesce(sum(input_tokens), 0) AS input_tokens, coalesce(sum(output_tokens), 0) AS output_tokens,
       coalesce(sum(CASE WHEN latency_s > ttft_s AND output_tokens IS NOT NULL THEN latency_s - ttft_s END), 0) AS decode_s,
       coalesce(sum(CASE WHEN latency_s > ttft_s AND output_tokens IS NOT NULL THEN output_tokens END), 0) AS decode_out,
       coalesce(sum(cost_nanousd), 0) AS cost_nanousd, count(*) - count(cost_nanousd) AS unpriced,
       max(rss_after_bytes) AS rss_max, min(system_available_bytes) AS avail_min
FROM requests WHERE started_us >= :since GROUP BY 1, 2, 3
"""
_REGROUP = {
    **{
        c: "sum"
        for c in (
            "requests",
            "latency_n",
            "latency_sum_s",
            "input_tokens",
            "output_tokens",
            "decode_s",
            "decode_out",
            "cost_nanousd",
            "unpriced",
        )
    },
    "rss_max": "max",
    "avail_min": "min",
}
_VALUES = (
    "SELECT started_us - started_us % :step AS ts, model, latency_s, ttft_s FROM requests WHERE started_us >= :since"
)
_ERRORS = (
    "SELECT * FROM requests WHERE status = 'error' AND started_us >= :since ORDER BY started_us DESC, id DESC LIMIT 20"
)
_FEEDBACK = "SELECT model, sum(score), count(*) FROM feedback WHERE created_us >= :since GROUP BY model"


def raw_sql_dashboard(store: Store, view: Filters) -> dict[str, Any]:
    """The default view's figures in plain SQL over the indexed raw table: sums per
    (bucket, model, status) in SQL, exact percentiles per model and per bucket in numpy."""
    step = int(bucket_for(view.since, view.until) / timedelta(microseconds=1))
    params = {"step": step, "since": view.since_us}
    with store.engine.connect() as conn:
        sums = _frame(conn.execute(sa.text(_SUMS), params))
        values = _frame(conn.execute(sa.text(_VALUES), params)).rename(
            columns={"latency_s": "latency", "ttft_s": "ttft"}
        )
        errors = conn.execute(sa.text(_ERRORS), params).all()
        thumbs = conn.execute(sa.text(_FEEDBACK), params).all()
    values = values.astype({"latency": float, "ttft": float})
    return {
        "summary": sums.agg(_REGROUP),
        "per_model": sums.groupby("model").agg(_REGROUP),
        "timeseries": sums.groupby(["ts", "model"]).agg(_REGROUP),
        "percentiles": _percentiles(values),
        "errors": errors,
        "feedback": thumbs,
    }


def _frame(result: sa.CursorResult) -> pd.DataFrame:
    """Rows into a DataFrame column by column: far faster than from Row objects, so the
    baseline is not slowed by how it is handed to pandas."""
    columns = list(result.keys())
    rows = result.all()
    return pd.DataFrame(dict(zip(columns, zip(*rows))) if rows else {c: [] for c in columns})


def pandas_dashboard(store: Store, view: Filters) -> dict[str, Any]:
    """The seed tutorial's approach: every stored row in a DataFrame, then aggregate."""
    with store.engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection  # sqlite3 straight: pandas' fastest path
        frame = pd.read_sql_query("SELECT * FROM requests", dbapi)
        thumbs = pd.read_sql_query("SELECT * FROM feedback", dbapi)
    frame = frame[frame["started_us"] >= view.since_us]
    step = int(bucket_for(view.since, view.until) / timedelta(microseconds=1))
    frame = frame.assign(
        ts=frame["started_us"] - frame["started_us"] % step,
        errors=(frame["status"] == "error").astype(int),
        unpriced=frame["cost_nanousd"].isna().astype(int),
    )
    sums = {
        "requests": ("id", "count"),
        "errors": ("errors", "sum"),
        "latency_mean": ("latency_s", "mean"),
        "input_tokens": ("input_tokens", "sum"),
        "output_tokens": ("output_tokens", "sum"),
        "cost_nanousd": ("cost_nanousd", "sum"),
        "unpriced": ("unpriced", "sum"),
        "rss_max": ("rss_after_bytes", "max"),
        "avail_min": ("system_available_bytes", "min"),
    }
    values = frame.rename(columns={"latency_s": "latency", "ttft_s": "ttft"})[["ts", "model", "latency", "ttft"]]
    return {
        "per_model": frame.groupby("model").agg(**sums),
        "timeseries": frame.groupby(["ts", "model"]).agg(**sums),
        "percentiles": _percentiles(values),
        "errors": frame[frame["status"] == "error"].nlargest(20, "started_us"),
        "feedback": thumbs[thumbs["created_us"] >= view.since_us].groupby("model")["score"].agg(["sum", "count"]),
    }


def _percentiles(values: pd.DataFrame) -> dict[str, Any]:
    """Exact latency p50/p95/p99 and TTFT p50/p95: overall, per model, per (bucket, model)."""
    qs = [0.5, 0.95, 0.99]
    return {
        "all": values[["latency", "ttft"]].quantile(qs),
        "per_model": values.groupby("model")[["latency", "ttft"]].quantile(qs),
        "timeseries": values.groupby(["ts", "model"])[["latency", "ttft"]].quantile([0.5, 0.95]),
        "ttft_hist": np.histogram(values["ttft"].dropna(), bins=60),
    }


def main() -> None:
    import json

    parser = argparse.ArgumentParser(description=HELP)
    add_arguments(parser)
    print(json.dumps(run(parser.parse_args())))


if __name__ == "__main__":
    main()
