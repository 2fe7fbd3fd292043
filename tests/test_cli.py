"""`chatwatch` as a user runs it: real subprocesses, the real local model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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


def chatwatch(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chatwatch", *args], capture_output=True, text=True, timeout=300, **kw)


def test_ask_json_prints_the_record_and_text():
    out = chatwatch("ask", "--json", "--seed", "3", "--max-tokens", "16", "--temperature", "0.5", "Say hello.")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert RECORD_KEYS <= set(data)
    assert data["text"].strip() and data["status"] == "ok" and data["model"] == "smollm2"
    assert data["provider"] == "llama.cpp" and data["session_id"] == "cli"
    assert data["token_source"] == "counted" and data["input_tokens"] > 0 and 1 <= data["output_tokens"] <= 16
    assert data["finish_reason"] in ("stop", "length")
    assert data["cost_usd"] == "0" and data["price_source"] == "local"
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
    assert out.returncode == 1
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
