"""The process-wide owner of model instances.

The UI (every browser session), the CLI and background work all get the same instance of a
configured model, so a local GGUF is loaded once per process and its calls take turns.
Instances are keyed by their whole configuration: an edited config gets a fresh instance.
"""
from __future__ import annotations

import threading
from typing import Callable

from chatwatch.config import ModelConfig
from chatwatch.models.base import ChatModel, LoadEvent

LoadListener = Callable[[LoadEvent], None]


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
                model = self._build(config)
                self._models[key] = model
            return model

    def add_load_listener(self, listener: LoadListener) -> None:
        with self._lock:
            if listener not in self._listeners:
                self._listeners.append(listener)

    def remove_load_listener(self, listener: LoadListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _emit(self, event: LoadEvent) -> None:
        for listener in list(self._listeners):
            listener(event)

    def _build(self, config: ModelConfig) -> ChatModel:
        if config.kind == "llama_cpp":
            from chatwatch.models.local import LocalLlamaModel

            return LocalLlamaModel(config, on_load=self._emit)
        from chatwatch.models.openai_compat import OpenAICompatModel

        return OpenAICompatModel(config)


_registry = ModelRegistry()


def registry() -> ModelRegistry:
    return _registry
