"""The one instrumentation point: every model call (chat UI, CLI, tests) goes through
`Monitor.chat`, which yields the reply's chunks and produces exactly one RequestRecord
(ok, error or cancelled), committed to the store before the caller sees the end.

Slow work (alert evaluation, exporters) runs after the commit, off the request path, in
listeners fed by a background thread.

When the store cannot take a record (disk full, database locked or down), the chat goes
on: the record joins an in-memory backlog and a background thread (`UnsavedWriter`)
retries it with backoff, so a user's request only ever commits its own record and never
replays anyone else's. A lock guards the backlog itself, never a commit, so requests
commit concurrently. Past `[store] unsaved_max_records` the oldest kept records are
dropped; each drop is logged (once per burst), counted (`dropped_count`) and written to
the store's `record_losses` table once the store is back (store/losses.py).

A process that ends while the store still fails must not take its kept records with it:
`close()` waits for the store until its deadline at most, then spools what is left (the
records and the counted drops) to a file the next process ingests (telemetry/spool.py),
and says where in `spooled`. Every Monitor ingests the spool files of its store when it
starts and again whenever the store comes back, on the unsaved writer's thread.
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
from dataclasses import dataclass, field
from decimal import Decimal

import sqlalchemy as sa

from chatwatch import __version__
from chatwatch.background import BackgroundThread
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
from chatwatch.models.validation import check_request
from chatwatch.privacy import redact_text, scrub
from chatwatch.store.losses import Loss, write_losses
from chatwatch.store.record import RequestRecord, utcnow
from chatwatch.telemetry import memory
from chatwatch.telemetry.pricing import Pricer
from chatwatch.telemetry.spool import Spool, Spooled, SpoolError, store_losses_once

log = logging.getLogger("chatwatch.requests")

ERROR_MESSAGE_MAX = 500
RecordListener = Callable[[RequestRecord], None]
RETRY_FIRST_S = 0.5  # the unsaved writer's first wait after a failed retry; doubled up to
RETRY_MAX_S = 30.0
RETRY_BATCH = 500  # kept records written per transaction by the unsaved writer


def _storable(text: str) -> str:
    """Text any database takes: bytes that were not UTF-8 (surrogate escapes from a command
    line) become U+FFFD instead of making the whole record unstorable."""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


# How long one background retry of kept records waits for another writer's lock. Short: the
# writer retries with its backoff anyway, and a close() must never find it stuck in the
# ten-second busy timeout (it would spool records the store was about to take again).
RETRY_LOCK_WAIT_S = 1.0


def _wait_left(deadline: float | None) -> float | None:
    """How long a write may wait for a lock before `deadline` (None: no deadline)."""
    return None if deadline is None else max(0.05, deadline - time.monotonic())


def _first_line(reason: str) -> str:
    """An error's first line (SQLAlchemy appends the SQL and a link on further lines)."""
    return reason.strip().splitlines()[0] if reason.strip() else reason


def default_instance() -> str:
    import os

    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class AttemptTags:
    """Where an attempt sits in its user request (see store/record.py): the resilience chain
    passes one per attempt; a plain call is attempt 1 of its own request."""

    request_id: str | None = None  # None: this attempt starts a request (its id is the record's)
    attempt: int = 1
    retry_reason: str | None = None
    fallback_from: str | None = None
    mode: str = "chat"
    compare_id: str | None = None
    notices: tuple[str, ...] = field(default=())  # said by the chain (trimmed, fell back), kept in `extra`
    # A response-cache hit (resilience/cache.py): the attempt replays a stored answer, costs
    # nothing, and saved what the original call cost and took.
    cache_hit: bool = False
    saved_usd: Decimal | None = None
    original_latency_s: float | None = None


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


@dataclass(frozen=True)
class StoreHealth:
    """What the chat page says about monitoring: records kept in memory because the store
    could not take them, and records dropped by this process so far."""

    unsaved: int
    lost: int
    reason: str | None  # the store's last error while records are unsaved

    @property
    def degraded(self) -> bool:
        return self.unsaved > 0 or self.reason is not None


