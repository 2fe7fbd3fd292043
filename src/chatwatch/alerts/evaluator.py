"""The background evaluator: one thread per process that evaluates every `every_s`
seconds and soon after each request (`wake()`). Wakes coalesce: a burst of requests costs
one evaluation, and the request path only sets an event."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from chatwatch.background import BackgroundThread

log = logging.getLogger("chatwatch.alerts")


class Evaluator(BackgroundThread):
    thread_name = "chatwatch-alert-evaluator"

    def __init__(self, evaluate: Callable[[], object], every_s: float):
        super().__init__()
        self._evaluate = evaluate
        self.every_s = every_s
        self._wake = threading.Event()
        self.runs = 0

    def _starting(self) -> None:
        self._wake.set()  # evaluate right away

    def _stopping(self) -> None:
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def loop(self, stop: threading.Event) -> None:
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
