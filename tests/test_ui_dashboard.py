"""The dashboard page driven by Streamlit's AppTest over a seeded store: every KPI is checked
against an independent computation from the raw rows (sqlite3 + numpy, not chatwatch's
queries), in both percentile regimes (exact for a short range, histogram rollups for a
long one), and every text from an error shows as text."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from chatwatch.store.records import Store
from chatwatch.ui.widgets.format import (
    fmt_int,
    fmt_pct,
    fmt_rate,
    fmt_satisfaction,
    fmt_seconds,
    fmt_usd,
)
from tests.fixtures.db import make_record

PAGE = str(Path(__file__).resolve().parents[1] / "src" / "chatwatch" / "ui" / "views" / "dashboard.py")
XSS = "<img src=x onerror=alert(1)>"
MINE = "session-mine"
EXACT_LIMIT = 100  # the config's minimum: the 7-day view (340 requests) reads rollups


def _records(now: datetime) -> list:
    rng = np.random.default_rng(3)
    out = []
    # 300 over the last 6 days and 40 in the last 50 minutes (the 1-hour view).
    times = [now - timedelta(hours=2) - timedelta(minutes=float(m)) for m in rng.uniform(0, 6 * 24 * 60 - 180, 300)]
    times += [now - timedelta(minutes=50) + timedelta(seconds=70 * i) for i in range(40)]
    for i, started in enumerate(times):
        latency = float(rng.lognormal(0.0, 0.6))
        kw = dict(
            started_at=started,
            model=("alpha", "beta", "gamma")[i % 3],
            latency_s=latency,
            ttft_s=latency * float(rng.uniform(0.05, 0.4)),
            input_tokens=int(rng.integers(5, 500)),
            output_tokens=int(rng.integers(1, 300)),
            session_id=MINE if i % 9 == 0 else f"s{i % 4}",
            cost_usd=None if i % 6 == 0 else Decimal(int(rng.integers(1, 90_000))).scaleb(-9),
        )
        if i % 17 == 0:
            kw.update(
                status="error",
                error_type="rate_limit",
                error_message=f"limit hit #{i}",
                ttft_s=None,
                output_tokens=None,
            )
        out.append(make_record(**kw))
    out[-3] = make_record(
        **{
            **out[-3].__dict__,
            "status": "error",
            "error_type": "provider_error",
            "error_message": XSS,
            "ttft_s": None,
            "output_tokens": None,
        }
    )
    return out


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    """A config whose data_dir holds a seeded store; yields (config path, store URL, now)."""
    config = tmp_path / "chatwatch.toml"
    config.write_text(f"""
[app]
language = "en"
data_dir = "data"
log_dir = "logs"
[dashboard]
refresh_seconds = 5
exact_percentiles_max_rows = {EXACT_LIMIT}
""")
    monkeypatch.setenv("CHATWATCH_CONFIG", str(config))
    url = f"sqlite:///{tmp_path / 'data' / 'chatwatch.db'}"
    now = datetime.now(UTC)
    with Store.open(url) as store:
        records = _records(now)
        store.write_many(records)
        for r, score in zip(records[1:40:5], (1, 1, 0, 1, 1, 0, 1, 1)):
            store.add_feedback(r.id, score, r.model, r.session_id)
    return config, url, now  # the page's runtime (and its store) is closed by `ui_runtimes`


def _raw(url: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return (pd.read_sql("SELECT * FROM requests", conn), pd.read_sql("SELECT * FROM feedback", conn))


def _expected(rows: pd.DataFrame, thumbs: pd.DataFrame) -> dict[str, object]:
    """The KPIs from raw rows, independently: numpy's default percentiles, exact Decimal cost."""
    lat = rows["latency_s"].dropna().to_numpy(float)
    ttft = rows["ttft_s"].dropna().to_numpy(float)
    decoding = rows[(rows["latency_s"] > rows["ttft_s"]) & rows["output_tokens"].notna()]
    decode_s = (decoding["latency_s"] - decoding["ttft_s"]).sum()
    priced = rows["cost_nanousd"].dropna()
    cost = sum((Decimal(int(c)) for c in priced), Decimal(0)).scaleb(-9)
    unpriced = int(rows["cost_nanousd"].isna().sum())
    return {
        "Requests": fmt_int(len(rows)),
        "Error rate": fmt_pct((rows["status"] == "error").sum() / len(rows)),
        "Latency mean": fmt_seconds(lat.mean()),
        "Latency p50": np.percentile(lat, 50),
        "Latency p95": np.percentile(lat, 95),
        "Latency p99": np.percentile(lat, 99),
        "TTFT p50": np.percentile(ttft, 50),
        "TTFT p95": np.percentile(ttft, 95),
        "Output tokens/s": fmt_rate(decoding["output_tokens"].sum() / decode_s),
        "Input tokens": fmt_int(int(rows["input_tokens"].sum())),
        "Output tokens": fmt_int(int(rows["output_tokens"].fillna(0).sum())),
        # Some requests are priced: the value is their exact sum, the unpriced ones a note.
        "Total cost": fmt_usd(cost),
        "_exact_cost": cost,
        "_unpriced": unpriced,
        "Satisfaction": fmt_satisfaction(int(thumbs["score"].sum()), len(thumbs), "en"),
    }


