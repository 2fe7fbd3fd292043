"""The runtimes of a long-lived process (`chatwatch run` builds one `Runtimes`).

When the config file changes, `Runtimes.get()` builds a runtime for the new settings, hands
it the models whose entries did not change (no second copy of a GGUF in memory, no new load
row) and closes the old runtime.

What lives as long as the process, not as long as one config, lives here too: the model
registry and the Prometheus exporter. A scraper expects a process's counters to only grow,
so the exporter is built once with the `Runtimes` and listens to each runtime it builds; a
config edit never wipes them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

from chatwatch.config import PrometheusConfig, Settings
from chatwatch.exporters.prometheus import PrometheusExporter
from chatwatch.models.registry import ModelRegistry
from chatwatch.runtime.core import Runtime

log = logging.getLogger(__name__)

# The Runtimes a server process hands to its pages while `Runtimes.serve()` runs (see there).
_served: list[Runtimes] = []
_served_lock = threading.Lock()


class Runtimes:
    """One runtime per role for the current settings, for a long-lived process.

    `get(settings)` returns the current runtime if the settings are unchanged; otherwise it
    builds one for the new settings with the same model registry, keeps the models whose
    entries did not change, closes the others and closes the old runtime. `close()` closes
    every runtime, the models and the metrics server.

    `prometheus`: with `enabled`, /metrics is served on its host:port from construction
    until `close()` (`exporter.port` is the port bound). Its host, port and token are read
    once: changing them in the config file takes a restart.

    The old runtime is closed at once: a reply in progress on it still finishes (its model
    is kept or waits for the reply before closing, and a closed store's engine opens a new
    connection for the final commit)."""

    def __init__(self, prometheus: PrometheusConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._current: dict[str, Runtime] = {}
        self.models = ModelRegistry()
        self.exporter: PrometheusExporter | None = None
        if prometheus is not None and prometheus.enabled:
            self.exporter = PrometheusExporter(prometheus, sources=self.runtimes)
            self.exporter.start()

    @contextlib.contextmanager
    def serve(self) -> Iterator[Runtimes]:
        """Hand this `Runtimes` to the Streamlit pages of this process while the block runs
        (`chatwatch run` runs the server inside it; `chatwatch.ui.state` asks `served()`).
        The cli may not import the ui, and a Streamlit script cannot be given an argument,
        so the hand-over is here; it is a context manager rather than a setter, so it ends
        with the server and leaves nothing behind for a test to reset."""
        with _served_lock:
            if _served:
                raise RuntimeError("another Runtimes is already served in this process")
            _served.append(self)
        try:
            yield self
        finally:
            with _served_lock:
                _served.clear()

    @staticmethod
    def served() -> Runtimes | None:
        """The `Runtimes` being served in this process, if any."""
        with _served_lock:
            return _served[0] if _served else None

    def runtimes(self) -> list[Runtime]:
        """The current runtime of each role. No lock: a scrape never waits for a runtime
        being built (copying the dict's values is atomic)."""
        return [rt for rt in list(self._current.values()) if not rt.closed]

    def get(self, settings: Settings, *, role: str = "app", **options) -> Runtime:
        with self._lock:
            current = self._current.get(role)
            if current is not None and not current.closed and current.settings == settings:
                return current
            runtime = Runtime(settings, role=role, models=self.models, **options)
            if self.exporter is not None:
                self.exporter.declare(settings.models)
                runtime.monitor.add_listener(self.exporter.on_record)
            self._current[role] = runtime
            configs = [m for rt in self._current.values() for m in rt.settings.models]
        closed = self.models.retain(configs)
        if closed:
            log.info("config changed: closed models %s", ", ".join(closed))
        if current is not None:
            current.close()  # its monitor hands its last records to the exporter first
        return runtime

    def close(self) -> None:
        with self._lock:
            runtimes, self._current = list(self._current.values()), {}
        for runtime in runtimes:
            runtime.close()
        self.models.close()
        if self.exporter is not None:
            self.exporter.close()

    def __enter__(self) -> Runtimes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
