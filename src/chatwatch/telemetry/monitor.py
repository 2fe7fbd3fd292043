"""The one instrumentation point: every model call (chat UI, CLI, tests) goes through
`Monitor.chat`, which yields the reply's chunks and produces exactly one RequestRecord
(ok, error or cancelled), committed to the store before the caller sees the end.

Slow work (alert evaluation, exporters) runs after the commit, off the request path, in
listeners fed by a background thread.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence

from chatwatch import __version__
from chatwatch.config import ModelConfig, Settings
from chatwatch.logs.configure import log_context
from chatwatch.models.contract import (
    ChatModel,
    GenerationSettings,
    Message,
    ModelError,
    StreamResult,
    WaitCallback,
)
from chatwatch.privacy import redact_text, scrub
from chatwatch.store.record import RequestRecord, utcnow
from chatwatch.telemetry import memory
from chatwatch.telemetry.pricing import Pricer

log = logging.getLogger("chatwatch.requests")

ERROR_MESSAGE_MAX = 500
RecordListener = Callable[[RequestRecord], None]


def default_instance() -> str:
    import os

    return f"{socket.gethostname()}:{os.getpid()}"


class MonitoredStream(Iterator[str]):
    """The reply's text chunks. After the last chunk (or an error, or `close()`), `record`
    holds the committed RequestRecord and `result` the model's StreamResult (None on error)."""

    def __init__(self) -> None:
        self._gen: Generator[str, None, None] | None = None  # set by Monitor.chat
        self.record: RequestRecord | None = None
        self.result: StreamResult | None = None
        self.text = ""
        self.store_error: str | None = None

    def __iter__(self) -> Iterator[str]:
        return self._gen  # a for loop then runs the generator itself: one layer less per chunk

    def __next__(self) -> str:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()

    def __enter__(self) -> MonitoredStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Monitor:
    def __init__(self, settings: Settings, store, *, pricer: Pricer | None = None, instance: str | None = None):
        self.settings = settings
        self.store = store
        self.pricer = pricer or Pricer(settings)
        self.instance = instance or settings.app.instance or default_instance()
        self.capture_content = settings.privacy.capture_content
        self._listeners: list[RecordListener] = []
        # Records the store could not take (disk full, database down): kept and retried.
        self._unsaved: deque[RequestRecord] = deque(maxlen=10_000)
        self._unsaved_lock = threading.Lock()
        self.last_store_error: str | None = None
        self._after: queue.SimpleQueue[RequestRecord | None] = queue.SimpleQueue()
        self._after_thread: threading.Thread | None = None
        self._pending_after = 0
        self._pending_cond = threading.Condition()

    # -- listeners (alerts, exporters): run after the commit, never on the request path ---
    def add_listener(self, listener: RecordListener) -> None:
        if listener not in self._listeners:
            self._listeners.append(listener)

    def _notify_later(self, record: RequestRecord) -> None:
        if not self._listeners:
            return
        with self._pending_cond:
            self._pending_after += 1
            if self._after_thread is None:
                self._after_thread = threading.Thread(
                    target=self._after_loop, name="chatwatch-after-record", daemon=True
                )
                self._after_thread.start()
        self._after.put(record)

    def _after_loop(self) -> None:
        while True:
            record = self._after.get()
            if record is None:
                return
            for listener in list(self._listeners):
                try:
                    listener(record)
                except Exception:
                    log.exception("record listener %r failed", listener)
            with self._pending_cond:
                self._pending_after -= 1
                self._pending_cond.notify_all()

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every listener has seen every record (the CLI calls this before exit)."""
        deadline = time.monotonic() + timeout
        with self._pending_cond:
            while self._pending_after > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._pending_cond.wait(left)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Let the listeners see the records already made, then stop the after-record
        thread and wait for it. Idempotent."""
        self.drain(timeout)
        with self._pending_cond:
            thread, self._after_thread = self._after_thread, None
        if thread is not None:
            self._after.put(None)
            thread.join(timeout)

    # -- the request path --------------------------------------------------------------
    def chat(
        self,
        model: ChatModel,
        model_config: ModelConfig,
        messages: Sequence[Message],
        settings: GenerationSettings,
        *,
        session_id: str,
        conversation_id: str | None = None,
        stream: bool = True,
        on_wait: WaitCallback | None = None,
    ) -> MonitoredStream:
        out = MonitoredStream()
        out._gen = self._run(
            out, model, model_config, list(messages), settings, session_id, conversation_id, stream, on_wait
        )
        return out

    def _run(
        self,
        out: MonitoredStream,
        model: ChatModel,
        model_config: ModelConfig,
        messages: list[Message],
        settings: GenerationSettings,
        session_id: str,
        conversation_id: str | None,
        stream: bool,
        on_wait: WaitCallback | None,
    ) -> Generator[str, None, None]:
        request_id = str(uuid.uuid4())
        started_at = utcnow()
        rss_before = memory.process_rss_bytes()
        parts: list[str] = []
        first_chunk_at: float | None = None
        status, error, result = "cancelled", None, None
        inner = None
        with log_context(request_id=request_id, session_id=session_id, model=model_config.id):
            log.info("request started", extra={"stream": stream, "provider": model_config.provider_name})
            try:
                inner = model.chat(messages, settings, stream=stream, on_wait=on_wait)
                for chunk in inner:
                    if first_chunk_at is None:
                        first_chunk_at = time.perf_counter()
                    parts.append(chunk)
                    yield chunk
                result = inner.result
                status = "ok"
            except ModelError as exc:
                status, error = "error", exc
            except GeneratorExit:
                status = "cancelled"  # the user stopped it, or the page moved on
            except Exception as exc:  # a bug or an unexpected library error: still recorded
                status, error = "error", exc
            finally:
                ended_at = time.perf_counter()
                if inner is not None and status != "ok":
                    inner.close()
                text = "".join(parts)
                record = self._build_record(
                    request_id,
                    started_at,
                    rss_before,
                    ended_at,
                    first_chunk_at,
                    inner,
                    result,
                    status,
                    error,
                    model,
                    model_config,
                    messages,
                    settings,
                    session_id,
                    conversation_id,
                    stream,
                    text,
                )
                out.record, out.result, out.text = record, result, text
                out.store_error = self._save(record)
                self._log_end(record)
                self._notify_later(record)
        if error is not None:
            raise error

    def _build_record(
        self,
        request_id,
        started_at,
        rss_before,
        ended_at,
        first_chunk_at,
        inner,
        result,
        status,
        error,
        model,
        model_config,
        messages,
        settings,
        session_id,
        conversation_id,
        stream,
        text,
    ) -> RequestRecord:
        progress = inner.progress if inner is not None else None
        began = progress.started_at if progress and progress.started_at is not None else None
        queue_s = progress.queue_s if progress else 0.0
        latency = (ended_at - began) if began is not None else None
        ttft = (first_chunk_at - began) if (first_chunk_at is not None and began is not None) else None
        if result is not None:
            usage = result.usage
            input_tokens, output_tokens = usage.input_tokens, usage.output_tokens
            cache_read, reasoning, source = usage.cache_read_tokens, usage.reasoning_tokens, usage.source
        elif progress is not None:
            input_tokens, output_tokens = progress.input_tokens, progress.output_tokens
            cache_read = reasoning = None
            source = progress.token_source if progress.started_at is not None else None
        else:
            input_tokens = output_tokens = cache_read = reasoning = source = None
        tps = None
        if output_tokens and latency is not None and ttft is not None and latency - ttft > 0:
            tps = output_tokens / (latency - ttft)
        price = self.pricer.price(
            model_config, input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cache_read
        )
        error_type = error_message = None
        if error is not None:
            error_type = getattr(error, "error_type", "provider_error")
            raw = error.message if isinstance(error, ModelError) else f"{type(error).__name__}: {error}"
            error_message = scrub(raw)[:ERROR_MESSAGE_MAX]
        prompt = messages[-1].content if messages else ""
        return RequestRecord(
            id=request_id,
            started_at=started_at,
            instance=self.instance,
            session_id=session_id,
            conversation_id=conversation_id,
            model=model_config.id,
            provider=model_config.provider_name,
            provider_model=getattr(model, "provider_model", model_config.provider_model),
            response_model=(result.response_model if result else (progress.response_model if progress else None)),
            stream=stream,
            status=status,
            error_type=error_type,
            error_message=error_message,
            queue_s=queue_s,
            latency_s=latency,
            ttft_s=ttft,
            output_tokens_per_s=tps,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read,
            reasoning_tokens=reasoning,
            token_source=source,
            prompt_chars=sum(len(m.content) for m in messages),
            response_chars=len(text),
            cost_usd=price.cost_usd,
            price_source=price.source,
            rss_before_bytes=rss_before,
            rss_after_bytes=memory.process_rss_bytes(),
            system_available_bytes=memory.system_available_bytes(),
            temperature=settings.temperature,
            top_p=settings.top_p,
            max_tokens=settings.max_tokens,
            finish_reason=(result.finish_reason if result else None),
            app_version=__version__,
            prompt_text=redact_text(scrub(prompt)) if self.capture_content else None,
            response_text=redact_text(scrub(text)) if self.capture_content else None,
        )

    def _save(self, record: RequestRecord) -> str | None:
        """Commit the record (and any kept earlier). On failure keep it and say why."""
        with self._unsaved_lock:
            self._unsaved.append(record)
            try:
                while self._unsaved:
                    self.store.write(self._unsaved[0])
                    self._unsaved.popleft()
                self.last_store_error = None
                return None
            except Exception as exc:
                self.last_store_error = f"could not save request records ({len(self._unsaved)} kept in memory): {exc}"
                log.error(self.last_store_error, extra={"error_type": type(exc).__name__})
                return self.last_store_error

    @property
    def unsaved_count(self) -> int:
        return len(self._unsaved)

    def _log_end(self, r: RequestRecord) -> None:
        extra = {
            "status": r.status,
            "latency_s": r.latency_s,
            "ttft_s": r.ttft_s,
            "queue_s": r.queue_s,
            "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens,
            "cost_usd": None if r.cost_usd is None else str(r.cost_usd),
            "price_source": r.price_source,
            "error_type": r.error_type,
        }
        if r.status == "error":
            log.error("request failed: %s: %s", r.error_type, r.error_message, extra=extra)
        else:
            lat = f"{r.latency_s:.3f}s" if r.latency_s is not None else "-"
            log.info("request %s in %s, %s->%s tokens", r.status, lat, r.input_tokens, r.output_tokens, extra=extra)
