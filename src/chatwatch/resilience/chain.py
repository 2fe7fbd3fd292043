"""The attempt chain: what happens between "the user asked model X" and the answer (#9).

Why a module of its own: retries, fallbacks, the circuit breaker, the context window and the
gates (rate limits, budgets, the response cache) each decide one thing, and the order in
which they are asked is the product's behaviour; this is the one place that order lives.
For each model it tries, in order:

1. check the request (models/validation.py: empty prompt, settings out of range, control
   characters; a refusal is one invalid_request record) and fit the conversation to the model's window (`models.validation.fit_to_window`): trimmed
   (with a notice), or too long: on to `context_fallbacks`, else refused (context_length);
2. the gates (resilience/gates.py): a rate-limit or budget refusal is a record of its own
   (error types `rate_limited`, `budget_exceeded`); a "fallback" budget moves on to its
   model; a cache hit replays the stored answer and is done (an open circuit does not stop
   a stored answer);
3. the breaker (resilience/breaker.py): an open circuit is a `circuit_open` record and the
   chain goes straight to the model's `fallbacks`;
4. the attempt itself, through `Monitor.chat` (one record, timed, counted and priced like
   any call); on failure the retry policy (resilience/policy.py) says whether and how long
   to wait for another attempt of the same model, inside the model's `timeout_s`, which is a
   deadline for all its attempts; when it says no, the model's `fallbacks` are tried in
   order if the error type is in its `fallback_on`.

Nothing is retried or sent elsewhere once a chunk has reached the caller: the user would
see the answer twice. Every attempt, refusals included, shares the request id of the
first, carries its attempt number, the previous attempt's error type (`retry_reason`) and
the model it fell back from, so reports can tell model failures from user failures
(reports/attempts.py). Each fallback model gets its own deadline (its own `timeout_s`).
Answers of a compare round or the arena (`mode` other than "chat") are retried but never
sent to another model: a vote for "model A" must be a vote for model A's answer.

    reply = chain.chat("gpt-4o-mini", messages, GenerationSettings(), session_id="s")
    for chunk in reply: ...       # raises the last attempt's error if every attempt failed
    reply.answered_by, reply.notices, reply.records
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field

from chatwatch.config import ModelConfig, Settings
from chatwatch.models.contract import (
    ContextLengthError,
    GenerationSettings,
    Message,
    ModelError,
    ModelUnavailableError,
    StreamResult,
    WaitCallback,
)
from chatwatch.models.registry import ModelRegistry
from chatwatch.models.validation import check_request, fit_to_window
from chatwatch.resilience.breaker import Breakers
from chatwatch.resilience.gates import Gate, Gates
from chatwatch.resilience.policy import RetryPolicy
from chatwatch.store.record import RequestRecord
from chatwatch.telemetry.monitor import AttemptTags, Monitor

# Plain words for why a model did not answer, in the notices ("... failed (rate limit)").
REASON_WORDS = {
    "connection": "unreachable",
    "timeout": "timed out",
    "rate_limit": "rate limit",
    "provider_error": "provider error",
    "context_length": "conversation too long for its context window",
    "invalid_request": "invalid request",
    "circuit_open": "circuit open",
    "budget_exceeded": "budget used up",
    "rate_limited": "rate limited",
    "cancelled": "cancelled",
}


@dataclass(frozen=True)
class Failure:
    """A model that did not answer this request, and why (an error type)."""

    model: str
    error_type: str


class ChatReply(Iterator[str]):
    """The answer's text chunks, from whichever attempt gave them. After the last chunk (or
    the final error, or `close()`): `records` holds every attempt's record in order,
    `answered_by` the model that answered (None if none did), `failures` the models that did
    not and why, and `notices` what the user should be told in plain words."""

    def __init__(self, settings: Settings, requested: str) -> None:
        self._gen: Generator[str, None, None] | None = None
        self._settings = settings
        self.requested = requested
        self.records: list[RequestRecord] = []
        self.text = ""
        self.result: StreamResult | None = None
        self.answered_by: str | None = None
        self.failures: list[Failure] = []
        self.trimmed: str | None = None  # the context-window notice, when turns were dropped
        self.store_error: str | None = None

    @property
    def record(self) -> RequestRecord | None:
        return self.records[-1] if self.records else None

    @property
    def retries(self) -> int:
        """Attempts after the first, refusals included."""
        return max(0, len(self.records) - 1)

    def model_notices(self) -> list[str]:
        """What the models said about the conversation: turns dropped to fit the window, then
        the answering model's own notices, each once."""
        out = [self.trimmed] if self.trimmed else []
        for notice in self.result.notices if self.result else ():
            if notice not in out:
                out.append(notice)
        return out

    def failed_models(self) -> dict[str, list[str]]:
        """Each model that did not answer (or needed retries), with its distinct error types
        in order; the words are the caller's (English notices here, translated on the page)."""
        reasons: dict[str, list[str]] = {}
        for f in self.failures:
            if f.error_type not in reasons.setdefault(f.model, []):
                reasons[f.model].append(f.error_type)
        return reasons

    def answering_attempt(self) -> int:
        """The answering model's attempt number among its own attempts (1: first try)."""
        return sum(1 for f in self.failures if f.model == self.answered_by) + 1

    @property
    def notices(self) -> list[str]:
        out = self.model_notices()
        if self.answered_by is not None and self.failures:
            out.append(self._rescue_notice())
        return out

    def _rescue_notice(self) -> str:
        name = self._name

        def words(types: list[str]) -> str:
            return ", ".join(REASON_WORDS.get(e, e.replace("_", " ")) for e in types)

        reasons = self.failed_models()
        failed = "; ".join(f"{name(m)} failed ({words(w)})" for m, w in reasons.items() if m != self.answered_by)
        if not failed:  # the requested model answered after retries
            own = words(reasons.get(self.answered_by or "", []))
            return f"{name(self.answered_by)} answered on attempt {self.answering_attempt()} (after: {own})"
        return f"{failed} - answered by {name(self.answered_by)}"

    def _name(self, model_id: str | None) -> str:
        try:
            return self._settings.model(model_id).display_name
        except Exception:
            return str(model_id)

    def __iter__(self) -> Iterator[str]:
        return self._gen

    def __next__(self) -> str:
        return next(self._gen)

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()

    def __enter__(self) -> ChatReply:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class _Request:
    """What stays the same across the attempts of one user request."""

    messages: list[Message]
    settings: GenerationSettings
    session_id: str
    conversation_id: str | None
    stream: bool
    on_wait: WaitCallback | None
    mode: str
    compare_id: str | None
    tried: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _Outcome:
    done: bool
    error: BaseException | None = None
    next_models: tuple[str, ...] = ()  # where to go next: fallbacks, in order


