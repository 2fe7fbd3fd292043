"""API keys: where they are read from, and how they are kept out of every message.

A key comes from the environment variable a model names, or else from Streamlit's secrets
files (`./.streamlit/secrets.toml`, then `~/.streamlit/secrets.toml`), read here with
tomllib so model code never imports Streamlit. Every key read is registered; `scrub()`
removes registered keys and key-shaped strings from any text before it is shown or logged.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import tomllib
from pathlib import Path

log = logging.getLogger(__name__)

MASK = "[secret]"
# Shorter values are not treated as secrets: scrubbing "abc" would mangle ordinary text.
MIN_SECRET_LEN = 6

_lock = threading.Lock()
_known: set[str] = set()

_PATTERNS = (
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"), MASK),
    (re.compile(r"\b(Bearer)\s+(?!\[secret\])[^\s'\",;)}\]]{8,}"), rf"\1 {MASK}"),
)


def register_secret(value: str | None) -> None:
    """Remember `value` so `scrub()` removes it everywhere in this process."""
    if value and len(value.strip()) >= MIN_SECRET_LEN:
        with _lock:
            _known.add(value.strip())


def known_secrets() -> frozenset[str]:
    with _lock:
        return frozenset(_known)


def scrub(text: str) -> str:
    """`text` with every known secret and every `sk-...` / `Bearer ...` value masked."""
    if not text:
        return text
    # Longest first, so a secret containing another is masked whole.
    for secret in sorted(known_secrets(), key=len, reverse=True):
        text = text.replace(secret, MASK)
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def secrets_files() -> list[Path]:
    """Streamlit's secrets files, the project's first (it overrides the user's)."""
    return [Path.cwd() / ".streamlit" / "secrets.toml", Path.home() / ".streamlit" / "secrets.toml"]


def _from_secrets_files(name: str) -> str | None:
    for file in secrets_files():
        if not file.is_file():
            continue
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            # The parser's message names a line and column, never the file's values.
            log.warning("cannot read %s: %s", file, exc)
            continue
        value = data.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def get_api_key(env_name: str | None) -> str | None:
    """The key held by environment variable `env_name`, else by a Streamlit secrets file
    under the same top-level name; None when neither has it. The key is registered."""
    if not env_name:
        return None
    value = os.environ.get(env_name, "").strip() or _from_secrets_files(env_name)
    if value:
        register_secret(value)
    return value or None
