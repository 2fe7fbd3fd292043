"""The background evaluator: one thread per process that evaluates every `every_s`
seconds and soon after each request (`wake()`). Wakes coalesce: a burst of requests costs
one evaluation, and the request path only sets an event."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("chatwatch.alerts")


class Evaluator:
    def __init__(self, evaluate: Callable[[], object], every_s: float):
        self._evaluate = evaluate
        self.every_s = every_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.runs = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (if not running). It evaluates right away."""
        with self._lock:
            if self.running:
                return
            self._stop = threading.Event()  # a fresh one: the stopped thread keeps the old
            self._wake.set()
            self._thread = threading.Thread(target=self._run, name="chatwatch-alert-evaluator", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        stop = self._stop
        while not stop.is_set():
            self._wake.wait(self.every_s)
            self._wake.clear()
            if stop.is_set():
                return
            try:
                self._evaluate()
            except Exception:
                log.exception("alert evaluation failed")
            self.runs += 1

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
