"""The checks every request passes before any model sees it, whatever the model's kind, and
the one fitting of a long conversation to a model's context window.

Checks (`check_request`): a conversation that ends with a non-empty user message; roles the
contract knows; no control characters (other than newline, tab and carriage return) in the
prompt or the system prompt; no lone surrogates anywhere (what invalid UTF-8 becomes in a
Python str, e.g. sys.argv's surrogateescape: no provider can be sent it, and it cannot be
stored); at most MAX_CONVERSATION_CHARS characters in all; and generation settings inside
the ranges every provider accepts. Each failure raises InvalidRequestError naming the field,
the value or the character and its position, so the chat, `chatwatch ask` and the record all
say the same thing. Earlier assistant turns are not checked for control characters: they
are the models' own words, and refusing them would leave the conversation stuck.

The Monitor runs `check_request` at the start of every attempt (so a refused request is
still one error record); the resilience chain calls `fit_to_window` before each model's
first attempt, and the local model calls it again inside its turn (a no-op on a conversation
already fitted) so that llama.cpp is never handed a prompt longer than its context."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from chatwatch.config import ModelConfig
from chatwatch.models.contract import ChatModel, ContextLengthError, GenerationSettings, InvalidRequestError, Message
from chatwatch.models.token_estimate import CHARS_PER_TOKEN, FRAMING_TOKENS_PER_MESSAGE

MAX_TOKENS_LIMIT = 1_000_000
TEMPERATURE_MAX = 2.0
SEED_MAX = 2**32 - 1
# The hard cap on a whole conversation, refused at once: 4,000,000 characters is about a
# million tokens of English, more than the context window of any model chatwatch serves, so
# nothing answerable is refused, while scanning, encoding, storing and fitting stay bounded.
MAX_CONVERSATION_CHARS = 4_000_000
MAX_STOP_SEQUENCES = 16
ROLES = ("system", "user", "assistant")

# C0 controls but \t \n \r, DEL, C1 controls (Unicode category Cc); and lone surrogates (Cs).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def check_request(messages: Sequence[Message], settings: GenerationSettings, *, model_id: str | None = None) -> None:
    """Raise InvalidRequestError for a conversation or settings no model can answer."""
    check_settings(settings, model_id=model_id)
    check_conversation(messages, model_id=model_id)


def check_conversation(messages: Sequence[Message], *, model_id: str | None = None) -> None:
    def bad(text: str) -> InvalidRequestError:
        return InvalidRequestError(text, model_id=model_id)

    if not messages or messages[-1].role != "user":
        raise bad("the conversation must end with a user message")
    total = 0
    last = len(messages) - 1
    for i, m in enumerate(messages):
        what = _name(m, i, last)
        if m.role not in ROLES:
            raise bad(f"{what} has the role {m.role!r}; a role is one of {', '.join(ROLES)}")
        if not isinstance(m.content, str):
            raise bad(f"{what} must be text (got {type(m.content).__name__})")
        total += len(m.content)
        if total > MAX_CONVERSATION_CHARS:
            raise bad(
                f"the conversation is over {MAX_CONVERSATION_CHARS:,} characters (more than any model's context "
                f"window); send a shorter prompt"
            )
        check_text(m.content, what, controls=m.role == "system" or i == last, model_id=model_id)
    if not messages[-1].content.strip():
        raise bad("the prompt is empty")


def check_text(text: str, what: str, *, controls: bool = True, model_id: str | None = None) -> None:
    """Refuse a lone surrogate (invalid UTF-8) and, with `controls`, a control character,
    naming it and its position (1 = the first character)."""
    found = _SURROGATE.search(text)
    if found:
        raise InvalidRequestError(describe_surrogate(text, found.start(), what), model_id=model_id)
    if controls:
        found = _CONTROL.search(text)
        if found:
            ch = found.group()
            name = unicodedata.name(ch, "") or _CONTROL_NAMES.get(ord(ch), "")
            raise InvalidRequestError(
                f"{what} contains a control character U+{ord(ch):04X}{f' ({name})' if name else ''} at position "
                f"{found.start() + 1}; only newline, tab and carriage return are allowed",
                model_id=model_id,
            )


def describe_surrogate(text: str, index: int, what: str) -> str:
    """Plain words for a lone surrogate. U+DC80..U+DCFF is how Python's surrogateescape keeps
    a byte that is not UTF-8 (command-line arguments, file names), so the byte is named."""
    code = ord(text[index])
    if 0xDC80 <= code <= 0xDCFF:
        return (
            f"{what} is not valid UTF-8: byte 0x{code - 0xDC00:02X} at position {index + 1} is not part of a "
            f"UTF-8 character"
        )
    return f"{what} contains a lone surrogate U+{code:04X} at position {index + 1}, which is not valid Unicode text"


_CONTROL_NAMES = {0x00: "NULL", 0x07: "BELL", 0x08: "BACKSPACE", 0x1B: "ESCAPE", 0x7F: "DELETE"}


def _name(m: Message, i: int, last: int) -> str:
    if i == last:
        return "the prompt"
    if m.role == "system":
        return "the system prompt"
    return f"message {i + 1} ({m.role})"


def check_settings(settings: GenerationSettings, *, model_id: str | None = None) -> None:
    def bad(text: str) -> InvalidRequestError:
        return InvalidRequestError(text, model_id=model_id)

    t, p, n, seed = settings.temperature, settings.top_p, settings.max_tokens, settings.seed
    if not _number(t) or not 0.0 <= t <= TEMPERATURE_MAX:
        raise bad(f"temperature must be between 0 and {TEMPERATURE_MAX:g} (got {t!r})")
    if not _number(p) or not 0.0 < p <= 1.0:
        raise bad(f"top_p must be above 0 and at most 1 (got {p!r})")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_TOKENS_LIMIT:
        raise bad(f"max_tokens must be a whole number from 1 to {MAX_TOKENS_LIMIT:,} (got {_shown(n)})")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX):
        raise bad(f"seed must be a whole number from 0 to {SEED_MAX} (got {_shown(seed)})")
    stop = settings.stop
    if isinstance(stop, str) or not isinstance(stop, tuple | list):
        raise bad(f"stop must be a list of strings (got {type(stop).__name__})")
    if len(stop) > MAX_STOP_SEQUENCES:
        raise bad(f"stop may hold at most {MAX_STOP_SEQUENCES} sequences (got {len(stop)})")
    for i, s in enumerate(stop):
        if not isinstance(s, str) or not s:
            raise bad(f"stop sequence {i + 1} must be a non-empty string (got {s!r})")
        check_text(s, f"stop sequence {i + 1}", controls=False, model_id=model_id)


def _shown(value: object) -> str:
    """A value for an error message, bounded: a 10,000-digit integer is named by its size."""
    text = (
        repr(value) if not isinstance(value, int) or abs(value) < 10**30 else f"a {len(str(abs(value)))}-digit number"
    )
    return text if len(text) <= 60 else text[:57] + "..."


def _number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


# -- fitting a conversation to a model's window ---------------------------------------


@dataclass(frozen=True)
class Fitted:
    messages: tuple[Message, ...]
    dropped_turns: int  # oldest turns removed (the system prompt is always kept)
    prompt_tokens: int | None
    notice: str | None  # plain words for the user when turns were dropped


@runtime_checkable
class PromptCounter(Protocol):
    """What a model offers when it can count its own prompt exactly (the local model: its
    tokenizer and chat template). `max_token_bytes` is the longest token of its vocabulary
    in UTF-8 bytes, so `bytes / max_token_bytes` is a lower bound of any text's tokens that
    costs nothing to compute. Methods only, so checking for them loads nothing."""

    def max_token_bytes(self) -> int: ...

    def count_prompt_tokens(self, messages: Sequence[Message]) -> int: ...

    def count_tokens(self, text: str) -> int: ...


# An estimate for models that cannot count here (HTTP models): token_estimate's characters
# per token, taken on whichever is larger of characters and UTF-8 bytes (so text in scripts
# of several bytes per character is not undercounted four-fold), plus this margin. The
# provider still has the final word with its own context-length error.
ESTIMATE_MARGIN = 1.1


def fit_to_window(
    messages: Sequence[Message], settings: GenerationSettings, config: ModelConfig, model: ChatModel
) -> Fitted:
    """Drop the oldest turns (never a system message or the last user message) until the
    prompt plus `max_tokens` fits `config.window_tokens`; raise ContextLengthError when it
    cannot fit, or when it would have to drop turns and `config.context_overflow` is
    "refuse". The work is bounded by the window, not by the conversation: turns are counted
    newest first and the walk stops at the first one that cannot fit, and a text is tokenized
    only when its cheap lower bound fits, so a 1 MB prompt is refused in milliseconds.

    A conversation the Monitor will refuse anyway (empty, not ending with a user message) is
    returned unchanged, so that refusal is recorded with its own cause."""
    msgs = tuple(messages)
    window = config.window_tokens
    if window is None or not msgs or msgs[-1].role != "user" or not all(isinstance(m.content, str) for m in msgs):
        return Fitted(msgs, 0, None, None)
    counter = _Counter(model)

    def too_long(tokens: int, what: str, about: str = "" if counter.exact else "about ") -> ContextLengthError:
        return ContextLengthError(
            f"{what} is {about}{tokens:,} tokens and the reply may take up to max_tokens = {settings.max_tokens:,}: "
            f"model '{config.id}' has a context window of {window:,} tokens",
            model_id=config.id,
            provider=config.provider_name,
        )

    budget = window - settings.max_tokens if isinstance(settings.max_tokens, int) else window
    if budget <= 0:
        raise ContextLengthError(
            f"max_tokens = {settings.max_tokens:,} leaves no room for the prompt: model '{config.id}' has a context "
            f"window of {window:,} tokens (prompt and reply together)",
            model_id=config.id,
            provider=config.provider_name,
        )
    kept_fixed = [i for i, m in enumerate(msgs) if m.role == "system" or i == len(msgs) - 1]
    fixed = [msgs[i] for i in kept_fixed]
    what = "the prompt" if len(fixed) == 1 else "the system prompt with the last message"
    floor = sum(counter.lower_bound(m.content) for m in fixed)
    if floor > budget:  # cannot fit whatever is dropped: refuse before tokenizing anything
        raise too_long(floor, what, "at least ") if counter.exact else too_long(counter.prompt(fixed), what)
    fixed_tokens = counter.prompt(fixed)
    if fixed_tokens > budget:
        raise too_long(fixed_tokens, what)

    # Newest first: keep each older turn while the running total fits.
    droppable = [i for i in range(len(msgs) - 1) if i not in set(kept_fixed)]
    remaining = budget - fixed_tokens
    keep_from = 0  # index into droppable of the oldest turn kept
    for pos in range(len(droppable) - 1, -1, -1):
        content = msgs[droppable[pos]].content
        if counter.lower_bound(content) + counter.framing > remaining:
            keep_from = pos + 1
            break
        size = counter.tokens(content) + counter.framing
        if size > remaining:
            keep_from = pos + 1
            break
        remaining -= size

    def assemble(start: int) -> tuple[Message, ...]:
        # History after a trim starts with a user turn: templates that require user and
        # assistant to alternate refuse a conversation whose first turn is the assistant's.
        while start < len(droppable) and start > 0 and msgs[droppable[start]].role != "user":
            start += 1
        kept = set(kept_fixed) | set(droppable[start:])
        return tuple(m for i, m in enumerate(msgs) if i in kept)

    fitted = assemble(keep_from)
    total = counter.prompt(fitted)
    while total > budget and keep_from < len(droppable):  # the per-turn framing was an approximation
        keep_from += 1
        fitted = assemble(keep_from)
        total = counter.prompt(fitted)
    if total > budget:
        raise too_long(total, what)
    dropped = len(msgs) - len(fitted)
    if not dropped:
        return Fitted(msgs, 0, total, None)
    if config.context_overflow == "refuse":
        raise ContextLengthError(
            f"the conversation is {'' if counter.exact else 'about '}{counter.prompt(msgs):,} tokens with "
            f"max_tokens = {settings.max_tokens:,}: model '{config.id}' has a context window of {window:,} tokens "
            f"and context_overflow = 'refuse' (start a new conversation, or set it to 'trim')",
            model_id=config.id,
            provider=config.provider_name,
        )
    notice = (
        f"trimmed the {dropped} oldest message{'s' if dropped != 1 else ''} of the conversation to fit the "
        f"context window of '{config.id}' ({window:,} tokens); the system prompt was kept"
    )
    return Fitted(fitted, dropped, total, notice)


class _Counter:
    """One way of counting for the fitting: exact through the model, or the estimate."""

    def __init__(self, model: object):
        self.exact = isinstance(model, PromptCounter)
        self._model = model if self.exact else None
        self.framing = FRAMING_TOKENS_PER_MESSAGE

    def lower_bound(self, text: str) -> int:
        if self._model is None:
            return self.tokens(text)  # the estimate is as cheap as a bound
        return len(text.encode("utf-8", "surrogatepass")) // max(1, self._model.max_token_bytes())

    def tokens(self, text: str) -> int:
        if self._model is None:
            size = max(len(text), len(text.encode("utf-8", "surrogatepass")))
            return math.ceil(math.ceil(size / CHARS_PER_TOKEN) * ESTIMATE_MARGIN)
        return self._model.count_tokens(text)

    def prompt(self, messages: Sequence[Message]) -> int:
        if self._model is None:
            return sum(self.tokens(m.content) + self.framing for m in messages)
        return self._model.count_prompt_tokens(messages)
