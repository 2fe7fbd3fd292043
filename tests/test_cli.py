"""`chatwatch` as a user runs it: real subprocesses, the real local model."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from decimal import Decimal

import pytest

from chatwatch.store.records import Store
from tests.fixtures.db import make_record, sqlite_url_in

RECORD_KEYS = {
    "id",
    "started_at",
    "instance",
    "session_id",
    "conversation_id",
    "model",
    "provider",
    "provider_model",
    "response_model",
    "stream",
    "status",
    "error_type",
    "error_message",
    "queue_s",
    "latency_s",
    "ttft_s",
    "output_tokens_per_s",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "reasoning_tokens",
    "token_source",
    "prompt_chars",
    "response_chars",
    "cost_usd",
    "price_source",
    "rss_before_bytes",
    "rss_after_bytes",
    "system_available_bytes",
    "temperature",
    "top_p",
    "max_tokens",
    "finish_reason",
    "app_version",
    "text",
}


# What `chatwatch --version` and `chatwatch ask` must start without (README, Command line).
HEAVY = ("pandas", "plotly", "streamlit", "chatwatch.bench")


def chatwatch(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chatwatch", *args], capture_output=True, text=True, timeout=300, **kw)


# Runs `chatwatch` as `python -m chatwatch` does, then writes every module the process
# imported to $MODULES_OUT at exit. (Not `-X importtime`: it does not list modules loaded
# through importlib.import_module, which is how benchmarks are loaded.)
PROBE = """
import atexit, json, os, runpy, sys
atexit.register(lambda: open(os.environ["MODULES_OUT"], "w").write(json.dumps(sorted(sys.modules))))
sys.argv[0] = "chatwatch"
runpy.run_module("chatwatch", run_name="__main__", alter_sys=True)
"""


def chatwatch_modules(tmp_path, *args: str, **kw) -> tuple[subprocess.CompletedProcess, set[str]]:
    """`chatwatch *args` and the set of modules it imported."""
    where = tmp_path / "modules.json"
    env = {**os.environ, "MODULES_OUT": str(where)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=300, env=env, **kw
    )
    return out, set(json.loads(where.read_text()))


def heavy(modules: set[str]) -> set[str]:
    return {m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)}


def test_version_imports_nothing_heavy(tmp_path):
    out, modules = chatwatch_modules(tmp_path, "--version")
    assert out.returncode == 0 and out.stdout.startswith("chatwatch ")
    assert "chatwatch.cli.parser" in modules  # the probe sees our imports
    assert heavy(modules) == set()


def test_ask_json_prints_the_record_and_text(tmp_path):
    out, modules = chatwatch_modules(
        tmp_path,
        "ask",
        "--json",
        "--seed",
        "3",
        "--max-tokens",
        "16",
        "--temperature",
        "0.5",
        "Say hello.",
    )
    assert out.returncode == 0, out.stderr
    assert "llama_cpp" in modules  # the model really ran in this process
    assert heavy(modules) == set()  # ...without pandas, plotly, streamlit or a benchmark
    data = json.loads(out.stdout, parse_float=Decimal)
    assert RECORD_KEYS <= set(data)
    assert data["text"].strip() and data["status"] == "ok" and data["model"] == "smollm2"
    assert data["provider"] == "llama.cpp" and data["session_id"] == "cli"
    assert data["token_source"] == "counted" and data["input_tokens"] > 0 and 1 <= data["output_tokens"] <= 16
    assert data["finish_reason"] in ("stop", "length")
    assert data["cost_usd"] == Decimal(0) and isinstance(data["cost_usd"], Decimal) and data["price_source"] == "local"
    assert '"cost_usd": 0.0,' in out.stdout  # a JSON number, not "0"
    assert data["temperature"] == 0.5 and data["max_tokens"] == 16


def test_ask_streams_plain_text_to_the_terminal():
    out = chatwatch("ask", "--seed", "1", "--max-tokens", "8", "Hi")
    assert out.returncode == 0 and out.stdout.strip()


def test_ask_failure_prints_the_record_and_exits_1(tmp_path, port):
    conf = tmp_path / "c.toml"
    conf.write_text(
        f'[[models]]\nid = "down"\nkind = "openai"\nbase_url = "http://127.0.0.1:{port}/v1"\ntimeout_s = 5\n'
    )
    out = chatwatch("ask", "--config", str(conf), "--json", "Hello")
    assert out.returncode == 1
    data = json.loads(out.stdout)
    assert data["status"] == "error" and data["error_type"] == "connection"
    assert "chatwatch: error (connection)" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_empty_prompt_is_refused_with_its_cause():
    out = chatwatch("ask", "--json", "  ")
    assert out.returncode == 2
    assert json.loads(out.stdout)["error_type"] == "invalid_request"
    assert "empty" in out.stderr


def test_bad_config_names_the_key(tmp_path):
    conf = tmp_path / "c.toml"
    conf.write_text('[app]\nlanguage = "klingon"\n')
    out = chatwatch("check-config", "--config", str(conf))
    assert out.returncode == 2 and "app.language = 'klingon'" in out.stderr


def test_config_env_var_is_honoured(tmp_path, port):
    conf = tmp_path / "c.toml"
    conf.write_text(f'[[models]]\nid = "far"\nkind = "openai"\nbase_url = "http://127.0.0.1:{port}/v1"\n')
    out = chatwatch("models", env={**os.environ, "CHATWATCH_CONFIG": str(conf)})
    assert out.returncode == 1  # nothing listens there
    assert "far" in out.stdout and "FAIL" in out.stdout


def test_models_lists_the_bundled_model():
    out = chatwatch("models")
    assert out.returncode == 0 and "smollm2" in out.stdout and "ok" in out.stdout


def test_each_model_load_is_recorded(tmp_path):
    out = chatwatch("ask", "--max-tokens", "4", "--seed", "1", "Hi", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    import sqlite3

    with sqlite3.connect(tmp_path / "data" / "chatwatch.db") as db:
        loads = db.execute(
            "SELECT model, ok, load_s, file_bytes, rss_before_bytes, rss_after_bytes FROM model_loads"
        ).fetchall()
    assert len(loads) == 1
    model, ok, load_s, file_bytes, rss_before, rss_after = loads[0]
    assert model == "smollm2" and ok == 1 and load_s > 0 and file_bytes > 50_000_000
    assert rss_after > rss_before  # the weights are now resident


def test_ask_json_cost_is_the_stored_exact_number(tmp_path, llama_server):
    """A priced remote model (the real llama_cpp.server, priced in our config): the printed
    cost is a JSON number with exactly the stored nano-dollars' digits."""
    conf = tmp_path / "c.toml"
    conf.write_text(
        f'[[models]]\nid = "priced"\nkind = "openai"\nbase_url = "{llama_server}"\nprovider = "acme"\n'
        'model = "smol"\nprice = { input_per_mtok = 0.1, output_per_mtok = 0.3 }\n'
    )
    out = chatwatch("ask", "--config", str(conf), "--json", "--seed", "1", "--max-tokens", "8", "Hi")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout, parse_float=Decimal)
    with sqlite3.connect(tmp_path / "data" / "chatwatch.db") as db:
        (nanos, n_in, n_out) = db.execute(
            "SELECT cost_nanousd, input_tokens, output_tokens FROM requests WHERE id = ?", (data["id"],)
        ).fetchone()
    assert data["price_source"] == "config" and n_in > 0 and n_out > 0
    by_hand = (n_in * Decimal("0.1") + n_out * Decimal("0.3")) / 10**6
    assert data["cost_usd"] == Decimal(nanos).scaleb(-9) == by_hand
    assert f'"cost_usd": {by_hand.normalize():f},' in out.stdout  # e.g. 0.0000054, never 5.4e-06


