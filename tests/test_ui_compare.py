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
