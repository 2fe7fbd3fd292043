"""The one instrumentation point: exactly one committed record per request, whatever happens.

Replies come from the real SmolLM2 and the real llama_cpp.server where they can produce the
case; HTTP failures and provider usage reports (cached tokens, prices of a hosted model) come
from the stub server, which stands in only for what a local server cannot do.
"""

from __future__ import annotations

import contextlib
from decimal import Decimal

import pytest
import sqlalchemy as sa

from chatwatch.config import parse
from chatwatch.models.contract import GenerationSettings, Message
from chatwatch.models.registry import ModelRegistry
from chatwatch.store.records import Store
from chatwatch.telemetry.monitor import Monitor
from tests.stub_openai_server import Script

USAGE = {
    "prompt_tokens": 1234,
    "completion_tokens": 567,
    "total_tokens": 1801,
    "prompt_tokens_details": {"cached_tokens": 200},
}
# gpt-4o-mini in genai-prices' bundled data: $0.15 input, $0.075 cached input, $0.60 output per 1M.
GPT_4O_MINI = (Decimal(1234 - 200) * Decimal("0.15") + 200 * Decimal("0.075") + 567 * Decimal("0.6")) / 10**6


def settings_for(tmp_path, stub_url: str, port: int, llama_url: str | None = None):
    models = [
        {"id": "smollm2", "kind": "llama_cpp"},
        {"id": "hosted", "kind": "openai", "base_url": stub_url, "provider": "openai", "model": "gpt-4o-mini"},
        {
            "id": "config-priced",
            "kind": "openai",
            "base_url": stub_url,
            "provider": "acme",
            "model": "m1",
            "price": {"input_per_mtok": 2.0, "output_per_mtok": 8.0, "cache_read_per_mtok": 0.5},
        },
        {"id": "mystery", "kind": "openai", "base_url": stub_url, "provider": "acme", "model": "unknown-model"},
        {"id": "down", "kind": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "timeout_s": 5},
        {"id": "slow", "kind": "openai", "base_url": stub_url, "timeout_s": 1.0},
    ]
    if llama_url:
        models.append({"id": "llama-server", "kind": "openai", "base_url": llama_url, "provider": "llama.cpp"})
    return parse({"app": {"data_dir": str(tmp_path / "data"), "log_dir": str(tmp_path / "logs")}, "models": models})


@pytest.fixture
def setup(tmp_path, stub_server, port):
    cfg = settings_for(tmp_path, stub_server.base_url, port)
    store = Store.open(cfg.store_url)
    monitor, registry = Monitor(cfg, store, instance="test"), ModelRegistry()
    yield cfg, store, monitor, registry
    monitor.close()
    registry.close()
    store.close()


def run(monitor, registry, cfg, model_id, text="Hello", *, stream=True, settings=None, stop_after=None):
    mc = cfg.model(model_id)
    reply = monitor.chat(
        registry.get(mc),
        mc,
        [Message("user", text)],
        settings or GenerationSettings(max_tokens=16, seed=1),
        session_id="s1",
        conversation_id="c1",
        stream=stream,
    )
    error = None
    try:
        for i, _ in enumerate(reply):
            if stop_after is not None and i + 1 >= stop_after:
                reply.close()
                break
    except Exception as exc:
        error = exc
    return reply, error


def rows(store):
    with store.engine.connect() as conn:
        return conn.execute(sa.text("SELECT id, status, error_type, cost_nanousd, price_source FROM requests")).all()


def test_success_from_the_local_model_is_recorded_once(setup):
    cfg, store, monitor, registry = setup
    reply, error = run(monitor, registry, cfg, "smollm2")
    assert error is None
    r = reply.record
    assert r.status == "ok" and r.error_type is None and r.model == "smollm2" and r.provider == "llama.cpp"
    assert r.session_id == "s1" and r.conversation_id == "c1" and r.instance == "test"
    assert r.output_tokens == reply.result.usage.output_tokens >= 1 and r.token_source == "counted"
    assert r.cost_usd == 0 and r.price_source == "local"
    assert 0 <= r.ttft_s <= r.latency_s and r.queue_s >= 0
    assert r.output_tokens_per_s == pytest.approx(r.output_tokens / (r.latency_s - r.ttft_s))
    assert r.rss_before_bytes > 0 and r.rss_after_bytes > 0 and r.system_available_bytes > 0
    assert r.response_chars == len(reply.text) and r.prompt_chars == len("Hello")
    assert r.prompt_text is None and r.response_text is None  # no content at rest by default
    assert store.get(r.id) == r
    assert len(rows(store)) == 1


