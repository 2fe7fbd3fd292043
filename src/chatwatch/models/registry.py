"""Which model kinds exist, and the owner of the model instances built from the config.

A kind is one entry in `FACTORIES` (config `kind` -> a function building the model), so a
new kind touches this table and its own module, nothing else.

The UI (every browser session), the CLI and background work get the same instance of a
configured model, so a local GGUF is loaded once per process and its calls take turns.
Instances are keyed by their whole configuration entry. When the config file is edited,
`retain()` keeps every model whose entry did not change (no second copy of its weights in
memory, no new `model_loads` row) and closes the ones that changed or went away.

    registry = ModelRegistry()
    model = registry.get(settings.default_model)
    ...
    registry.close()    # frees every model it built
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from chatwatch.config import ModelConfig
from chatwatch.models.contract import ChatModel, LoadEvent

log = logging.getLogger(__name__)

LoadListener = Callable[[LoadEvent], None]
Factory = Callable[[ModelConfig, LoadListener], ChatModel]


def _llama_cpp(config: ModelConfig, on_load: LoadListener) -> ChatModel:
    from chatwatch.models.local import LocalLlamaModel  # imports llama_cpp lazily itself

    return LocalLlamaModel(config, on_load=on_load)


def _openai(config: ModelConfig, on_load: LoadListener) -> ChatModel:
    from chatwatch.models.openai_compat import OpenAICompatModel  # the openai SDK is slow to import

    return OpenAICompatModel(config)


FACTORIES: dict[str, Factory] = {"llama_cpp": _llama_cpp, "openai": _openai}


class ModelRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, ChatModel] = {}
        self._listeners: list[LoadListener] = []

    def get(self, config: ModelConfig) -> ChatModel:
        key = config.model_dump_json()
        with self._lock:
            model = self._models.get(key)
            if model is None:
                model = FACTORIES[config.kind](config, self._emit)
                self._models[key] = model
            return model

    def retain(self, configs: Iterable[ModelConfig]) -> list[str]:
        """Keep the models built from exactly these entries; close the others. Returns the
        ids of the closed models."""
        keep = {c.model_dump_json() for c in configs}
        with self._lock:
            gone = [(k, m) for k, m in self._models.items() if k not in keep]
            for key, _ in gone:
                del self._models[key]
        for _, model in gone:
            _close(model)
        return [m.id for _, m in gone]

    def add_load_listener(self, listener: LoadListener) -> None:
        with self._lock:
            if listener not in self._listeners:
                self._listeners.append(listener)

    def remove_load_listener(self, listener: LoadListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _emit(self, event: LoadEvent) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)

    def close(self) -> None:
        """Close every model built here (each waits for its reply in progress)."""
        self.retain(())


def _close(model: ChatModel) -> None:
    try:
        model.close()
    except Exception:  # one model failing to close must not keep the others loaded
        log.exception("closing model %s failed", model.id)
