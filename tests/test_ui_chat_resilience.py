"""The chat page (AppTest) through the attempt chain (#9 item 8): a retried request
succeeds and leaves one record per attempt; an exhausted model falls back to the real local
SmolLM2 and the page says who answered and why; a circuit opens, short-circuits (the stub
is not called), half-opens after its cool-down and closes on a good probe, and the model
picker shows it; nothing is retried once a chunk reached the page.

The failing model is the stub server (tests/stub_openai_server.py): a real llama_cpp.server
cannot be made to answer 503 or cut a stream on demand. The answering fallback is the real
model. Expected values are read back from the store with plain SQL, not through reports."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from tests.stub_openai_server import Script, StubServer

APP = str(Path(__file__).resolve().parents[1] / "src" / "chatwatch" / "ui" / "app.py")
COOLDOWN_S = 4.0


@pytest.fixture
def config(tmp_path, stub_server: StubServer, monkeypatch):
    path = tmp_path / "chatwatch.toml"
    path.write_text(
        f"""
[app]
language = "en"
[[models]]
id = "remote"
name = "Remote stub"
kind = "openai"
base_url = "{stub_server.base_url}"
model = "gpt-4o-mini"
timeout_s = 10
retries = 2
retry_base_s = 0.01
retry_max_s = 0.05
fallbacks = ["smollm2"]
[models.breaker]
failures = 3
cooldown_s = {COOLDOWN_S}
[[models]]
id = "smollm2"
name = "SmolLM2 local"
kind = "llama_cpp"
[models.defaults]
max_tokens = 8
seed = 3
"""
    )
    monkeypatch.setenv("CHATWATCH_CONFIG", str(path))
    return path


def rows(config: Path) -> list[sa.Row]:
    engine = sa.create_engine(f"sqlite:///{config.parent / 'data' / 'chatwatch.db'}", poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT id, request_id, model, attempt, status, error_type, retry_reason, fallback_from, "
                    "latency_s FROM requests ORDER BY started_us, attempt"
                )
            ).all()
    finally:
        engine.dispose()


def send(at: AppTest, text: str) -> AppTest:
    at.chat_input[0].set_value(text).run()
    assert not at.exception, at.exception
    return at


def last_captions(at: AppTest) -> list[str]:
    return [c.value for c in at.chat_message[-1].caption]


def picker_warnings(at: AppTest) -> list[str]:
    return [w.value for w in at.sidebar.warning]


def test_a_retried_request_succeeds_with_one_record_per_attempt(config, stub_server: StubServer):
    at = AppTest.from_file(APP, default_timeout=120).run()
    stub_server.queue = [Script(status=503), Script(status=503)]  # then the default script answers
    send(at, "Hello?")
    assert at.chat_message[-1].markdown[0].value == "Hello, world!"
    assert len(stub_server.chat_requests()) == 3
    got = rows(config)
    assert [(r.model, r.attempt, r.status, r.error_type, r.retry_reason) for r in got] == [
        ("remote", 1, "error", "provider_error", None),
        ("remote", 2, "error", "provider_error", "provider_error"),
        ("remote", 3, "ok", None, "provider_error"),
    ]
    assert {r.request_id for r in got} == {got[0].id}
    captions = last_captions(at)
    assert any("Remote stub answered on attempt 3" in c for c in captions), captions


def test_an_exhausted_model_falls_back_and_the_page_says_who_answered(config, stub_server: StubServer):
    at = AppTest.from_file(APP, default_timeout=120).run()
    stub_server.script = Script(status=429, headers=(("Retry-After", "0"),))
    send(at, "Say hello.")
    assert at.chat_message[-1].markdown[0].value.strip()  # SmolLM2's answer
    got = rows(config)
    assert [(r.model, r.status, r.error_type, r.fallback_from) for r in got] == [
        ("remote", "error", "rate_limit", None),
        ("remote", "error", "rate_limit", None),
        ("remote", "error", "rate_limit", None),
        ("smollm2", "ok", None, "remote"),
    ]
    captions = last_captions(at)
    assert any("Remote stub failed (rate limit) - answered by SmolLM2 local" in c for c in captions), captions
    assert "smollm2" in captions[-1]  # the figures are the answering model's


def test_the_circuit_opens_short_circuits_half_opens_and_closes(config, stub_server: StubServer):
    at = AppTest.from_file(APP, default_timeout=120).run()
    stub_server.script = Script(status=500)
    send(at, "First?")  # three failed attempts: the third consecutive failure opens the circuit
    assert len(stub_server.chat_requests()) == 3
    at.run()  # the next render reads the circuit from the store
    assert any("Circuit open" in w for w in picker_warnings(at)), picker_warnings(at)
    assert "⛔" in at.sidebar.selectbox(key="model_id").format_func("remote")

    send(at, "Second?")  # open: SmolLM2 answers, the stub is not called
    assert len(stub_server.chat_requests()) == 3
    last = rows(config)[-2:]
    assert [(r.model, r.error_type, r.latency_s) for r in last] == [("remote", "circuit_open", None)] + [
        ("smollm2", None, last[1].latency_s)
    ]
    assert any("failed (circuit open) - answered by SmolLM2 local" in c for c in last_captions(at))

    stub_server.script = Script()  # the stub recovers; after the cool-down one probe decides
    time.sleep(COOLDOWN_S + 0.5)
    send(at, "Third?")
    assert len(stub_server.chat_requests()) == 4
    assert at.chat_message[-1].markdown[0].value == "Hello, world!"
    at.run()
    assert not any("Circuit" in w for w in picker_warnings(at))
    assert "⛔" not in at.sidebar.selectbox(key="model_id").format_func("remote")


def test_no_retry_once_a_chunk_reached_the_page(config, stub_server: StubServer):
    at = AppTest.from_file(APP, default_timeout=120).run()
    stub_server.script = Script(chunks=("one", " two", " three", " four"), cut_after=2)
    send(at, "Count.")
    assert len(stub_server.chat_requests()) == 1
    got = rows(config)
    assert [(r.model, r.status) for r in got] == [("remote", "error")]  # no retry, no fallback
    assert [e.value for e in at.chat_message[-1].error]  # the cut is shown


def test_a_cached_model_says_so_and_a_repeat_is_answered_from_the_cache(tmp_path, monkeypatch):
    path = tmp_path / "cached.toml"
    path.write_text(
        """
[app]
language = "en"
[privacy]
capture_content = true
[[models]]
id = "smollm2"
name = "SmolLM2 local"
kind = "llama_cpp"
cache = true
cache_ttl_s = 7200
[models.defaults]
temperature = 0.0
max_tokens = 8
"""
    )
    monkeypatch.setenv("CHATWATCH_CONFIG", str(path))
    first = AppTest.from_file(APP, default_timeout=120).run()
    assert any("Cache on" in c.value and "2 h" in c.value for c in first.sidebar.caption)
    send(first, "Name a colour.")
    answer = first.chat_message[-1].markdown[0].value
    again = AppTest.from_file(APP, default_timeout=120).run()  # another session, the same question
    send(again, "Name a colour.")
    assert again.chat_message[-1].markdown[0].value == answer
    assert any("Answered from the cache: cost $0" in c for c in last_captions(again)), last_captions(again)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'data' / 'chatwatch.db'}", poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            got = conn.execute(sa.text("SELECT cache_hit, cost_nanousd FROM requests ORDER BY started_us")).all()
    finally:
        engine.dispose()
    assert [(bool(r.cache_hit), r.cost_nanousd) for r in got] == [(False, 0), (True, 0)]  # a local model is free