class _Burst:
    """Drops of one model's records during one stretch of store trouble, until written."""

    __slots__ = ("count", "first_started", "last_started", "at", "reason")

    def __init__(self, record: RequestRecord, reason: str) -> None:
        self.count = 0
        self.first_started = self.last_started = record.started_at
        self.at = utcnow()
        self.reason = reason

    def add(self, record: RequestRecord) -> None:
        self.count += 1
        self._span(record.started_at, record.started_at, utcnow())

    def merge(self, other: _Burst) -> None:
        """Fold in drops counted by `other` (made while this burst was being written)."""
        self.count += other.count
        self._span(other.first_started, other.last_started, max(self.at, other.at))

    def _span(self, first, last, at) -> None:
        self.first_started = min(self.first_started, first)
        self.last_started = max(self.last_started, last)
        self.at = at


class UnsavedWriter(BackgroundThread):
    """Writes the monitor's kept records once the store takes them again, waiting
    RETRY_FIRST_S, doubled after each failure up to RETRY_MAX_S. Woken at once by a
    first failure and by any successful commit (the store is back)."""

    thread_name = "chatwatch-unsaved-records"

    def __init__(self, monitor: Monitor) -> None:
        super().__init__()
        self._monitor = monitor
        self._wake = threading.Event()

    def nudge(self) -> None:
        self._wake.set()

    def _stopping(self) -> None:
        self._wake.set()

    def loop(self, stop: threading.Event) -> None:
        delay: float | None = None  # None: nothing to retry, wait for a nudge
        while True:
            self._wake.wait(delay)
            self._wake.clear()
            if stop.is_set():
                return
            if self._monitor.flush_unsaved():
                delay = None
            else:
                delay = RETRY_FIRST_S if delay is None else min(delay * 2, RETRY_MAX_S)


