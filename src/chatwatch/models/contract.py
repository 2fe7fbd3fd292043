"""The one contract every chat model implements.

A model streams text chunks for a conversation and ends with a `StreamResult`: the full
text, why it finished, and exact token counts with how they were obtained. Failures raise
a `ModelError` of a small taxonomy. This module knows nothing of monitoring or the UI.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]
TokenSource = Literal["reported", "counted", "estimated"]
ErrorType = Literal[
    "connection",
    "timeout",
    "rate_limit",
    "context_length",
    "invalid_request",
    "provider_error",
    # chatwatch's own refusals, before any model call (store/record.py LOCAL_REFUSALS)
    "circuit_open",
    "budget_exceeded",
    "rate_limited",
]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class GenerationSettings:
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 512
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def with_(self, **changes) -> GenerationSettings:
        return replace(self, **changes)


@dataclass(frozen=True)
class Usage:
    input_tokens: int | None
    output_tokens: int | None
    source: TokenSource
    cache_read_tokens: int | None = None
    reasoning_tokens: int | None = None


@dataclass(frozen=True)
class StreamResult:
    text: str
    finish_reason: str | None
    usage: Usage
    response_model: str | None = None
    notices: tuple[str, ...] = ()


class ModelError(Exception):
    """A failed model call. `error_type` is one of the taxonomy; the message is safe to show
    (the provider's words, secrets removed)."""

    error_type: ErrorType = "provider_error"

    def __init__(
        self,
        message: str,
        *,
        model_id: str | None = None,
        provider: str | None = None,
        status_code: int | None = None,
        retry_after_s: float | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.model_id = model_id
        self.provider = provider
        # The provider's HTTP status, if any, and how long it asked callers to wait before
        # trying again (Retry-After, or a rate-limit reset header), for the retry policy.
        self.status_code = status_code
        self.retry_after_s = retry_after_s


class ModelConnectionError(ModelError):
    error_type = "connection"


class ModelTimeoutError(ModelError):
    error_type = "timeout"


class RateLimitError(ModelError):
    error_type = "rate_limit"


class ContextLengthError(ModelError):
    error_type = "context_length"


class InvalidRequestError(ModelError):
    error_type = "invalid_request"


class ProviderError(ModelError):
    error_type = "provider_error"


class ModelUnavailableError(ModelError):
    """chatwatch did not call the model: its circuit is open (resilience/breaker.py), and
    `retry_after_s` says when a probe may go."""

    error_type = "circuit_open"


@dataclass
class StreamProgress:
    """What a stream has done so far; read by a monitor while and after it runs."""

    queued_at: float = field(default_factory=time.perf_counter)
    started_at: float | None = None  # left the queue: the model began working on this request
    # The provider's reply was complete; work after it (counting tokens through the server's
    # tokenizer) is bookkeeping, not the model's latency. None: the end of the stream.
    finished_at: float | None = None
    input_tokens: int | None = None
    output_tokens: int = 0  # tokens produced so far (exact for local models, chunks otherwise)
    token_source: TokenSource = "counted"
    response_model: str | None = None
    notices: list[str] = field(default_factory=list)

    def mark_started(self) -> None:
        if self.started_at is None:
            self.started_at = time.perf_counter()

    def mark_finished(self) -> None:
        if self.finished_at is None:
            self.finished_at = time.perf_counter()

    @property
    def queue_s(self) -> float:
        end = self.started_at if self.started_at is not None else time.perf_counter()
        return max(0.0, end - self.queued_at)


WaitCallback = Callable[[int], None]
"""Called with the caller's place in line (1 = next) while it waits for a busy model."""


class ChatStream(Iterator[str]):
    """Iterates text chunks; after exhaustion `result` holds the `StreamResult`.

    `close()` ends generation early (the model stops sampling and frees its turn);
    `progress` tells what was produced so far, so a cancelled stream can still be recorded.
    """

    def __init__(self, chunks: Generator[str, None, StreamResult], progress: StreamProgress):
        self._chunks = chunks
        self.progress = progress
        self.result: StreamResult | None = None
        self.closed = False

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> str:
        if self.result is not None or self.closed:
            raise StopIteration
        try:
            return next(self._chunks)
        except StopIteration as stop:
            self.result = stop.value
            raise StopIteration from None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._chunks.close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class LoadEvent:
    """One model load (or failed load), for the model_loads table."""

    model_id: str
    path: str | None
    load_s: float
    file_bytes: int | None
    rss_before_bytes: int
    rss_after_bytes: int
    ok: bool
    error_message: str | None = None


@dataclass(frozen=True)
class Availability:
    ok: bool
    detail: str


@runtime_checkable
class ChatModel(Protocol):
    id: str
    provider: str
    provider_model: str

    def chat(
        self,
        messages: Sequence[Message],
        settings: GenerationSettings,
        *,
        stream: bool = True,
        on_wait: WaitCallback | None = None,
        deadline: float | None = None,
    ) -> ChatStream:
        """Start a reply. Nothing runs until the first `next()`. With `stream=False` the
        provider is asked for the whole reply at once and it arrives as one chunk.
        `deadline` (a `time.monotonic()` value) is when the whole request, retries included,
        must be over; a model gives up then with ModelTimeoutError, as at its own timeout."""
        ...

    def check(self) -> Availability:
        """Whether the model can be loaded or reached, without generating."""
        ...

    def close(self) -> None:
        """Free what the model holds (weights, connections). Idempotent; the registry calls
        it when the model's config entry changes or goes away, and on shutdown."""
        ...


def complete(
    model: ChatModel, messages: Sequence[Message], settings: GenerationSettings, *, stream: bool = False
) -> StreamResult:
    """Run a reply to its end and return the result."""
    with model.chat(messages, settings, stream=stream) as chunks:
        for _ in chunks:
            pass
        assert chunks.result is not None
        return chunks.result
