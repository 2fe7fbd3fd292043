"""A fair first-come, first-served turn for one shared resource, with places in line.

One llama.cpp instance must never serve two threads at once (it crashes the process);
Streamlit runs each browser session on its own thread, so sessions take turns here and a
waiting session can show its place.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class TurnExpired(TimeoutError):
    """The deadline passed while waiting in line; the ticket left the line."""


class TurnQueue:
    """with queue.turn(on_wait=show_place, deadline=time.monotonic() + 60): ...  # the resource is ours

    `deadline` (time.monotonic()) is checked while waiting, at least every `poll_s`: a
    request whose place in line never moves still gives up on time (TurnExpired)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._tickets = itertools.count()
        self._waiting: list[int] = []  # tickets in arrival order; the head holds the turn

    @contextmanager
    def turn(
        self, on_wait: Callable[[int], None] | None = None, poll_s: float = 0.25, deadline: float | None = None
    ) -> Iterator[None]:
        with self._cond:
            ticket = next(self._tickets)
            self._waiting.append(ticket)
            last_place = None
            try:
                while self._waiting[0] != ticket:
                    place = self._waiting.index(ticket)  # 1 = next after the one running
                    if on_wait is not None and place != last_place:
                        last_place = place
                        self._cond.release()  # never call out while holding the lock
                        try:
                            on_wait(place)
                        finally:
                            self._cond.acquire()
                        continue
                    wait = poll_s
                    if deadline is not None:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise TurnExpired(f"deadline passed in line at place {place}")
                        wait = min(wait, left)
                    self._cond.wait(wait)
            except BaseException:
                self._waiting.remove(ticket)
                self._cond.notify_all()
                raise
        try:
            yield
        finally:
            with self._cond:
                self._waiting.remove(ticket)
                self._cond.notify_all()

    @property
    def length(self) -> int:
        with self._cond:
            return len(self._waiting)
