"""The attempt chain end to end (#9 items 1-3 and 8): retries, fallbacks, the circuit breaker
and context fallbacks through `Runtime.chat`, with real faults.

Faults come from the scriptable stub (HTTP 429/503/401, a stream cut, a slow first byte, a
body that is not JSON), a closed port (connection refused) and a real llama_cpp.server killed
in the middle of a stream; every fallback is the real SmolLM2 in-process. chatwatch's own
refusals (a model's rate limit, a spent "fallback" budget, an open circuit) and the response
cache go through the same chain and are checked the same way, prices by genai-prices itself. What is expected is computed here
another way than the chain does: requests the stub saw (counted, with their arrival times),
elapsed time by perf_counter, backoff waits redrawn from a second `random.Random(0)`, and
the rows read back from the store with SQLAlchemy, never through chatwatch's reports. The
breaker and the cache keep their state in the store, so their tests run on SQLite and on
the PostgreSQL at 127.0.0.1:5432.
"""

from __future__ import annotations

import random
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

import genai_prices
import pytest
import sqlalchemy as sa

from chatwatch import config
from chatwatch.models.contract import GenerationSettings, Message, ModelError
from chatwatch.models.registry import ModelRegistry
from chatwatch.runtime import Runtime
from chatwatch.store.schema import breakers, requests
from tests.fixtures.paths import free_port
from tests.fixtures.servers import start_llama_server
from tests.stub_openai_server import Script, StubServer

SMOLLM2 = {"id": "smollm2", "name": "SmolLM2 135M (local)", "kind": "llama_cpp"}
SMOLLM2_NAME = "SmolLM2 135M (local)"
GREEDY = GenerationSettings(temperature=0.0, seed=1, max_tokens=8)
HI = [Message("user", "Say hi.")]
BASE_S, MAX_S = 0.05, 0.2  # backoff bounds of the stub models: short, so tests stay quick
SLACK_S = 0.5  # scheduling and teardown on 2 shared cores


def stub_model(model_id: str, base_url: str, **extra) -> dict:
    return {
        "id": model_id,
        "name": f"Stub {model_id.upper()}",
        "kind": "openai",
        "base_url": base_url,
        "timeout_s": 10,
        "retry_base_s": BASE_S,
        "retry_max_s": MAX_S,
        **extra,
    }


def full_jitter(n_retries: int, base_s: float = BASE_S, max_s: float = MAX_S) -> list[float]:
    """The waits a Random(0) full-jitter backoff draws, redrawn here from the formula."""
    rng = random.Random(0)
    return [rng.uniform(0.0, min(max_s, base_s * 2 ** (n - 1))) for n in range(1, n_retries + 1)]


@dataclass
class Asked:
    reply: object
    chunks: list[str]
    error: BaseException | None
    elapsed_s: float


@dataclass
class Chat:
    """One test's runtime: its own data folder, the module's loaded models, an injected
    Random(0) and a sleep that notes every backoff wait (and really waits)."""

    runtime: Runtime
    db: sa.Engine
    waits: list[float] = field(default_factory=list)

    def ask(
        self, model_id: str, messages=HI, settings=GREEDY, *, cut_after_first=None, stop_after=None, stream=True
    ) -> Asked:
        """One request read to its end (or, with stop_after, left by the caller after that many
        chunks); cut_after_first runs once the first chunk has arrived."""
        chunks: list[str] = []
        error = None
        started = time.perf_counter()
        reply = self.runtime.chat(model_id, messages, settings, session_id="chain", stream=stream)
        try:
            for chunk in reply:
                chunks.append(chunk)
                if cut_after_first is not None and len(chunks) == 1:
                    cut_after_first()
                if stop_after is not None and len(chunks) >= stop_after:
                    break
        except Exception as exc:
            error = exc
        finally:
            reply.close()
        return Asked(reply, chunks, error, time.perf_counter() - started)

    def rows(self, request_id: str) -> list[dict]:
        """The attempts of one request as the store has them, in attempt order."""
        with self.db.connect() as conn:
            result = conn.execute(
                sa.select(requests).where(requests.c.request_id == request_id).order_by(requests.c.attempt)
            )
            return [dict(r._mapping) for r in result]

    def breaker(self, model_id: str) -> dict | None:
        with self.db.connect() as conn:
            row = conn.execute(sa.select(breakers).where(breakers.c.model == model_id)).mappings().first()
            return dict(row) if row else None


