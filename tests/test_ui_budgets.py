"""Budgets on the dashboard (ui/widgets/budgets.py), on the forecast chart
(ui/widgets/forecast.py) and in `chatwatch stats`.

A real model (SmolLM2 behind the real llama_cpp.server) answers priced and unpriced
requests through `Runtime.chat`, whose chain reserves on every budget before the call and
settles the record's cost after it. The spend the page must show is
computed in the test from the provider's reported tokens in the raw rows times the
configured price, never from the budget tables; resets are the next UTC midnight and month
start computed here."""

from __future__ import annotations

import contextlib
import io
import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from chatwatch.models.contract import GenerationSettings, Message
from chatwatch.runtime import Runtime
from chatwatch.store.records import Store
from chatwatch.ui.widgets.format import fmt_pct, fmt_time, fmt_usd
from tests.fixtures.db import make_record

PAGE = str(Path(__file__).resolve().parents[1] / "src" / "chatwatch" / "ui" / "views" / "dashboard.py")
PRICE_IN, PRICE_OUT = Decimal("1000"), Decimal("2000")  # USD per million tokens: cents a call
GEN = GenerationSettings(temperature=0.0, max_tokens=8, seed=1)
PROMPTS = ["Name one colour.", "Name one animal.", "Say hi."]


def _toml(llama_server: str, budgets: list[dict]) -> str:
    lines = [
        '[app]\nlanguage = "en"\ndata_dir = "data"\nlog_dir = "logs"\n',
        f'[[models]]\nid = "served"\nkind = "openai"\nbase_url = "{llama_server}"\nmodel = "smollm2"\n'
        f"price = {{ input_per_mtok = {PRICE_IN}, output_per_mtok = {PRICE_OUT} }}\n",
        # The same server, no price and a model name no price list knows: unpriced.
        f'[[models]]\nid = "mystery"\nkind = "openai"\nbase_url = "{llama_server}"\nmodel = "smollm2-x"\n',
    ]
    for b in budgets:
        body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in b.items())
        lines.append(f"[[budgets]]\n{body}\n")
    return "\n".join(lines)


def _next_midnight(now: datetime) -> datetime:
    return datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)


def _next_month(now: datetime) -> datetime:
    return datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)


@pytest.fixture
def spent(tmp_path, monkeypatch, llama_server):
    """Three priced calls and one unpriced, booked on generous budgets; returns the raw
    rows' independent figures and a writer of the dashboard's config."""
    config = tmp_path / "chatwatch.toml"
    drive = [
        {"name": "all daily", "period": "day", "limit_usd": 1000.0, "action": "warn"},
        {"name": "served month", "period": "month", "model": "served", "limit_usd": 1000.0, "action": "warn"},
        {"name": "tokens", "period": "day", "limit_tokens": 10_000_000, "action": "warn"},
        {"name": "mystery day", "period": "day", "model": "mystery", "limit_usd": 1.0},
    ]
    config.write_text(_toml(llama_server, drive))
    monkeypatch.setenv("CHATWATCH_CONFIG", str(config))
    monkeypatch.chdir(tmp_path)
    from chatwatch.config import load

    settings = load(config)
    # The request path itself: the chain reserves on every budget before the call and
    # settles the record's cost after it.
    with Runtime(settings, role="cli") as rt:
        for model, prompt in [("served", p) for p in PROMPTS] + [("mystery", PROMPTS[0])]:
            reply = rt.chat(model, [Message("user", prompt)], GEN, session_id="s", stream=False)
            "".join(reply)
            assert reply.answered_by == model and len(reply.records) == 1
    db = tmp_path / "data" / "chatwatch.db"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT model, input_tokens, output_tokens, token_source FROM requests").fetchall()
    priced = [r for r in rows if r[0] == "served"]
    assert len(priced) == 3 and all(r[3] == "reported" for r in priced)
    usd = sum(
        (((i * PRICE_IN + o * PRICE_OUT) / Decimal(1_000_000)).quantize(Decimal("1e-9")) for _, i, o, _ in priced),
        Decimal(0),
    )
    tokens = sum(i + o for _, i, o, _ in rows)  # the unpriced call's tokens count too
    assert usd > Decimal("0.01")

    def write(budgets: list[dict]) -> None:
        config.write_text(_toml(llama_server, budgets))

    return {"usd": usd, "tokens": tokens, "write": write, "now": datetime.now(UTC)}


