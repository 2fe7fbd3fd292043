"""Logging for every chatwatch process: readable on the console, JSON lines on disk.

    logs = configure_logging(settings.app.log_dir, role="app", instance=settings.app.instance)
    log = logging.getLogger(__name__)  # any logger under "chatwatch"
    with log_context(session_id=sid):
        with log_context(request_id=rid, model="smollm2"):
            log.info("request done", extra={"latency_s": 1.2})
    logs.close()  # the Runtime that called configure_logging does this

How it fits together (standard library handlers throughout):

* The `chatwatch` logger gets one `QueueHandler`; a `QueueListener` thread feeds the console
  and file handlers. A request's thread only copies the record onto a queue: it never
  waits for the disk, a rotation, a compression or the secret filter.
* `request_id`, `session_id` and `model` come from a context variable that `log_context`
  sets, copied onto the record in the logging thread, so each Streamlit session (each
  thread or task) tags lines with its own ids. Worker threads do not inherit context
  variables: run them with `contextvars.copy_context().run`.
* Registered secrets and key-shaped strings are scrubbed by `privacy.SecretFilter`, run once
  per line by the listener before any handler sees it, so it runs in the listener thread
  and nothing reaches a handler unscrubbed. Prompt and answer text is never logged (the monitor logs lengths only).
* The queue is bounded (`queue_size` lines): if the writer falls that far behind, new lines
  are dropped rather than memory growing, counted, and the count is written to the log as
  soon as the writer catches up (`LogSetup.dropped`).
* A process has one logging configuration at a time. A second `configure_logging` (a new
  runtime after a config edit, a Streamlit module reload) replaces the first: lines logged
  meanwhile go to the new queue, the old listener writes what it had and closes its file,
  then the new file opens (under the same name: the old owner has let go of it).
  The current configuration and the context variable live on the `chatwatch` logger
  object, because a re-imported module starts with fresh globals. `close_logging()`
  closes whatever configuration is current (tests use it between cases).
* If the log folder cannot be written, one clear line on stderr says so and the process
  goes on, logging to the console only.

Files, one per process so processes never interleave lines or race a rotation:

    <log_dir>/chatwatch-<role>-<instance>.jsonl                       current file
    <log_dir>/chatwatch-<role>-<instance>.<YYYY-MM-DD>.<NNN>.jsonl.gz rotated

`role` is what the process is ("app", "cli", "worker"); `instance` defaults to host:pid and
is made file-name safe ("web.lan:812" -> "web-lan-812"). A file rolls over when the UTC
day changes (checked at each write) or when it would exceed `max_mb`; rolled files are
gzip-compressed in the listener thread and files whose last line is older than `log_days`
are deleted (see `chatwatch.logs.rotation`).
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
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from logging.handlers import QueueHandler, QueueListener
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from chatwatch.logs.format import CONTEXT_FIELDS, ConsoleFormatter, JsonFormatter
from chatwatch.logs.rotation import DailySizeRotatingFileHandler, prune_logs, report, safe_name, utc_today
from chatwatch.privacy import SecretFilter

__all__ = [
    "LOGGER_NAME",
    "LogSetup",
    "close_logging",
    "configure_logging",
    "current_setup",
    "log_context",
    "prune_logs",
]

LOGGER_NAME = "chatwatch"
QUEUE_SIZE = 10_000

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


def _lock() -> threading.RLock:
    return _process_wide("lock", threading.RLock)


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


class ContextFilter(logging.Filter):
    """Copy the caller's log context onto the record; an explicit `extra=` value wins."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = _CONTEXT.get()
        for name in CONTEXT_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, ctx.get(name))
        return True


# -- the request's side: copy the record onto a bounded queue ------------------------------
class _QueueHandler(QueueHandler):
    """Queue a self-contained copy: message merged, traceback rendered to text (frames and
    live args must not cross threads). Unlike the stdlib's, the message is not pre-formatted
    with the traceback, so the JSON file keeps `message` and `exception` apart.

    The queue is a C `SimpleQueue` (the cheapest put); its bound is checked here, and a
    line over it is counted instead of queued."""

    def __init__(self, q: queue.SimpleQueue, limit: int) -> None:
        super().__init__(q)
        self.limit = limit
        self.dropped = 0
        self._drop_lock = threading.Lock()
        self.addFilter(ContextFilter())

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = copy.copy(record)
        record.msg, record.args = record.getMessage(), None
        if record.exc_info:
            record.exc_text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        if self.queue.qsize() >= self.limit:
            with self._drop_lock:
                self.dropped += 1
            return
        self.queue.put_nowait(record)