def _seconds(text: str) -> float:
    value, unit = text.split()
    return float(value.replace(",", "")) / (1000 if unit == "ms" else 1)


def _check_kpis(at: AppTest, rows: pd.DataFrame, thumbs: pd.DataFrame, *, exact: bool) -> None:
    metrics = {m.label: m for m in at.metric}
    want = _expected(rows, thumbs)
    for label in ("Latency p50", "Latency p95", "Latency p99", "TTFT p50", "TTFT p95"):
        shown = metrics[label].value
        if exact:
            assert shown == fmt_seconds(want[label]), label
        else:  # within the histogram's 5 %, plus the 3-digit display rounding
            assert _seconds(shown) == pytest.approx(want[label], rel=0.055), label
    for label in (
        "Requests",
        "Error rate",
        "Latency mean",
        "Output tokens/s",
        "Input tokens",
        "Output tokens",
        "Total cost",
        "Satisfaction",
    ):
        assert metrics[label].value == want[label], label
    unpriced = want["_unpriced"]
    assert unpriced > 0 and metrics["Total cost"].delta == f"+{unpriced} unpriced"
    assert f"${want['_exact_cost'].normalize():f} " in metrics["Total cost"].help
    assert re.fullmatch(r"[\d,.]+ (MB|GB)", metrics["Process memory"].value)
    assert re.fullmatch(r"[\d,.]+ (MB|GB)", metrics["Available memory"].value)


def _run(**state) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, at.exception
    return at


def _captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption)


def test_default_view_kpis_match_raw_rows_within_histogram_error(app_env):
    _, url, _now = app_env
    at = _run()
    rows, thumbs = _raw(url)
    assert len(rows) == 340
    assert "histogram" in _captions(at) and "Last 7 days" in _captions(at)
    _check_kpis(at, rows, thumbs, exact=False)
    assert len([c for c in at.get("plotly_chart") if c.key != "chart_forecast"]) == 6  # the forecast has its own test
    assert [b.label for b in at.get("download_button")] == ["Download JSON", "Download CSV"]


def test_short_range_percentiles_are_exact(app_env):
    _, url, now = app_env
    at = _run()
    at.selectbox(key="dash_range").set_value("1h").run()
    assert not at.exception
    rows, thumbs = _raw(url)
    recent = rows[rows["started_us"] >= int((now - timedelta(minutes=55)).timestamp() * 1e6)]
    assert len(recent) == 40
    assert "Exact percentiles" in _captions(at)
    _check_kpis(at, recent, thumbs, exact=True)


