"""Chat models behind the OpenAI-compatible HTTP API: OpenAI, Ollama, llama.cpp's server,
llama_cpp.server, vLLM and the like, through the official `openai` SDK.

Two decisions are chatwatch's, not the SDK's: retries (the SDK's are off) and the request
deadline. `timeout_s` bounds the whole request; the SDK only bounds each read, so a server
trickling tokens would never time out. Each request therefore runs on a worker thread that
hands chunks over a queue; the caller waits on that queue only until the deadline and then
raises `ModelTimeoutError`, cutting the worker's socket so a stalled read ends too.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any

import openai

try:  # openai>=3 is built on httpx2; older releases on httpx
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the installed SDK
    import httpx  # type: ignore[no-redef]

from chatwatch.config import ModelConfig
from chatwatch.models.contract import (
    Availability,
    ChatStream,
    ContextLengthError,
    GenerationSettings,
    InvalidRequestError,
    Message,
    ModelConnectionError,
    ModelError,
    ModelTimeoutError,
    ProviderError,
    RateLimitError,
    StreamProgress,
    StreamResult,
    Usage,
    WaitCallback,
)
from chatwatch.models.deadline import DeadlineCall, Expired
from chatwatch.models.token_estimate import ServerTokenizer, estimate_prompt_tokens, estimate_tokens
from chatwatch.privacy import get_api_key, scrub

NO_KEY = "not-needed"  # local servers want no key, but the SDK insists on one
CONNECT_TIMEOUT_S = 10.0
CHECK_TIMEOUT_S = 5.0
TOKENIZE_TIMEOUT_S = 2.0
_MAX_PROVIDER_MESSAGE = 500

_CONTEXT_RE = re.compile(
    r"context[ _](length|window|size)|maximum context|exceeds? (the )?(available )?context|too many tokens",
    re.IGNORECASE,
)


class OpenAICompatModel:
    """A `ChatModel` served over HTTP by an OpenAI-compatible server."""

    def __init__(self, config: ModelConfig):
        if config.kind != "openai" or not config.base_url:
            raise ValueError(f"model {config.id!r} is not an OpenAI-compatible model")
        self.config = config
        self.id = config.id
        self.provider = config.provider_name
        self.provider_model = config.provider_model
        self.base_url = config.base_url.rstrip("/")
        self.timeout_s = config.timeout_s
        self._lock = threading.Lock()
        self._client: openai.OpenAI | None = None
        self._client_key_digest: str | None = None  # notices a changed key; never the key itself
        self._tokenizer: ServerTokenizer | None = None
        # Requests using each client; a replaced or closed client is closed by its last one.
        self._users: dict[openai.OpenAI, int] = {}
        self._retired: set[openai.OpenAI] = set()

    def __repr__(self) -> str:
        return f"OpenAICompatModel(id={self.id!r}, base_url={self.base_url!r}, model={self.provider_model!r})"

    # -- the contract ---------------------------------------------------------------------

    def chat(
        self,
        messages: Sequence[Message],
        settings: GenerationSettings,
        *,
        stream: bool = True,
        on_wait: WaitCallback | None = None,  # unused: a server queues requests on its side, unseen
        deadline: float | None = None,
    ) -> ChatStream:
        progress = StreamProgress()
        messages = list(messages)
        run = self._streamed if stream else self._whole
        self._request_deadline = deadline
        return ChatStream(run(messages, settings, progress), progress)

    def check(self) -> Availability:
        """GET {base_url}/models with a short timeout."""
        try:
            client = self._acquire()
        except ModelError as exc:
            return Availability(False, exc.message)
        try:
            page = client.with_options(timeout=min(CHECK_TIMEOUT_S, self.timeout_s)).models.list()
            ids = [m.id for m in page.data]
        except Exception as exc:
            return Availability(False, self._map_error(exc, midstream=False).message)
        finally:
            self._release(client)
        if not ids:
            return Availability(True, f"{self.base_url} answers (it lists no models)")
        listed = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        return Availability(True, f"{self.base_url} answers; it serves {listed}")

    # -- requests -------------------------------------------------------------------------

    def _streamed(
        self, messages: list[Message], settings: GenerationSettings, progress: StreamProgress
    ) -> Generator[str, None, StreamResult]:
        client = self._acquire()
        try:
            return (yield from self._streamed_on(client, messages, settings, progress))
        finally:
            self._release(client)

    def _streamed_on(
        self, client: openai.OpenAI, messages: list[Message], settings: GenerationSettings, progress: StreamProgress
    ) -> Generator[str, None, StreamResult]:
        kwargs = self._request_args(messages, settings)
        progress.token_source = "estimated"  # chunk counts until the real count arrives
        progress.mark_started()
        deadline = self._deadline()
        call = DeadlineCall(lambda c: _pump_stream(client, kwargs, c), name=f"chatwatch-{self.id}")
        parts: list[str] = []
        finish: str | None = None
        usage: Any = None
        opened = False
        try:
            while True:
                kind, value = call.next_event(deadline)
                if kind == "open":
                    opened = True
                elif kind == "chunk":
                    if getattr(value, "model", None) and progress.response_model is None:
                        progress.response_model = value.model
                    usage = getattr(value, "usage", None) or usage
                    for choice in value.choices or ():
                        if (choice.index or 0) != 0:  # we ask for one choice; lenient servers omit index
                            continue
                        finish = choice.finish_reason or finish
                        text = choice.delta.content if choice.delta is not None else None
                        if text:  # servers send role-only and empty chunks; skip them
                            parts.append(text)
                            progress.output_tokens += 1
                            yield text
                elif kind == "error":
                    raise self._map_error(value, midstream=opened, chunks=len(parts))
                else:
                    break
        except Expired:
            raise self._timeout_error(len(parts)) from None
        finally:
            call.cancel()  # a no-op after a clean end; otherwise frees the server at once
        if finish is None:
            raise self._early_end(len(parts), dropped=False)
        progress.mark_finished()
        text = "".join(parts)
        result_usage = self._usage(usage, messages, text)
        return self._finish(text, finish, result_usage, progress)

    def _whole(
        self, messages: list[Message], settings: GenerationSettings, progress: StreamProgress
    ) -> Generator[str, None, StreamResult]:
        client = self._acquire()
        try:
            return (yield from self._whole_on(client, messages, settings, progress))
        finally:
            self._release(client)

    def _whole_on(
        self, client: openai.OpenAI, messages: list[Message], settings: GenerationSettings, progress: StreamProgress
    ) -> Generator[str, None, StreamResult]:
        kwargs = self._request_args(messages, settings)
        progress.mark_started()
        deadline = self._deadline()
        call = DeadlineCall(
            lambda c: c.put("reply", client.chat.completions.create(**kwargs)), name=f"chatwatch-{self.id}"
        )
        try:
            kind, value = call.next_event(deadline)
        except Expired:
            raise self._timeout_error(0) from None
        finally:
            call.cancel()
        if kind == "error":
            raise self._map_error(value, midstream=False)
        if not hasattr(value, "choices"):  # the SDK hands back raw text for a non-JSON body
            raise self._error(ProviderError, f"{self._where()} sent a reply that is not a chat completion")
        choice = value.choices[0] if value.choices else None
        text = (choice.message.content if choice is not None and choice.message is not None else None) or ""
        finish = choice.finish_reason if choice is not None else None
        progress.response_model = getattr(value, "model", None)
        progress.mark_finished()
        if text:  # the reader gets the reply before any token counting
            yield text
        result_usage = self._usage(getattr(value, "usage", None), messages, text)
        return self._finish(text, finish, result_usage, progress)

    def _finish(self, text: str, finish: str | None, usage: Usage, progress: StreamProgress) -> StreamResult:
        progress.input_tokens = usage.input_tokens
        if usage.output_tokens is not None:
            progress.output_tokens = usage.output_tokens
        progress.token_source = usage.source
        return StreamResult(
            text=text,
            finish_reason=finish,
            usage=usage,
            response_model=progress.response_model,
            notices=tuple(progress.notices),
        )

    def _request_args(self, messages: Sequence[Message], settings: GenerationSettings) -> dict[str, Any]:
        # OpenAI's own API wants max_completion_tokens (reasoning models refuse max_tokens);
        # most other servers only know max_tokens.
        limit_key = "max_completion_tokens" if "api.openai.com" in self.base_url else "max_tokens"
        args: dict[str, Any] = {
            "model": self.provider_model,
            "messages": [m.as_dict() for m in messages],
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            limit_key: settings.max_tokens,
        }
        if settings.seed is not None:
            args["seed"] = settings.seed
        if settings.stop:
            args["stop"] = list(settings.stop)
        return args

    # -- tokens ---------------------------------------------------------------------------

    def _usage(self, reported: Any, messages: Sequence[Message], text: str) -> Usage:
        if reported is not None and getattr(reported, "completion_tokens", None) is not None:
            prompt_details = getattr(reported, "prompt_tokens_details", None)
            completion_details = getattr(reported, "completion_tokens_details", None)
            return Usage(
                input_tokens=getattr(reported, "prompt_tokens", None),
                output_tokens=reported.completion_tokens,
                source="reported",
                cache_read_tokens=getattr(prompt_details, "cached_tokens", None),
                reasoning_tokens=getattr(completion_details, "reasoning_tokens", None),
            )
        tokenizer = self._server_tokenizer()
        counted = tokenizer.count(text)
        if counted is not None:
            # The server's tokenizer counts the reply exactly, and the prompt as rendered by
            # the model's chat template where that can be read (else by ChatML: an estimate).
            # The record has one source for both: the weaker of the two.
            prompt = tokenizer.count_prompt(messages)
            if prompt is None:
                return Usage(input_tokens=estimate_prompt_tokens(messages), output_tokens=counted, source="estimated")
            input_tokens, exact = prompt
            return Usage(input_tokens=input_tokens, output_tokens=counted, source="counted" if exact else "estimated")
        return Usage(
            input_tokens=estimate_prompt_tokens(messages), output_tokens=estimate_tokens(text), source="estimated"
        )

    def _server_tokenizer(self) -> ServerTokenizer:
        with self._lock:
            if self._tokenizer is None:
                root = self.base_url.removesuffix("/v1")  # tokenizer endpoints sit at the root
                key = self._client.api_key if self._client is not None else None
                headers = {"Authorization": f"Bearer {key}"} if key and key != NO_KEY else {}
                self._tokenizer = ServerTokenizer(root, self.provider_model, headers, TOKENIZE_TIMEOUT_S)
            return self._tokenizer

    # -- client and key -------------------------------------------------------------------

    def _client_or_raise(self) -> openai.OpenAI:
        env = self.config.api_key_env
        key = get_api_key(env) if env else NO_KEY
        if key is None:
            raise InvalidRequestError(
                f"Model '{self.id}' at {self.base_url} needs an API key: set the environment variable "
                f"{env} or add {env} to .streamlit/secrets.toml",
                model_id=self.id,
                provider=self.provider,
            )
        with self._lock:
            digest = hashlib.sha256(key.encode()).hexdigest()
            if self._client is None or self._client_key_digest != digest:
                if self._client is not None:
                    self._retire(self._client)
                self._client = openai.OpenAI(
                    base_url=self.base_url,
                    api_key=key,
                    max_retries=0,  # retrying is chatwatch's decision, not the SDK's
                    timeout=httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, CONNECT_TIMEOUT_S)),
                )
                self._client_key_digest = digest
                self._tokenizer = None  # its auth header follows the key
            return self._client

    def _acquire(self) -> openai.OpenAI:
        client = self._client_or_raise()
        with self._lock:
            self._users[client] = self._users.get(client, 0) + 1
        return client

    def _release(self, client: openai.OpenAI) -> None:
        with self._lock:
            left = self._users[client] = self._users[client] - 1
            if left:
                return
            del self._users[client]
            if client not in self._retired:
                return
            self._retired.discard(client)
        client.close()

    def _retire(self, client: openai.OpenAI) -> None:
        """Close `client` now, or when its last request ends (called with the lock held)."""
        if self._users.get(client):
            self._retired.add(client)
        else:
            client.close()

    def close(self) -> None:
        """Close the HTTP client and its connection pool. A reply in progress keeps its
        client until it ends (then that client closes); a later request opens a new one.
        Idempotent."""
        with self._lock:
            client, self._client, self._client_key_digest = self._client, None, None
            self._tokenizer = None
            if client is not None:
                self._retire(client)

    # -- errors ---------------------------------------------------------------------------

    def _deadline(self) -> float:
        """The earlier of the request's own deadline (retries included) and now + timeout_s."""
        own = time.monotonic() + self.timeout_s
        given = getattr(self, "_request_deadline", None)
        return own if given is None else min(own, given)

    def _error(
        self, cls: type[ModelError], message: str, *, status: int | None = None, retry_after_s: float | None = None
    ) -> ModelError:
        return cls(message, model_id=self.id, provider=self.provider, status_code=status, retry_after_s=retry_after_s)

    def _where(self) -> str:
        return f"model '{self.id}' at {self.base_url}"

    def _timeout_error(self, chunks: int) -> ModelError:
        got = f" (after {chunks} chunks)" if chunks else ""
        return self._error(
            ModelTimeoutError, f"Timed out: {self._where()} did not finish within {self.timeout_s:g} s{got}"
        )

    def _early_end(self, chunks: int, *, dropped: bool, reason: str = "") -> ModelError:
        how = "the connection dropped" if dropped else "no finish_reason was sent"
        if chunks == 0:
            # llama_cpp.server, for one, answers 200 and then sends nothing when the prompt
            # does not fit its context window.
            how += "; nothing was received, the server may have failed on the prompt (too long?)"
        else:
            how += f" after {chunks} chunks"
        detail = f": {reason}" if reason else ""
        return self._error(ProviderError, f"The reply from {self._where()} stream ended early ({how}){detail}")

    def _map_error(self, exc: BaseException, *, midstream: bool, chunks: int = 0) -> ModelError:
        """The taxonomy error for an SDK/transport failure; the provider's words kept, scrubbed."""
        where = self._where()
        if isinstance(exc, openai.APIStatusError):
            headers = getattr(getattr(exc, "response", None), "headers", None) or {}
            return self._status_error(exc.status_code, _provider_message(exc), retry_after_from_headers(headers))
        if isinstance(exc, openai.APITimeoutError):
            idle = f"no data for {self.timeout_s:g} s" if midstream else f"no answer within {self.timeout_s:g} s"
            return self._error(ModelTimeoutError, f"Timed out: {where} sent {idle}")
        if midstream and isinstance(exc, (openai.APIConnectionError, httpx.TransportError)):
            return self._early_end(chunks, dropped=True, reason=_transport_reason(exc))
        if isinstance(exc, openai.APIConnectionError):
            return self._error(ModelConnectionError, f"Could not reach {where}: {_transport_reason(exc)}")
        if isinstance(exc, openai.APIError):  # an error event inside a stream, a malformed reply
            message = _provider_message(exc)
            if _CONTEXT_RE.search(message):
                return self._error(ContextLengthError, f"The conversation is too long for {where}: {message}")
            return self._error(ProviderError, f"{where} failed: {message}")
        detail = scrub(str(exc))[:_MAX_PROVIDER_MESSAGE]
        return self._error(ProviderError, f"{where} failed: {type(exc).__name__}: {detail}")

    def _status_error(self, status: int, message: str, retry_after_s: float | None = None) -> ModelError:
        where = self._where()
        said = f": {message}" if message else ""
        error = self._status_error_class(status, message, where, said)
        error.status_code = status
        error.retry_after_s = retry_after_s
        return error

    def _status_error_class(self, status: int, message: str, where: str, said: str) -> ModelError:
        if status == 429:
            return self._error(RateLimitError, f"Rate limited: {where} answered HTTP 429{said}")
        if status in (401, 403):
            env = self.config.api_key_env
            hint = f"check the key in {env}" if env else "the server wants a key: set api_key_env for this model"
            return self._error(InvalidRequestError, f"{where} rejected the API key (HTTP {status}); {hint}{said}")
        if status in (400, 413, 422) and _CONTEXT_RE.search(message):
            return self._error(ContextLengthError, f"The conversation is too long for {where} (HTTP {status}){said}")
        if status == 404:
            return self._error(
                InvalidRequestError,
                f"{where} answered HTTP 404: unknown model '{self.provider_model}' or wrong base_url{said}",
            )
        if status >= 500:
            return self._error(ProviderError, f"{where} failed on its side (HTTP {status}){said}")
        return self._error(InvalidRequestError, f"{where} refused the request (HTTP {status}){said}")


