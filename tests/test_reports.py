"""The read side's promises, each checked against numbers computed another way (pandas or
numpy on the raw rows, plain SQL on the rollups table): exact percentiles are numpy's on the
raw values, cancelled requests are counted on both paths, a range that reaches rows
retention cleaned up is never labelled exact, and the dashboard benchmark sweeps sizes."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from chatwatch.bench import dashboard as bench
from chatwatch.reports import queries
from chatwatch.reports.dashboard import load_dashboard
from chatwatch.reports.percentile import percentiles, percentiles_by_group
from chatwatch.reports.queries import Filters
from chatwatch.store.records import Store
from chatwatch.store.schema import requests
from chatwatch.store.schema import rollups as rollups_table
from tests.fixtures.db import make_record

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def _raw(store: Store) -> pd.DataFrame:
    with store.engine.connect() as conn:
        return pd.DataFrame(conn.execute(sa.select(requests)).mappings().all())


def _mixed(rng: np.random.Generator, n: int, start: datetime, span: timedelta) -> list:
    out = []
    for i in range(n):
        status = str(rng.choice(["ok", "ok", "ok", "error", "cancelled"]))
        latency = float(rng.lognormal(0.0, 0.7))
        out.append(
            make_record(
                started_at=start + span * (i / n),
                model=str(rng.choice(["a", "b", "c"])),
                status=status,
                latency_s=latency,
                ttft_s=None if status == "error" else latency * float(rng.uniform(0.05, 0.3)),
                session_id=f"s{i % 4}",
            )
        )
    return out


def test_percentiles_by_group_are_the_one_percentile_per_group() -> None:
    rng = np.random.default_rng(11)
    for _ in range(30):
        n, groups = int(rng.integers(0, 400)), int(rng.integers(1, 40))
        values, owner = rng.lognormal(0, 1, n), rng.integers(0, groups, n)
        got = percentiles_by_group(values, owner, groups, (50.0, 95.0, 99.0))
        for g in range(groups):
            want = percentiles(values[owner == g], (50.0, 95.0, 99.0))
            if want[0] is None:
                assert np.isnan(got[g]).all()
            else:
                assert got[g].tolist() == want  # bit for bit, not approximately
    with pytest.raises(ValueError, match="group ids"):
        percentiles_by_group(np.ones(2), np.array([0, 3]), 2, (50.0,))


def test_exact_path_equals_pandas_on_the_raw_rows(store: Store) -> None:  # SQLite and PostgreSQL
    rng = np.random.default_rng(3)
    store.write_many(_mixed(rng, 600, T0 + timedelta(seconds=17), timedelta(hours=5)))
    f = Filters(since=T0 + timedelta(minutes=7, seconds=30), until=T0 + timedelta(hours=4, seconds=5))
    raw = _raw(store)
    raw = raw[(raw.started_us >= f.since_us) & (raw.started_us < f.until_us)]
    s = queries.summary(store, f)
    assert s.percentile_method == "exact" and s.coverage is None and not s.partial
    assert (s.requests, s.errors, s.cancelled) == (
        len(raw),
        int((raw.status == "error").sum()),
        int((raw.status == "cancelled").sum()),
    )
    assert s.error_rate == s.errors / len(raw) and s.cancel_rate == s.cancelled / len(raw)
    lat, ttft = raw.latency_s.astype(float), raw.ttft_s.dropna().astype(float)
    assert [s.latency_p50_s, s.latency_p95_s, s.latency_p99_s] == [float(np.percentile(lat, q)) for q in (50, 95, 99)]
    assert [s.ttft_p50_s, s.ttft_p95_s] == [float(np.percentile(ttft, q)) for q in (50, 95)]
    assert s.latency_mean_s == pytest.approx(lat.mean(), rel=1e-12)

    for m in queries.per_model(store, f):
        part = raw[raw.model == m.model]
        assert (m.requests, m.cancelled) == (len(part), int((part.status == "cancelled").sum()))
        assert m.cancel_rate == m.cancelled / m.requests
        assert m.latency_p95_s == float(np.percentile(part.latency_s.astype(float), 95))

    ts = queries.timeseries(store, f, 900).frame
    step = 900 * 1_000_000
    want = (
        raw.assign(ts=raw.started_us - raw.started_us % step)
        .groupby(["ts", "model"])
        .agg(requests=("id", "count"), p95=("latency_s", lambda v: float(np.percentile(v.astype(float), 95))))
        .reset_index()
    )
    assert ts["requests"].tolist() == want["requests"].tolist()
    assert ts["latency_p95_s"].tolist() == want["p95"].tolist()
    assert ts["model"].tolist() == want["model"].tolist()


def test_cancelled_counts_on_the_histogram_path(sqlite_url: str) -> None:
    rng = np.random.default_rng(4)
    with Store.open(sqlite_url, exact_rows_limit=10) as store:
        store.write_many(_mixed(rng, 300, T0, timedelta(hours=6)))
        raw = _raw(store)
        s = queries.summary(store, Filters(since=T0))
        assert s.percentile_method == "histogram"
        cancelled = int((raw.status == "cancelled").sum())
        assert (s.requests, s.cancelled, s.cancel_rate) == (300, cancelled, cancelled / 300)
        per = {m.model: m for m in queries.per_model(store, Filters(since=T0))}
        for model, part in raw.groupby("model"):
            assert per[model].cancelled == int((part.status == "cancelled").sum())


def _three_days_one_cleaned(store: Store) -> tuple[list, int]:
    """Records over 3 days; retention deletes the first day's raw rows (rollups stay)."""
    records = [make_record(started_at=T0 + timedelta(minutes=20 * i), session_id=f"s{i % 3}") for i in range(216)]
    store.write_many(records)
    deleted = store.prune(raw_before=T0 + timedelta(days=1), rollups_before=T0 - timedelta(days=1))
    return records, deleted["requests"]


