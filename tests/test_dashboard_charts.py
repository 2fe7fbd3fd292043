"""The dashboard's pure parts without Streamlit: chart and table builders, formatting, the
view's time range, the log-line scan, load_dashboard and the export callable."""

from __future__ import annotations

import gzip
import json
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from chatwatch import cli
from chatwatch.reports.dashboard import (
    bucket_for,
    error_types,
    feedback_for,
    known_models,
    load_dashboard,
    memory_frame,
)
from chatwatch.reports.logsearch import find_log_lines
from chatwatch.reports.queries import (
    FeedbackCount,
    Filters,
    Histogram,
    feedback_by_model,
    memory_timeseries,
    per_model,
    recent_errors,
    summary,
    timeseries,
    ttft_histogram,
)
from chatwatch.store import histogram
from chatwatch.ui.data import export_data
from chatwatch.ui.widgets import charts
from chatwatch.ui.widgets.filters import View, align
from chatwatch.ui.widgets.format import (
    fmt_cost,
    fmt_pct,
    fmt_satisfaction,
    fmt_seconds,
    fmt_usd,
)
from tests.fixtures.db import BASE_TIME, make_record

XSS = "<img src=x onerror=alert(1)>"


def _summary(model: str, **kw):
    from chatwatch.reports.queries import Summary

    base = dict(
        requests=10,
        errors=1,
        cancelled=0,
        error_rate=0.1,
        latency_mean_s=1.0,
        latency_p50_s=0.9,
        latency_p95_s=2.0,
        latency_p99_s=3.0,
        ttft_mean_s=0.2,
        ttft_p50_s=0.15,
        ttft_p95_s=0.4,
        output_tokens_per_s=50.0,
        input_tokens=100,
        output_tokens=200,
        cache_read_tokens=0,
        cost_usd=Decimal("0.002"),
        unpriced=0,
        percentile_method="exact",
        model=model,
    )
    return Summary(**{**base, **kw})


def _timeseries() -> pd.DataFrame:
    buckets = pd.to_datetime(["2026-01-05 10:00", "2026-01-05 11:00"], utc=True)
    rows = []
    for i, b in enumerate(buckets):
        for model, n in (("a", 5 + i), ("b", 3)):
            rows.append(
                dict(
                    bucket=b,
                    model=model,
                    requests=n,
                    errors=i,
                    cancelled=0,
                    latency_p50_s=1.0 + i,
                    latency_p95_s=2.0 + i,
                    ttft_p50_s=0.1,
                    input_tokens=10 * n,
                    output_tokens=20 * n,
                    output_tokens_per_s=40.0,
                    cost_nanousd=1000 * n,
                    cost_usd=1e-6 * n,
                    rss_after_max_bytes=300e6 + i * 1e6,
                    system_available_min_bytes=4e9 - i * 1e8,
                )
            )
    return pd.DataFrame(rows)


# --- charts -------------------------------------------------------------------------------------


def test_model_share_is_a_pie_of_requests_per_model():
    fig = charts.model_share([_summary("a", requests=7), _summary("b", requests=3)], "en")
    assert isinstance(fig, go.Figure) and fig.layout.title.text == "Model usage share"
    (pie,) = fig.data
    assert list(pie.labels) == ["a", "b"] and list(pie.values) == [7, 3]


def test_requests_and_errors_stack_models_and_total_errors():
    ts = _timeseries()
    fig = charts.requests_errors(ts, "es")
    bars = [tr for tr in fig.data if tr.type == "bar"]
    (errors,) = [tr for tr in fig.data if tr.type == "scatter"]
    assert [b.name for b in bars] == ["a", "b"] and fig.layout.barmode == "stack"
    assert sum(sum(b.y) for b in bars) == ts["requests"].sum()
    assert errors.name == "errores" and list(errors.y) == [0, 2]


def test_latency_lines_per_model_share_color_and_dash_p95():
    fig = charts.latency_over_time(_timeseries(), "en")
    assert [tr.name for tr in fig.data] == ["a p50", "a p95", "b p50", "b p95"]
    assert fig.data[0].line.color == fig.data[1].line.color != fig.data[2].line.color
    assert fig.data[1].line.dash == "dash" and list(fig.data[1].y) == [2.0, 3.0]