# -- helpers ------------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float | None:
    """OpenAI's reset form ("1s", "6m0s", "120ms", "1h2m3.5s") in seconds; None if not that form."""
    text = text.strip()
    if not text:
        return None
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        pos = match.end()
    return total if pos == len(text) else None


def retry_after_from_headers(headers: Mapping[str, str], *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds the provider asked callers to wait: retry-after-ms, Retry-After (seconds or an HTTP
    date), then the later of x-ratelimit-reset-requests / -tokens. None when no header says."""
    lower = {k.lower(): v for k, v in headers.items()}
    if (ms := lower.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    if (value := lower.get("retry-after")) is not None:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                return max(0.0, when.timestamp() - now())
    keys = ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
    found = [r for r in (parse_duration(lower[k]) for k in keys if k in lower) if r is not None]
    return max(found) if found else None


def _provider_message(exc: BaseException) -> str:
    """The provider's own words: `error.message` of the usual JSON body, else the SDK's."""
    body = getattr(exc, "body", None)
    message: Any = None
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            message = inner.get("message") or inner.get("detail")
        elif isinstance(inner, str):
            message = inner
        if message is None:
            message = body.get("message") or body.get("detail")
    elif isinstance(body, str):
        message = body
    if not message:
        message = getattr(exc, "message", None) or str(exc)
    return scrub(str(message)).strip()[:_MAX_PROVIDER_MESSAGE]


def _transport_reason(exc: BaseException) -> str:
    """A short reason from the transport error under the SDK's generic 'Connection error.'."""
    cause: BaseException | None = exc
    while cause is not None and isinstance(cause, openai.APIConnectionError):
        cause = cause.__cause__ or cause.__context__
    text = str(cause or exc)
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused"
    if "name or service not known" in lowered or "nodename nor servname" in lowered or "getaddrinfo" in lowered:
        return "host not found"
    if "reset" in lowered:
        return "connection reset"
    if "peer closed" in lowered or "incomplete" in lowered:
        return "the server closed the connection mid-reply"
    return scrub(text)[:_MAX_PROVIDER_MESSAGE] or type(cause or exc).__name__


def _pump_stream(client: openai.OpenAI, kwargs: dict[str, Any], call: DeadlineCall) -> None:
    """Worker side of a streamed request: chunks go to the caller as they arrive."""
    stream = client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True})
    call.attach(stream.response)
    try:
        call.put("open", None)
        for chunk in stream:
            if call.cancelled.is_set():
                break
            call.put("chunk", chunk)
    finally:
        call.detach()
        stream.close()
