"""Token counts for servers that report none (llama_cpp.server ignores `include_usage`).

Best first: the server's own tokenizer endpoint (llama.cpp-family servers have one), which
gives an exact count of the reply ("counted"); otherwise a characters-per-token rule of
thumb ("estimated"). tiktoken is deliberately not used: it fetches its vocabularies from
the network on first use, and it is the wrong tokenizer for most self-hosted models anyway.
"""

from __future__ import annotations

import json
import math
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