def test_per_model_table_and_recent_errors_show_text_as_text(app_env):
    _, url, _now = app_env
    at = _run()
    rows, thumbs = _raw(url)
    table, errors = (d.value for d in at.dataframe[:2])  # the forecast's own table comes after the board
    assert table["Model"].tolist() == ["alpha", "beta", "gamma"]
    by_model = rows.groupby("model")
    assert table["Requests"].tolist() == by_model.size().tolist()
    assert table["Error rate"].tolist() == pytest.approx(
        (by_model["status"].apply(lambda s: (s == "error").mean()) * 100).tolist()
    )
    assert table["Unpriced"].tolist() == by_model["cost_nanousd"].apply(lambda c: c.isna().sum()).tolist()
    cost_1k = by_model["cost_nanousd"].apply(lambda c: c.sum() / 1e9 / c.notna().sum() * 1000)
    assert table["Cost / 1,000 requests ($)"].tolist() == pytest.approx(cost_1k.tolist())
    sat = thumbs.groupby("model")["score"].mean() * 100
    assert table.set_index("Model")["Satisfaction"].dropna().to_dict() == pytest.approx(sat.to_dict())
    errs = rows[rows["status"] == "error"].sort_values("started_us", ascending=False)
    assert errors["Request"].tolist() == errs["id"].tolist()[:20]
    assert XSS in errors["Message"].tolist()
    # Never as markdown or HTML: only inside the dataframe's cells.
    rendered = [
        e.value for kind in ("markdown", "caption", "html", "text", "info", "error", "warning") for e in at.get(kind)
    ]
    assert not any("<img" in str(v) for v in rendered)


def test_this_session_view(app_env):
    _, url, _now = app_env
    at = _run(session_id=MINE)
    at.radio(key="dash_scope").set_value("mine").run()
    assert not at.exception
    rows, thumbs = _raw(url)
    mine = rows[rows["session_id"] == MINE]
    assert "Exact percentiles" in _captions(at)  # a session filter reads raw rows
    _check_kpis(at, mine, thumbs[thumbs["session_id"] == MINE], exact=True)


def test_model_and_status_filters(app_env):
    _, url, _now = app_env
    at = _run()
    at.multiselect(key="dash_statuses").set_value(["error"])
    at.multiselect(key="dash_models").set_value(["beta", "gamma"]).run()
    assert not at.exception
    rows, _ = _raw(url)
    errors = rows[(rows["status"] == "error") & rows["model"].isin(["beta", "gamma"])]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Requests"] == fmt_int(len(errors)) and metrics["Error rate"] == "100.00 %"
    assert set(at.dataframe[1].value["Model"]) == {"beta", "gamma"}
    at.multiselect(key="dash_statuses").set_value(["ok"]).run()
    assert {m.label: m.value for m in at.metric}["Error rate"] == "0.00 %"
    assert "No errors in this view." in _captions(at)


def test_custom_range_pause_and_empty_view(app_env):
    _, url, now = app_env
    at = _run()
    at.toggle(key="dash_live").set_value(False)
    at.selectbox(key="dash_range").set_value("custom").run()
    start = (now - timedelta(days=3)).replace(tzinfo=None, microsecond=0)
    end = (now - timedelta(days=1)).replace(tzinfo=None, microsecond=0)
    at.datetime_input(key="dash_from").set_value(start)
    at.datetime_input(key="dash_to").set_value(end).run()
    assert not at.exception
    rows, _ = _raw(url)
    lo, hi = (int(d.replace(tzinfo=UTC).timestamp() * 1e6) for d in (start, end))
    assert {m.label: m.value for m in at.metric}["Requests"] == fmt_int(
        int(((rows["started_us"] >= lo) & (rows["started_us"] < hi)).sum())
    )
    assert "Paused" in _captions(at)
    at.datetime_input(key="dash_from").set_value(datetime(2020, 1, 1))
    at.datetime_input(key="dash_to").set_value(datetime(2020, 1, 2)).run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Requests"] == "0" and metrics["Total cost"] == "—" and metrics["Latency p95"] == "—"
    assert "No requests in this view." in [i.value for i in at.info]
    assert not [c for c in at.get("plotly_chart") if c.key != "chart_forecast"]