@pytest.fixture(scope="module")
def registry() -> Iterator[ModelRegistry]:
    """SmolLM2 loaded once for the module; each test's runtime borrows it."""
    models = ModelRegistry()
    try:
        yield models
    finally:
        models.close()


@pytest.fixture
def make_chat(tmp_path, registry) -> Iterator:
    built: list[Chat] = []

    def make(*models: dict, store_url: str | None = None, **sections) -> Chat:
        """A runtime on these models (and SmolLM2); its store in tmp_path, or at store_url."""
        raw = {
            "app": {"data_dir": str(tmp_path / "data"), "log_dir": str(tmp_path / "logs")},
            "models": [*models, SMOLLM2],
            **({"store": {"url": store_url}} if store_url else {}),
            **sections,
        }
        waits: list[float] = []

        def sleep(s: float) -> None:
            waits.append(s)
            time.sleep(s)

        rt = Runtime(
            config.parse(raw), role="cli", models=registry, chain_options={"rng": random.Random(0), "sleep": sleep}
        )
        url = store_url or f"sqlite:///{tmp_path / 'data' / 'chatwatch.db'}"
        chat = Chat(rt, sa.create_engine(url, poolclass=sa.NullPool), waits)
        built.append(chat)
        return chat

    yield make
    for chat in built:
        chat.runtime.close()
        chat.db.dispose()


def check_rows(chat: Chat, asked: Asked) -> list[dict]:
    """The reply's records are one request (attempts 1..n sharing the first one's id) and
    are the store's rows of it, read back with SQL."""
    records = asked.reply.records
    first = records[0].id
    assert [r.request_id for r in records] == [first] * len(records)
    assert [r.attempt for r in records] == list(range(1, len(records) + 1))
    rows = chat.rows(first)
    assert [r["id"] for r in rows] == [r.id for r in records]
    assert [r["attempt"] for r in rows] == list(range(1, len(records) + 1))
    return rows


# -- retries ----------------------------------------------------------------------------


def test_a_429_with_retry_after_is_waited_for_then_the_retry_answers(make_chat, stub_server: StubServer):
    chat = make_chat(stub_model("a", stub_server.base_url))
    stub_server.queue = [Script(status=429, headers=(("Retry-After", "1"),))]
    asked = chat.ask("a")
    assert asked.error is None and "".join(asked.chunks) == "Hello, world!"
    sent = stub_server.chat_requests()
    assert len(sent) == 2
    assert sent[1].at - sent[0].at >= 1.0  # the server saw the retry a second later
    assert asked.elapsed_s >= 1.0
    # Retry-After is a floor over the drawn backoff (at most retry_base_s here)
    assert chat.waits == [max(1.0, full_jitter(1)[0])]
    rows = check_rows(chat, asked)
    assert [(r["status"], r["error_type"], r["retry_reason"]) for r in rows] == [
        ("error", "rate_limit", None),
        ("ok", None, "rate_limit"),
    ]
    assert asked.reply.answered_by == "a" and asked.reply.record.status == "ok"


def test_two_503s_then_ok_is_three_attempts_with_full_jitter_waits(make_chat, stub_server: StubServer):
    chat = make_chat(stub_model("a", stub_server.base_url))
    stub_server.queue = [Script(status=503), Script(status=503)]
    asked = chat.ask("a")
    assert asked.error is None and "".join(asked.chunks) == "Hello, world!"
    sent = stub_server.chat_requests()
    assert len(sent) == 3
    expected = full_jitter(2)
    assert chat.waits == pytest.approx(expected, abs=1e-12)
    for i, wait in enumerate(expected):
        assert sent[i + 1].at - sent[i].at >= wait
    rows = check_rows(chat, asked)
    assert [(r["status"], r["retry_reason"]) for r in rows] == [
        ("error", None),
        ("error", "provider_error"),
        ("ok", "provider_error"),
    ]
    assert all(r["model"] == "a" and r["fallback_from"] is None for r in rows)
    assert any("attempt 3" in n for n in asked.reply.notices), asked.reply.notices