def test_tokens_and_cost_share_the_time_axis():
    fig = charts.tokens_cost_over_time(_timeseries(), "en")
    tokens = [tr for tr in fig.data if tr.yaxis == "y"]
    cost = [tr for tr in fig.data if tr.yaxis == "y2"]
    assert len(tokens) == len(cost) == 2
    assert list(tokens[0].y) == [150, 180]  # model a: (10 + 20) * requests
    assert list(cost[1].y) == pytest.approx([3e-6, 3e-6])
    assert not any(tr.showlegend for tr in cost)  # one legend entry per model


def test_memory_chart_in_megabytes_on_two_axes():
    fig = charts.memory_over_time(memory_frame(_timeseries()), "en")
    rss, available = fig.data
    assert list(rss.y) == pytest.approx([300e6 / 2**20, 301e6 / 2**20])
    assert available.yaxis == "y2" and list(available.y) == pytest.approx([4e9 / 2**20, 3.9e9 / 2**20])


def test_coarse_histogram_keeps_counts_and_edge_buckets():
    buckets = [histogram.UNDERFLOW, 1, 2, 5, 200, histogram.OVERFLOW]
    frame = pd.DataFrame(
        {
            "model": "a",
            "bucket": buckets,
            "lo_s": [histogram.bounds(b)[0] for b in buckets],
            "hi_s": [histogram.bounds(b)[1] for b in buckets],
            "count": [1, 2, 3, 4, 5, 6],
        }
    )
    out = charts.coarse_histogram(frame, per_group=4)
    assert out["count"].tolist() == [1, 5, 4, 5, 6]  # buckets 1 and 2 share a bin; 5 starts the next
    assert out["count"].sum() == frame["count"].sum()
    regular = out.iloc[1:-1]
    assert ((regular["x_s"] > regular["lo_s"]) & (regular["x_s"] < regular["hi_s"])).all()
    assert out["x_s"].iloc[0] == pytest.approx(histogram.LOW_S / 2) and np.isfinite(out["x_s"]).all()


def test_ttft_distribution_on_a_log_axis(sqlite_store):
    sqlite_store.write_many([make_record(ttft_s=v, model=m) for v in (0.05, 0.1, 0.2, 0.4) for m in ("a", "b")])
    fig = charts.ttft_distribution(ttft_histogram(sqlite_store, Filters()), "en")
    assert fig.layout.xaxis.type == "log" and [tr.name for tr in fig.data] == ["a", "b"]
    assert sum(fig.data[0].y) == 4
    colors = charts.model_colors(["0-only-errors", "a", "b"])  # a model absent from this chart
    shared = charts.ttft_distribution(ttft_histogram(sqlite_store, Filters()), "en", colors)
    assert [tr.line.color for tr in shared.data] == [colors["a"], colors["b"]] != [tr.line.color for tr in fig.data]
    empty = charts.ttft_distribution(
        Histogram(pd.DataFrame(columns=["model", "bucket", "lo_s", "hi_s", "count"]), "exact"), "en"
    )
    assert empty.data == ()


# --- tables -------------------------------------------------------------------------------------


def test_model_table_costs_per_priced_request_and_never_zero_for_unpriced():
    rows = [
        _summary("a", requests=10, unpriced=2, cost_usd=Decimal("0.008")),
        _summary("b", requests=4, unpriced=4, cost_usd=Decimal(0), error_rate=0.25),
    ]
    table = charts.model_table(rows, [FeedbackCount("a", 3, 1)], "en")
    a, b = table.to_dict("records")
    assert a["Cost / 1,000 requests ($)"] == pytest.approx(0.008 / 8 * 1000) and a["Unpriced"] == 2
    assert b["Cost / 1,000 requests ($)"] is None or np.isnan(b["Cost / 1,000 requests ($)"])
    assert a["Satisfaction"] == 75.0 and (b["Satisfaction"] is None or np.isnan(b["Satisfaction"]))
    assert b["Error rate"] == 25.0 and a["Latency p95 (s)"] == 2.0 and a["TTFT p50 (s)"] == 0.15


