"""A daemon thread a process starts once and stops cleanly (alert evaluator, retention)."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod


class BackgroundThread(ABC):
    """`start()` is idempotent; `stop()` ends the loop and waits for it. Each start gets a
    fresh stop event, so a thread that is still winding down keeps seeing its own."""

    thread_name = "chatwatch-background"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        with self._lock:
            if self.running:
                return
            self._stop = threading.Event()
            self._starting()
            self._thread = threading.Thread(target=self.loop, args=(self._stop,), name=self.thread_name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._stopping()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @abstractmethod
    def loop(self, stop: threading.Event) -> None:
        """The thread's body; return when `stop` is set."""

    def _starting(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Hook run under the start lock, before the thread starts."""

    def _stopping(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Hook run right after the stop event is set (e.g. to wake a waiting loop)."""
