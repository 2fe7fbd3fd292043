"""Response-cache savings per model (reports/savings.py, ui/widgets/cache.py, `chatwatch
stats`): hits, the hit rate over attempts, dollars and seconds saved, within the filters.

The expected figures are summed in the test from the records it wrote (Decimal sums of
saved_usd, counts by hand), or for the real model from its reported tokens times the
configured price; a hit whose original was unpriced must read "unpriced", never $0."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from chatwatch.cli.data import cost_text
from chatwatch.models.contract import GenerationSettings, Message
from chatwatch.reports.aggregate import Filters
from chatwatch.reports.savings import cache_savings
from chatwatch.runtime import Runtime
from chatwatch.store.records import Store
from chatwatch.ui.widgets.format import fmt_cost, fmt_int, fmt_pct, fmt_seconds
from tests.fixtures.db import make_record

PAGE = str(Path(__file__).resolve().parents[1] / "src" / "chatwatch" / "ui" / "views" / "dashboard.py")
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PRICE_IN, PRICE_OUT = Decimal("3.0"), Decimal("15.0")  # USD per million tokens


def _seeded(start: datetime) -> list:
    """Misses, hits (priced and unpriced originals), refusals, across three models, from
    `start` on, one a minute."""
    out = []
    for i in range(60):
        model = ("alpha", "beta", "gamma")[i % 3]
        at = start + timedelta(minutes=i)
        if model == "gamma":  # no cache: plain calls, and one refusal in three
            if i % 9 == 2:
                out.append(make_record(model=model, started_at=at, status="error", error_type="rate_limited"))
            else:
                out.append(make_record(model=model, started_at=at))
        elif i % 4 == 0:
            out.append(make_record(model=model, started_at=at, cost_usd=Decimal("0.0021")))  # a miss
        else:
            saved = None if (model == "beta" and i % 5 == 0) else Decimal(1000 + 7 * i).scaleb(-9)
            out.append(
                make_record(
                    model=model,
                    started_at=at,
                    cost_usd=Decimal(0),
                    price_source="cache",
                    cache_hit=True,
                    saved_usd=saved,
                    saved_s=0.5 + i / 100,
                    latency_s=0.002,
                )
            )
    return out


def _expected(records, since=None, until=None) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for r in records:
        if (since and r.started_at < since) or (until and r.started_at >= until):
            continue
        e = out.setdefault(r.model, {"attempts": 0, "hits": 0, "usd": Decimal(0), "unpriced": 0, "s": 0.0})
        if r.error_type not in ("circuit_open", "budget_exceeded", "rate_limited"):
            e["attempts"] += 1
        if r.cache_hit:
            e["hits"] += 1
            if r.saved_usd is None:
                e["unpriced"] += 1
            else:
                e["usd"] += r.saved_usd
            e["s"] += r.saved_s
    return out


def test_savings_per_model_equal_sums_of_the_records_within_the_range(store: Store):
    records = _seeded(T0)
    outside = [
        make_record(model="alpha", started_at=T0 - timedelta(hours=1), cache_hit=True, saved_usd=Decimal("9")),
        make_record(model="alpha", started_at=T0 + timedelta(days=1), cache_hit=True, saved_usd=Decimal("9")),
    ]
    store.write_many(records + outside)
    since, until = T0, T0 + timedelta(hours=2)
    got = {s.model: s for s in cache_savings(store, Filters(since=since, until=until))}
    want = _expected(records + outside, since, until)
    assert set(got) == set(want) == {"alpha", "beta", "gamma"}
    for model, e in want.items():
        s = got[model]
        assert (s.attempts, s.hits, s.unpriced_hits) == (e["attempts"], e["hits"], e["unpriced"]), model
        assert s.saved_usd == e["usd"], model  # exact
        assert s.saved_s == pytest.approx(e["s"], rel=1e-12), model
        assert s.hit_rate == (e["hits"] / e["attempts"] if e["attempts"] else None)
    assert want["beta"]["unpriced"] > 0 and got["gamma"].hits == 0 and got["gamma"].attempts < 20
    # The model filter narrows it like every other query.
    (alpha,) = cache_savings(store, Filters(since=since, until=until, models=("alpha",)))
    assert alpha.model == "alpha" and alpha.saved_usd == want["alpha"]["usd"]
    # Only unpriced hits: the saving is unknown, not $0.
    assert cost_text(Decimal(0), 3, 3) == "unpriced"


def _app(tmp_path: Path, monkeypatch, cache: bool) -> tuple[str, list]:
    config = tmp_path / "chatwatch.toml"
    cache_line = "cache = true" if cache else ""
    config.write_text(f"""