def test_error_and_request_tables_keep_text_verbatim():
    err = make_record(status="error", error_message=XSS, error_type="provider_error", cost_usd=None)
    assert charts.errors_table([err], "en").iloc[0].tolist()[1:] == [err.model, "provider error", XSS, err.id]
    row = charts.requests_table([err], "en").iloc[0]
    assert row["Error"] == XSS and row["Cost ($)"] == "" and row["Tokens in/out"] == "20 / –"
    fields = dict(charts.record_fields(err, "en").itertuples(index=False))
    assert fields["Error message"] == XSS and fields["Cost (USD)"] == "—" and fields["Id"] == err.id


def test_tables_speak_the_page_language():
    err = make_record(status="error", error_type="rate_limit", ttft_s=None, stream=False, finish_reason=None)
    row = charts.requests_table([err], "es").iloc[0]
    assert row["Estado"] == "error" and row["Tipo de error"] == "límite de peticiones"
    ok = make_record(
        status="cancelled",
        conversation_id=None,
        token_source="counted",
        price_source="unpriced",
        finish_reason="length",
    )
    assert charts.requests_table([ok], "es").iloc[0]["Estado"] == "cancelada"
    fields = dict(charts.record_fields(ok, "es").itertuples(index=False))
    assert fields["Estado"] == "cancelada" and fields["Origen de los tokens"] == "contados"
    assert fields["Origen del precio"] == "sin precio" and fields["Motivo de fin"] == "máximo de tokens"
    assert fields["En streaming"] == "sí" and fields["Conversación"] == "—"
    # Every field of a record has a name in each language (none shows its code).
    assert len(fields) == len(dict(charts.record_fields(ok, "en").itertuples(index=False)))
    unknown = make_record(status="error", error_type="from_a_newer_version")
    assert charts.errors_table([unknown], "es").iloc[0]["Tipo de error"] == "from_a_newer_version"


def test_tables_have_one_type_per_column_for_arrow():
    """A column of floats and Nones (or ints and text) is "mixed" to pyarrow: Streamlit
    converts it with a warning on every draw. Every table converts cleanly."""
    import pyarrow as pa

    records = [make_record(), make_record(status="error", latency_s=None, ttft_s=None, cost_usd=None)]
    frames = [
        charts.requests_table(records, "es"),
        charts.errors_table(records, "es"),
        charts.record_fields(records[1], "es"),
        charts.model_table([_summary("a"), _summary("b", error_rate=None, latency_p50_s=None)], [], "es"),
    ]
    for frame in frames:
        pa.Table.from_pandas(frame)  # raises ArrowTypeError / ArrowInvalid on a mixed column
        for column in frame.columns:
            kinds = {type(v) for v in frame[column] if v is not None and not (isinstance(v, float) and np.isnan(v))}
            assert len(kinds) <= 1 or kinds <= {int, float, np.int64, np.float64}, (column, kinds)
    latency = charts.requests_table(records, "es")["Latencia (s)"]
    assert latency.dtype == float and np.isnan(latency.iloc[1])


def test_time_axes_show_numeric_dates_in_any_language():
    """Plotly's default date ticks and hover headers name months and days in English
    ("Jan 5, 2026"); every time axis is set to numeric dates instead."""
    ts = _timeseries()
    figures = [
        charts.requests_errors(ts, "es"),
        charts.latency_over_time(ts, "es"),
        charts.tokens_cost_over_time(ts, "es"),
        charts.memory_over_time(memory_frame(ts), "es"),
    ]
    for fig in figures:
        layout = json.loads(fig.to_json())["layout"]
        axes = [v for k, v in layout.items() if k.startswith("xaxis")]
        assert axes
        for axis in axes:
            assert axis["type"] == "date" and axis["tickformat"] == "%d/%m %H:%M", axis
            assert axis["hoverformat"] == "%d/%m/%Y %H:%M"
            assert not {"%b", "%B", "%a", "%A"} & {
                axis["tickformat"][i : i + 2] for i in range(len(axis["tickformat"]))
            }


def test_model_table_counts_cancelled_requests():
    table = charts.model_table([_summary("a", cancelled=3), _summary("b")], [], "es")
    assert table["Canceladas"].tolist() == [3, 0]
    assert list(table.columns[:4]) == ["Modelo", "Peticiones", "Tasa de errores", "Canceladas"]


# --- formatting -----------------------------------------------------------------------------------