class Chain:
    """Runs one user request through its models' attempts (see the module docstring).

    `rng` and `sleep` are the retry policy's (tests inject them); `clock` is monotonic, the
    clock the models' deadlines use."""

    def __init__(
        self,
        settings: Settings,
        monitor: Monitor,
        models: ModelRegistry,
        breakers: Breakers,
        gates: Gates,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.monitor = monitor
        self.models = models
        self.breakers = breakers
        self.gates = gates
        self.rng = rng
        self.sleep = sleep
        self.clock = clock

    def chat(
        self,
        model_id: str,
        messages: Sequence[Message],
        settings: GenerationSettings,
        *,
        session_id: str,
        conversation_id: str | None = None,
        stream: bool = True,
        on_wait: WaitCallback | None = None,
        mode: str = "chat",
        compare_id: str | None = None,
    ) -> ChatReply:
        self.settings.model(model_id)  # an unknown model id is the caller's error, raised here
        out = ChatReply(self.settings, model_id)
        req = _Request(list(messages), settings, session_id, conversation_id, stream, on_wait, mode, compare_id)
        out._gen = self._run(out, model_id, req)
        return out

    # -- the request ---------------------------------------------------------------------
    def _run(self, out: ChatReply, model_id: str, req: _Request) -> Generator[str, None, None]:
        plan: list[tuple[str, str | None]] = [(model_id, None)]  # (model, fell back from)
        error: BaseException | None = None
        while plan:
            mid, came_from = plan.pop(0)
            if mid in req.tried:
                continue
            req.tried.add(mid)
            outcome = yield from self._model(out, self.settings.model(mid), came_from, req)
            if outcome.done:
                return
            error = outcome.error
            if req.mode != "chat":
                break  # compare and arena answers must come from the model they are shown as
            plan[0:0] = [(m, mid) for m in outcome.next_models if m not in req.tried]
        if error is not None:
            raise error

    def _tags(self, out: ChatReply, req: _Request, came_from: str | None, **kw: object) -> AttemptTags:
        last = out.failures[-1].error_type if out.failures else None
        return AttemptTags(
            request_id=out.records[0].request_id if out.records else None,
            attempt=len(out.records) + 1,
            retry_reason=last,
            fallback_from=came_from,
            mode=req.mode,
            compare_id=req.compare_id,
            notices=(out.trimmed,) if out.trimmed else (),
            **kw,
        )

    def _refuse(
        self, out: ChatReply, config: ModelConfig, req: _Request, came_from: str | None, error: ModelError
    ) -> None:
        record, store_error = self.monitor.refuse(
            config,
            req.messages,
            req.settings,
            error,
            session_id=req.session_id,
            conversation_id=req.conversation_id,
            stream=req.stream,
            tags=self._tags(out, req, came_from),
        )
        out.records.append(record)
        out.store_error = store_error or out.store_error
        out.failures.append(Failure(config.id, error.error_type))

    def _model(
        self, out: ChatReply, config: ModelConfig, came_from: str | None, req: _Request
    ) -> Generator[str, None, _Outcome]:
        """Every attempt of one model: done, or the error and where to go next."""
        model = self.models.get(config)
        try:
            check_request(req.messages, req.settings, model_id=config.id)  # bad input: one record, no attempt
        except ModelError as exc:
            self._refuse(out, config, req, came_from, exc)
            return _Outcome(False, exc)
        try:
            # With context fallbacks, a conversation that would need trimming goes to them
            # whole (a larger window) instead of losing turns here.
            fit_as = config.model_copy(update={"context_overflow": "refuse"}) if config.context_fallbacks else config
            fitted = fit_to_window(req.messages, req.settings, fit_as, model)
        except ContextLengthError as exc:
            if config.context_fallbacks:  # never sent: the next model's record says why it was chosen
                out.failures.append(Failure(config.id, exc.error_type))
                return _Outcome(False, exc, tuple(config.context_fallbacks))
            self._refuse(out, config, req, came_from, exc)
            return _Outcome(False, exc)
        out.trimmed = fitted.notice  # the answering model's fit is the one the user gets
        messages = list(fitted.messages)
        policy = RetryPolicy(config.retries, config.retry_base_s, config.retry_max_s, rng=self.rng, sleep=self.sleep)
        deadline = self.clock() + config.timeout_s
        retry = 0
        skip_cache = False
        while True:
            gate = self.gates.before(config, messages, req.settings, session_id=req.session_id, cache=not skip_cache)
            if gate.refusal is not None:
                self.gates.after(gate, config, messages, req.settings, None, "")
                self._refuse(out, config, req, came_from, gate.refusal)
                return _Outcome(False, gate.refusal, (gate.fallback,) if gate.fallback else ())
            if gate.hit is not None:
                tags = self._tags(
                    out,
                    req,
                    came_from,
                    cache_hit=True,
                    saved_usd=gate.hit.saved_usd,
                    original_latency_s=gate.hit.original_latency_s,
                )
                error, sent = yield from self._attempt(
                    out, gate.hit.model, config, messages, req, tags, gate, None, None
                )
                if error is None:
                    return _Outcome(True)
                # A stored answer cannot fail the way a model does; if it did, ask the model
                # (without the cache: the same entry would fail again).
                if sent:
                    return _Outcome(False, error)
                skip_cache = True
                continue
            admission = self.breakers.admit(config)
            if not admission.allowed:
                self.gates.after(gate, config, messages, req.settings, None, "")
                wait = math.ceil(admission.retry_in_s or 0)
                error = ModelUnavailableError(
                    f"model {config.display_name} is unavailable (its circuit is open after repeated failures), "
                    f"next try in {wait} s",
                    model_id=config.id,
                    provider=config.provider_name,
                    retry_after_s=admission.retry_in_s,
                )
                self._refuse(out, config, req, came_from, error)
                return _Outcome(False, error, tuple(config.fallbacks))
            tags = self._tags(out, req, came_from)
            error, sent = yield from self._attempt(
                out, model, config, messages, req, tags, gate, admission.probe, deadline
            )
            if error is None:
                return _Outcome(True)
            if not isinstance(error, ModelError):
                return _Outcome(False, error)  # a bug or an unexpected library error: recorded, not retried
            retry += 1
            wait = policy.next_wait(error, retry, chunks_sent=sent, deadline=deadline, now=self.clock())
            if wait is None:
                if sent == 0 and error.error_type in config.fallback_on:
                    return _Outcome(False, error, tuple(config.fallbacks))
                return _Outcome(False, error)
            policy.sleep(wait)

    def _attempt(
        self,
        out: ChatReply,
        model,
        config: ModelConfig,
        messages: list[Message],
        req: _Request,
        tags: AttemptTags,
        gate: Gate,
        probe: bool | None,  # None: a cache replay, which says nothing about the model
        deadline: float | None,
    ) -> Generator[str, None, tuple[BaseException | None, int]]:
        """One model call through the Monitor; returns (its error or None, chunks sent)."""
        stream = self.monitor.chat(
            model,
            config,
            messages,
            req.settings,
            session_id=req.session_id,
            conversation_id=req.conversation_id,
            stream=req.stream,
            on_wait=req.on_wait,
            tags=tags,
            deadline=deadline,
        )
        sent, error = 0, None
        try:
            for chunk in stream:
                sent += 1
                out.text += chunk
                yield chunk
        except GeneratorExit:  # the caller stopped: the attempt is recorded as cancelled
            stream.close()
            self._settle(out, config, messages, req, stream, gate, probe)
            raise
        except Exception as exc:  # recorded by the Monitor
            error = exc
        self._settle(out, config, messages, req, stream, gate, probe)
        if error is None:
            out.result = stream.result
            out.answered_by = config.id
        return error, sent

    def _settle(self, out: ChatReply, config, messages, req: _Request, stream, gate: Gate, probe) -> None:
        record = stream.record
        if record is not None:
            out.records.append(record)
            if record.status == "error":
                out.failures.append(Failure(config.id, record.error_type or "provider_error"))
        out.store_error = stream.store_error or out.store_error
        if probe is not None:
            ok = None if record is None or record.status == "cancelled" else record.status == "ok"
            self.breakers.record(config, ok=ok, error_type=record.error_type if record else None, probe=probe)
        self.gates.after(gate, config, messages, req.settings, record, stream.text)