def test_a_401_is_neither_retried_nor_sent_to_a_fallback(make_chat, stub_server: StubServer):
    chat = make_chat(stub_model("a", stub_server.base_url, fallbacks=["smollm2"]))
    stub_server.script = Script(status=401)
    asked = chat.ask("a")
    assert isinstance(asked.error, ModelError) and asked.error.error_type == "invalid_request"
    assert len(stub_server.chat_requests()) == 1 and chat.waits == []
    rows = check_rows(chat, asked)
    assert [(r["model"], r["status"], r["error_type"]) for r in rows] == [("a", "error", "invalid_request")]
    assert asked.reply.answered_by is None


def test_a_stream_cut_after_two_chunks_is_not_retried(make_chat, stub_server: StubServer):
    chat = make_chat(stub_model("a", stub_server.base_url, fallbacks=["smollm2"]))
    stub_server.script = Script(cut_after=2)
    asked = chat.ask("a")
    assert asked.chunks == ["Hello", ","]  # what reached the caller: no second answer after it
    assert isinstance(asked.error, ModelError) and asked.error.error_type == "provider_error"
    assert len(stub_server.chat_requests()) == 1 and chat.waits == []
    rows = check_rows(chat, asked)
    assert [(r["model"], r["status"], r["error_type"]) for r in rows] == [("a", "error", "provider_error")]
    assert asked.reply.answered_by is None


def test_a_first_byte_slower_than_timeout_s_ends_the_retries_at_the_models_deadline(make_chat, stub_server: StubServer):
    timeout_s = 2.0
    chat = make_chat(stub_model("a", stub_server.base_url, timeout_s=timeout_s, retries=5))
    # A quick 503 (retried), then a server that would answer only after the deadline.
    stub_server.queue = [Script(status=503), Script(first_byte_s=timeout_s + 3)]
    asked = chat.ask("a")
    assert isinstance(asked.error, ModelError) and asked.error.error_type == "timeout"
    assert asked.elapsed_s <= timeout_s + SLACK_S, asked.elapsed_s
    assert len(stub_server.chat_requests()) == 2  # no retry was started past the deadline
    rows = check_rows(chat, asked)
    assert [(r["status"], r["error_type"]) for r in rows] == [("error", "provider_error"), ("error", "timeout")]


def test_a_retry_after_past_the_deadline_goes_to_the_fallback_without_waiting(make_chat, stub_server: StubServer):
    chat = make_chat(stub_model("a", stub_server.base_url, timeout_s=5, fallbacks=["smollm2"]))
    stub_server.script = Script(status=429, headers=(("Retry-After", "30"),))
    asked = chat.ask("a")
    assert asked.error is None and asked.reply.answered_by == "smollm2"
    assert len(stub_server.chat_requests()) == 1 and chat.waits == []  # 30 s would pass timeout_s = 5
    assert asked.elapsed_s < 5
    rows = check_rows(chat, asked)
    assert [(r["model"], r["error_type"], r["fallback_from"]) for r in rows] == [
        ("a", "rate_limit", None),
        ("smollm2", None, "a"),
    ]
    assert f"Stub A failed (rate limit) - answered by {SMOLLM2_NAME}" in asked.reply.notices