# -- the listener's side --------------------------------------------------------------------
class _FlushMarker:
    def __init__(self) -> None:
        self.done = threading.Event()


class _Listener(QueueListener):
    """The stdlib listener, plus: a named thread (so `close()` can be checked to join it), a
    flush marker, a line saying how many lines the full queue dropped, and the secret
    filter, run once per line here on the writer thread (never in the request's thread)
    before the line goes to the console and file handlers."""

    def __init__(self, q: queue.SimpleQueue, handlers: list[logging.Handler], source: _QueueHandler) -> None:
        super().__init__(q, *handlers, respect_handler_level=True)
        self.source = source
        self.secrets = SecretFilter()
        self.reported = 0

    def start(self) -> None:
        super().start()
        self._thread.name = "chatwatch-log-writer"

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def handle(self, record: Any) -> None:
        try:
            if isinstance(record, _FlushMarker):  # FIFO: everything queued before it is written
                self.report_drops()
                for handler in self.handlers:
                    handler.flush()
                return
            self.secrets.filter(record)
            super().handle(record)
            if self.source.dropped != self.reported:
                self.report_drops()
        except Exception as exc:  # a broken handler must not stop the writer (and every later line)
            report(f"writing a log line failed: {type(exc).__name__}: {exc}")
        finally:
            if isinstance(record, _FlushMarker):
                record.done.set()

    def report_drops(self) -> None:
        dropped = self.source.dropped
        if dropped == self.reported:
            return
        note = logging.LogRecord(
            "chatwatch.logs",
            logging.WARNING,
            __file__,
            0,
            f"{dropped - self.reported} log lines dropped: the log queue was full "
            f"({self.source.limit} lines waiting for the writer)",
            None,
            None,
        )
        note.dropped = dropped - self.reported
        self.reported = dropped
        super().handle(note)


