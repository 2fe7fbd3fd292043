"""The compare page in AppTest with two real models: SmolLM2 in-process and SmolLM2 behind a
real llama_cpp.server under another id. Both answers are request records of one round."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from chatwatch.reports.queries import Filters, list_requests
from chatwatch.store.records import Store

VIEWS = Path(__file__).resolve().parents[1] / "src" / "chatwatch" / "ui" / "views"


@pytest.fixture
def config(tmp_path, llama_server, monkeypatch):
    path = tmp_path / "chatwatch.toml"
    path.write_text(
        f"""
[app]
language = "en"
[store]
url = "sqlite:///{tmp_path / "data" / "chatwatch.db"}"
[[models]]
id = "smollm2"
kind = "llama_cpp"
[models.defaults]
max_tokens = 16
seed = 7
[[models]]
id = "served"
kind = "openai"
base_url = "{llama_server}"
model = "smol"
[models.defaults]
max_tokens = 16
seed = 7
"""
    )
    monkeypatch.setenv("CHATWATCH_CONFIG", str(path))
    return path


def test_two_models_answer_side_by_side_as_one_compare_round(config):
    at = AppTest.from_file(str(VIEWS / "compare.py"), default_timeout=180).run()
    assert not at.exception
    assert at.multiselect(key="cmp_models").value == ["smollm2", "served"]
    at.text_area(key="cmp_prompt").set_value("Name a colour.")
    at.button(key="cmp_send").click().run()
    assert not at.exception, at.exception

    store = Store.open(f"sqlite:///{config.parent / 'data' / 'chatwatch.db'}")
    try:
        records = list_requests(store, Filters()).records
    finally:
        store.close()
    assert sorted(r.model for r in records) == ["served", "smollm2"]
    assert {r.mode for r in records} == {"compare"} and {r.status for r in records} == {"ok"}
    assert len({r.compare_id for r in records}) == 1 and records[0].compare_id
    by_model = {r.model: r for r in records}

    # The page shows the round: both answers with their measured figures and record links.
    md = [m.value for m in at.markdown]
    for model in ("smollm2", "served"):
        rec = by_model[model]
        assert any(f"./requests?request={rec.id}" in v for v in md)
        figures = next(v for v in md if "**Latency:**" in v and "**TTFT:**" in v and v in _figures_of(md, rec))
        assert "tok/s" in figures
    assert [h.value for h in at.subheader] == ["smollm2", "served"]
    assert records[0].compare_id in at.caption[-1].value
    assert "unpriced" in " ".join(md)  # the served model has no price in this config: not $0


def _figures_of(md: list[str], record) -> list[str]:
    """The figures block printed for `record`: the one just before its link."""
    link = next(i for i, v in enumerate(md) if record.id in v)
    return [md[link - 1]]


def _page_text(at: AppTest) -> str:
    """Every text the page rendered (values, labels, placeholders, names), walking its main
    area and sidebar element by element: a model's name must not be anywhere in it."""
    texts: list[str] = []

    def walk(node) -> None:
        for attr in ("value", "label", "body", "placeholder", "name", "help"):
            try:
                v = getattr(node, attr)
            except Exception:
                continue
            if isinstance(v, str | int | float) or isinstance(v, list | tuple):
                texts.append(str(v))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at.main)
    walk(at.sidebar)
    return "\n".join(texts)


