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
from collections.abc import Callable, Iterable
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


def forget_secrets() -> None:
    """Forget every registered secret (a test's keys must not scrub the next test's text)."""
    with _lock:
        _known.clear()


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


# --- user content and log records ----------------------------------------------------
SECRET = MASK
EMAIL = "[email]"
NUMBER = "[number]"

# Bare `key`/`token`/`secret` count only with `=` (code, env files, query strings):
# with `:` they are ordinary prose ("the key: practice").
_LOOSE_NAME = r"(?i:key|token|secret|pwd|auth)"
_ASSIGN_LOOSE = re.compile(rf"""\b(?P<name>(?:[A-Za-z0-9]+[_.-])*{_LOOSE_NAME})(?P<sep>\s*=\s*){_VALUE}""")

# --- personal data and anonymous secrets: user content only ---------------------------
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_TOKEN_CHARS = "A-Za-z0-9+/=_-"
_LONG_TOKEN = re.compile(rf"(?<![{_TOKEN_CHARS}])[{_TOKEN_CHARS}]{{32,}}(?![{_TOKEN_CHARS}])")
_HEX = re.compile(r"[0-9a-fA-F]+")
# Digit groups joined by single spaces or dashes: "4111 1111 1111 1111", "+34 612-345-678";
# not the tail of a word, decimal or UUID ("...-446655440000").
_DIGITS = re.compile(r"(?<![\w.-])\+?\d+(?:[ -]\d{2,})*(?!\w)")
_DATE_PREFIX = re.compile(r"\d{4}-\d{2}-\d{2}")


def _long_token(m: re.Match[str]) -> str:
    tok = m.group()
    if _HEX.fullmatch(tok) and any(c.isdigit() for c in tok) and any(c.isalpha() for c in tok):
        return SECRET
    digits = sum(c.isdigit() for c in tok)
    mixed = any(c.isupper() for c in tok) and any(c.islower() for c in tok) and digits >= 2
    # Random base64 has about one '/' in 64 characters; a file path has many.
    if mixed and tok.count("/") <= len(tok) // 16:
        return SECRET
    return tok


def _digits(m: re.Match[str]) -> str:
    text = m.group()
    date = _DATE_PREFIX.match(text)
    if date:  # "2024-11-26 10" is a date and an hour, not a phone number
        return text[: date.end()] + _DIGITS.sub(_digits, text[date.end() :])
    return NUMBER if sum(c.isdigit() for c in text) >= 9 else text


def redact_text(text: str) -> str:
    """Replace registered secrets, key shapes, e-mails, credentials, long secret-looking
    tokens and long digit runs (`scrub` first, so content needs only this one call)."""
    text = scrub(text)
    text = _ASSIGN_LOOSE.sub(_assignment, text)
    text = _EMAIL.sub(EMAIL, text)
    text = _LONG_TOKEN.sub(_long_token, text)
    return _DIGITS.sub(_digits, text)


registered_secrets = known_secrets


# Attributes every LogRecord has; anything else on a record came from `extra=`.
RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class SecretFilter(logging.Filter):
    """Scrub registered secrets and key shapes from a record's message, args, extras and
    traceback. Attach it to a *handler*: logger filters skip records from child loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = registered_secrets()

        def clean(text: str) -> str:
            if len(text) < MIN_SECRET_LEN:  # too short to hold any key ("ok", "local", "0")
                return text
            return redact_secret_shapes(scrub_secrets(text, secrets))

        try:
            message = record.getMessage()
        except Exception:  # bad %-args: keep the evidence, minus the secrets
            message = f"{record.msg} [unformattable args: {record.args!r}]"
        # Merging args into msg means no secret can hide in an arg's repr.
        record.msg, record.args = clean(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = clean(record.exc_text)
        if record.stack_info:
            record.stack_info = clean(record.stack_info)
        for name, value in list(vars(record).items()):
            if name not in RECORD_FIELDS:
                setattr(record, name, _clean_value(value, clean))
        return True


def _clean_value(value: object, clean: Callable[[str], str]) -> object:
    """Scrub strings inside an `extra` value; other objects become their scrubbed str()
    (the JSON log would have stringified them anyway, unscrubbed)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {str(k): _clean_value(v, clean) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_value(v, clean) for v in value]
    return clean(str(value))