def test_an_unstreamed_request_is_retried_the_same_way(make_chat, stub_server: StubServer):
    chat = make_chat(stub_model("a", stub_server.base_url))
    stub_server.queue = [Script(status=502)]
    asked = chat.ask("a", stream=False)
    assert asked.error is None and "".join(asked.chunks) == "Hello, world!"
    assert [bool(r.body.get("stream")) for r in stub_server.chat_requests()] == [False, False]
    rows = check_rows(chat, asked)
    assert [(r["stream"], r["status"], r["retry_reason"]) for r in rows] == [
        (False, "error", None),
        (False, "ok", "provider_error"),
    ]


def test_a_caller_who_stops_reading_gets_one_cancelled_record_and_nothing_else(make_chat, stub_server: StubServer):
    chat = make_chat(stub_model("a", stub_server.base_url, fallbacks=["smollm2"], breaker={"failures": 1}))
    stub_server.script = Script(interval_s=0.2)
    asked = chat.ask("a", stop_after=1)
    assert asked.chunks == ["Hello"] and asked.error is None
    assert len(stub_server.chat_requests()) == 1 and chat.waits == []
    rows = check_rows(chat, asked)
    assert [(r["model"], r["status"]) for r in rows] == [("a", "cancelled")]
    state = chat.breaker("a")  # a cancel says nothing about the model: failures=1 would have opened it
    assert state is None or state["state"] == "closed"


def test_a_200_whose_body_is_not_json_is_a_provider_error_and_retried(make_chat, stub_server: StubServer):
    chat = make_chat(stub_model("a", stub_server.base_url))
    stub_server.queue = [Script(invalid_body=True)]
    asked = chat.ask("a")
    assert asked.error is None and "".join(asked.chunks) == "Hello, world!"
    assert len(stub_server.chat_requests()) == 2
    rows = check_rows(chat, asked)
    assert [(r["status"], r["error_type"], r["retry_reason"]) for r in rows] == [
        ("error", "provider_error", None),
        ("ok", None, "provider_error"),
    ]


# -- fallbacks --------------------------------------------------------------------------


def test_exhausted_retries_fall_back_to_smollm2_and_the_notice_says_so(make_chat, stub_server: StubServer):
    chat = make_chat(stub_model("a", stub_server.base_url, retries=2, fallbacks=["smollm2"]))
    stub_server.script = Script(status=503)
    asked = chat.ask("a")
    assert asked.error is None and asked.chunks
    assert len(stub_server.chat_requests()) == 3  # the first attempt and 2 retries
    assert chat.waits == pytest.approx(full_jitter(2), abs=1e-12)  # no wait before the fallback
    rows = check_rows(chat, asked)
    assert [(r["model"], r["status"], r["error_type"], r["fallback_from"]) for r in rows] == [
        ("a", "error", "provider_error", None),
        ("a", "error", "provider_error", None),
        ("a", "error", "provider_error", None),
        ("smollm2", "ok", None, "a"),
    ]
    assert rows[-1]["retry_reason"] == "provider_error"
    assert asked.reply.answered_by == "smollm2"
    assert asked.reply.text == "".join(asked.chunks)
    assert f"Stub A failed (provider error) - answered by {SMOLLM2_NAME}" in asked.reply.notices


def test_each_fallback_gets_its_own_timeout_s(make_chat, stub_server: StubServer):
    slow_a, b_first_byte = 1.5, 1.0
    chat = make_chat(
        stub_model("a", stub_server.base_url, timeout_s=slow_a, retries=0, fallbacks=["b"]),
        stub_model("b", stub_server.base_url, timeout_s=3.0),
    )
    # a never answers in time; b answers 1 s after it is asked, long after a's deadline
    stub_server.queue = [Script(first_byte_s=10), Script(first_byte_s=b_first_byte)]
    asked = chat.ask("a")
    assert asked.error is None and asked.reply.answered_by == "b"
    assert slow_a + b_first_byte <= asked.elapsed_s <= slow_a + b_first_byte + SLACK_S
    rows = check_rows(chat, asked)
    assert [(r["model"], r["status"], r["error_type"], r["fallback_from"]) for r in rows] == [
        ("a", "error", "timeout", None),
        ("b", "ok", None, "a"),
    ]