def test_a_range_reaching_cleaned_rows_is_not_labelled_exact(store: Store) -> None:  # SQLite and PostgreSQL
    records, deleted = _three_days_one_cleaned(store)
    assert deleted == 72
    # The independent count: raw rows kept + what the minute rollups hold for the cleaned day.
    t = rollups_table.c
    with store.engine.connect() as conn:
        kept = conn.execute(sa.select(sa.func.count()).select_from(requests)).scalar_one()
        from_rollups = conn.execute(
            sa.select(sa.func.sum(t.requests)).where(
                t.grain_s == 60, t.bucket_us < int((T0 + timedelta(days=1)).timestamp() * 1_000_000)
            )
        ).scalar_one()
    three_days = Filters(since=T0, until=T0 + timedelta(days=3))
    s = load_dashboard(store, three_days).overview.summary
    assert s.requests == kept + int(from_rollups) == len(records)
    assert s.percentile_method == "histogram"
    assert s.coverage is not None and s.coverage.counted and not s.partial
    assert s.coverage.raw_from == records[72].started_at  # "raw rows before <this> were cleaned up"
    # From the oldest raw row on, exact again and no note.
    recent = queries.summary(store, Filters(since=T0 + timedelta(days=1)))
    assert (recent.requests, recent.percentile_method, recent.coverage) == (144, "exact", None)


def test_raw_only_filters_over_cleaned_rows_are_partial(store: Store) -> None:
    records, _ = _three_days_one_cleaned(store)
    s = queries.summary(store, Filters(since=T0, until=T0 + timedelta(days=3), session_id="s1"))
    assert s.requests == sum(r.session_id == "s1" for r in records[72:])  # only what is still raw
    assert s.partial and s.coverage.raw_from == records[72].started_at and not s.coverage.counted
    # A range starting inside a cleaned-up minute: that partial minute cannot be counted.
    mid = queries.summary(store, Filters(since=T0 + timedelta(minutes=20, seconds=30)))
    assert mid.percentile_method == "histogram" and mid.partial


def test_rollups_cleaned_before_raw_rows_read_raw(sqlite_url: str) -> None:
    with Store.open(sqlite_url) as store:
        store.write_many([make_record(started_at=T0 + timedelta(minutes=i)) for i in range(120)])
        store.prune(raw_before=T0, rollups_before=T0 + timedelta(hours=1, minutes=30))
        s = queries.summary(store, Filters(since=T0))
        assert (s.requests, s.percentile_method, s.coverage) == (120, "exact", None)


def test_reads_are_consistent_while_requests_are_written(sqlite_url: str) -> None:
    """Sums and values come from one snapshot: a refresh racing writers never fails or
    counts values the sums do not hold."""
    import threading

    with Store.open(sqlite_url) as store:
        store.write_many([make_record(started_at=T0 + timedelta(seconds=i)) for i in range(200)])
        stop = threading.Event()

        def writer() -> None:
            i = 200
            while not stop.is_set():
                store.write(make_record(started_at=T0 + timedelta(seconds=i)))
                i += 1

        th = threading.Thread(target=writer)
        th.start()
        try:
            for _ in range(30):
                data = load_dashboard(store, Filters(since=T0), timedelta(minutes=1))
                ts = data.overview.timeseries.frame
                assert int(ts["requests"].sum()) == data.overview.summary.requests
                # Sums and raw values come from two queries: in one read transaction they
                # see the same rows (every record has a latency, so it is in the histogram).
                assert int(data.overview.latency_histogram.frame["count"].sum()) == data.overview.summary.requests
        finally:
            stop.set()
            th.join()


def test_bench_sweeps_sizes_and_reports_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(rows=[1500, 3000], sessions=50, runs=1, pandas_runs=1, cache=None)
    figures = bench.run(args)
    assert [r["rows"] for r in figures["sizes"]] == [1500, 3000]
    for r in figures["sizes"]:
        assert {"view_requests", "percentile_method", "refresh_s", "raw_sql_s", "raw_sql_ratio", "pandas_s"} <= set(r)
        assert r["refresh_s"] > 0 and r["view_requests"] > 0 and r["percentile_method"] == "exact"
    lines = [line for line in capsys.readouterr().out.splitlines() if " rows | " in line]
    assert len(lines) == 2 and "raw SQL" in lines[0] and "exact" in lines[0]
    assert bench.sizes("10000,1_000") == [10000, 1000]
    with pytest.raises(argparse.ArgumentTypeError, match="whole numbers"):
        bench.sizes("10k")


