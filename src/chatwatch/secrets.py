"""API keys: where they are read from, and how they are kept out of every message.

A key comes from the environment variable a model names, or else from Streamlit's secrets
files (`./.streamlit/secrets.toml`, then `~/.streamlit/secrets.toml`), read here with
tomllib so model code never imports Streamlit. Every key read is registered; `scrub()`
removes registered keys and key-shaped strings from any text before it is shown or logged.
"""
from __future__ import annotations

import functools
import logging
import os
import re
import threading
import tomllib
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

MASK = "[secret]"
# Shorter values are not treated as secrets: scrubbing "abc" would mangle ordinary text.
MIN_SECRET_LEN = 6

_lock = threading.Lock()
_known: set[str] = set()

# --- key shapes: distinctive enough to apply to every log line -------------------------
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL)
_AUTH_HEADER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_KEY_SHAPES = re.compile(
    r"\bsk-[A-Za-z0-9][A-Za-z0-9_-]{15,}"  # OpenAI sk-/sk-proj-, Anthropic sk-ant-, OpenRouter sk-or-
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # AWS access key ids
    r"|\bgh[pousr]_[A-Za-z0-9]{20,}|\bgithub_pat_[A-Za-z0-9_]{20,}"  # GitHub tokens
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"  # Slack tokens
    r"|\bAIza[0-9A-Za-z_-]{35}"  # Google API keys
)
# A name that can only mean a credential, followed by `=` or `:` (JSON/YAML/env/query).
_STRICT_NAME = (
    r"(?i:api[_-]?key|apikey|secret[_-]?key|client[_-]?secret|access[_-]?key(?:[_-]?id)?"
    r"|(?:access|auth|refresh|bearer|session|id)[_-]?token|private[_-]?key|password|passwd)"
)
_VALUE = r"""(?:"(?P<dq>[^"\n]*)"|'(?P<sq>[^'\n]*)'|(?P<bare>[^\s"'&,;]+))"""
_ASSIGN_STRICT = re.compile(rf"""\b(?P<name>(?:[A-Za-z0-9]+[_.-])*{_STRICT_NAME})(?P<sep>["']?\s*[:=]\s*){_VALUE}""")


def _assignment(m: re.Match[str]) -> str:
    if m["dq"] is not None:
        value = f'"{MASK}"'
    elif m["sq"] is not None:
        value = f"'{MASK}'"
    else:
        value = MASK
    return f"{m['name']}{m['sep']}{value}"


def redact_secret_shapes(text: str) -> str:
    """Replace only unmistakable credentials (safe for any log line)."""
    text = _PRIVATE_KEY.sub(MASK, text)
    text = _AUTH_HEADER.sub(lambda m: f"{m[1]} {MASK}", text)
    text = _KEY_SHAPES.sub(MASK, text)
    return _ASSIGN_STRICT.sub(_assignment, text)


@functools.lru_cache(maxsize=32)
def _secrets_pattern(secrets: frozenset[str]) -> re.Pattern[str] | None:
    # Longest first, so a secret that contains another is removed whole.
    alternatives = sorted((s for s in secrets if s), key=len, reverse=True)
    return re.compile("|".join(map(re.escape, alternatives))) if alternatives else None


def scrub_secrets(text: str, secrets: Iterable[str]) -> str:
    """Replace every exact occurrence of each secret value with `[secret]`."""
    pattern = _secrets_pattern(frozenset(secrets))
    return pattern.sub(MASK, text) if pattern else text


def register_secret(value: str | None) -> None:
    """Remember `value` so `scrub()` removes it everywhere in this process."""
    if value and len(value.strip()) >= MIN_SECRET_LEN:
        with _lock:
            _known.add(value.strip())


def known_secrets() -> frozenset[str]:
    with _lock:
        return frozenset(_known)


def scrub(text: str) -> str:
    """`text` with every known secret and every unmistakable key shape masked."""
    if not text:
        return text
    return redact_secret_shapes(scrub_secrets(text, known_secrets()))


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