def test_cost_is_never_zero_for_unpriced_requests():
    assert fmt_cost(Decimal("1.5"), 0, 10, "en") == "$1.50"
    assert fmt_cost(Decimal("0.000123456"), 3, 10, "en") == "$0.000123456 +3 unpriced"
    assert fmt_cost(Decimal(0), 10, 10, "en") == "unpriced (10)"
    assert fmt_cost(Decimal(0), 0, 0, "en") == "—"
    assert fmt_usd(Decimal("0.0512345")) == "$0.0512" and fmt_usd(Decimal("1234.5")) == "$1,234.50"


def test_numbers_and_unknowns():
    assert fmt_pct(0.0345) == "3.45 %" and fmt_pct(None) == "—"
    assert [fmt_seconds(v) for v in (None, 0.0875, 1.0, 12.34, 312.2)] == ["—", "87.5 ms", "1.00 s", "12.3 s", "312 s"]
    assert fmt_satisfaction(0, 0, "en") == "no ratings" and fmt_satisfaction(3, 4, "en") == "👍 75.0 %"


# --- the view's range ---------------------------------------------------------------------------------


def test_relative_range_is_aligned_and_open_ended():
    now = datetime(2026, 1, 5, 12, 0, 7, 300, tzinfo=UTC)
    f = View("1h", models=("a",), statuses=("error",), session_id="s", text="  boom ").filters(now, align_s=5)
    assert f.since == datetime(2026, 1, 5, 11, 0, 5, tzinfo=UTC) and f.until is None
    assert f.models == ("a",) and f.statuses == ("error",) and f.session_id == "s" and f.text == "boom"
    assert align(now, 60) == datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    start, end = BASE_TIME, BASE_TIME + timedelta(days=2)
    custom = View("custom", start, end).filters(now)
    assert (custom.since, custom.until) == (start, end)


def test_bucket_follows_the_range():
    now = BASE_TIME
    assert bucket_for(now - timedelta(minutes=15), None, now) == timedelta(minutes=1)
    assert bucket_for(now - timedelta(hours=24), None, now) == timedelta(minutes=15)
    assert bucket_for(now - timedelta(days=7), None, now) == timedelta(hours=1)
    assert bucket_for(now - timedelta(days=30), None, now) == timedelta(hours=6)


# --- log lines ---------------------------------------------------------------------------------------


def _log(path, lines, gz=False, mtime=None):
    text = "".join(json.dumps(d) + "\n" for d in lines)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text + "not json at all\n", encoding="utf-8")
    if mtime is not None:
        os.utime(path, (mtime.timestamp(), mtime.timestamp()))


def test_log_lines_of_one_request_from_plain_and_rotated_files(tmp_path):
    now = datetime.now(UTC)
    rid, other = "req-1", "req-2"
    day = now.strftime("%Y-%m-%d")
    _log(
        tmp_path / f"chatwatch-app-h.{day}.001.jsonl.gz",
        [
            {"timestamp": "2026-01-01T00:00:01Z", "request_id": rid, "message": "start"},
            {"timestamp": "2026-01-01T00:00:02Z", "request_id": other, "message": f"mentions {rid}"},
        ],
        gz=True,
    )
    _log(tmp_path / "chatwatch-app-h.jsonl", [{"timestamp": "2026-01-01T00:00:03Z", "request_id": rid, "message": XSS}])
    _log(
        tmp_path / "chatwatch-cli-h.2020-01-01.001.jsonl.gz",  # written long before: skipped
        [{"timestamp": "2020-01-01T00:00:00Z", "request_id": rid, "message": "old"}],
        gz=True,
        mtime=datetime(2020, 1, 1, tzinfo=UTC),
    )
    (tmp_path / "notes.txt").write_text(rid)
    scan = find_log_lines(tmp_path, rid, now - timedelta(minutes=5))
    assert [d["message"] for d in scan.lines] == ["start", XSS]
    assert scan.files_scanned == 2 and not scan.capped
    assert [d["message"] for d in find_log_lines(tmp_path, rid).lines] == ["old", "start", XSS]
    capped = find_log_lines(tmp_path, rid, max_lines=1)
    assert capped.capped and len(capped.lines) == 1
    assert find_log_lines(tmp_path / "missing", rid).lines == []


# --- data layer ------------------------------------------------------------------------------------------


