"""Bad input (#9 item 5): the same checks for every model kind, and conversations too long.

Every request check goes through `Runtime.chat` for both kinds, the real SmolLM2 in-process
and a real llama_cpp.server (tests/fixtures/servers.py): the error names its cause, exactly
one error record is kept (read back with SQL from the requests table), and a normal request
right after succeeds. The CLI cases run `chatwatch ask` as a user does, in a subprocess with a
config pointing at a temporary data directory. Expected token counts are computed here with
llama-cpp-python's own chat handler path (Llama.tokenize of the rendered template), not with
the fitting code under test.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from chatwatch import config
from chatwatch.models.contract import (
    ContextLengthError,
    GenerationSettings,
    InvalidRequestError,
    Message,
    ModelTimeoutError,
)
from chatwatch.models.local import LocalLlamaModel
from chatwatch.models.openai_compat import OpenAICompatModel
from chatwatch.models.validation import MAX_CONVERSATION_CHARS, check_request, fit_to_window
from chatwatch.runtime import Runtime
from chatwatch.store.schema import requests

KINDS = ("local", "server")
OK = GenerationSettings(max_tokens=4, seed=1, temperature=0.0)
HI = [Message("user", "Say hi.")]
MB_PROMPT = "word " * 200_000  # 1,000,000 characters


@pytest.fixture(scope="module")
def runtime(tmp_path_factory, llama_server):
    root = tmp_path_factory.mktemp("bad_input")
    raw = {
        "app": {"data_dir": str(root / "data"), "log_dir": str(root / "logs")},
        "models": [
            {"id": "local", "kind": "llama_cpp", "n_ctx": 1024},
            {"id": "local-refuse", "kind": "llama_cpp", "n_ctx": 1024, "context_overflow": "refuse"},
            # The fixture's server runs with --n_ctx 2048.
            {"id": "server", "kind": "openai", "base_url": llama_server, "timeout_s": 30, "context_window": 2048},
            # No retries: its failure on a 1 MB prompt is a cut stream, which the chain would
            # retry (a provider error with no status); the time measured is the provider's answer.
            {"id": "server-unknown-window", "kind": "openai", "base_url": llama_server, "timeout_s": 30, "retries": 0},
        ],
    }
    with Runtime(config.parse(raw), role="app") as rt:
        yield rt


def run(rt: Runtime, model: str, messages, settings=OK):
    """One request through Runtime.chat: (reply, the exception it ended with or None)."""
    reply = rt.chat(model, messages, settings, session_id="bad-input")
    error = None
    try:
        for _ in reply:
            pass
    except Exception as exc:
        error = exc
    finally:
        reply.close()
    return reply, error


def rows(rt: Runtime, model: str) -> list[dict]:
    with rt.store.engine.connect() as conn:
        result = conn.execute(
            sa.select(requests.c.status, requests.c.error_type, requests.c.error_message)
            .where(requests.c.model == model)
            .order_by(requests.c.started_us)
        )
        return [dict(r._mapping) for r in result]


def refused(rt: Runtime, model: str, messages, settings=OK, *, error_type="invalid_request", names: str) -> None:
    """The request fails with `error_type` naming `names`, leaves exactly one error record
    saying the same, and the model answers a normal request right after."""
    rt.monitor.drain()
    before = len(rows(rt, model))
    reply, error = run(rt, model, messages, settings)
    assert error is not None and error.error_type == error_type, error
    assert names in error.message
    rt.monitor.drain()
    new = rows(rt, model)[before:]
    assert len(new) == 1, new
    assert new[0]["status"] == "error" and new[0]["error_type"] == error_type and names in new[0]["error_message"]
    after, error = run(rt, model, HI)
    assert error is None and after.record.status == "ok" and after.text


# -- the request checks, both kinds ----------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("prompt", ["", "   ", " \n\t \r\n"])
def test_an_empty_or_blank_prompt_is_refused_before_any_model(runtime, kind, prompt):
    refused(runtime, kind, [Message("user", prompt)], names="the prompt is empty")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("char", "name"), [("\x07", "U+0007 (BELL)"), ("\x00", "U+0000 (NULL)"), ("\x1b", "U+001B"), ("\x85", "U+0085")]
)
def test_a_control_character_in_the_prompt_is_named_with_its_position(runtime, kind, char, name):
    prompt = "Say hi" + char + " please"  # position 7, counting from 1
    refused(runtime, kind, [Message("user", prompt)], names=f"the prompt contains a control character {name}")
    refused(runtime, kind, [Message("user", prompt)], names="at position 7")


@pytest.mark.parametrize("kind", KINDS)
def test_a_control_character_in_the_system_prompt_is_named(runtime, kind):
    messages = [Message("system", "Be\x0cterse."), Message("user", "Say hi.")]
    refused(runtime, kind, messages, names="the system prompt contains a control character U+000C at position 3")


@pytest.mark.parametrize("kind", KINDS)
def test_newlines_tabs_and_carriage_returns_are_text(runtime, kind):
    reply, error = run(runtime, kind, [Message("system", "Be\tterse.\r\n"), Message("user", "Say\thi.\r\n\n")])
    assert error is None and reply.record.status == "ok"


@pytest.mark.parametrize("kind", KINDS)
def test_a_byte_that_is_not_utf8_is_named(runtime, kind):
    # What Python makes of the bytes b"caf\xff" from sys.argv or a file name: a surrogate escape.
    prompt = b"caf\xff!".decode("utf-8", "surrogateescape")
    refused(runtime, kind, [Message("user", prompt)], names="not valid UTF-8: byte 0xFF at position 4")


@pytest.mark.parametrize("kind", KINDS)
def test_a_lone_surrogate_anywhere_in_the_history_is_refused(runtime, kind):
    messages = [Message("user", "Hi"), Message("assistant", "Hel\ud800lo"), Message("user", "Say hi.")]
    refused(runtime, kind, messages, names="message 2 (assistant) contains a lone surrogate U+D800 at position 4")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("changes", "names"),
    [
        ({"max_tokens": -5}, "max_tokens must be a whole number from 1 to 1,000,000 (got -5)"),
        ({"max_tokens": 0}, "max_tokens must be a whole number from 1 to 1,000,000 (got 0)"),
        ({"max_tokens": 10_000_000}, "(got 10000000)"),
        ({"max_tokens": 4.5}, "max_tokens must be a whole number"),
        ({"temperature": 50.0}, "temperature must be between 0 and 2 (got 50.0)"),
        ({"temperature": -1.0}, "temperature must be between 0 and 2 (got -1.0)"),
        ({"temperature": math.nan}, "temperature must be between 0 and 2 (got nan)"),
        ({"top_p": 2.0}, "top_p must be above 0 and at most 1 (got 2.0)"),
        ({"top_p": -1.0}, "top_p must be above 0 and at most 1 (got -1.0)"),
        ({"top_p": 0.0}, "top_p must be above 0 and at most 1 (got 0.0)"),
        ({"seed": "abc"}, "seed must be a whole number from 0 to 4294967295 (got 'abc')"),
        ({"seed": -1}, "seed must be a whole number from 0 to 4294967295 (got -1)"),
        ({"stop": ("",)}, "stop sequence 1 must be a non-empty string"),
    ],
)
def test_settings_out_of_range_are_named(runtime, kind, changes, names):
    refused(runtime, kind, HI, OK.with_(**changes), names=names)


@pytest.mark.parametrize("kind", KINDS)
def test_a_conversation_must_end_with_a_user_message(runtime, kind):
    refused(runtime, kind, [Message("user", "Hi"), Message("assistant", "Hello")], names="must end with a user message")


def test_a_conversation_over_the_hard_cap_is_refused_at_once():
    # Checked without a model: the cap is a property of the request alone.
    big = [Message("user", "x" * (MAX_CONVERSATION_CHARS // 2)), Message("assistant", "y" * MAX_CONVERSATION_CHARS)]
    t0 = time.perf_counter()
    with pytest.raises(InvalidRequestError, match="over 4,000,000 characters"):
        check_request([*big, Message("user", "Hi")], OK)
    assert time.perf_counter() - t0 < 0.5


# -- a 1 MB prompt ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["local", "server"])
def test_a_1mb_prompt_is_refused_within_two_seconds(runtime, kind):
    run(runtime, kind, HI)  # the model loaded: the time measured is the refusal's
    runtime.monitor.drain()
    before = len(rows(runtime, kind))
    t0 = time.perf_counter()
    reply, error = run(runtime, kind, [Message("user", MB_PROMPT)])
    elapsed = time.perf_counter() - t0
    assert elapsed < 2.0, elapsed
    assert isinstance(error, ContextLengthError) and error.error_type == "context_length"
    assert f"has a context window of {runtime.settings.model(kind).window_tokens:,} tokens" in error.message
    runtime.monitor.drain()
    assert [r["error_type"] for r in rows(runtime, kind)[before:]] == ["context_length"]
    after, error = run(runtime, kind, HI)
    assert error is None and after.record.status == "ok"


def test_a_1mb_prompt_to_a_model_of_unknown_window_gets_the_providers_answer_within_two_seconds(runtime):
    # With no context_window configured chatwatch cannot fit; the server has the final word.
    run(runtime, "server-unknown-window", HI)
    t0 = time.perf_counter()
    _, error = run(runtime, "server-unknown-window", [Message("user", MB_PROMPT)])
    assert time.perf_counter() - t0 < 2.0
    # llama_cpp.server fails such a stream after its 200 (no error body): what it says is its own.
    assert error is not None and error.error_type in ("context_length", "invalid_request", "provider_error"), error


# -- conversations over the window -----------------------------------------------------


def long_history(turns: int = 30) -> list[Message]:
    history = [Message("system", "You are terse.")]
    for i in range(turns):
        history += [Message("user", f"Question {i}: " + "tell me more " * 20), Message("assistant", "Sure. " * 20)]
    return [*history, Message("user", "Last question?")]


def exact_prompt_tokens(messages) -> int:
    """The prompt's tokens as llama_cpp.server builds it: the GGUF's template rendered by
    token_estimate.gguf_chat_template, tokenized by a Llama of its own (another path than the
    local model's counting, which the fitting uses)."""
    import llama_cpp

    from chatwatch.models.token_estimate import gguf_chat_template
    from tests.fixtures.servers import smollm2_path

    render = gguf_chat_template(smollm2_path())
    llm = llama_cpp.Llama(model_path=str(smollm2_path()), vocab_only=True, verbose=False)
    try:
        return len(llm.tokenize(render(messages).encode(), add_bos=False, special=True))
    finally:
        llm.close()


def test_a_long_conversation_is_trimmed_oldest_first_keeping_the_system_prompt(runtime):
    history = long_history()
    reply, error = run(runtime, "local", history, OK.with_(max_tokens=64))
    assert error is None and reply.record.status == "ok"
    notices = getattr(reply, "notices", None) or reply.result.notices
    assert any("trimmed the" in n and "oldest messages" in n and "system prompt was kept" in n for n in notices)
    # What the model evaluated: the system prompt, then the newest turns, starting with a user turn.
    config_ = runtime.settings.model("local")
    fitted = fit_to_window(history, OK.with_(max_tokens=64), config_, runtime.model("local")[0])
    assert fitted.messages[0] == history[0] and fitted.messages[-1] == history[-1]
    assert fitted.messages[1].role == "user"
    kept = fitted.messages[1:]
    assert list(kept) == history[len(history) - len(kept) :]  # a suffix: the oldest went first
    assert fitted.dropped_turns == len(history) - len(fitted.messages) > 0
    # Counted exactly: the same number as llama.cpp's own prompt, which the record reports.
    assert fitted.prompt_tokens == exact_prompt_tokens(fitted.messages) == reply.record.input_tokens
    assert fitted.prompt_tokens + 64 <= 1024
    # and as much as fits was kept: one more turn would not have fit.
    one_more = (history[0], *history[len(history) - len(kept) - 2 :])
    assert exact_prompt_tokens(one_more) + 64 > 1024


def test_a_long_conversation_is_refused_when_context_overflow_is_refuse(runtime):
    refused(
        runtime,
        "local-refuse",
        long_history(),
        error_type="context_length",
        names="context_overflow = 'refuse'",
    )


def test_the_fitting_is_the_same_for_an_http_model_with_an_estimate(runtime, llama_server):
    model, cfg = runtime.model("server")
    assert isinstance(model, OpenAICompatModel)
    history = long_history(60)
    fitted = fit_to_window(history, OK.with_(max_tokens=128), cfg, model)
    assert fitted.dropped_turns > 0 and fitted.notice and "'server' (2,048 tokens)" in fitted.notice
    assert fitted.messages[0].role == "system" and fitted.messages[-1] == history[-1]
    # The estimate errs on the safe side of the real count (this server runs SmolLM2).
    assert exact_prompt_tokens(fitted.messages) + 128 <= 2048 <= fitted.prompt_tokens + 128 + 600
    # The server takes the fitted conversation.
    reply, error = run(runtime, "server", list(fitted.messages), OK)
    assert error is None and reply.record.status == "ok"
    refuse = cfg.model_copy(update={"context_overflow": "refuse"})
    with pytest.raises(ContextLengthError, match="context_overflow = 'refuse'"):
        fit_to_window(history, OK, refuse, model)


def test_a_window_that_fits_returns_the_messages_unchanged(runtime):
    model, cfg = runtime.model("local")
    fitted = fit_to_window(HI, OK, cfg, model)
    assert fitted.messages == tuple(HI) and fitted.dropped_turns == 0 and fitted.notice is None
    assert fitted.prompt_tokens == exact_prompt_tokens(HI)
    unknown_model, unknown = runtime.model("server-unknown-window")
    assert fit_to_window(long_history(), OK, unknown, unknown_model).messages == tuple(long_history())


def test_max_tokens_as_large_as_the_window_is_named(runtime):
    model, cfg = runtime.model("local")
    with pytest.raises(ContextLengthError, match="max_tokens = 1,024 leaves no room for the prompt"):
        fit_to_window(HI, OK.with_(max_tokens=1024), cfg, model)


def test_a_1mb_conversation_is_fitted_within_two_seconds(runtime):
    # Many turns of 1 MB in all: the work stays bounded by the window, not the conversation.
    model, cfg = runtime.model("local")
    turns = [Message("user" if i % 2 == 0 else "assistant", "chat " * 400) for i in range(500)]
    history = [Message("system", "Be brief."), *turns, Message("user", "Last?")]
    assert sum(len(m.content) for m in history) >= 1_000_000
    t0 = time.perf_counter()
    fitted = fit_to_window(history, OK, cfg, model)
    assert time.perf_counter() - t0 < 2.0
    assert fitted.prompt_tokens + OK.max_tokens <= 1024 and fitted.dropped_turns > 490


# -- the local model's queue and its deadline -------------------------------------------


def test_a_request_gives_up_in_the_local_models_queue_at_its_deadline(runtime):
    model = LocalLlamaModel(runtime.settings.model("local"))
    try:
        with pytest.raises(ModelTimeoutError, match="in its queue"):
            for _ in model.chat(HI, OK, deadline=time.monotonic() - 0.1):
                pass
        # and the model is free for the next request
        assert "".join(model.chat(HI, OK, deadline=time.monotonic() + 60))
    finally:
        model.close()


# -- chatwatch ask ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_config(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ask")
    conf = root / "c.toml"
    conf.write_text(f'[app]\ndata_dir = "{root / "data"}"\nlog_dir = "{root / "logs"}"\n')
    return conf


def ask(conf: Path, *args: str | bytes, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("chatwatch")
    return subprocess.run([exe, "ask", "--config", conf, *args], input=stdin, capture_output=True, timeout=120)


def one_line_error(out: subprocess.CompletedProcess, *, cause: str) -> None:
    err = out.stderr.decode()
    assert out.returncode == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("chatwatch: error ("), err
    assert cause in err, err


@pytest.mark.parametrize(
    ("args", "cause"),
    [
        (["   "], "the prompt is empty"),
        (["\t\n"], "the prompt is empty"),
        (["Say\x07hi"], "control character U+0007 (BELL) at position 4"),
        ([b"caf\xc3(", "--json"], "not valid UTF-8: byte 0xC3 at position 4"),
        (["--system", "a\x1bb", "Hi"], "the system prompt contains a control character U+001B (ESCAPE) at position 2"),
        (["--max-tokens", "-5", "Hi"], "max_tokens must be a whole number from 1 to 1,000,000 (got -5)"),
        (["--max-tokens", "0", "Hi"], "(got 0)"),
        (["--max-tokens", "10000000", "Hi"], "(got 10000000)"),
        (["--max-tokens", "99999999999999999999999", "Hi"], "max_tokens must be a whole number"),
        (["--max-tokens", "ten", "Hi"], "--max-tokens must be a whole number (got 'ten')"),
        (["--temperature", "50", "Hi"], "temperature must be between 0 and 2 (got 50.0)"),
        (["--temperature", "-1", "Hi"], "(got -1.0)"),
        (["--temperature", "nan", "Hi"], "(got nan)"),
        (["--temperature", "hot", "Hi"], "--temperature must be a number (got 'hot')"),
        (["--top-p", "2", "Hi"], "top_p must be above 0 and at most 1 (got 2.0)"),
        (["--top-p", "-1", "Hi"], "(got -1.0)"),
        (["--seed", "abc", "Hi"], "--seed must be a whole number (got 'abc')"),
        (["--seed", "1.5", "Hi"], "--seed must be a whole number (got '1.5')"),
    ],
)
def test_ask_refuses_bad_input_in_one_line_with_exit_2(cli_config, args, cause):
    one_line_error(ask(cli_config, *args), cause=cause)


def test_ask_records_a_refused_prompt_and_prints_it_as_json(cli_config):
    out = ask(cli_config, "--json", "  ")
    one_line_error(out, cause="empty")
    data = json.loads(out.stdout)
    assert data["status"] == "error" and data["error_type"] == "invalid_request"
    assert [a["error_type"] for a in data["attempts"]] == ["invalid_request"] and data["answered_by"] is None


def test_ask_reads_the_prompt_from_stdin(cli_config):
    out = ask(cli_config, "--json", "--max-tokens", "4", "--seed", "1", "-", stdin="Say hi, señor.\n".encode())
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["status"] == "ok" and data["prompt_chars"] == len("Say hi, señor.")
    assert data["answered_by"] == "smollm2" and len(data["attempts"]) == 1


def test_ask_names_a_byte_of_stdin_that_is_not_utf8(cli_config):
    one_line_error(ask(cli_config, "-", stdin=b"Hello \xff there"), cause="not valid UTF-8: byte 0xFF at byte offset 6")


def test_ask_refuses_a_1mb_prompt_from_stdin_within_two_seconds_of_starting(cli_config):
    warm = ask(cli_config, "--max-tokens", "1", "Hi")  # the first run pays for the imports' caches
    assert warm.returncode == 0, warm.stderr
    t0 = time.perf_counter()
    out = ask(cli_config, "-", stdin=MB_PROMPT.encode())
    elapsed = time.perf_counter() - t0
    one_line_error(out, cause="context window of 4,096 tokens")
    # The whole process: start-up, model load, refusal (the refusal alone is measured above).
    assert elapsed < 4.0, elapsed


def test_ask_refuses_a_system_prompt_too_long_for_the_window(cli_config):
    # Nothing can be trimmed (the system prompt and the prompt are always kept): the error names the window.
    out = ask(cli_config, "--system", "rules " * 5000, "Hi")
    one_line_error(out, cause="the system prompt with the last message is")


def test_a_prompt_that_is_not_utf8_with_content_capture_on_does_not_block_the_store(tmp_path):
    # The record of a refused request keeps the prompt when capture is on: a surrogate in it
    # must not make the record unstorable and stall every later one.
    raw = {
        "app": {"data_dir": str(tmp_path / "data"), "log_dir": str(tmp_path / "logs")},
        "privacy": {"capture_content": True},
        "models": [{"id": "local", "kind": "llama_cpp", "n_ctx": 1024}],
    }
    with Runtime(config.parse(raw), role="app") as rt:
        bad = b"caf\xe9".decode("utf-8", "surrogateescape")
        reply, error = run(rt, "local", [Message("user", bad)])
        assert error is not None and "byte 0xE9 at position 4" in error.message
        after, error = run(rt, "local", HI)
        assert error is None and after.store_error is None
        rt.monitor.drain()
        assert [(r["status"], r["error_type"]) for r in rows(rt, "local")] == [
            ("error", "invalid_request"),
            ("ok", None),
        ]