def test_arena_round_hides_the_names_until_the_vote(config):
    at = AppTest.from_file(str(VIEWS / "arena.py"), default_timeout=180).run()
    assert not at.exception
    at.chat_input(key="arena_prompt").set_value("Name a fruit.").run()
    assert not at.exception, at.exception
    assert [h.value for h in at.subheader] == ["Answer A", "Answer B"]
    before = _page_text(at)
    assert "Answer A" in before and "Name a fruit." in before  # the repr does hold the page's text
    assert "smollm2" not in before and "served" not in before

    at.button(key="arena_vote_b").click().run()
    assert not at.exception, at.exception
    store = Store.open(f"sqlite:///{config.parent / 'data' / 'chatwatch.db'}")
    try:
        from chatwatch.store.votes import list_votes

        votes = list_votes(store)
        records = {r.id: r for r in list_requests(store, Filters()).records}
    finally:
        store.close()
    assert len(votes) == 1 and votes[0].verdict == "b"
    v = votes[0]
    assert {records[v.record_a].model, records[v.record_b].model} == {"smollm2", "served"}
    assert records[v.record_a].model == v.model_a and records[v.record_b].model == v.model_b
    assert {r.mode for r in records.values()} == {"arena"}
    assert records[v.record_a].compare_id == records[v.record_b].compare_id
    heads = [h.value for h in at.subheader]
    assert heads == [f"A was {v.model_a}", f"B was {v.model_b}"]
    assert any("Vote stored" in s.value for s in at.success)


def test_leaderboard_page_table_and_too_few_votes(config):
    from datetime import UTC, datetime

    from chatwatch.store.votes import cast_vote
    from tests.fixtures.db import make_record

    store = Store.open(f"sqlite:///{config.parent / 'data' / 'chatwatch.db'}")
    try:
        now = datetime.now(UTC)
        for k in range(12):
            a = make_record(model="smollm2", started_at=now, mode="arena")
            b = make_record(model="served", started_at=now, mode="arena", cost_usd=None, price_source="unpriced")
            store.write_many([a, b])
            cast_vote(
                store,
                record_a=a.id,
                record_b=b.id,
                model_a="smollm2",
                model_b="served",
                verdict="a" if k % 3 else "tie",
                session_id="s",
            )
        c = make_record(model="third", started_at=now, mode="arena")
        store.write(c)
        cast_vote(
            store, record_a=c.id, record_b=a.id + "x", model_a="third", model_b="smollm2", verdict="b", session_id="s"
        )
    finally:
        store.close()
    at = AppTest.from_file(str(VIEWS / "leaderboard.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table["Model"]) == ["smollm2", "served", "third"]
    assert list(table["Rank"]) == ["1", "2", "too few votes"] and table["95 % CI"].iloc[2] == "too few votes"
    assert list(table["Votes"]) == [13, 12, 1]
    assert table["Cost per 1,000 requests"].iloc[1] == "unpriced"
    assert len(at.get("plotly_chart")) == 2


def test_leaderboard_export_is_the_table_with_exact_costs(store):
    """The CSV and JSON downloads hold every row of the leaderboard; a cost is an exact
    JSON number, an unpriced model's cost is null (never 0)."""
    import csv
    import io
    import json
    from datetime import timedelta
    from decimal import Decimal

    from chatwatch.reports.arena import leaderboard
    from chatwatch.store.votes import cast_vote
    from chatwatch.ui.widgets import arena
    from tests.fixtures.db import BASE_TIME, make_record

    a = make_record(model="priced", cost_usd=Decimal("0.000001234"))
    b = make_record(model="free", cost_usd=None, price_source="unpriced")
    store.write_many([a, b])
    cast_vote(store, record_a=a.id, record_b=b.id, model_a="priced", model_b="free", verdict="tie", session_id="s")
    rows = leaderboard(store, BASE_TIME - timedelta(days=1), None, min_votes=1, bootstrap_rounds=10)
    data = json.loads(arena.export_json(rows), parse_float=Decimal)
    assert [d["model"] for d in data] == [r.model for r in rows]
    by_model = {d["model"]: d for d in data}
    assert by_model["priced"]["cost_per_1k_requests_usd"] == Decimal("0.001234")
    assert by_model["free"]["cost_per_1k_requests_usd"] is None and by_model["free"]["unpriced_requests"] == 1
    assert by_model["priced"]["ties"] == by_model["free"]["ties"] == 1
    table = list(csv.DictReader(io.StringIO(arena.export_csv(rows))))
    assert [r["model"] for r in table] == [r.model for r in rows]
    assert {r["model"]: r["cost_per_1k_requests_usd"] for r in table} == {"priced": "0.001234000", "free": ""}
