"""Token counts for servers that report none (llama_cpp.server ignores `include_usage`).

Best first: the server's own tokenizer endpoint (llama.cpp-family servers have one), which
gives an exact count of the reply ("counted"); otherwise a characters-per-token rule of
thumb ("estimated"). tiktoken is deliberately not used: it fetches its vocabularies from
the network on first use, and it is the wrong tokenizer for most self-hosted models anyway.

The prompt the server saw is the chat messages rendered by the model's chat template, so
its size is counted on that rendering. The template is the model's own when it can be read:
llama_cpp.server names its model by the GGUF path, and when that file is on this machine
its `tokenizer.chat_template` is rendered exactly as llama_cpp.server renders it (the same
llama_cpp Jinja2ChatFormatter) and the count is "counted". A server started with its own
`--chat_format` instead of the GGUF's template would make that count off. Without the
template, the messages are rendered as ChatML (`<|im_start|>role\ncontent<|im_end|>\n` per
message, then `<|im_start|>assistant\n`), the most common template of self-hosted models,
and counted with the server's tokenizer: "estimated", since a template may add more (a
default system prompt, for one).
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from chatwatch.models.contract import Message

CHARS_PER_TOKEN = 4  # English text with common BPE vocabularies
FRAMING_TOKENS_PER_MESSAGE = 4  # role markers and separators a chat template adds


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def estimate_prompt_tokens(messages: Sequence[Message]) -> int:
    return sum(estimate_tokens(m.content) + FRAMING_TOKENS_PER_MESSAGE for m in messages)


def render_chatml(messages: Sequence[Message]) -> str:
    """The documented approximation of a chat template: ChatML with the generation prompt."""
    turns = "".join(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages)
    return turns + "<|im_start|>assistant\n"


ChatTemplate = Callable[[Sequence[Message]], str]


def gguf_chat_template(path: str | os.PathLike) -> ChatTemplate | None:
    """The chat template stored in a GGUF file, rendered as llama_cpp.server renders it, or
    None when the file is not readable here or holds no template. Reads the vocabulary and
    metadata only (no weights)."""
    if not str(path).endswith(".gguf") or not os.path.isfile(path):
        return None
    import llama_cpp
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(os.fsencode(path), params)
    if not model:
        return None
    try:
        size = 1 << 16
        while True:
            buf = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_model_meta_val_str(model, b"tokenizer.chat_template", buf, size)
            if n < size:
                break
            size = n + 1
        if n < 0:
            return None
        vocab = llama_cpp.llama_model_get_vocab(model)

        def text(token: int) -> str:
            return llama_cpp.llama_vocab_get_text(vocab, token).decode("utf-8", "replace") if token >= 0 else ""

        formatter = Jinja2ChatFormatter(
            template=buf.value.decode("utf-8"),
            eos_token=text(llama_cpp.llama_vocab_eos(vocab)),
            bos_token=text(llama_cpp.llama_vocab_bos(vocab)),
        )
    finally:
        llama_cpp.llama_model_free(model)
    return lambda messages: formatter(messages=[m.as_dict() for m in messages]).prompt


# (path, request body, count from the JSON answer) for each known tokenizer endpoint.
_Probe = tuple[str, Callable[[str, str], dict[str, Any]], Callable[[Any], int]]
_PROBES: tuple[_Probe, ...] = (
    # llama-cpp-python's server (llama_cpp.server)
    ("/extras/tokenize/count", lambda text, model: {"input": text, "model": model}, lambda body: int(body["count"])),
    # llama.cpp's own server (llama-server)
    ("/tokenize", lambda text, model: {"content": text}, lambda body: len(body["tokens"])),
)
_UNKNOWN = -1  # endpoint not probed yet
_NONE = -2  # probed: the server has no tokenizer endpoint
_UNREAD = object()  # the chat template has not been looked for yet


class ServerTokenizer:
    """Counts tokens with a server's tokenizer endpoint, found by probing once and
    remembered, so a server without one (OpenAI, Ollama) is asked only once per model."""

    def __init__(self, root_url: str, model: str, headers: dict[str, str] | None = None, timeout_s: float = 2.0):
        self.root_url = root_url.rstrip("/")
        self.model = model
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._probe = _UNKNOWN
        self._baseline = 0  # tokens the endpoint adds to any text (a BOS token on some models)
        self._template: ChatTemplate | None | object = _UNREAD

    @property
    def available(self) -> bool | None:
        """True/False once probed, None before."""
        return None if self._probe == _UNKNOWN else self._probe >= 0

    def count(self, text: str) -> int | None:
        """Exact token count of `text`, or None when the server cannot tell."""
        with self._lock:
            if self._probe == _UNKNOWN:
                self._discover()
            probe = self._probe
        if probe < 0:
            return None
        try:
            return max(0, self._ask(_PROBES[probe], text) - self._baseline)
        except _Unanswered:
            return None

    def count_prompt(self, messages: Sequence[Message]) -> tuple[int, bool] | None:
        """Tokens of the prompt the server built from `messages`, and whether the count is
        exact (rendered with the model's own template) or not (the ChatML approximation);
        None when the server has no tokenizer. The chat template adds its special tokens
        itself, so the count leaves out what the endpoint adds to any text (`baseline`)."""
        template = self._chat_template()
        rendered = template(messages) if template is not None else render_chatml(messages)
        counted = self.count(rendered)
        return None if counted is None else (counted, template is not None)

    def _chat_template(self) -> ChatTemplate | None:
        with self._lock:
            if self._template is _UNREAD:
                template = self._read_template()
                if template is not _UNREAD:  # the server did not answer: ask again next time
                    self._template = template
                return None if template is _UNREAD else template
            return self._template  # type: ignore[return-value]

    def _read_template(self) -> ChatTemplate | None:
        """llama_cpp.server lists its model by its GGUF path: read that file's template."""
        req = urllib.request.Request(self.root_url + "/v1/models", headers=self._headers)
        try:
            with urllib.request.urlopen(req, timeout=self._timeout_s) as resp:
                ids = [m.get("id", "") for m in json.loads(resp.read()).get("data", [])]
        except urllib.error.HTTPError as exc:  # answered, with no model list: final
            exc.close()
            return None
        except OSError:  # unreachable or busy (timeout): not an answer, so not final
            return _UNREAD  # type: ignore[return-value]
        except (ValueError, AttributeError, TypeError):  # an answer we cannot read: final
            return None
        paths = [i for i in ids if isinstance(i, str) and i.endswith(".gguf")]
        if len(paths) != 1:  # none, or several models: which one serves this request is unknown
            return None
        try:
            return gguf_chat_template(paths[0])
        except Exception:  # a broken file or template: the approximation still counts
            return None

    def _discover(self) -> None:
        for i, probe in enumerate(_PROBES):
            try:
                baseline = self._ask(probe, "")
            except _NotThere:
                continue
            except _Unanswered:
                return  # the server is unreachable right now: decide on a later call
            self._probe, self._baseline = i, baseline
            return
        self._probe = _NONE

    def _ask(self, probe: _Probe, text: str) -> int:
        path, body, read = probe
        req = urllib.request.Request(
            self.root_url + path, data=json.dumps(body(text, self.model)).encode(), headers=self._headers, method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=self._timeout_s) as resp:
                return read(json.loads(resp.read()))
        except urllib.error.HTTPError as exc:
            exc.close()
            raise _NotThere from None
        except (KeyError, TypeError, ValueError):
            raise _NotThere from None  # answered, but not a tokenizer's answer
        except OSError:
            raise _Unanswered from None


class _Unanswered(Exception):
    """The server did not answer (down, timed out)."""


class _NotThere(_Unanswered):
    """The server answered: it has no such endpoint."""
