"""Logging for every chatwatch process: readable on the console, JSON lines on disk.

    setup = configure_logging(settings.app.log_dir, role="app", instance=settings.app.instance)
    log = get_logger(__name__)
    with log_context(session_id=sid):
        with log_context(request_id=rid, model="smollm2"):
            log.info("request done", extra={"latency_s": 1.2})

How it fits together:

* The `chatwatch` logger gets one `QueueHandler`; a `QueueListener` thread feeds the console
  and file handlers, so a slow disk or a rotation never blocks a request.
* `request_id`, `session_id` and `model` come from a context variable that `log_context`
  sets, captured in the logging thread when the record is made, so each Streamlit session
  (each thread or task) tags lines with its own ids. Worker threads do not inherit context
  variables: run them with `contextvars.copy_context().run`.
* Before a record is queued, registered secrets and key-shaped strings are scrubbed
  (`redact.SecretFilter`); prompt/answer text is logged only through `content_for_log`,
  which returns None unless content capture is on.
* `configure_logging` runs once per process: Streamlit reruns and module reloads get the
  same `LogSetup` back. Its state lives on the `chatwatch` logger object because a
  re-imported module starts with fresh globals.

Files, one per process so processes never interleave lines or race a rotation:

    <log_dir>/chatwatch-<role>-<instance>.jsonl                       current file
    <log_dir>/chatwatch-<role>-<instance>.<YYYY-MM-DD>.<NNN>.jsonl.gz rotated

`role` is what the process is ("app", "cli", "worker"); `instance` defaults to host:pid and
is made file-name safe ("web.lan:812" -> "web-lan-812"). A file rolls over when the UTC
day changes (checked at each write) or when it would exceed `max_mb`; rolled files are
gzip-compressed in the listener thread and files whose last line is older than `log_days`
are deleted (see `logs_rotation` for the details and `prune_logs`).
"""

from __future__ import annotations

import atexit
import contextvars
import copy
import logging
import os
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from logging.handlers import QueueHandler, QueueListener
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from chatwatch.logs.format import CONTEXT_FIELDS, ConsoleFormatter, JsonFormatter
from chatwatch.logs.rotation import (
    DailySizeRotatingFileHandler,
    prune_logs,
    safe_name,
    utc_today,
)
from chatwatch.privacy import SecretFilter, redact_text

if TYPE_CHECKING:
    from chatwatch.config import Settings

__all__ = [
    "LOGGER_NAME",
    "LogSetup",
    "configure_from_settings",
    "configure_logging",
    "content_for_log",
    "current_context",
    "current_setup",
    "default_instance",
    "get_logger",
    "log_context",
    "prune_logs",
]

LOGGER_NAME = "chatwatch"

T = TypeVar("T")


def _process_wide(name: str, factory: Callable[[], T]) -> T:
    """A per-process singleton that survives reloading or re-importing this module."""
    holder = logging.getLogger(LOGGER_NAME).__dict__
    key = f"_chatwatch_{name}"
    found = holder.get(key)
    return found if found is not None else holder.setdefault(key, factory())


_EMPTY: Mapping[str, str] = MappingProxyType({})
_CONTEXT: contextvars.ContextVar[Mapping[str, str]] = _process_wide(
    "context", lambda: contextvars.ContextVar("chatwatch_log_context", default=_EMPTY)
)


# -- context -------------------------------------------------------------------------------
@contextmanager
def log_context(
    *, request_id: str | None = None, session_id: str | None = None, model: str | None = None
) -> Iterator[None]:
    """Tag every line logged inside the block; nested blocks add to (not replace) the outer one."""
    given = {"request_id": request_id, "session_id": session_id, "model": model}
    merged = {**_CONTEXT.get(), **{k: v for k, v in given.items() if v is not None}}
    token = _CONTEXT.set(MappingProxyType(merged))
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def current_context() -> dict[str, str | None]:
    ctx = _CONTEXT.get()
    return {f: ctx.get(f) for f in CONTEXT_FIELDS}