[app]
language = "en"
data_dir = "data"
log_dir = "logs"
[privacy]
capture_content = true
[[models]]
id = "alpha"
kind = "llama_cpp"
{cache_line}
[[models]]
id = "beta"
kind = "llama_cpp"
[[models]]
id = "gamma"
kind = "llama_cpp"
""")
    monkeypatch.setenv("CHATWATCH_CONFIG", str(config))
    return f"sqlite:///{tmp_path / 'data' / 'chatwatch.db'}", []


def _table(at: AppTest, column: str):
    """The one table with this column (None: not shown)."""
    frames = [d.value for d in at.dataframe if column in d.value.columns]
    assert len(frames) <= 1
    return frames[0] if frames else None


def test_the_dashboard_shows_the_savings_of_the_range_per_model(tmp_path, monkeypatch):
    url, _ = _app(tmp_path, monkeypatch, cache=True)
    now = datetime.now(UTC)
    records = _seeded(now - timedelta(minutes=90))
    with Store.open(url) as store:
        store.write_many(records)
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["dash_range"] = "24h"
    at.run()
    assert not at.exception, at.exception
    assert "Response cache savings" in [h.value for h in at.subheader]
    assert any("hits / attempts of the model" in c.value for c in at.caption)
    frame = _table(at, "Dollars saved")
    assert frame is not None
    rows = {r["Model"]: r for r in frame.to_dict("records")}
    want = _expected(records)
    # alpha has the cache on; beta's hits are in range though its cache is off now; gamma neither.
    assert set(rows) == {"alpha", "beta"}
    for model in ("alpha", "beta"):
        e = want[model]
        assert rows[model]["Hits"] == fmt_int(e["hits"])
        assert rows[model]["Attempts"] == fmt_int(e["attempts"])
        assert rows[model]["Hit rate"] == fmt_pct(e["hits"] / e["attempts"])
        assert rows[model]["Dollars saved"] == fmt_cost(e["usd"], e["unpriced"], e["hits"], "en")
        assert rows[model]["Time saved"] == fmt_seconds(e["s"])
    assert "unpriced" in rows["beta"]["Dollars saved"]  # its unpriced hits are said, not $0

    # The same figures in `chatwatch stats`, a line per model with hits.
    import contextlib
    import io

    from chatwatch.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["stats", "--since", "24h"]) == 0
    lines = out.getvalue().splitlines()
    start = lines.index("cache savings")
    table = {line.split()[0]: line for line in lines[start + 2 :] if line.strip()}
    for model in ("alpha", "beta"):
        e = want[model]
        cells = table[model].split(None, 5)
        assert cells[1:4] == [str(e["hits"]), str(e["attempts"]), f"{e['hits'] / e['attempts'] * 100:.1f}%"]
        assert float(cells[4]) == pytest.approx(e["s"], abs=0.005)
        assert cells[5] == cost_text(e["usd"], e["unpriced"], e["hits"])
    assert "gamma" not in table


def test_no_cache_and_no_hits_no_section(tmp_path, monkeypatch):
    url, _ = _app(tmp_path, monkeypatch, cache=False)
    with Store.open(url) as store:
        store.write_many([make_record(model="gamma", started_at=datetime.now(UTC) - timedelta(minutes=5))])
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert "Response cache savings" not in [h.value for h in at.subheader]
    assert _table(at, "Dollars saved") is None


MESSAGES = [[Message("user", q)] for q in ("Name one colour.", "Name one animal.")]
SEEDED = GenerationSettings(temperature=0.0, max_tokens=12, seed=7)


def test_real_hits_of_a_real_model_save_its_reported_tokens_at_the_configured_price(tmp_path, llama_server, store_url):
    from chatwatch.config import parse

    settings = parse(
        {
            "app": {"data_dir": str(tmp_path / "data"), "log_dir": str(tmp_path / "logs")},
            "store": {"url": store_url},
            "privacy": {"capture_content": True},
            "models": [
                {
                    "id": "served",
                    "kind": "openai",
                    "base_url": llama_server,
                    "model": "smollm2",
                    "cache": True,
                    "price": {"input_per_mtok": float(PRICE_IN), "output_per_mtok": float(PRICE_OUT)},
                }
            ],
        }
    )
    originals, hits = [], []
    # The request path itself: the chain looks the request up, calls the model on a miss
    # and keeps its answer, and replays the answer on a repeat.
    with Runtime(settings, role="cli") as rt:
        for i, messages in enumerate(MESSAGES * 3):  # each prompt once, then twice more: four hits
            reply = rt.chat("served", messages, SEEDED, session_id="s", stream=False)
            "".join(reply)
            (originals if i < len(MESSAGES) else hits).append(reply.record)
        (s,) = cache_savings(rt.store, Filters())
    assert not any(o.cache_hit for o in originals) and all(h.cache_hit for h in hits)
    per_call = [
        ((o.input_tokens * PRICE_IN + o.output_tokens * PRICE_OUT) / Decimal(1_000_000)).quantize(Decimal("1e-9"))
        for o in originals
    ]
    assert (s.hits, s.attempts, s.unpriced_hits) == (4, 6, 0)
    assert s.saved_usd == 2 * sum(per_call, Decimal(0))
    # Each hit saved its original's latency minus its own.
    saved = sum(originals[i % len(originals)].latency_s - h.latency_s for i, h in enumerate(hits))
    assert s.saved_s == pytest.approx(saved, rel=1e-9)