class Monitor:
    def __init__(self, settings: Settings, store, *, pricer: Pricer | None = None, instance: str | None = None):
        self.settings = settings
        self.store = store
        self.pricer = pricer or Pricer(settings)
        self.instance = instance or settings.app.instance or default_instance()
        self.capture_content = settings.privacy.capture_content
        self._listeners: list[RecordListener] = []
        # Records the store could not take (disk full, database down): kept, and written by
        # the unsaved writer thread. The lock guards these fields only, never a commit.
        self.max_unsaved = settings.store.unsaved_max_records
        self._unsaved: deque[RequestRecord] = deque()
        self._writing: dict[str, RequestRecord] = {}  # taken from the backlog, being written
        self._unsaved_lock = threading.Lock()
        self._bursts: dict[str, _Burst] = {}  # model -> drops not yet written to the store
        self.dropped_count = 0  # records this monitor dropped, ever (written or not)
        self.last_store_error: str | None = None
        self._cause: str | None = None  # the store's last error, for the spool
        self._bursts_writing: dict[str, _Burst] = {}  # taken by _write_losses, being written
        self._writer = UnsavedWriter(self)
        self._closed = False
        self._after: queue.SimpleQueue[RequestRecord | None] = queue.SimpleQueue()
        self._after_thread: threading.Thread | None = None
        self._pending_after = 0
        self._pending_cond = threading.Condition()
        # Records earlier processes could not store: ingested on the writer's thread.
        self._spool = Spool(settings, store)
        self.spooled: Spooled | None = None  # what close() had to spool
        self._closed_ids: set[str] = set()  # records close() spooled or gave up on: never kept again
        self._ingest_due = bool(self._spool.pending())
        if self._ingest_due:
            self._writer.start()
            self._writer.nudge()

    # -- listeners (alerts, exporters): run after the commit, never on the request path ---
    def add_listener(self, listener: RecordListener) -> None:
        if listener not in self._listeners:
            self._listeners.append(listener)

    def _notify_later(self, record: RequestRecord) -> None:
        # After close() (a reply that outlived its runtime) the listeners are closed too; the
        # record is in the store, where the next runtime's alert timer reads it.
        if not self._listeners or self._closed:
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

    def close(self, timeout: float = 10.0) -> Spooled | None:
        """Stop the unsaved writer and make one last attempt to write the kept records, all
        within `timeout` (no write waits for a lock past it). What still cannot be written
        -- kept records and counted drops -- is spooled for the next process (returned, and
        kept in `spooled`); only if no spool folder takes it either is it logged and counted
        as lost. Then let the listeners see the records already made (at most `timeout`)
        and stop the after-record thread. Idempotent."""
        with self._unsaved_lock:
            if self._closed:
                return self.spooled
            self._closed = True
        deadline = time.monotonic() + timeout
        self._writer.stop(timeout / 2)  # a write in progress may finish; the rest is ours
        # A store never reached since start would first migrate, and that wait has no bound here.
        stored = getattr(self.store, "unavailable", None) is None and self.flush_unsaved(deadline=deadline)
        if not stored or self._writer.running:  # the writer may still hold a batch it could not write
            self._spool_unsaved()
        self.drain(timeout)
        with self._pending_cond:
            thread, self._after_thread = self._after_thread, None
        if thread is not None:
            self._after.put(None)
            thread.join(timeout)
        return self.spooled

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
        tags: AttemptTags | None = None,
        deadline: float | None = None,
    ) -> MonitoredStream:
        out = MonitoredStream()
        out._gen = self._run(
            out,
            model,
            model_config,
            list(messages),
            settings,
            session_id,
            conversation_id,
            stream,
            on_wait,
            tags or AttemptTags(),
            deadline,
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
        tags: AttemptTags,
        deadline: float | None,
    ) -> Generator[str, None, None]:
        request_id = str(uuid.uuid4())
        started_at = utcnow()
        rss_before = memory.process_rss_bytes()
        parts: list[str] = []
        first_chunk_at: float | None = None
        status, error, result = "cancelled", None, None
        inner = None
        with log_context(request_id=tags.request_id or request_id, session_id=session_id, model=model_config.id):
            log.info(
                "request started",
                extra={"stream": stream, "provider": model_config.provider_name, "attempt": tags.attempt},
            )
            try:
                check_request(messages, settings, model_id=model_config.id)  # the same checks for every kind
                inner = model.chat(messages, settings, stream=stream, on_wait=on_wait, deadline=deadline)
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
                if inner is not None and inner.progress.finished_at is not None:
                    ended_at = min(ended_at, inner.progress.finished_at)  # token counting is not latency
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
                    tags,
                )
                out.record, out.result, out.text = record, result, text
                out.store_error = self._save(record)
                self._log_end(record)
                self._notify_later(record)
        if error is not None:
            raise error

    def refuse(
        self,
        model_config: ModelConfig,
        messages: Sequence[Message],
        settings: GenerationSettings,
        error: ModelError,
        *,
        session_id: str,
        conversation_id: str | None = None,
        stream: bool = True,
        tags: AttemptTags | None = None,
    ) -> tuple[RequestRecord, str | None]:
        """Record a request chatwatch refused itself, before any model call (an open circuit;
        later a budget or a local rate limit): one error record with no latency, committed
        like any other. Returns the record and the store's error, if it could not take it."""
        request_id = str(uuid.uuid4())
        record = self._build_record(
            request_id,
            utcnow(),
            memory.process_rss_bytes(),
            time.perf_counter(),
            None,
            None,
            None,
            "error",
            error,
            None,
            model_config,
            list(messages),
            settings,
            session_id,
            conversation_id,
            stream,
            "",
            tags or AttemptTags(),
        )
        with log_context(request_id=record.request_id, session_id=session_id, model=model_config.id):
            store_error = self._save(record)
            self._log_end(record)
        self._notify_later(record)
        return record, store_error

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
        tags,
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
        cost_usd, price_source = price.cost_usd, price.source
        saved_s = None
        if tags.cache_hit:
            cost_usd, price_source = Decimal(0), "cache"
            if tags.original_latency_s is not None and latency is not None:
                saved_s = max(0.0, tags.original_latency_s - latency)
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
            cost_usd=cost_usd,
            price_source=price_source,
            rss_before_bytes=rss_before,
            rss_after_bytes=memory.process_rss_bytes(),
            system_available_bytes=memory.system_available_bytes(),
            temperature=settings.temperature,
            top_p=settings.top_p,
            max_tokens=settings.max_tokens,
            finish_reason=(result.finish_reason if result else None),
            app_version=__version__,
            prompt_text=_storable(redact_text(prompt)) if self.capture_content else None,
            response_text=_storable(redact_text(text)) if self.capture_content else None,
            request_id=tags.request_id or request_id,
            attempt=tags.attempt,
            retry_reason=tags.retry_reason,
            fallback_from=tags.fallback_from,
            mode=tags.mode,
            compare_id=tags.compare_id,
            extra={"notices": list(tags.notices)} if tags.notices else {},
            cache_hit=tags.cache_hit,
            saved_usd=tags.saved_usd if tags.cache_hit else None,
            saved_s=saved_s,
        )

    # -- records the store could not take ---------------------------------------------
    def _save(self, record: RequestRecord) -> str | None:
        """Commit this one record (never the backlog: that is the unsaved writer's job).
        On failure keep it, wake the writer and say why."""
        try:
            self.store.write(record, request=True)
        except Exception as exc:
            return self._keep(record, exc)
        if self._unsaved or self._bursts or self._ingest_due:
            self._writer.nudge()  # the store takes records again: no need to sit out the backoff
        return None

    def _keep(self, record: RequestRecord, exc: Exception) -> str:
        reason = scrub(f"{type(exc).__name__}: {exc}")[:ERROR_MESSAGE_MAX]
        with self._unsaved_lock:
            closed = self._closed
            if not closed:
                self._unsaved.append(record)
                self._enforce_bound(reason)
                kept = len(self._unsaved) + len(self._writing)
                self._cause = reason
                self.last_store_error = f"could not save request records ({kept} kept in memory): {reason}"
                message = self.last_store_error
                self._writer.start()  # idempotent; no thread at all while the store is healthy
                self._writer.nudge()
        if closed:  # a reply that outlived its runtime: nobody is left to retry it here
            message = self._spool_late(record, reason)
        log.error(message, extra={"error_type": type(exc).__name__})
        return message

    def _spool_late(self, record: RequestRecord, reason: str) -> str:
        try:
            spooled = self._spool.write([record], [], instance=self.instance, cause=_first_line(reason))
        except SpoolError as exc:
            with self._unsaved_lock:
                self.dropped_count += 1
            return f"could not save the request record, and the monitor is closed: it is lost: {reason}; {exc}"
        return f"could not save the request record after the monitor closed ({reason}): spooled to {spooled.path}"

    def _enforce_bound(self, reason: str) -> None:
        """Drop the oldest kept records past the bound (called with the lock held)."""
        while self._unsaved and len(self._unsaved) + len(self._writing) > self.max_unsaved:
            self._drop(
                self._unsaved.popleft(),
                f"unsaved backlog full ([store] unsaved_max_records = "
                f"{self.max_unsaved}) while the store failed: {reason}",
            )

    def _drop(self, record: RequestRecord, reason: str) -> None:
        """Count a record as lost (lock held); the first drop of a burst is logged."""
        self.dropped_count += 1
        burst = self._bursts.get(record.model)
        if burst is None:
            burst = self._bursts[record.model] = _Burst(record, reason)
            if len(self._bursts) == 1:  # the burst's first drop: later ones are summed up when written
                log.warning(
                    "dropping request records: %s; the oldest are dropped from now on, counted, and "
                    "the count is written to the store once it is back (%d dropped so far)",
                    reason,
                    self.dropped_count,
                    extra={"dropped_count": self.dropped_count, "unsaved": len(self._unsaved)},
                )
        burst.add(record)

    def flush_unsaved(self, *, deadline: float | None = None) -> bool:
        """Write the kept records (RETRY_BATCH per transaction) and the pending loss counts.
        True when nothing is left to write. Runs on the unsaved writer's thread (or in
        `close()`), never on a request's. With a `deadline` no write waits for a lock past
        it. Then the spool files of earlier processes, if any are due (telemetry/spool.py)."""
        while deadline is None or time.monotonic() < deadline:
            with self._unsaved_lock:
                batch = [self._unsaved.popleft() for _ in range(min(RETRY_BATCH, len(self._unsaved)))]
                self._writing.update((r.id, r) for r in batch)
            if not batch:
                break
            try:
                self._write_batch(batch, _wait_left(deadline))
            except Exception as exc:
                reason = scrub(f"{type(exc).__name__}: {exc}")[:ERROR_MESSAGE_MAX]
                with self._unsaved_lock:
                    self._done_writing(batch)
                    batch = [r for r in batch if r.id not in self._closed_ids]  # close() took those
                    self._unsaved.extendleft(reversed(batch))
                    self._enforce_bound(reason)
                    kept = len(self._unsaved)
                    self._cause = reason
                    self.last_store_error = f"could not save request records ({kept} kept in memory): {reason}"
                log.debug("retry of %d kept records failed: %s", kept, reason)
                return False
            with self._unsaved_lock:
                self._done_writing(batch)
                left = len(self._unsaved)
                self._ingest_due = True  # the store is back: others may have spooled while it was not
            log.info("wrote %d kept request records (%d still kept)", len(batch), left, extra={"written": len(batch)})
        if not self._write_losses(deadline):
            return False
        with self._unsaved_lock:
            done = not self._unsaved
            if done:
                self.last_store_error = None
        return done and self._ingest_spool(deadline)

    def _done_writing(self, batch: list[RequestRecord]) -> None:
        for r in batch:
            self._writing.pop(r.id, None)

    def _ingest_spool(self, deadline: float | None) -> bool:
        """Store the records earlier processes spooled (False: the store failed, retry)."""
        if not self._ingest_due:
            return True
        if getattr(self.store, "unavailable", None) is not None:
            # Never reached since start: reaching it means migrating under the store's lock,
            # which a request's commit would then queue behind. The first write that finds
            # the store back (a request's, or a kept record's) wakes us.
            return False
        self._ingest_due = False
        try:
            self._spool.ingest(self.store, lock_wait_s=_wait_left(deadline))
        except Exception as exc:
            self._ingest_due = True
            log.debug("ingesting spool files failed: %s", scrub(f"{type(exc).__name__}: {exc}")[:ERROR_MESSAGE_MAX])
            return False
        return True

    def _write_batch(self, batch: list[RequestRecord], lock_wait_s: float | None = None) -> None:
        if lock_wait_s is not None:  # close(): a bounded wait, and idempotent (an id stored already is skipped)
            self.store.insert_missing(batch, lock_wait_s=lock_wait_s)
            return
        try:
            self.store.write_many(batch, lock_wait_s=RETRY_LOCK_WAIT_S)
        except sa.exc.IntegrityError:
            # One record the store refuses for good (e.g. a commit that went through although
            # its connection failed, so the id exists): write the rest one by one.
            for record in batch:
                try:
                    self.store.write(record)
                except sa.exc.IntegrityError as exc:
                    if self.store.get(record.id) is None:
                        with self._unsaved_lock:
                            self._drop(record, scrub(f"the store refused the record: {exc.orig}")[:ERROR_MESSAGE_MAX])

    def _losses(self, bursts: dict[str, _Burst]) -> list[Loss]:
        return [
            Loss(
                at=b.at,
                instance=self.instance,
                model=model,
                count=b.count,
                first_started=b.first_started,
                last_started=b.last_started,
                reason=b.reason,
            )
            for model, b in bursts.items()
        ]

    def _write_losses(self, deadline: float | None = None) -> bool:
        with self._unsaved_lock:
            bursts, self._bursts = self._bursts, {}
            self._bursts_writing = bursts
        if not bursts:
            return True
        losses = self._losses(bursts)
        try:
            if deadline is None:
                write_losses(self.store, losses)
            else:  # close(): a bounded wait
                store_losses_once(self.store, losses, lock_wait_s=_wait_left(deadline))
        except Exception as exc:
            with self._unsaved_lock:  # put them back, merged with drops made meanwhile
                self._bursts_writing = {}
                for model, b in bursts.items():
                    newer = self._bursts.get(model)
                    if newer is not None:
                        b.merge(newer)
                    self._bursts[model] = b
            log.debug("writing record losses failed: %s", exc)
            return False
        with self._unsaved_lock:
            self._bursts_writing = {}
        total = sum(b.count for b in bursts.values())
        log.warning(
            "lost %d request records while the store failed (%s); the loss is recorded in the store",
            total,
            ", ".join(f"{model}: {b.count}" for model, b in bursts.items()),
            extra={"lost": total, "dropped_count": self.dropped_count},
        )
        return True

    def _spool_unsaved(self) -> None:
        """At close, with the store still failing: spool the kept records (those the writer
        may still be writing too: ingesting skips an id already stored) and the counted
        drops for the next process; if no spool folder can be written, they are lost."""
        with self._unsaved_lock:
            records = list(self._writing.values()) + list(self._unsaved)
            bursts = dict(self._bursts)
            # Drops the writer is writing right now: spooled too (ingest skips a row already stored).
            losses = self._losses(bursts) + self._losses(self._bursts_writing)
            cause = _first_line(self._cause or self.last_store_error or "the store did not answer in time")
        if not records and not losses:
            return
        try:
            spooled = self._spool.write(records, losses, instance=self.instance, cause=cause)
        except SpoolError as exc:
            self._abandon_unsaved(str(exc))
            return
        with self._unsaved_lock:
            ids = {r.id for r in records}
            self._closed_ids |= ids
            self._unsaved = deque(r for r in self._unsaved if r.id not in ids)
            for record_id in ids:
                self._writing.pop(record_id, None)  # a write still under way may store it too: ingest skips it
            for model, burst in bursts.items():
                if self._bursts.get(model) is burst:
                    del self._bursts[model]
        self.spooled = spooled
        log.error(
            "closing with the store failing (%s): %d kept request records and %d counted drops spooled to %s; "
            "the next chatwatch process stores them",
            cause,
            spooled.records,
            spooled.dropped,
            spooled.path,
            extra={"spooled": spooled.records, "spool_file": str(spooled.path)},
        )

    def _abandon_unsaved(self, why: str) -> None:
        """At close, with the store still failing and no spool folder writable: the kept
        records are lost; say so."""
        with self._unsaved_lock:
            abandoned, self._unsaved = list(self._writing.values()) + list(self._unsaved), deque()
            self._writing = {}
            self._closed_ids |= {r.id for r in abandoned}
            self.dropped_count += len(abandoned)
            pending = sum(b.count for b in self._bursts.values())
        if abandoned or pending:
            log.error(
                "closing with the store failing: %d kept request records and %d counted drops could not be "
                "written and are lost (%s); %s",
                len(abandoned),
                pending,
                self.last_store_error,
                why,
                extra={"lost": len(abandoned) + pending, "dropped_count": self.dropped_count},
            )

    @property
    def store_cause(self) -> str | None:
        """The first line of the store's last error (None: it never failed)."""
        return None if self._cause is None else _first_line(self._cause)

    def unsaved_count(self) -> int:
        """Records kept in memory, waiting for the store."""
        with self._unsaved_lock:
            return len(self._unsaved) + len(self._writing)

    def health(self) -> StoreHealth:
        with self._unsaved_lock:
            unsaved = len(self._unsaved) + len(self._writing)
            reason = self.last_store_error if unsaved or self._bursts else None
            return StoreHealth(unsaved=unsaved, lost=self.dropped_count, reason=reason)

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
