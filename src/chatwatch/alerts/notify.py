"""Delivery of alert messages to channels, away from everything else.

Each channel has its own worker thread and bounded queue, so a hanging Slack never delays
the JSON webhook, the evaluator or a chat reply; `publish()` never blocks (a full queue
drops the message and says so in the log). Each attempt runs under a deadline; a failed
or timed-out attempt is logged and retried with exponential backoff.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from chatwatch.alerts.channels import Channel, DeliveryError, Notification
from chatwatch.privacy import scrub

log = logging.getLogger("chatwatch.alerts")


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout_s: float = 10.0  # per attempt
    attempts: int = 3
    backoff_s: float = 2.0  # before the 2nd attempt; doubles each time
    max_backoff_s: float = 60.0
    queue_size: int = 100


@dataclass(frozen=True)
class Outcome:
    label: str
    ok: bool
    error: str | None = None


def attempt(channel: Channel, message: Notification, timeout_s: float) -> None:
    """One delivery attempt that returns within about `timeout_s` whatever the channel
    does: it runs on a short-lived daemon thread that is abandoned if it hangs (the
    channel's own socket timeouts end it later)."""
    done = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            channel.send(message, timeout_s)
        except BaseException as exc:  # reported to the waiting worker
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name="chatwatch-alert-send", daemon=True).start()
    if not done.wait(timeout_s + 0.5):  # a little grace for the channel's own deadline
        raise DeliveryError(f"no answer within {timeout_s:g} s")
    if failure:
        exc = failure[0]
        if isinstance(exc, DeliveryError):
            raise exc
        raise DeliveryError(scrub(f"{type(exc).__name__}: {exc}"))


class ChannelWorker:
    def __init__(self, channel: Channel, policy: DeliveryPolicy):
        self.channel = channel
        self.policy = policy
        self._queue: queue.Queue[Notification | None] = queue.Queue(maxsize=policy.queue_size)
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._pending = 0
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="chatwatch-alert-channel", daemon=True)
        self._thread.start()

    def put(self, message: Notification) -> bool:
        with self._idle:
            self._pending += 1
        try:
            self._queue.put_nowait(message)
            return True
        except queue.Full:
            self._done()
            self.dropped += 1
            log.error(
                "alert channel %s is backed up (%d queued): dropped %r",
                self.channel.label,
                self.policy.queue_size,
                message.title,
            )
            return False

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()

    def _run(self) -> None:
        while True:
            message = self._queue.get()
            if message is None:
                return
            try:
                self._deliver(message)
            finally:
                self._done()

    def _deliver(self, message: Notification) -> None:
        p = self.policy
        for n in range(1, p.attempts + 1):
            started = time.monotonic()
            try:
                attempt(self.channel, message, p.timeout_s)
                self.delivered += 1
                if n > 1:
                    log.info("alert %r delivered to %s on attempt %d", message.title, self.channel.label, n)
                return
            except DeliveryError as exc:
                took = time.monotonic() - started
                if n == p.attempts or self._stop.is_set():
                    self.failed += 1
                    log.error(
                        "alert %r not delivered to %s after %d attempt(s): %s",
                        message.title,
                        self.channel.label,
                        n,
                        exc,
                    )
                    return
                delay = min(p.max_backoff_s, p.backoff_s * 2 ** (n - 1))
                log.warning(
                    "alert %r to %s failed (attempt %d/%d, %.1f s): %s; retrying in %g s",
                    message.title,
                    self.channel.label,
                    n,
                    p.attempts,
                    took,
                    exc,
                    delay,
                )
                self._stop.wait(delay)  # closing cuts the wait short: one last try

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float) -> None:
        self._stop.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass  # the worker is a daemon: it goes with the process
        self._thread.join(timeout)


class Notifier:
    """Fans messages out to every channel's worker."""

    def __init__(self, channels: Sequence[Channel], policy: DeliveryPolicy | None = None):
        self.policy = policy or DeliveryPolicy()
        self.channels = list(channels)
        self._workers = [ChannelWorker(c, self.policy) for c in self.channels]

    def publish(self, message: Notification) -> None:
        """Queue `message` for every channel; returns at once."""
        for worker in self._workers:
            worker.put(message)

    def drain(self, timeout: float) -> bool:
        """Wait until every queued message was delivered or given up (CLI before exit)."""
        deadline = time.monotonic() + timeout
        return all(w.wait_idle(max(0.0, deadline - time.monotonic())) for w in self._workers)

    def test(self, message: Notification, timeout_s: float | None = None) -> list[Outcome]:
        """Send `message` to every channel now, in parallel, once each: for the page's
        "send test notification", which shows each channel's outcome."""
        t = self.policy.timeout_s if timeout_s is None else timeout_s

        def one(channel: Channel) -> Outcome:
            try:
                attempt(channel, message, t)
                return Outcome(channel.label, True)
            except DeliveryError as exc:
                log.warning("test notification to %s failed: %s", channel.label, exc)
                return Outcome(channel.label, False, str(exc))

        if not self.channels:
            return []
        with ThreadPoolExecutor(
            max_workers=min(8, len(self.channels)), thread_name_prefix="chatwatch-alert-test"
        ) as pool:
            return list(pool.map(one, self.channels))

    def stats(self) -> dict[str, dict[str, int]]:
        return {
            w.channel.label: {"delivered": w.delivered, "failed": w.failed, "dropped": w.dropped} for w in self._workers
        }

    def close(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        for w in self._workers:
            w.close(max(0.0, deadline - time.monotonic()))
