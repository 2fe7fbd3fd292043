"""A blocking HTTP call on its own daemon thread, so the caller can give up at a total
deadline even while a read is stuck (the openai SDK's timeout only bounds each read)."""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any


class Expired(Exception):
    """The request's deadline passed."""


class DeadlineCall:
    """One HTTP request on its own daemon thread, so the caller can give up at the deadline
    even while a read is stuck. Events flow as (kind, value) over a queue."""

    def __init__(self, work: Callable[[DeadlineCall], None], *, name: str):
        self.cancelled = threading.Event()
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._lock = threading.Lock()
        self._response: Any = None  # the live httpx response while the worker reads it
        threading.Thread(target=self._run, args=(work,), name=name, daemon=True).start()

    def _run(self, work: Callable[[DeadlineCall], None]) -> None:
        try:
            work(self)
        except BaseException as exc:  # handed to the caller, who maps it
            self.put("error", exc)
        else:
            self.put("end", None)

    def put(self, kind: str, value: Any) -> None:
        self._events.put((kind, value))

    def next_event(self, deadline: float) -> tuple[str, Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Expired
        try:
            return self._events.get(timeout=remaining)
        except queue.Empty:
            raise Expired from None

    def attach(self, response: Any) -> None:
        with self._lock:
            self._response = response

    def detach(self) -> None:
        with self._lock:
            self._response = None

    def cancel(self) -> None:
        """Stop the worker: it quits at its next chunk, and a read stuck on a silent server
        is woken by shutting the socket down (not closing it: the worker still owns the
        descriptor, and closing it under a blocked read would not wake it on Linux)."""
        self.cancelled.set()
        with self._lock:
            response = self._response
            if response is None or getattr(response, "is_closed", False):
                return
            stream = getattr(response, "extensions", {}).get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already gone