def test_the_page_says_which_rows_retention_cleaned_up(tmp_path, monkeypatch) -> None:
    from streamlit.testing.v1 import AppTest

    from chatwatch.ui.widgets.format import fmt_time

    config = tmp_path / "chatwatch.toml"
    config.write_text('[app]\nlanguage = "en"\ndata_dir = "data"\nlog_dir = "logs"\n')
    monkeypatch.setenv("CHATWATCH_CONFIG", str(config))
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with Store.open(f"sqlite:///{tmp_path / 'data' / 'chatwatch.db'}") as store:
        store.write_many([make_record(started_at=now - timedelta(days=3) + timedelta(hours=i)) for i in range(70)])
        store.prune(raw_before=now - timedelta(days=2), rollups_before=now - timedelta(days=30))
        oldest = queries.list_requests(store, page_size=1000).records[-1].started_at
    page = str(Path(__file__).resolve().parents[1] / "src" / "chatwatch" / "ui" / "views" / "dashboard.py")
    at = AppTest.from_file(page, default_timeout=60)
    at.run()
    assert not at.exception
    captions = "\n".join(c.value for c in at.caption)
    assert "histogram" in captions
    assert f"Raw request rows before {fmt_time(oldest)} UTC were cleaned up by retention" in captions


def test_histogram_estimates_beyond_the_range_are_bounds(sqlite_url: str) -> None:
    from chatwatch.store import histogram

    with Store.open(sqlite_url, exact_rows_limit=10) as store:
        slow = [make_record(started_at=T0 + timedelta(minutes=i), latency_s=3 * 3600.0, ttft_s=0.5) for i in range(30)]
        store.write_many(slow)
        s = queries.summary(store, Filters(since=T0))
        assert s.percentile_method == "histogram"
        # Three hours is past the top bucket: "> 2 h", never a made-up number.
        assert s.beyond["latency_p50_s"] == histogram.Beyond(histogram.HIGH_S, above=True)
        assert s.latency_p50_s == histogram.HIGH_S and set(s.beyond) == {
            "latency_p50_s",
            "latency_p95_s",
            "latency_p99_s",
        }
        assert s.ttft_p50_s == pytest.approx(0.5, rel=histogram.RELATIVE_ERROR)
        # The chart's series never carries the bound as if it were a value.
        ts = load_dashboard(store, Filters(since=T0), timedelta(minutes=5)).overview.timeseries.frame
        assert ts["requests"].sum() == 30 and ts["latency_p50_s"].isna().all() and ts["latency_p95_s"].isna().all()
        assert ts["ttft_p50_s"].notna().all()
        exact = queries.summary(store, Filters(since=T0, session_id="session-1"))
        assert exact.percentile_method == "exact" and exact.beyond == {} and exact.latency_p50_s == 3 * 3600.0


def test_beyond_the_range_reads_as_a_bound_on_the_page_and_in_stats(tmp_path, monkeypatch, capsys) -> None:
    """3 h replies on the histogram path (more requests in view than the exact limit): the
    KPIs, the per-model caption and `chatwatch stats` say "> 2 h" (true: 7,200 s < the top
    edge < 3 h), never a number."""
    from streamlit.testing.v1 import AppTest

    from chatwatch.cli import main

    db = tmp_path / "data" / "chatwatch.db"
    db.parent.mkdir()
    now = datetime.now(UTC)
    with Store.open(f"sqlite:///{db}") as store:
        store.write_many(
            [make_record(started_at=now - timedelta(minutes=5, seconds=i), latency_s=3 * 3600.0) for i in range(150)]
        )
    path = tmp_path / "chatwatch.toml"
    path.write_text(
        f'[app]\nlanguage = "en"\ndata_dir = "{tmp_path / "data"}"\nlog_dir = "{tmp_path / "logs"}"\n'
        "[dashboard]\nexact_percentiles_max_rows = 100\n"
        '[[models]]\nid = "smollm2"\nkind = "llama_cpp"\n'
    )
    monkeypatch.setenv("CHATWATCH_CONFIG", str(path))

    assert main(["stats", "--since", "1h"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # requests, errors, model err%, user err%, rescued, retries, fallbacks, then p50 "> 2 h"
    assert lines[1].split()[:10] == ["all", "150", "0", "0.0%", "0.0%", "0", "0", "0", ">", "2"]

    page = Path(__file__).parent.parent / "src" / "chatwatch" / "ui" / "views" / "dashboard.py"
    at = AppTest.from_file(str(page), default_timeout=60)
    at.run()
    assert not at.exception
    kpis = {m.label: m.value for m in at.metric}
    assert kpis["Latency p95"] == "> 2 h" and kpis["Latency p50"] == "> 2 h"
    captions = "\n".join(c.value for c in at.caption)
    assert "the table shows the bound: smollm2 Latency p50 > 2 h; smollm2 Latency p95 > 2 h" in captions