def _table(at: AppTest, column: str):
    frames = [d.value for d in at.dataframe if column in d.value.columns]
    assert len(frames) <= 1
    return frames[0] if frames else None


def _stats() -> list[str]:
    from chatwatch.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["stats"]) == 0
    return out.getvalue().splitlines()


def test_the_dashboard_and_stats_show_each_budgets_exact_spend_limit_use_and_reset(spent):
    usd, tokens, now = spent["usd"], spent["tokens"], spent["now"]
    # Limits chosen against the spend: one quiet, one past its notice, one past its limit.
    quiet, notice, over = usd * 10, usd / Decimal("0.75"), usd / 2
    spent["write"](
        [
            {"name": "all daily", "period": "day", "limit_usd": float(quiet), "notify_at": [0.8]},
            {
                "name": "served month",
                "period": "month",
                "model": "served",
                "limit_usd": float(notice),
                "notify_at": [0.5, 0.9],
                "action": "fallback",
                "fallback": "mystery",
            },
            {"name": "tokens", "period": "day", "limit_tokens": 10_000_000, "action": "warn"},
            {"name": "mystery day", "period": "day", "model": "mystery", "limit_usd": float(over) / 1e6},
        ]
    )
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    assert "Budgets (UTC)" in [h.value for h in at.subheader]
    table = _table(at, "Resets (UTC)")
    rows = {r["Budget"]: r for r in table.to_dict("records")}
    assert list(rows) == ["all daily", "served month", "tokens", "mystery day"]

    def limit(x: Decimal) -> str:
        return fmt_usd(Decimal(str(float(x))))

    all_daily, month, tok, mystery = (rows[n] for n in rows)
    assert all_daily["Spent"] == month["Spent"] == fmt_usd(usd)  # exact, from the provider's tokens
    assert all_daily["Model"] == "all models" and month["Model"] == "served"
    assert all_daily["Period"] == "day" and month["Period"] == "month"
    assert all_daily["Limit"] == limit(quiet) and month["Limit"] == limit(notice)
    assert all_daily["Used"] == fmt_pct(float(usd) / float(quiet))
    assert month["Used"] == fmt_pct(float(usd) / float(notice))
    assert month["At the limit"] == "requests go to mystery" and all_daily["At the limit"] == "requests are refused"
    assert all_daily["Resets (UTC)"] == fmt_time(_next_midnight(now))
    assert month["Resets (UTC)"] == fmt_time(_next_month(now))
    # Tokens: every call's, the unpriced one's too; the limit beside them.
    assert tok["Tokens"] == f"{tokens:,} / 10,000,000" and tok["Used"] == fmt_pct(tokens / 10_000_000)
    assert tok["Limit"] == "—" and tok["At the limit"] == "only a notice"
    # The unpriced model booked no dollars (unknown, not $0) and the page says how many there were.
    assert mystery["Spent"] == fmt_usd(Decimal(0)) and mystery["Unpriced"] == "1"
    assert all_daily["Unpriced"] == "1" and month["Unpriced"] == "0"
    # Bars: one per budget, in order; the warning colour once past a notify_at threshold.
    bars = [p.proto.text for p in at.get("progress")]
    assert len(bars) == 4
    assert bars[1].startswith(f"served month · month · served: {fmt_usd(usd)} of {limit(notice)}")
    assert bars[2] == f"tokens · day · all models: {tokens:,} tokens of 10,000,000 tokens ({tok['Used']})"
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("Budget 'served month' is at") and "notice at 50.00 %" in w for w in warnings)
    assert not any("all daily" in w for w in warnings)
    assert not at.error  # nothing past its limit: the unpriced model spent no dollars

    # `chatwatch stats` shows the same figures.
    lines = _stats()
    section = lines[lines.index("budgets (this period, UTC)") + 1 :]
    by_name = {line[:22].strip(): line for line in section[:4]}
    assert f"spent ${usd.normalize():f} of ${Decimal(str(float(notice))).normalize():f}" in by_name["served month"]
    assert f"({float(usd) / float(notice) * 100:.1f}%)" in by_name["served month"]
    assert f"tokens {tokens:,} / 10,000,000" in by_name["tokens"] and "no dollar limit" in by_name["tokens"]
    assert "1 unpriced" in by_name["mystery day"] and "spent $0 of" in by_name["mystery day"]
    assert f"resets {_next_month(now):%Y-%m-%d %H:%M} UTC" in by_name["served month"]
    assert "sends requests to mystery at the limit" in by_name["served month"]


