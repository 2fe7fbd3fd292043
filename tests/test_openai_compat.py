"""OpenAI-compatible HTTP models: against the real llama_cpp.server for replies, token
counts and deadlines; against the stub for the failures a real server cannot stage."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from chatwatch.config import ModelConfig
from chatwatch.models.contract import (
    ChatModel,
    ContextLengthError,
    GenerationSettings,
    InvalidRequestError,
    Message,
    ModelConnectionError,
    ModelError,
    ModelTimeoutError,
    ProviderError,
    RateLimitError,
    complete,
)
from chatwatch.models.openai_compat import OpenAICompatModel
from tests.fixtures.paths import free_port
from tests.stub_openai_server import Script, StubServer

HI = [Message("user", "Say hi")]
GREEDY = GenerationSettings(temperature=0.0, seed=7, max_tokens=40)
LONG_WINDED = [
    Message("user", "Write a very long, detailed story about a dragon who learns to cook, with many chapters.")
]


def model(base_url: str, *, model_id: str = "m", timeout_s: float = 30.0, **extra) -> OpenAICompatModel:
    return OpenAICompatModel(ModelConfig(id=model_id, kind="openai", base_url=base_url, timeout_s=timeout_s, **extra))


def run(m: OpenAICompatModel, *, stream: bool, messages=HI, settings=GREEDY):
    """Chunks received and the stream, whether it ended well or raised."""
    chunks: list[str] = []
    st = m.chat(messages, settings, stream=stream)
    with st:
        for c in st:
            chunks.append(c)
    return chunks, st


def raises(m: OpenAICompatModel, *, stream: bool, messages=HI, settings=GREEDY) -> tuple[ModelError, list[str], float]:
    chunks: list[str] = []
    started = time.monotonic()
    with pytest.raises(ModelError) as info:
        with m.chat(messages, settings, stream=stream) as st:
            for c in st:
                chunks.append(c)
    return info.value, chunks, time.monotonic() - started


def workers_alive(model_id: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == f"chatwatch-{model_id}"]


# -- the real llama_cpp.server ------------------------------------------------------------


def test_is_a_chat_model(llama_server):
    m = model(llama_server)
    assert isinstance(m, ChatModel)
    assert m.check().ok


def test_replies_and_token_counts_real_server(llama_server):
    m = model(llama_server, model_id="smol")
    # llama.cpp reuses its KV cache for a repeated prompt, and the first evaluation of a
    # prompt differs numerically from a cached one; warm up so both replies below start alike.
    complete(m, HI, GREEDY)

    whole = complete(m, HI, GREEDY, stream=False)
    assert whole.text.strip()
    assert whole.finish_reason in ("stop", "length")
    assert whole.usage.source == "reported"
    assert whole.usage.input_tokens and whole.usage.input_tokens > 0
    assert whole.usage.output_tokens and whole.usage.output_tokens > 0
    assert whole.response_model

    chunks, st = run(m, stream=True)
    streamed = st.result
    assert streamed is not None and streamed.text.strip()
    assert "" not in chunks and "".join(chunks) == streamed.text
    # llama_cpp.server ignores include_usage; its /extras/tokenize counts the reply exactly,
    # and the prompt as rendered by the GGUF's chat template (the server names its GGUF file).
    assert streamed.usage.source == "counted"
    assert streamed.usage.input_tokens == whole.usage.input_tokens  # what the server itself reported
    assert st.progress.token_source == "counted"
    assert st.progress.output_tokens == streamed.usage.output_tokens
    assert streamed.finish_reason in ("stop", "length")
    # Greedy decoding from the same cache state: the same reply, so the same count.
    assert streamed.text == whole.text
    assert streamed.usage.output_tokens == whole.usage.output_tokens


def test_deadline_cuts_a_long_reply_real_server(llama_server):
    m = model(llama_server, model_id="smol-slow", timeout_s=1.5)
    settings = GenerationSettings(temperature=0.0, seed=1, max_tokens=400)  # ~5 s of reply
    err, chunks, elapsed = raises(m, stream=True, messages=LONG_WINDED, settings=settings)
    assert isinstance(err, ModelTimeoutError) and err.error_type == "timeout"
    assert elapsed < 1.5 + 1.0
    assert "smol-slow" in err.message and llama_server in err.message
    # The cut freed the server: it stops sampling once the client is gone, so a short
    # request right after is not stuck behind the rest of the 400 tokens. The bound scales
    # with the speed seen before the cut, so a busy machine does not fail the test.
    per_token_s = 1.5 / max(len(chunks), 1)
    rest_of_reply_s = (400 - len(chunks)) * per_token_s
    started = time.monotonic()
    quick = complete(model(llama_server), HI, GenerationSettings(temperature=0.0, max_tokens=8), stream=True)
    assert quick.text
    assert time.monotonic() - started < max(3.0, rest_of_reply_s / 2)


def test_prompt_over_context_window_real_server(llama_server):
    m = model(llama_server)
    too_long = [Message("user", "hello world " * 1500)]  # ~3000 tokens for n_ctx 2048
    err, _, _ = raises(m, stream=False, messages=too_long)
    assert isinstance(err, ContextLengthError)
    assert "maximum context length" in err.message
    # Streamed, llama_cpp.server answers 200 and then sends nothing at all.
    err, chunks, _ = raises(m, stream=True, messages=too_long)
    assert isinstance(err, ProviderError) and "ended early" in err.message and not chunks


@pytest.mark.parametrize("stream", [True, False])
def test_server_down_is_a_fast_connection_error(stream):
    url = f"http://127.0.0.1:{free_port()}/v1"
    err, _, elapsed = raises(model(url, model_id="ollama-llama3"), stream=stream)
    assert isinstance(err, ModelConnectionError) and err.error_type == "connection"
    assert err.message == f"Could not reach model 'ollama-llama3' at {url}: connection refused"
    assert err.model_id == "ollama-llama3"
    assert elapsed < 2.0


def test_check_reports_a_down_server():
    url = f"http://127.0.0.1:{free_port()}/v1"
    status = model(url).check()
    assert not status.ok and "connection refused" in status.detail


# -- the stub: failures on demand ---------------------------------------------------------


def test_stub_reply_streamed_and_whole(stub_server: StubServer):
    m = model(stub_server.base_url)
    chunks, st = run(m, stream=True)
    assert chunks == ["Hello", ",", " world", "!"]  # the stub's empty chunks were skipped
    assert st.result is not None and st.result.finish_reason == "stop"
    assert st.result.response_model == "stub-model"
    whole = complete(m, HI, GREEDY, stream=False)
    assert whole.text == "Hello, world!"
    sent = stub_server.chat_requests()
    assert sent[0].body["stream"] is True and sent[0].body["stream_options"] == {"include_usage": True}
    assert sent[0].body["max_tokens"] == 40 and sent[0].body["seed"] == 7 and sent[0].body["temperature"] == 0.0
    assert sent[0].headers["authorization"] == "Bearer not-needed"  # local servers need no key
    assert "stream" not in sent[1].body or not sent[1].body["stream"]


def test_usage_in_final_chunk_with_cached_and_reasoning_tokens(stub_server: StubServer):
    stub_server.script = Script(
        usage={
            "prompt_tokens": 120,
            "completion_tokens": 4,
            "total_tokens": 124,
            "prompt_tokens_details": {"cached_tokens": 96},
            "completion_tokens_details": {"reasoning_tokens": 2},
        }
    )
    m = model(stub_server.base_url)
    for stream in (True, False):
        result = complete(m, HI, GREEDY, stream=stream)
        assert result.usage.source == "reported"
        assert (result.usage.input_tokens, result.usage.output_tokens) == (120, 4)
        assert result.usage.cache_read_tokens == 96
        assert result.usage.reasoning_tokens == 2


def test_no_usage_and_no_tokenizer_is_estimated(stub_server: StubServer):
    _, st = run(model(stub_server.base_url), stream=True)
    assert st.result is not None and st.result.usage.source == "estimated"
    assert st.result.usage.output_tokens == 4  # 13 characters / 4, rounded up
    assert st.result.usage.input_tokens and st.result.usage.input_tokens > 0


def test_token_counting_after_the_reply_is_not_latency(stub_server: StubServer):
    """The reply is complete before the server's tokenizer is asked; the monitor ends the
    latency at `progress.finished_at`, so a slow tokenizer never reads as a slow model."""
    stub_server.tokenize = True
    stub_server.tokenize_delay_s = 0.3
    stub_server.script = Script(chunks=("one", " two"))
    for stream in (True, False):
        t0 = time.perf_counter()
        _, st = run(model(stub_server.base_url), stream=stream)
        wall = time.perf_counter() - t0
        assert st.progress.finished_at is not None and st.result is not None
        counted = sum(1 for r in stub_server.requests if r.path == "/tokenize")
        assert counted >= 2  # the reply and the prompt were counted after the reply ended
        assert time.perf_counter() - st.progress.finished_at >= 0.3 * counted - 0.05
        assert st.progress.finished_at - t0 < wall - 0.5
        stub_server.requests.clear()


def test_no_usage_counted_with_llama_cpp_tokenize_endpoint(stub_server: StubServer):
    stub_server.tokenize = True
    stub_server.script = Script(chunks=("one", " two", " three", " four", " five"))
    _, st = run(model(stub_server.base_url), stream=True)
    assert st.result is not None
    assert st.result.usage.output_tokens == 5
    # The stub names no GGUF file, so the prompt is rendered as ChatML and counted by the
    # stub's tokenizer (one token per word): "<|im_start|>user", "Say", "hi<|im_end|>",
    # "<|im_start|>assistant". An approximate template makes the whole count an estimate.
    assert st.result.usage.input_tokens == 4
    assert st.result.usage.source == "estimated"
    probes = [r.path for r in stub_server.requests if "tokenize" in r.path]
    assert probes[0] == "/extras/tokenize/count" and "/tokenize" in probes


def test_close_waits_for_the_reply_in_progress_then_closes_the_client(stub_server: StubServer):
    stub_server.script = Script(chunks=("a", "b", "c"), interval_s=0.2)
    m = model(stub_server.base_url)
    st = m.chat(HI, GREEDY, stream=True)
    first = next(st)
    client = m._client
    m.close()  # the registry closes a model whose entry changed while a reply streams
    assert not client.is_closed()  # the reply in progress keeps its client
    assert first + "".join(st) == "abc" and st.result.finish_reason == "stop"
    assert client.is_closed()  # closed by the reply that ended
    m.close()  # idempotent
    again, _ = run(m, stream=True)  # a later request opens a new client
    assert "".join(again) == "abc" and m._client is not client and not m._client.is_closed()
    m.close()
    assert client.is_closed()


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(
    ("status", "message", "error_cls", "words"),
    [
        (404, "The model `nope` does not exist", InvalidRequestError, "unknown model 'nope'"),
        (429, "Rate limit reached for requests", RateLimitError, "HTTP 429"),
        (500, "llama exploded", ProviderError, "HTTP 500"),
        (400, "This model's maximum context length is 2048 tokens", ContextLengthError, "too long"),
        (400, "temperature must be <= 2", InvalidRequestError, "HTTP 400"),
        (422, "field required: messages", InvalidRequestError, "HTTP 422"),
    ],
)
def test_http_errors_map_to_the_taxonomy(stub_server: StubServer, stream, status, message, error_cls, words):
    stub_server.script = Script(status=status, error_message=message)
    m = model(stub_server.base_url, model_id="remote", model="nope")
    err, chunks, _ = raises(m, stream=stream)
    assert type(err) is error_cls
    assert not chunks
    assert message in err.message  # the provider's words are kept
    assert words in err.message
    assert "model 'remote' at " + stub_server.base_url in err.message


def test_cut_stream_is_a_provider_error(stub_server: StubServer):
    stub_server.script = Script(chunks=("a", "b", "c", "d", "e", "f"), cut_after=3)
    err, chunks, _ = raises(model(stub_server.base_url), stream=True)
    assert isinstance(err, ProviderError) and err.error_type == "provider_error"
    assert "stream ended early" in err.message and "dropped" in err.message
    assert chunks == ["a", "b", "c"]


def test_stream_without_finish_reason_is_a_provider_error(stub_server: StubServer):
    stub_server.script = Script(finish_reason=None)
    err, chunks, _ = raises(model(stub_server.base_url), stream=True)
    assert isinstance(err, ProviderError) and "stream ended early" in err.message
    assert "".join(chunks) == "Hello, world!"


def test_total_deadline_beats_a_trickling_server(stub_server: StubServer):
    # One chunk every 0.5 s never trips the SDK's per-read timeout; the total deadline must.
    stub_server.script = Script(chunks=tuple(f"w{i} " for i in range(30)), interval_s=0.5)
    m = model(stub_server.base_url, model_id="trickle", timeout_s=1.5)
    err, chunks, elapsed = raises(m, stream=True)
    assert isinstance(err, ModelTimeoutError)
    assert 1.4 < elapsed < 1.5 + 1.0
    assert 1 <= len(chunks) <= 3
    deadline = time.monotonic() + 2.0  # the worker thread goes away too
    while workers_alive("trickle") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not workers_alive("trickle")


def test_total_deadline_unstreamed(stub_server: StubServer):
    stub_server.script = Script(chunks=tuple(f"w{i} " for i in range(30)), interval_s=0.5)
    err, _, elapsed = raises(model(stub_server.base_url, timeout_s=1.0), stream=False)
    assert isinstance(err, ModelTimeoutError) and elapsed < 2.0


def test_close_mid_stream_stops_the_request(stub_server: StubServer):
    stub_server.script = Script(chunks=tuple(f"w{i} " for i in range(40)), interval_s=0.1)
    st = model(stub_server.base_url, model_id="closer").chat(HI, GREEDY)
    assert next(st) == "w0 "
    st.close()
    assert st.result is None and st.progress.output_tokens == 1
    deadline = time.monotonic() + 2.0
    while (workers_alive("closer") or not stub_server.disconnects) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not workers_alive("closer")
    assert stub_server.disconnects == 1  # the server saw the client go away


def test_api_key_never_in_error_messages(stub_server: StubServer, monkeypatch):
    key = "cw-test-9f8e7d6c5b4a3921"  # not sk- shaped: only its registration can hide it
    monkeypatch.setenv("CW_TEST_API_KEY", key)
    stub_server.script = Script(status=401, error_message="Incorrect API key provided", echo_auth=True)
    m = model(stub_server.base_url, model_id="paid", api_key_env="CW_TEST_API_KEY")
    for stream in (True, False):
        err, _, _ = raises(m, stream=stream)
        assert isinstance(err, InvalidRequestError)
        assert "rejected the API key (HTTP 401)" in err.message and "CW_TEST_API_KEY" in err.message
        assert "(you sent [secret])" in err.message  # the echo is there, the key is not
        for text in (err.message, str(err), repr(err), repr(err.args)):
            assert key not in text
        chained = err.__cause__ or (None if err.__suppress_context__ else err.__context__)
        while chained is not None:  # a logged traceback would print these too
            assert key not in str(chained) and key not in repr(getattr(chained, "body", None))
            chained = chained.__cause__ or (None if chained.__suppress_context__ else chained.__context__)
    assert stub_server.chat_requests()[0].headers["authorization"] == f"Bearer {key}"
    status = m.check()
    assert not status.ok and key not in status.detail
    assert key not in repr(m) and key not in str(vars(m))


def test_missing_api_key_is_reported_without_a_request(stub_server: StubServer, monkeypatch):
    monkeypatch.delenv("CW_ABSENT_KEY", raising=False)
    m = model(stub_server.base_url, api_key_env="CW_ABSENT_KEY")
    err, _, _ = raises(m, stream=True)
    assert isinstance(err, InvalidRequestError) and "CW_ABSENT_KEY" in err.message
    assert not stub_server.requests
    assert not m.check().ok


def test_api_key_from_streamlit_secrets_file(stub_server: StubServer, monkeypatch, tmp_path: Path):
    monkeypatch.delenv("CW_FILE_KEY", raising=False)
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text('CW_FILE_KEY = "from-the-secrets-file-42"\n')
    complete(model(stub_server.base_url, api_key_env="CW_FILE_KEY"), HI, GREEDY)
    assert stub_server.chat_requests()[0].headers["authorization"] == "Bearer from-the-secrets-file-42"


def test_check_against_the_stub(stub_server: StubServer):
    status = model(stub_server.base_url).check()
    assert status.ok and "stub-model" in status.detail
    stub_server.script = Script(status=500, error_message="down for maintenance")
    status = model(stub_server.base_url).check()
    assert not status.ok and "HTTP 500" in status.detail