class LogSetup:
    """What `configure_logging` installed; its caller owns it and `close()`s it (it also
    closes at exit). Replaced by a later `configure_logging`, it is closed by that call."""

    def __init__(
        self,
        log_dir: Path,
        *,
        role: str,
        instance: str,
        level: int,
        max_bytes: int,
        log_days: float,
        console: bool,
        today: Callable[[], date],
        queue_size: int,
    ) -> None:
        self.log_dir, self.role, self.instance, self.level = log_dir, role, instance, level
        self.log_days = log_days
        self.stem = f"chatwatch-{safe_name(role)}-{safe_name(instance)}"
        self.file_handler: DailySizeRotatingFileHandler | None = None
        self.console_handler: logging.Handler | None = None
        self.error: str | None = None  # why there is no log file, if there is none
        self.closed = False
        self._settings = (max_bytes, console, today)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.queue_handler = _QueueHandler(self._queue, queue_size)
        self._listener: _Listener | None = None
        self._previous = (logging.NOTSET, True)  # the logger's level and propagate before chatwatch's

    @property
    def path(self) -> Path | None:
        """The file this process is writing now (None if the folder could not be written)."""
        return Path(self.file_handler.baseFilename) if self.file_handler is not None else None

    @property
    def dropped(self) -> int:
        """Lines dropped so far because the queue was full."""
        return self.queue_handler.dropped

    def _start(self) -> None:
        """Open the file and start the writer thread (the previous owner has let go)."""
        max_bytes, console, today = self._settings
        handlers: list[logging.Handler] = []
        if console:
            self.console_handler = logging.StreamHandler(sys.stderr)
            self.console_handler.setFormatter(ConsoleFormatter())
            handlers.append(self.console_handler)
        try:
            self.file_handler = DailySizeRotatingFileHandler(
                self.log_dir, self.stem, max_bytes=max_bytes, log_days=self.log_days, today=today
            )
        except OSError as exc:
            where = "to the console only" if console else "nowhere"
            self.error = f"cannot write log files in {self.log_dir} ({exc.strerror or exc}); logging {where}"
            print(f"chatwatch: {self.error}", file=sys.stderr)
        else:
            self.file_handler.setFormatter(JsonFormatter(role=self.role, instance=self.instance))
            handlers.append(self.file_handler)
        self._listener = _Listener(self._queue, handlers, self.queue_handler)
        self._listener.start()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every line logged so far is written; False if that took too long."""
        listener = self._listener
        if self.closed or listener is None:
            return True
        if threading.current_thread() is listener.thread:
            for handler in listener.handlers:
                handler.flush()
            return True
        marker = _FlushMarker()
        self._queue.put_nowait(marker)
        return marker.done.wait(timeout)

    def close(self) -> None:
        """Detach from the logger, write what is queued, stop the thread, close the files."""
        with _lock():
            if self.closed:
                return
            self.closed = True
            logger = logging.getLogger(LOGGER_NAME)
            if logger.__dict__.get("_chatwatch_setup") is self:
                logger.removeHandler(self.queue_handler)
                logger.setLevel(self._previous[0])
                logger.propagate = self._previous[1]
                del logger.__dict__["_chatwatch_setup"]
            self._shutdown()

    def _shutdown(self) -> None:
        self.closed = True
        atexit.unregister(self.close)
        if self._listener is not None:
            self._listener.stop()  # drains the queue, then joins the thread
            self._listener.report_drops()
            for handler in self._listener.handlers:
                try:
                    handler.close()
                except Exception as exc:  # e.g. the console stream closed under us; the rest still close
                    report(f"closing {handler} failed: {type(exc).__name__}: {exc}")
            self._listener = None


def _default_instance() -> str:
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
    console: bool = True,
    today: Callable[[], date] = utc_today,
    queue_size: int = QUEUE_SIZE,
) -> LogSetup:
    """Install chatwatch's handlers and return them; the caller closes the result.

    A configuration already in place is replaced and closed (see the module docstring).
    `today` decides the file's day (tests move it).
    """
    if not role:
        raise ValueError("role must name the process, e.g. 'app' or 'cli'")
    if not max_mb > 0:
        raise ValueError(f"max_mb must be more than 0, not {max_mb!r}")
    if queue_size < 1:
        raise ValueError(f"queue_size must be at least 1, not {queue_size!r}")
    setup = LogSetup(
        Path(log_dir),
        role=role,
        instance=instance or _default_instance(),
        level=_level(level),
        max_bytes=max(1, int(max_mb * 1024 * 1024)),
        log_days=log_days,
        console=console,
        today=today,
        queue_size=queue_size,
    )
    logger = logging.getLogger(LOGGER_NAME)
    with _lock():
        previous: LogSetup | None = logger.__dict__.get("_chatwatch_setup")
        setup._previous = previous._previous if previous is not None else (logger.level, logger.propagate)
        logger.addHandler(setup.queue_handler)  # from here on, lines wait in the new queue
        if previous is not None:
            logger.removeHandler(previous.queue_handler)
        logger.setLevel(setup.level)
        logger.propagate = False  # our handlers own chatwatch's output; no doubled console lines
        logger.__dict__["_chatwatch_setup"] = setup
        atexit.register(setup.close)
        try:
            if previous is not None:
                previous._shutdown()
            setup._start()
        except BaseException:
            setup.close()
            raise
    if setup.file_handler is not None:
        try:
            prune_logs(setup.log_dir, log_days)
        except OSError as exc:  # old files left behind must not stop the app from starting
            logger.warning("could not prune old logs in %s: %s", setup.log_dir, exc)
    return setup


def current_setup() -> LogSetup | None:
    """The configuration in place, if any."""
    setup = logging.getLogger(LOGGER_NAME).__dict__.get("_chatwatch_setup")
    return setup if setup is not None and not setup.closed else None


def close_logging() -> None:
    """Close the configuration in place, if any (its owner's `close()` then does nothing)."""
    setup = current_setup()
    if setup is not None:
        setup.close()


def _forget_in_child() -> None:
    """A forked child has no listener thread: drop the parent's setup so the child logs
    nowhere until it configures its own file (with its own pid in the instance)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.__dict__["_chatwatch_lock"] = threading.RLock()  # the parent may have held it mid-fork
    setup = logger.__dict__.pop("_chatwatch_setup", None)
    if setup is None:
        return
    setup.closed = True
    logger.removeHandler(setup.queue_handler)
    logger.setLevel(setup._previous[0])
    logger.propagate = setup._previous[1]
    atexit.unregister(setup.close)


def _install_fork_hook() -> None:
    holder = logging.getLogger(LOGGER_NAME).__dict__
    if hasattr(os, "register_at_fork") and not holder.get("_chatwatch_fork_hook"):
        holder["_chatwatch_fork_hook"] = True  # once per process, however often we are imported
        os.register_at_fork(after_in_child=_forget_in_child)


_install_fork_hook()