def test_fallbacks_that_name_each_other_end_with_the_last_error(make_chat, stub_server: StubServer):
    chat = make_chat(
        stub_model("a", stub_server.base_url, retries=1, fallbacks=["b"]),
        stub_model("b", stub_server.base_url, retries=1, fallbacks=["a"]),
    )
    stub_server.script = Script(status=503)
    asked = chat.ask("a")
    assert isinstance(asked.error, ModelError) and asked.error.error_type == "provider_error"
    assert len(stub_server.chat_requests()) == 4  # each model once and its retry; no loop back to a
    rows = check_rows(chat, asked)
    assert [(r["model"], r["fallback_from"]) for r in rows] == [("a", None), ("a", None), ("b", "a"), ("b", "a")]
    assert asked.reply.answered_by is None and asked.reply.notices == []


def test_a_closed_port_is_answered_by_the_fallback(make_chat):
    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: connection refused
    chat = make_chat(stub_model("down", closed, name="Down", retries=1, fallbacks=["smollm2"]))
    asked = chat.ask("down")
    assert asked.error is None and asked.chunks
    rows = check_rows(chat, asked)
    assert [(r["model"], r["error_type"], r["fallback_from"]) for r in rows] == [
        ("down", "connection", None),
        ("down", "connection", None),
        ("smollm2", None, "down"),
    ]
    assert asked.reply.answered_by == "smollm2"
    assert f"Down failed (unreachable) - answered by {SMOLLM2_NAME}" in asked.reply.notices


def test_a_conversation_too_long_for_the_window_goes_to_the_context_fallback(make_chat, stub_server: StubServer):
    chat = make_chat(stub_model("small", stub_server.base_url, context_window=256, context_fallbacks=["smollm2"]))
    turn = "The river runs past the old mill and under the stone bridge before it reaches the sea. " * 4
    history = []
    for i in range(6):  # each turn fits the window alone, all of them together do not
        history += [Message("user", f"Part {i}: {turn}"), Message("assistant", "Noted.")]
    messages = [*history, Message("user", "Which river is it?")]
    words = sum(len(m.content.split()) for m in messages)
    assert words > 256  # more words than the window has tokens: over it whatever the tokenizer
    asked = chat.ask("small", messages)
    assert asked.error is None and asked.chunks
    assert stub_server.chat_requests() == []  # never sent to the small model
    rows = check_rows(chat, asked)
    assert [(r["model"], r["status"], r["fallback_from"]) for r in rows] == [("smollm2", "ok", "small")]
    assert rows[0]["prompt_chars"] == sum(len(m.content) for m in messages)  # nothing was trimmed
    assert asked.reply.answered_by == "smollm2"


def test_a_last_message_too_long_for_the_window_goes_to_the_context_fallback(make_chat, stub_server: StubServer):
    chat = make_chat(stub_model("small", stub_server.base_url, context_window=256, context_fallbacks=["smollm2"]))
    messages = [Message("user", "Summarise: " + "the cat sat on the mat and looked at the hat. " * 40)]
    asked = chat.ask("small", messages)
    assert asked.error is None and asked.chunks
    assert stub_server.chat_requests() == []
    rows = check_rows(chat, asked)
    assert [(r["model"], r["status"], r["fallback_from"], r["retry_reason"]) for r in rows] == [
        ("smollm2", "ok", "small", "context_length")
    ]


# -- the circuit breaker ------------------------------------------------------------------