class ContextFilter(logging.Filter):
    """Copy the caller's log context onto the record; an explicit `extra=` value wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = _CONTEXT.get()
        for name in CONTEXT_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, ctx.get(name))
        return True


# -- queue plumbing ------------------------------------------------------------------------
class _PreparedQueueHandler(QueueHandler):
    """Queue a self-contained copy: message merged, traceback rendered to text (frames and
    live args must not cross threads). Unlike the stdlib's, the message is not pre-formatted
    with the traceback, so the JSON file keeps `message` and `exception` apart."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = copy.copy(record)
        record.msg, record.args = record.getMessage(), None
        if record.exc_info:
            record.exc_text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return record


@dataclass(eq=False)
class _FlushMarker:
    done: threading.Event = field(default_factory=threading.Event)


# The writer polls the queue rather than blocking on it. A blocked reader is woken by every
# line and then takes the GIL from the request that logged it at each of that request's
# system calls (measured: two lines added ~0.4 ms to a 0.2 ms instrumentation path). Polling,
# logging a line costs the request only its own ~20 us; lines are written within POLL_S, and
# flush() and stop() wake the writer at once.
POLL_S = 0.05


class _Listener(QueueListener):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wake = threading.Event()
        # Scrubbing runs here, on the writer thread, once per line for every handler: its
        # regexes stay off the request path. Nothing reaches a handler unscrubbed.
        self._secrets = SecretFilter()

    def dequeue(self, block: bool) -> Any:
        while True:
            try:
                return self.queue.get_nowait()
            except queue.Empty:
                if not block:
                    raise
                self.wake.wait(POLL_S)
                self.wake.clear()

    def enqueue_sentinel(self) -> None:
        super().enqueue_sentinel()
        self.wake.set()

    def handle(self, record: Any) -> None:
        if isinstance(record, _FlushMarker):  # FIFO: everything queued before it is written
            for handler in self.handlers:
                handler.flush()
            record.done.set()
            return
        self._secrets.filter(record)
        super().handle(record)
        # Hand the GIL back after every line: otherwise a batch of lines holds it for up to
        # the 5 ms switch interval while a request thread waits to record its own request.
        time.sleep(0)