def test_a_budget_past_its_limit_is_an_error_on_the_page(spent):
    usd = spent["usd"]
    spent["write"]([{"name": "served month", "period": "month", "model": "served", "limit_usd": float(usd / 2)}])
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    (error,) = [e.value for e in at.error]
    assert error.startswith("Budget 'served month' has reached its limit: requests are refused until")
    assert _table(at, "Resets (UTC)").iloc[0]["Used"] == fmt_pct(float(usd) / float(usd / 2))


def test_no_budgets_no_section(tmp_path, monkeypatch):
    config = tmp_path / "chatwatch.toml"
    config.write_text('[app]\nlanguage = "en"\ndata_dir = "data"\nlog_dir = "logs"\n')
    monkeypatch.setenv("CHATWATCH_CONFIG", str(config))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert "Budgets (UTC)" not in [h.value for h in at.subheader] and not at.get("progress")


# --- the forecast chart -------------------------------------------------------------------


def _figure(at: AppTest, key: str) -> dict | None:
    found = [c for c in at.get("plotly_chart") if c.key == key]
    return json.loads(found[0].proto.spec) if found else None


def _lines(fig: dict) -> dict[str, float]:
    """Horizontal lines across the chart (y0 == y1 over the whole x domain) by their label."""
    shapes = [s for s in fig["layout"].get("shapes", []) if s.get("y0") == s.get("y1") and s.get("xref") == "x domain"]
    labels = [a["text"] for a in fig["layout"].get("annotations", [])]
    assert len(shapes) == len(labels)
    return {label: shape["y0"] for label, shape in zip(labels, shapes)}


def test_the_forecast_charts_draw_each_applicable_budget_at_its_limit(tmp_path, monkeypatch):
    config = tmp_path / "chatwatch.toml"
    config.write_text(
        '[app]\nlanguage = "en"\ndata_dir = "data"\nlog_dir = "logs"\n'
        '[[models]]\nid = "alpha"\nkind = "llama_cpp"\n[[models]]\nid = "beta"\nkind = "llama_cpp"\n'
        '[[budgets]]\nname = "team month"\nperiod = "month"\nlimit_usd = 50.0\n'
        '[[budgets]]\nname = "alpha month"\nperiod = "month"\nmodel = "alpha"\nlimit_usd = 20.0\n'
        '[[budgets]]\nname = "alpha day"\nperiod = "day"\nmodel = "alpha"\nlimit_usd = 2.5\n'
        '[[budgets]]\nname = "tokens only"\nperiod = "month"\nlimit_tokens = 1000\n'
    )
    monkeypatch.setenv("CHATWATCH_CONFIG", str(config))
    now = datetime.now(UTC)
    records = [
        make_record(model=m, started_at=now - timedelta(days=d, minutes=5), cost_usd=Decimal("0.75"))
        for d in range(12)
        for m in ("alpha", "beta")
    ]
    with Store.open(f"sqlite:///{tmp_path / 'data' / 'chatwatch.db'}") as store:
        store.write_many(records)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception

    total = _figure(at, "chart_forecast")
    assert _lines(total) == {"team month ($50.00)": 50.0}  # the all-models month budget only
    alpha = _figure(at, "chart_forecast_alpha")
    assert _lines(alpha) == {"alpha month ($20.00)": 20.0}
    assert alpha["layout"]["title"]["text"].startswith("alpha:")
    daily = _figure(at, "chart_forecast_alpha_daily")
    assert _lines(daily) == {"alpha day ($2.50)": 2.5}
    # Each day's bar is that day's spend: today's so far, earlier days whole.
    bars = next(t for t in daily["data"] if t["type"] == "bar")
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    by_day: dict[str, Decimal] = {}
    for r in records:
        if r.model == "alpha" and r.started_at >= month_start:
            key = r.started_at.strftime("%Y-%m-%d")
            by_day[key] = by_day.get(key, Decimal(0)) + r.cost_usd
    shown = {re.sub(r"T.*", "", str(x)): y for x, y in zip(bars["x"], bars["y"]) if y}
    assert shown == {k: float(v) for k, v in by_day.items()}
    # beta has no budget of its own (no chart); no all-models day budget (no total daily chart).
    assert _figure(at, "chart_forecast_beta") is None and _figure(at, "chart_forecast_daily") is None