def test_cancelled_stream_keeps_the_tokens_produced_so_far(setup):
    cfg, store, monitor, registry = setup
    reply, error = run(
        monitor,
        registry,
        cfg,
        "smollm2",
        "Count slowly to fifty.",
        settings=GenerationSettings(max_tokens=200, seed=4),
        stop_after=3,
    )
    assert error is None
    r = store.get(reply.record.id)
    assert r.status == "cancelled" and r.error_type is None
    assert 3 <= r.output_tokens < 200 and r.input_tokens > 0
    assert r.cost_usd == 0 and r.price_source == "local"


@pytest.mark.parametrize(
    "model_id, script, error_type",
    [
        ("down", None, "connection"),
        ("slow", Script(chunks=tuple("abcdefgh"), interval_s=0.5), "timeout"),
        ("hosted", Script(status=429, error_message="slow down"), "rate_limit"),
        (
            "hosted",
            Script(status=400, error_message="This model's maximum context length is 8192 tokens"),
            "context_length",
        ),
        ("hosted", Script(status=404, error_message="The model `nope` does not exist"), "invalid_request"),
        ("hosted", Script(status=500, error_message="upstream exploded"), "provider_error"),
        ("hosted", Script(chunks=("a", "b", "c", "d"), cut_after=2), "provider_error"),
    ],
)
def test_each_error_type_is_recorded_and_raised(setup, stub_server, model_id, script, error_type):
    cfg, store, monitor, registry = setup
    if script is not None:
        stub_server.script = script
    reply, error = run(monitor, registry, cfg, model_id)
    assert error is not None and getattr(error, "error_type", None) == error_type
    r = store.get(reply.record.id)
    assert r.status == "error" and r.error_type == error_type and r.error_message
    assert len(rows(store)) == 1


def test_error_rate_counts_errors_over_all_requests(setup, stub_server):
    cfg, store, monitor, registry = setup
    run(monitor, registry, cfg, "hosted")
    stub_server.script = Script(status=500)
    run(monitor, registry, cfg, "hosted")
    from chatwatch.reports.queries import Filters, summary

    s = summary(store, Filters())
    assert (s.requests, s.errors, s.error_rate) == (2, 1, 0.5)  # the seed said 1/1 = 100 %


@pytest.mark.parametrize("stream", [True, False])
def test_genai_prices_cost_is_exact_with_cache_reads_and_equal_streamed_or_not(setup, stub_server, stream):
    cfg, store, monitor, registry = setup
    stub_server.script = Script(usage=USAGE)
    reply, error = run(monitor, registry, cfg, "hosted", stream=stream)
    assert error is None
    r = store.get(reply.record.id)
    assert (r.input_tokens, r.output_tokens, r.cache_read_tokens, r.token_source) == (1234, 567, 200, "reported")
    assert r.cost_usd == GPT_4O_MINI and r.price_source == "genai-prices"
    assert r.stream is stream


def test_config_price_is_exact(setup, stub_server):
    cfg, store, monitor, registry = setup
    stub_server.script = Script(usage=USAGE)
    reply, _ = run(monitor, registry, cfg, "config-priced")
    expected = (Decimal(1034) * 2 + Decimal(200) * Decimal("0.5") + Decimal(567) * 8) / 10**6
    assert store.get(reply.record.id).cost_usd == expected
    assert reply.record.price_source == "config"


def test_unpriced_model_stays_null_never_zero(setup, stub_server):
    cfg, store, monitor, registry = setup
    stub_server.script = Script(usage=USAGE)
    reply, _ = run(monitor, registry, cfg, "mystery")
    r = store.get(reply.record.id)
    assert r.cost_usd is None and r.price_source == "unpriced"
    from chatwatch.reports.queries import Filters, summary

    s = summary(store, Filters())
    assert s.unpriced == 1 and s.cost_usd == 0  # the sum excludes it and says so


