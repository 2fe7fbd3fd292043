"""Process-wide wiring: settings -> logging, store, monitor, model registry, background tasks.

Built once per process and configuration (never per Streamlit rerun) and shared by every
browser session, the CLI and background work.
"""
from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from typing import Sequence

from chatwatch.config import ModelConfig, Settings
from chatwatch.models.base import ChatModel, GenerationSettings, LoadEvent, Message, WaitCallback
from chatwatch.models.registry import ModelRegistry, registry
from chatwatch.monitoring.instrument import Monitor, MonitoredStream, default_instance
from chatwatch.monitoring.logs import configure_logging
from chatwatch.monitoring.store import Store


@dataclass
class Runtime:
    settings: Settings
    store: Store
    monitor: Monitor
    models: ModelRegistry
    role: str
    alerts: object | None = None  # AlertService, set by ensure_alerts
    _closers: list = field(default_factory=list)

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
    ) -> MonitoredStream:
        """The one chat function: every request from the UI, the CLI and tests goes here."""
        model, config = self.model(model_id)
        return self.monitor.chat(
            model, config, messages, generation, session_id=session_id, conversation_id=conversation_id,
            stream=stream, on_wait=on_wait,
        )

    def _record_load(self, event: LoadEvent) -> None:
        self.store.write_model_load(
            model=event.model_id, instance=self.monitor.instance, load_s=event.load_s, ok=event.ok,
            path=event.path, file_bytes=event.file_bytes, rss_before_bytes=event.rss_before_bytes,
            rss_after_bytes=event.rss_after_bytes, error_message=event.error_message,
        )

    def close(self) -> None:
        for close in reversed(self._closers):
            close()
        self._closers.clear()


_lock = threading.Lock()
_runtimes: dict[tuple[str, str], Runtime] = {}


def get_runtime(settings: Settings, *, role: str = "app") -> Runtime:
    key = (settings.model_dump_json(), role)
    with _lock:
        runtime = _runtimes.get(key)
        if runtime is None:
            runtime = _build(settings, role)
            _runtimes[key] = runtime
        return runtime


def _build(settings: Settings, role: str) -> Runtime:
    instance = settings.app.instance or default_instance()
    # Log files are per role and host, not per pid, so short-lived `chatwatch ask` runs
    # reuse one file (a concurrent one gets its own, see monitoring/logs.py).
    configure_logging(
        settings.app.log_dir, role=role, instance=settings.app.instance or socket.gethostname(), level=settings.logs.level,
        max_mb=settings.logs.max_mb, log_days=settings.retention.log_days,
        capture_content=settings.privacy.capture_content,
        console=role != "cli",  # the CLI prints its own one-line errors; the file has everything
    )
    store = Store.from_settings(settings)
    monitor = Monitor(settings, store, instance=instance)
    runtime = Runtime(settings=settings, store=store, monitor=monitor, models=registry(), role=role)
    runtime.models.add_load_listener(runtime._record_load)
    runtime._closers.append(lambda: runtime.models.remove_load_listener(runtime._record_load))
    from chatwatch.monitoring.alerts import ensure_alerts

    ensure_alerts(runtime)  # evaluates after each record (off the request path) and on a timer
    from chatwatch.monitoring.retention import start_retention

    start_retention(runtime)  # deletes old rows in batches, one process at a time (a DB lease)
    return runtime
