"""`chatwatch compare` through its own parser (cli/compare.add_parser, as cli/parser.py will
register it): the real SmolLM2 in-process and behind a real llama_cpp.server (priced in the
config), the answers side by side, and `--json` equal to the stored records."""

from __future__ import annotations

import argparse
import json
from decimal import Decimal

import pytest

from chatwatch.cli import compare
from chatwatch.reports.export import json_object
from chatwatch.store.records import Store


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="chatwatch")
    sub = p.add_subparsers(dest="command", required=True)
    compare.add_parser(sub, lambda q: q.add_argument("--config"))
    return p


def run(*argv: str) -> int:
    args = parser().parse_args(["compare", *argv])
    return args.func(args)


@pytest.fixture
def conf(tmp_path, llama_server):
    path = tmp_path / "c.toml"
    path.write_text(
        f"""
[store]
url = "sqlite:///{tmp_path / "data" / "chatwatch.db"}"
[[models]]
id = "smollm2"
kind = "llama_cpp"
[models.defaults]
max_tokens = 12
seed = 3
[[models]]
id = "remote"
kind = "openai"
base_url = "{llama_server}"
provider = "acme"
model = "smol"
price = {{ input_per_mtok = 0.1, output_per_mtok = 0.3 }}
[models.defaults]
max_tokens = 12
seed = 3
"""
    )
    return path


def test_json_answers_are_the_stored_records(conf, tmp_path, capsys):
    assert run("--config", str(conf), "--models", "smollm2,remote", "--json", "Say hello.") == 0
    data = json.loads(capsys.readouterr().out, parse_float=Decimal)
    answers = data["answers"]
    assert [a["model"] for a in answers] == ["smollm2", "remote"]
    store = Store.open(f"sqlite:///{tmp_path / 'data' / 'chatwatch.db'}")
    try:
        for a in answers:
            stored = json.loads(json_object(store.get(a["id"]).to_dict()), parse_float=Decimal)
            assert {k: v for k, v in a.items() if k not in ("text", "attempts")} == stored
            assert [x["id"] for x in a["attempts"]] == [a["id"]]  # answered on the first attempt
            assert a["text"].strip() and a["status"] == "ok"
            assert a["mode"] == "compare" and a["compare_id"] == data["compare_id"]
        assert answers[0]["price_source"] == "local" and answers[1]["price_source"] == "config"
        assert answers[1]["cost_usd"] > 0 and store.count() == 2
    finally:
        store.close()


def test_side_by_side_text_and_bad_model_lists(conf, capsys):
    assert run("--config", str(conf), "--models", "remote,smollm2", "--max-tokens", "6", "Hi") == 0
    out = capsys.readouterr().out
    head = out.splitlines()[0]
    assert head.startswith("remote") and "| smollm2" in head
    assert "latency:" in out and "TTFT:" in out and "cost: unpriced" not in out.split("|")[0]
    assert run("--config", str(conf), "--models", "smollm2", "Hi") == 2
    assert "2 to 4 model ids" in capsys.readouterr().err
    assert run("--config", str(conf), "--models", "smollm2,nope", "Hi") == 2
    assert "unknown model nope" in capsys.readouterr().err