def test_stats_shows_unknown_costs_as_unpriced(tmp_path):
    url = sqlite_url_in(tmp_path)
    local = Decimal(0)
    hosted = Decimal("0.000123")
    mixed = Decimal("0.000000123")
    with Store.open(url) as store:
        store.write_many(
            [
                make_record(model="smollm2", cost_usd=local, price_source="local"),
                make_record(model="hosted", provider="openai", cost_usd=hosted, price_source="genai-prices"),
                *[
                    make_record(model="mystery", provider="acme", cost_usd=None, price_source="unpriced")
                    for _ in range(2)
                ],
                make_record(model="mixed", provider="acme", cost_usd=mixed, price_source="config"),
                make_record(model="mixed", provider="acme", cost_usd=None, price_source="unpriced"),
            ]
        )
    conf = tmp_path / "c.toml"
    conf.write_text(f'[store]\nurl = "{url}"\n')
    out = chatwatch("stats", "--config", str(conf))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[-1] == "cost"
    cost = {line.split(None, 10)[0]: line.split(None, 10)[10] for line in lines[1:]}
    assert cost == {
        "all": f"${hosted + mixed:f} + 3 unpriced",  # $0.000123123 + 3 unpriced
        "hosted": "$0.000123",
        "mixed": "$0.000000123 + 1 unpriced",
        "mystery": "unpriced",
        "smollm2": "$0",
    }
    assert "0.000000 " not in out.stdout and "$0.000000\n" not in out.stdout


@pytest.mark.parametrize("name", ["dashboard", "ingest", "local", "memory", "overhead"])
def test_each_benchmark_has_its_own_help(name):
    out = chatwatch("bench", name, "--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: chatwatch bench {name} ") and "--config PATH" in out.stdout


def test_a_benchmark_imports_only_itself(tmp_path):
    out, modules = chatwatch_modules(tmp_path, "bench", "ingest", "--rows", "200", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1])["rows"] == 200
    benches = {m for m in modules if m.startswith("chatwatch.bench")}
    assert benches == {"chatwatch.bench", "chatwatch.bench.ingest"}


def test_an_unknown_benchmark_is_refused_with_the_choices():
    out = chatwatch("bench", "nope")
    assert out.returncode == 2 and "invalid choice: 'nope'" in out.stderr and "'ingest'" in out.stderr


def test_benchmarks_are_listed_from_their_files():
    from pathlib import Path

    from chatwatch.cli.parser import bench_names

    folder = Path(__file__).parent.parent / "src" / "chatwatch" / "bench"
    assert bench_names() == sorted(p.stem for p in folder.glob("*.py") if not p.name.startswith("_"))