def test_the_circuit_opens_skips_the_model_then_one_probe_closes_it(store_url, make_chat, stub_server: StubServer):
    # Long enough that the fallback's answer to the second request (a second or so on busy
    # cores) cannot outlast it before the third request is asked.
    cooldown_s = 4.0
    breaker = {"failures": 2, "cooldown_s": cooldown_s}
    model = stub_model("a", stub_server.base_url, retries=0, fallbacks=["smollm2"], breaker=breaker)
    chat = make_chat(model, store_url=store_url)
    stub_server.script = Script(status=503)
    for n in (1, 2):
        asked = chat.ask("a")
        assert asked.error is None and asked.reply.answered_by == "smollm2"
        assert [(r["model"], r["error_type"]) for r in check_rows(chat, asked)] == [
            ("a", "provider_error"),
            ("smollm2", None),
        ]
        assert len(stub_server.chat_requests()) == n
    state = chat.breaker("a")
    assert state["state"] == "open" and state["failures"] == 2
    assert state["until_us"] - state["opened_us"] == cooldown_s * 1e6
    assert time.time() * 1e6 < state["until_us"]

    asked = chat.ask("a")  # open: straight to the fallback, the stub never asked
    assert asked.error is None and asked.reply.answered_by == "smollm2"
    assert len(stub_server.chat_requests()) == 2
    rows = check_rows(chat, asked)
    assert [(r["model"], r["status"], r["error_type"], r["fallback_from"]) for r in rows] == [
        ("a", "error", "circuit_open", None),
        ("smollm2", "ok", None, "a"),
    ]
    assert rows[0]["latency_s"] is None  # a refusal: no model call was timed
    assert f"Stub A failed (circuit open) - answered by {SMOLLM2_NAME}" in asked.reply.notices

    # After the cool-down (and the breaker's 0.25 s read cache) one probe goes; healthy again, it closes.
    time.sleep(max(0.0, state["until_us"] / 1e6 + 0.4 - time.time()))
    stub_server.script = Script()
    asked = chat.ask("a")
    assert asked.error is None and asked.reply.answered_by == "a"
    assert [(r["model"], r["status"]) for r in check_rows(chat, asked)] == [("a", "ok")]
    assert len(stub_server.chat_requests()) == 3
    assert chat.breaker("a")["state"] == "closed"
    asked = chat.ask("a")
    assert asked.reply.answered_by == "a" and len(stub_server.chat_requests()) == 4


def test_a_failed_probe_opens_the_circuit_again(make_chat, stub_server: StubServer):
    cooldown_s = 1.0
    chat = make_chat(
        stub_model("a", stub_server.base_url, retries=0, breaker={"failures": 2, "cooldown_s": cooldown_s})
    )
    stub_server.script = Script(status=503)
    for _ in range(2):
        assert chat.ask("a").error.error_type == "provider_error"
    first = chat.breaker("a")
    assert first["state"] == "open"
    time.sleep(max(0.0, first["until_us"] / 1e6 + 0.4 - time.time()))
    probe = chat.ask("a")  # the probe goes, and fails
    assert probe.error.error_type == "provider_error" and len(stub_server.chat_requests()) == 3
    again = chat.breaker("a")
    assert again["state"] == "open" and again["opened_us"] > first["opened_us"]
    assert again["until_us"] - again["opened_us"] == cooldown_s * 1e6
    refused = chat.ask("a")
    assert refused.error.error_type == "circuit_open" and len(stub_server.chat_requests()) == 3