def test_a_store_failure_keeps_the_record_and_the_chat_goes_on(setup):
    """A real SQLite failure: the table is moved away under the running store."""
    cfg, store, monitor, registry = setup
    with store.transaction() as conn:
        conn.exec_driver_sql("ALTER TABLE requests RENAME TO requests_away")
    reply, error = run(monitor, registry, cfg, "hosted")
    assert error is None and reply.text == "Hello, world!"  # the user still got the answer
    assert reply.store_error and "no such table" in reply.store_error
    assert monitor.unsaved_count() == 1
    with store.transaction() as conn:
        conn.exec_driver_sql("ALTER TABLE requests_away RENAME TO requests")
    second, _ = run(monitor, registry, cfg, "hosted")
    assert second.store_error is None
    monitor.close()  # the kept record is written by the monitor's own thread (see test_unsaved.py)
    assert monitor.unsaved_count() == 0
    assert store.get(reply.record.id) is not None and store.get(second.record.id) is not None


def test_content_is_captured_only_when_configured_and_redacted(tmp_path, stub_server, port):
    cfg = settings_for(tmp_path, stub_server.base_url, port)
    cfg = cfg.model_copy(update={"privacy": cfg.privacy.model_copy(update={"capture_content": True})})
    with Store.open(cfg.store_url) as store, contextlib.closing(Monitor(cfg, store, instance="test")) as monitor:
        reply, _ = run(monitor, ModelRegistry(), cfg, "hosted", "mail me at ana@example.com, card 4111111111111111")
        r = store.get(reply.record.id)
    assert "ana@example.com" not in r.prompt_text and "4111111111111111" not in r.prompt_text
    assert "mail me at" in r.prompt_text and r.response_text == "Hello, world!"


def test_llama_server_streamed_and_unstreamed_records(tmp_path, stub_server, port, llama_server):
    cfg = settings_for(tmp_path, stub_server.base_url, port, llama_server)
    store = Store.open(cfg.store_url)
    monitor = Monitor(cfg, store, instance="test")
    registry = ModelRegistry()
    plain, _ = run(monitor, registry, cfg, "llama-server", "Say hi.", stream=False)
    streamed, _ = run(monitor, registry, cfg, "llama-server", "Say hi.", stream=True)
    assert plain.record.token_source == "reported" and plain.record.output_tokens >= 1
    assert streamed.record.token_source in ("counted", "estimated") and streamed.record.output_tokens >= 1
    # The server sends no usage when streaming: the prompt is counted on the model's chat
    # template with the server's tokenizer, so it equals what the server reported unstreamed.
    assert streamed.record.token_source == "counted"
    assert streamed.record.input_tokens == plain.record.input_tokens > 0
    assert plain.record.response_model and streamed.record.status == plain.record.status == "ok"
    assert plain.record.price_source == streamed.record.price_source == "unpriced"  # nobody prices a self-hosted server


def test_a_priced_stream_without_usage_has_input_tokens_and_a_cost(tmp_path, llama_server):
    """llama_cpp.server sends no usage when streaming: the prompt is counted on the model's
    chat template, so the cost is computed, not null, and equals the price of the tokens the
    server itself reported for the same prompt unstreamed."""
    priced = {
        "id": "llama-priced",
        "kind": "openai",
        "base_url": llama_server,
        "provider": "acme",
        "price": {"input_per_mtok": 2.0, "output_per_mtok": 8.0},
    }
    cfg = parse({"app": {"data_dir": str(tmp_path / "data"), "log_dir": str(tmp_path / "logs")}, "models": [priced]})
    with Store.open(cfg.store_url) as store:
        monitor, registry = Monitor(cfg, store, instance="test"), ModelRegistry()
        try:
            plain, _ = run(monitor, registry, cfg, "llama-priced", "Name three colours.", stream=False)
            streamed, _ = run(monitor, registry, cfg, "llama-priced", "Name three colours.", stream=True)
        finally:
            monitor.close()
            registry.close()
        r = store.get(streamed.record.id)
    assert plain.record.token_source == "reported" and r.token_source == "counted"
    assert r.input_tokens == plain.record.input_tokens
    expected = (Decimal(plain.record.input_tokens) * 2 + Decimal(r.output_tokens) * 8) / 10**6
    assert r.cost_usd == expected and r.price_source == "config"
