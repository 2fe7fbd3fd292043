"""The runtimes of a long-lived process (the Streamlit server builds one `Runtimes`).

When the config file changes, `Runtimes.get()` builds a runtime for the new settings, hands
it the models whose entries did not change (no second copy of a GGUF in memory, no new load
row) and closes the old runtime.
"""

from __future__ import annotations

import logging
import threading

from chatwatch.config import Settings
from chatwatch.models.registry import ModelRegistry
from chatwatch.runtime.core import Runtime

log = logging.getLogger(__name__)


class Runtimes:
    """One runtime per role for the current settings, for a long-lived process (the
    Streamlit server builds one of these with `st.cache_resource`).

    `get(settings)` returns the current runtime if the settings are unchanged; otherwise it
    builds one for the new settings with the same model registry, keeps the models whose
    entries did not change, closes the others and closes the old runtime. `close()` closes
    every runtime and the models.

    The old runtime is closed at once: a reply in progress on it still finishes (its model
    is kept or waits for the reply before closing, and a closed store's engine opens a new
    connection for the final commit)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: dict[str, Runtime] = {}
        self.models = ModelRegistry()

    def get(self, settings: Settings, *, role: str = "app", **options) -> Runtime:
        with self._lock:
            current = self._current.get(role)
            if current is not None and not current.closed and current.settings == settings:
                return current
            runtime = Runtime(settings, role=role, models=self.models, **options)
            self._current[role] = runtime
            configs = [m for rt in self._current.values() for m in rt.settings.models]
        closed = self.models.retain(configs)
        if closed:
            log.info("config changed: closed models %s", ", ".join(closed))
        if current is not None:
            current.close()
        return runtime

    def close(self) -> None:
        with self._lock:
            runtimes, self._current = list(self._current.values()), {}
        for runtime in runtimes:
            runtime.close()
        self.models.close()

    def __enter__(self) -> Runtimes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