def test_after_the_cool_down_one_of_two_concurrent_requests_is_the_probe(store_url, make_chat, stub_server: StubServer):
    breaker = {"failures": 2, "cooldown_s": 1.0}
    chat = make_chat(stub_model("a", stub_server.base_url, retries=0, breaker=breaker), store_url=store_url)
    stub_server.script = Script(status=503)
    for _ in range(2):
        assert chat.ask("a").error.error_type == "provider_error"
    state = chat.breaker("a")
    assert state["state"] == "open"
    time.sleep(max(0.0, state["until_us"] / 1e6 + 0.4 - time.time()))
    stub_server.script = Script(first_byte_s=1.0)  # healthy, slow enough for both to be in flight
    results: list[Asked] = []
    threads = [threading.Thread(target=lambda: results.append(chat.ask("a"))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    outcomes = sorted(("ok" if r.error is None else r.error.error_type) for r in results)
    assert outcomes == ["circuit_open", "ok"]
    assert len(stub_server.chat_requests()) == 3  # only the probe reached the model
    assert chat.breaker("a")["state"] == "closed"


def test_invalid_requests_do_not_open_the_circuit(make_chat, stub_server: StubServer):
    chat = make_chat(stub_model("a", stub_server.base_url, breaker={"failures": 2}))
    stub_server.script = Script(status=401)
    for _ in range(3):
        assert chat.ask("a").error.error_type == "invalid_request"
    assert len(stub_server.chat_requests()) == 3  # each one sent: the key is the user's to fix
    state = chat.breaker("a")
    assert state is None or state["state"] == "closed"


def test_an_open_circuit_without_a_fallback_says_unavailable_and_when_to_try(make_chat, stub_server: StubServer):
    cooldown_s = 30.0
    chat = make_chat(
        stub_model("a", stub_server.base_url, retries=0, breaker={"failures": 2, "cooldown_s": cooldown_s})
    )
    stub_server.script = Script(status=503)
    for _ in range(2):
        assert chat.ask("a").error.error_type == "provider_error"
    asked = chat.ask("a")
    error = asked.error
    assert isinstance(error, ModelError) and type(error).__name__ == "ModelUnavailableError"
    assert error.error_type == "circuit_open"
    assert "unavailable" in error.message and "next try in" in error.message
    seconds = int(re.search(r"next try in (\d+) s", error.message).group(1))
    assert 0 < seconds <= cooldown_s
    assert len(stub_server.chat_requests()) == 2
    rows = check_rows(chat, asked)
    assert [(r["model"], r["status"], r["error_type"]) for r in rows] == [("a", "error", "circuit_open")]
    assert "next try in" in rows[0]["error_message"]


# -- chatwatch's own refusals, and the response cache ---------------------------------------

PRICED = {"provider": "openai", "model": "gpt-4o-mini"}  # priced by genai-prices' catalogue
USAGE = {"prompt_tokens": 600, "completion_tokens": 300, "total_tokens": 900}  # what the stub reports


def one_call_usd() -> Decimal:
    """genai-prices' own price of the stub's usage, asked directly."""
    usage = genai_prices.Usage(input_tokens=USAGE["prompt_tokens"], output_tokens=USAGE["completion_tokens"])
    return genai_prices.calc_price(usage, PRICED["model"], provider_id=PRICED["provider"]).total_price


def test_a_model_over_its_requests_per_minute_gets_a_rate_limited_record_and_no_call(
    make_chat, stub_server: StubServer
):
    chat = make_chat(stub_model("a", stub_server.base_url, rate_limit={"requests_per_minute": 2}))
    for _ in range(2):
        assert chat.ask("a").reply.answered_by == "a"
    asked = chat.ask("a")
    assert isinstance(asked.error, ModelError) and asked.error.error_type == "rate_limited"
    assert asked.error.retry_after_s is not None and 0 < asked.error.retry_after_s <= 60
    assert len(stub_server.chat_requests()) == 2 and chat.waits == []  # refused, not retried
    rows = check_rows(chat, asked)
    assert [(r["model"], r["status"], r["error_type"], r["latency_s"]) for r in rows] == [
        ("a", "error", "rate_limited", None)
    ]


def test_a_spent_fallback_budget_sends_the_request_to_its_fallback_model(make_chat, stub_server: StubServer):
    stub_server.script = Script(usage=USAGE)
    budget = {"name": "a-daily", "model": "a", "limit_usd": 0.0001, "action": "fallback", "fallback": "smollm2"}
    chat = make_chat(stub_model("a", stub_server.base_url, **PRICED), budgets=[budget])
    first = chat.ask("a")  # its worst case (a short prompt, 8 tokens out) fits; its real usage does not
    assert first.reply.answered_by == "a" and first.reply.record.cost_usd == one_call_usd() > Decimal("0.0001")
    asked = chat.ask("a")
    assert asked.error is None and asked.reply.answered_by == "smollm2"
    assert len(stub_server.chat_requests()) == 1
    rows = check_rows(chat, asked)
    assert [(r["model"], r["status"], r["error_type"], r["fallback_from"]) for r in rows] == [
        ("a", "error", "budget_exceeded", None),
        ("smollm2", "ok", None, "a"),
    ]
    assert "a-daily" in rows[0]["error_message"]
    assert f"Stub A failed (budget used up) - answered by {SMOLLM2_NAME}" in asked.reply.notices


def test_a_repeat_is_answered_from_the_cache_at_no_cost_and_saves_the_original_cost(
    store_url, make_chat, stub_server: StubServer
):
    stub_server.script = Script(usage=USAGE)
    model = stub_model("a", stub_server.base_url, cache=True, **PRICED)
    chat = make_chat(model, store_url=store_url, privacy={"capture_content": True})
    first = chat.ask("a")
    again = chat.ask("a")
    assert "".join(again.chunks) == "".join(first.chunks) == "Hello, world!"
    assert len(stub_server.chat_requests()) == 1  # the repeat never reached the provider
    (original,) = check_rows(chat, first)
    assert Decimal(original["cost_nanousd"]) / 10**9 == one_call_usd()
    rows = check_rows(chat, again)
    assert [(r["status"], r["cache_hit"], r["cost_nanousd"], r["price_source"]) for r in rows] == [
        ("ok", True, 0, "cache")
    ]
    assert rows[0]["saved_nanousd"] == original["cost_nanousd"]
    assert again.reply.record.saved_usd == one_call_usd()


def test_an_open_circuit_does_not_stop_a_stored_answer(make_chat, stub_server: StubServer):
    breaker = {"failures": 2, "cooldown_s": 60}
    chat = make_chat(
        stub_model("a", stub_server.base_url, cache=True, retries=0, breaker=breaker), privacy={"capture_content": True}
    )
    assert chat.ask("a").reply.answered_by == "a"  # now stored
    stub_server.script = Script(status=503)
    for i in range(2):
        assert chat.ask("a", [Message("user", f"Another question {i}")]).error.error_type == "provider_error"
    assert chat.breaker("a")["state"] == "open"
    asked = chat.ask("a")
    assert asked.error is None and "".join(asked.chunks) == "Hello, world!"
    assert len(stub_server.chat_requests()) == 3
    assert [(r["status"], r["cache_hit"]) for r in check_rows(chat, asked)] == [("ok", True)]
    assert chat.ask("a", [Message("user", "A new question")]).error.error_type == "circuit_open"
    assert len(stub_server.chat_requests()) == 3


# -- a real server killed in the middle of a stream ----------------------------------------


def test_a_llama_server_killed_mid_stream_is_recorded_and_a_restarted_one_answers(make_chat, tmp_path):
    port = free_port()
    log = tmp_path / "llama_server.log"
    base_url = f"http://127.0.0.1:{port}/v1"
    chat = make_chat(stub_model("srv", base_url, name="Server", timeout_s=60, fallbacks=["smollm2"]))
    proc = start_llama_server(port, log, n_ctx=1024)
    try:

        def kill() -> None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

        story = [Message("user", "Write a long story about a lighthouse keeper and a storm.")]
        asked = chat.ask(
            "srv", story, GenerationSettings(temperature=0.0, seed=1, max_tokens=200), cut_after_first=kill
        )
        assert proc.returncode == -signal.SIGKILL
        assert len(asked.chunks) >= 1 and isinstance(asked.error, ModelError)
        assert asked.error.error_type == "provider_error"
        rows = check_rows(chat, asked)  # one attempt: a chunk had reached the caller, so no retry nor fallback
        assert [(r["model"], r["status"], r["error_type"]) for r in rows] == [("srv", "error", "provider_error")]
        assert rows[0]["response_chars"] == len("".join(asked.chunks))

        proc = start_llama_server(port, log, n_ctx=1024)
        asked = chat.ask("srv")
        assert asked.error is None and asked.chunks and asked.reply.answered_by == "srv"
        assert check_rows(chat, asked)[-1]["status"] == "ok"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
