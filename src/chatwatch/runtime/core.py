"""Everything a running chatwatch needs, built in one place and closed in one place.

Where a request starts: `Runtime.chat()`. The UI (each browser session), `chatwatch ask`,
`chatwatch compare` and tests all call it; it hands the request to the attempt chain
(resilience/chain.py: context window, rate limits, budgets, cache, circuit breaker, retries,
fallbacks), whose every attempt goes through the one Monitor, which times, counts, prices
and records it (see README, "Architecture").

`Runtime(settings, role=...)` builds, in this order: logging, the store, the monitor, the
model registry, the alert service, the resilience pieces (breakers, rate limits, budgets,
response cache, the chain) and (for long-lived roles) the retention task. `close()`
undoes it in reverse order: threads joined, files closed, pools disposed. Nothing attaches
itself to a runtime from outside, and there are no `ensure_*` helpers: what a runtime has,
its constructor made.

    with Runtime(settings, role="cli") as rt:
        reply = rt.chat("smollm2", messages, GenerationSettings(), session_id="cli")
        text = "".join(reply)             # raises the last attempt's error if none answered
        reply.answered_by, reply.notices  # who answered, and what to tell the user
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Sequence

import sqlalchemy as sa

from chatwatch.alerts.channels import Notification
from chatwatch.alerts.service import AlertService
from chatwatch.config import ModelConfig, Settings
from chatwatch.logs.configure import configure_logging
from chatwatch.models.contract import ChatModel, GenerationSettings, LoadEvent, Message, WaitCallback
from chatwatch.models.registry import ModelRegistry
from chatwatch.privacy import scrub
from chatwatch.resilience.breaker import Breakers
from chatwatch.resilience.budget import BudgetNotice, Budgets
from chatwatch.resilience.cache import ResponseCache
from chatwatch.resilience.chain import Chain, ChatReply
from chatwatch.resilience.gates import Gates
from chatwatch.resilience.ratelimit import RateLimits
from chatwatch.store.db import request_engine
from chatwatch.store.record import exact_usd
from chatwatch.store.records import Store
from chatwatch.store.retention import RetentionTask
from chatwatch.telemetry.monitor import Monitor, default_instance

log = logging.getLogger(__name__)


class Runtime:
    """Owns the store, monitor, models, alerts and retention of one configuration.

    `models` may be passed in to reuse loaded models across a config change; the runtime
    then does not close them (their owner, `Runtimes`, does). `alert_options` go to the
    AlertService (e.g. a delivery policy or a clock in tests); `chain_options` to the
    attempt chain (`rng` and `sleep` of the retry backoff, in tests)."""

    def __init__(
        self,
        settings: Settings,
        *,
        role: str = "app",
        models: ModelRegistry | None = None,
        alert_options: dict | None = None,
        chain_options: dict | None = None,
    ) -> None:
        self.settings = settings
        self.role = role
        self._stack = contextlib.ExitStack()
        self._closed = False
        try:
            self._build(models, alert_options or {}, chain_options or {})
        except BaseException:
            self._stack.close()
            raise

    def _build(self, models: ModelRegistry | None, alert_options: dict, chain_options: dict) -> None:
        s = self.settings
        # Log files are per role and host, not per pid, so short-lived `chatwatch ask` runs
        # reuse one file (a concurrent one gets its own, see chatwatch/logs/configure.py).
        logs = configure_logging(
            s.app.log_dir,
            role=self.role,
            instance=s.app.instance or socket.gethostname(),
            level=s.logs.level,
            max_mb=s.logs.max_mb,
            log_days=s.retention.log_days,
            console=self.role != "cli",  # the CLI prints its own one-line errors; the file has everything
        )
        self._stack.callback(logs.close)
        # A database that is down or unwritable at start does not stop the chat (store/records.py).
        self.store = Store.from_settings(s, wait_for_database=True)
        self._stack.callback(self.store.close)
        # OpenTelemetry (optional): spans and GenAI metrics per attempt, exported in batches on
        # the SDK's own threads. Built before the monitor so it closes after it: the records
        # the monitor hands over at close still become spans. Prometheus is per process, not
        # per runtime (runtime/process.py).
        instance = s.app.instance or default_instance()
        self.otel = None
        if s.otel.enabled:
            from chatwatch.exporters.otel import OtelExporter

            self.otel = OtelExporter(s, instance=instance)
            self._stack.callback(self.otel.close)
        self.monitor = Monitor(s, self.store, instance=instance)  # [app] instance, else host:pid
        self._stack.callback(self.monitor.close)
        if self.otel is not None:
            self.monitor.add_listener(self.otel.on_record)
        if models is None:
            models = ModelRegistry()
            self._stack.callback(models.close)
        self.models = models
        models.add_load_listener(self._record_load)
        self._stack.callback(models.remove_load_listener, self._record_load)
        # Evaluated after each record (off the request path) and on a timer.
        # Its writes (rules at start, transitions) wait for another writer's lock no longer
        # than a request's commit: a start or a close is never held for the busy timeout; a
        # round that could not write is retried on the next.
        self.alerts = AlertService(
            s,
            request_engine(self.store.engine, s.store.request_lock_wait_s),
            instance=self.monitor.instance,
            **alert_options,
        )
        self._stack.callback(self.alerts.close)
        try:
            self.alerts.seed()
        except sa.exc.SQLAlchemyError as exc:  # the store is down: the evaluator seeds once it is back
            log.error("alert rules not written yet, the store is unavailable: %s", scrub(str(exc))[:300])
        self.alerts.start()
        self.monitor.add_listener(self.alerts.on_record)
        # The request path's decisions, all kept in the store so replicas share them: circuit
        # states, rate-limit windows, budget spend and reservations, cached answers.
        # They run on the request's thread: their writes wait for a locked database no longer
        # than the request's own commit does ([store] request_lock_wait_s).
        engine = request_engine(self.store.engine, s.store.request_lock_wait_s)
        self.breakers = Breakers(engine, s.models, instance=self.monitor.instance)
        self._stack.callback(self.breakers.close)
        self.limits = RateLimits(engine, s)
        self.budgets = Budgets(
            engine, s, self.monitor.pricer, instance=self.monitor.instance, on_threshold=self._budget_notice
        )
        self.cache = ResponseCache(engine)
        self.gates = Gates(self.limits, self.budgets, self.cache)
        self.chain = Chain(s, self.monitor, self.models, self.breakers, self.gates, **chain_options)
        # Deletes old rows in batches, one process at a time (a database lease). Short-lived
        # CLI runtimes get none: `chatwatch cleanup` is theirs.
        self.retention: RetentionTask | None = None
        if self.role != "cli":
            self.retention = RetentionTask(self.store, s, self.monitor.instance)
            self._stack.callback(self.retention.stop)
            self.retention.start()

    def model(self, model_id: str | None = None) -> tuple[ChatModel, ModelConfig]:
        config = self.settings.model(model_id) if model_id else self.settings.default_model
        return self.models.get(config), config

    def chat(
        self,
        model_id: str,
        messages: Sequence[Message],
        generation: GenerationSettings,
        *,
        session_id: str,
        conversation_id: str | None = None,
        stream: bool = True,
        on_wait: WaitCallback | None = None,
        mode: str = "chat",
        compare_id: str | None = None,
    ) -> ChatReply:
        """The one chat function: every request from the UI, the CLI and tests goes here.
        `mode` and `compare_id` mark the answers of a compare round or the arena."""
        return self.chain.chat(
            model_id,
            messages,
            generation,
            session_id=session_id,
            conversation_id=conversation_id,
            stream=stream,
            on_wait=on_wait,
            mode=mode,
            compare_id=compare_id,
        )

    def _budget_notice(self, notice: BudgetNotice) -> None:
        """A budget's notify_at threshold was crossed (once per period, the store decides):
        through the alert channels, like an alert."""
        if notice.limit_usd is not None:
            used = f"${exact_usd(notice.spent_usd)} of ${notice.limit_usd:,.2f}"
        else:
            used = f"{notice.spent_tokens:,} of {notice.limit_tokens:,} tokens"
        resets = notice.resets_at.strftime("%Y-%m-%d %H:%M UTC")
        self.alerts.notifier.publish(
            Notification(
                title=f"budget '{notice.budget}' at {notice.fraction:.0%}",
                body=f"budget '{notice.budget}' ({notice.period}): {used} spent; it resets at {resets}",
                kind="warning",
            )
        )

    def _record_load(self, event: LoadEvent) -> None:
        """A model load row (never in the way of the request that loaded the model: with the
        store down the load is logged, not stored)."""
        try:
            self._write_load(event)
        except Exception as exc:
            log.error(
                "model load of %s (%.2f s) not stored, the store is unavailable: %s",
                event.model_id,
                event.load_s,
                scrub(f"{type(exc).__name__}: {exc}")[:300],
            )

    def _write_load(self, event: LoadEvent) -> None:
        self.store.write_model_load(
            model=event.model_id,
            instance=self.monitor.instance,
            load_s=event.load_s,
            ok=event.ok,
            path=event.path,
            file_bytes=event.file_bytes,
            rss_before_bytes=event.rss_before_bytes,
            rss_after_bytes=event.rss_after_bytes,
            error_message=event.error_message,
        )

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close everything this runtime built, in reverse order. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stack.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
