"""A stored answer replayed as a model reply: what the response cache (resilience/cache.py)
hands the Monitor for a hit, so a hit is timed and recorded like any other attempt, with
the original call's usage, and never reaches the provider."""

from __future__ import annotations

from collections.abc import Generator, Sequence

from chatwatch.models.contract import (
    Availability,
    ChatStream,
    GenerationSettings,
    Message,
    StreamProgress,
    StreamResult,
    Usage,
    WaitCallback,
)


class CachedReply:
    """One stored answer as a one-chunk ChatModel."""

    def __init__(
        self,
        *,
        id: str,
        provider: str,
        provider_model: str,
        text: str,
        finish_reason: str | None,
        usage: Usage,
        response_model: str | None,
    ) -> None:
        self.id, self.provider, self.provider_model = id, provider, provider_model
        self._result = StreamResult(text, finish_reason, usage, response_model)

    def chat(
        self,
        messages: Sequence[Message],
        settings: GenerationSettings,
        *,
        stream: bool = True,
        on_wait: WaitCallback | None = None,
        deadline: float | None = None,
    ) -> ChatStream:
        progress = StreamProgress(token_source=self._result.usage.source)
        return ChatStream(self._replay(progress), progress)

    def _replay(self, progress: StreamProgress) -> Generator[str, None, StreamResult]:
        progress.mark_started()
        progress.response_model = self._result.response_model
        progress.output_tokens = self._result.usage.output_tokens or 0
        if self._result.text:
            yield self._result.text  # at once: the whole answer is already here
        progress.mark_finished()
        return self._result

    def check(self) -> Availability:
        return Availability(True, "a stored answer")

    def close(self) -> None:
        pass