def _seed(store, n=60):
    records = []
    for i in range(n):
        status = "error" if i % 7 == 0 else "ok"
        records.append(
            make_record(
                started_at=BASE_TIME + timedelta(minutes=i),
                model=("a", "b", "c")[i % 3],
                status=status,
                session_id=f"s{i % 4}",
                latency_s=0.2 + (i % 11) * 0.3,
                cost_usd=None if i % 5 == 0 else Decimal("0.001"),
                error_message=XSS if status == "error" else None,
            )
        )
    store.write_many(records)
    store.add_feedback(records[1].id, 1, records[1].model, records[1].session_id)
    store.add_feedback(records[2].id, 0, records[2].model, records[2].session_id)
    return records


def _same(got, want) -> None:
    """Summaries equal, float sums to rounding (they are summed in another order)."""
    for name, value in vars(want).items():
        if isinstance(value, float):
            assert getattr(got, name) == pytest.approx(value, rel=1e-12), name
        else:
            assert getattr(got, name) == value, name


def test_load_dashboard_equals_the_separate_queries(store):  # SQLite and PostgreSQL
    records = _seed(store)
    f = Filters(since=BASE_TIME, until=BASE_TIME + timedelta(hours=2))
    data = load_dashboard(store, f, timedelta(minutes=5))
    _same(data.overview.summary, summary(store, f))
    got, want = data.overview.per_model, per_model(store, f)
    assert len(got) == len(want) == 3
    for g, w in zip(got, want):
        _same(g, w)
    pd.testing.assert_frame_equal(data.overview.timeseries.frame, timeseries(store, f, 300).frame)
    pd.testing.assert_frame_equal(data.memory, memory_timeseries(store, f, 300))
    assert [r.id for r in data.recent_errors] == [r.id for r in recent_errors(store, f, 20)]
    assert data.feedback == feedback_by_model(store, f)  # thumbs count when given: now
    everything = load_dashboard(store, Filters())
    assert everything.feedback == feedback_by_model(store, Filters())
    assert (everything.satisfaction.up, everything.satisfaction.total) == (1, 2)
    ok_only = load_dashboard(store, Filters(statuses=("ok",)))
    assert ok_only.recent_errors == [] and ok_only.overview.summary.errors == 0
    assert known_models(store) == ["a", "b", "c"]
    assert error_types(store, Filters()) == ["timeout"]
    thumb = feedback_for(store, records[2].id)
    assert thumb.score == 0 and thumb.model == records[2].model and feedback_for(store, "nope") is None


def test_long_ranges_use_rollups_within_five_percent(sqlite_url):
    from chatwatch.store.records import Store

    rng = np.random.default_rng(5)
    with Store.open(sqlite_url, exact_rows_limit=100) as store:
        lat = rng.lognormal(0.0, 0.8, 400)
        store.write_many(
            [
                make_record(started_at=BASE_TIME + timedelta(minutes=7 * i), latency_s=float(v), ttft_s=float(v) / 4)
                for i, v in enumerate(lat)
            ]
        )
        s = load_dashboard(store, Filters(since=BASE_TIME)).overview.summary
        assert s.percentile_method == "histogram" and s.requests == 400
        for got, q in ((s.latency_p50_s, 50), (s.latency_p95_s, 95), (s.latency_p99_s, 99)):
            assert got == pytest.approx(np.percentile(lat, q), rel=0.05)
        assert s.ttft_p95_s == pytest.approx(np.percentile(lat / 4, 95), rel=0.05)


def test_export_callable_equals_the_cli_export(sqlite_url, tmp_path):
    from chatwatch.store.records import Store

    config = tmp_path / "chatwatch.toml"
    config.write_text(f'[store]\nurl = "{sqlite_url}"\n')
    with Store.open(sqlite_url) as store:
        _seed(store)
        for fmt in ("csv", "json"):
            for argv, f in (
                ([], Filters()),
                (["--model", "b", "--status", "error"], Filters(models=("b",), statuses=("error",))),
            ):
                out = tmp_path / f"cli.{fmt}"
                assert cli.main(["export", "--config", str(config), "--format", fmt, "-o", str(out), *argv]) == 0
                produce = export_data(store, fmt, f)  # nothing is read until the click
                assert produce().encode("utf-8") == out.read_bytes()
        assert XSS in export_data(store, "csv", Filters())()


# The dashboard benchmark's sweep is tested in tests/test_reports.py.