# -- setup ---------------------------------------------------------------------------------
@dataclass(eq=False)
class LogSetup:
    """What `configure_logging` installed; `close()` undoes it (and runs at exit)."""

    log_dir: Path
    role: str
    instance: str
    level: int
    capture_content: bool
    file_handler: DailySizeRotatingFileHandler
    console_handler: logging.Handler | None
    _queue: queue.SimpleQueue = field(repr=False)
    _queue_handler: QueueHandler = field(repr=False)
    _listener: _Listener = field(repr=False)
    _previous: tuple[int, bool] = field(repr=False)  # the logger's level and propagate before us
    closed: bool = False

    @property
    def path(self) -> Path:
        """The file this process is writing now."""
        return Path(self.file_handler.baseFilename)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every line logged so far is written; False if that took too long."""
        if self.closed:
            return True
        if threading.current_thread() is self._listener._thread:
            for handler in self._listener.handlers:
                handler.flush()
            return True
        marker = _FlushMarker()
        self._queue.put_nowait(marker)
        self._listener.wake.set()
        return marker.done.wait(timeout)

    def close(self) -> None:
        with _process_wide("lock", threading.Lock):
            if self.closed:
                return
            self.closed = True
            logger = logging.getLogger(LOGGER_NAME)
            logger.removeHandler(self._queue_handler)
            logger.setLevel(self._previous[0])
            logger.propagate = self._previous[1]
            if logger.__dict__.get("_chatwatch_setup") is self:
                del logger.__dict__["_chatwatch_setup"]
        self._listener.stop()  # drains the queue, then joins the thread
        for handler in self._listener.handlers:
            handler.close()
        atexit.unregister(self.close)


def default_instance() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    try:
        return logging.getLevelNamesMapping()[level.upper()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}") from None


def configure_logging(
    log_dir: str | os.PathLike[str],
    *,
    role: str,
    instance: str | None = None,
    level: str | int = "INFO",
    max_mb: float = 20,
    log_days: float = 14,
    capture_content: bool = False,
    console: bool = True,
    today: Callable[[], date] = utc_today,
) -> LogSetup:
    """Install chatwatch's handlers once per process and return them.

    Later calls return the first call's LogSetup unchanged, whatever their arguments,
    until it is closed. `today` decides the file's day (tests move it).
    """
    logger = logging.getLogger(LOGGER_NAME)
    with _process_wide("lock", threading.Lock):
        existing = logger.__dict__.get("_chatwatch_setup")
        if existing is not None and not existing.closed:
            return existing
        if not role:
            raise ValueError("role must name the process, e.g. 'app' or 'cli'")
        instance = instance or default_instance()
        lvl = _level(level)
        folder = Path(log_dir)
        stem = f"chatwatch-{safe_name(role)}-{safe_name(instance)}"

        file_handler = DailySizeRotatingFileHandler(
            folder, stem, max_bytes=max(1, int(max_mb * 1024 * 1024)), log_days=log_days, today=today
        )
        file_handler.setFormatter(JsonFormatter(role=role, instance=instance))
        handlers: list[logging.Handler] = [file_handler]
        console_handler = None
        if console:
            console_handler = logging.StreamHandler(sys.stderr)
            console_handler.setFormatter(ConsoleFormatter())
            handlers.insert(0, console_handler)

        q: queue.SimpleQueue = queue.SimpleQueue()  # unbounded: logging never blocks a request
        queue_handler = _PreparedQueueHandler(q)
        queue_handler.addFilter(ContextFilter())
        listener = _Listener(q, *handlers, respect_handler_level=True)

        setup = LogSetup(
            folder,
            role,
            instance,
            lvl,
            capture_content,
            file_handler,
            console_handler,
            q,
            queue_handler,
            listener,
            (logger.level, logger.propagate),
        )
        listener.start()
        logger.addHandler(queue_handler)
        logger.setLevel(lvl)
        logger.propagate = False  # our handlers own chatwatch's output; no doubled console lines
        logger.__dict__["_chatwatch_setup"] = setup
        atexit.register(setup.close)
    try:
        prune_logs(folder, log_days)
    except OSError as exc:  # old files left behind must not stop the app from starting
        logger.warning("could not prune old logs in %s: %s", folder, exc)
    return setup


def configure_from_settings(settings: Settings, *, role: str, console: bool = True) -> LogSetup:
    return configure_logging(
        settings.app.log_dir,
        role=role,
        instance=settings.app.instance,
        level=settings.logs.level,
        max_mb=settings.logs.max_mb,
        log_days=settings.retention.log_days,
        capture_content=settings.privacy.capture_content,
        console=console,
    )


def current_setup() -> LogSetup | None:
    setup = logging.getLogger(LOGGER_NAME).__dict__.get("_chatwatch_setup")
    return setup if setup is not None and not setup.closed else None


def get_logger(name: str | None = None) -> logging.Logger:
    """`get_logger(__name__)` inside the package, `get_logger("ui")` elsewhere."""
    if not name or name == LOGGER_NAME:
        return logging.getLogger(LOGGER_NAME)
    return logging.getLogger(name if name.startswith(LOGGER_NAME + ".") else f"{LOGGER_NAME}.{name}")


def content_for_log(text: str | None, capture_content: bool | None = None, *, max_chars: int = 2000) -> str | None:
    """Prompt/answer text fit for a log line: None unless content capture is on (None means
    "as configured"); when on, redacted and cut to `max_chars`."""
    if capture_content is None:
        setup = current_setup()
        capture_content = setup.capture_content if setup else False
    if not capture_content or text is None:
        return None
    text = redact_text(text)
    if len(text) > max_chars:
        text = f"{text[:max_chars]}… [+{len(text) - max_chars} chars]"
    return text


def _forget_in_child() -> None:
    """A forked child has no listener thread: drop the parent's setup so the child logs
    nowhere until it configures its own file (with its own pid in the instance)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.__dict__["_chatwatch_lock"] = threading.Lock()  # the parent may have held it mid-fork
    setup = logger.__dict__.pop("_chatwatch_setup", None)
    if setup is None:
        return
    setup.closed = True
    logger.removeHandler(setup._queue_handler)
    logger.setLevel(setup._previous[0])
    logger.propagate = setup._previous[1]
    atexit.unregister(setup.close)


def _install_fork_hook() -> None:
    holder = logging.getLogger(LOGGER_NAME).__dict__
    if hasattr(os, "register_at_fork") and not holder.get("_chatwatch_fork_hook"):
        holder["_chatwatch_fork_hook"] = True  # once per process, however often we are imported
        os.register_at_fork(after_in_child=_forget_in_child)


_install_fork_hook()