def test_budgets_cache_savings_and_budget_lines_in_spanish(tmp_path, monkeypatch):
    """Every string of the new sections in Spanish (tests/test_ui_spanish.py's check): the
    bars, the notice and at-the-limit boxes, both tables, the captions, the budget lines."""
    from chatwatch.resilience.budget import period_bounds
    from chatwatch.store import budgets as budget_db
    from tests.test_ui_spanish import assert_spanish

    config = tmp_path / "chatwatch.toml"
    config.write_text(
        '[app]\nlanguage = "es"\ndata_dir = "data"\nlog_dir = "logs"\n[privacy]\ncapture_content = true\n'
        '[[models]]\nid = "alfa"\nkind = "llama_cpp"\ncache = true\n[[models]]\nid = "beta"\nkind = "llama_cpp"\n'
        '[[budgets]]\nname = "equipo mes"\nperiod = "month"\nlimit_usd = 50.0\naction = "warn"\n'
        '[[budgets]]\nname = "alfa día"\nperiod = "day"\nmodel = "alfa"\nlimit_usd = 0.5\n'
        '[[budgets]]\nname = "beta mes"\nperiod = "month"\nmodel = "beta"\nlimit_usd = 100.0\naction = "fallback"\n'
        'fallback = "alfa"\nnotify_at = [0.01]\n'
        '[[budgets]]\nname = "fichas"\nperiod = "day"\nlimit_tokens = 100\n'
    )
    monkeypatch.setenv("CHATWATCH_CONFIG", str(config))
    now = datetime.now(UTC)
    records = [
        make_record(model=m, started_at=now - timedelta(days=d, minutes=5), cost_usd=Decimal("0.75"))
        for d in range(12)
        for m in ("alfa", "beta")
    ]
    records += [
        make_record(
            model="alfa",
            started_at=now - timedelta(minutes=2),
            cost_usd=Decimal(0),
            price_source="cache",
            cache_hit=True,
            saved_usd=saved,
            saved_s=1.5,
        )
        for saved in (Decimal("0.002"), None)
    ]
    with Store.open(f"sqlite:///{tmp_path / 'data' / 'chatwatch.db'}") as store:
        store.write_many(records)
        for name, period, usd, tokens in [
            ("equipo mes", "month", 9, 150),
            ("alfa día", "day", 1_000_000_000, 50),  # $1 of 0.5: past its limit
            ("beta mes", "month", 1_500_000_000, 50),  # past its 1 % notice
            ("fichas", "day", 0, 90),
        ]:
            start = period_bounds(period, now)[0]
            claim = budget_db.Claim(name, int(start.timestamp() * 1_000_000), None, None)
            budget_db.settle(store.engine, [claim], reservation_id=None, nanousd=usd, tokens=tokens)
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception, at.exception
    texts = assert_spanish(at, allowed={"equipo mes", "alfa día", "beta mes", "fichas"})
    assert "Presupuestos (UTC)" in texts and "Ahorro de la caché de respuestas" in texts
    assert len(at.error) == 1 and len(at.warning) == 2  # alfa día over; beta mes and fichas past a notice
    assert {"chart_forecast", "chart_forecast_alfa_daily", "chart_forecast_beta"} <= {
        c.key for c in at.get("plotly_chart")
    }
