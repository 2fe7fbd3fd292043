"""Keep secrets and personal data out of logs.

Two tools, for two kinds of text:

* `redact_text` is for *user content* (prompts, answers) that is about to be logged. It
  replaces e-mail addresses, API-key-like strings, `key=value` secrets, long hex/base64
  tokens and long digit runs (cards, phones, ids) with `[email]`, `[secret]`, `[number]`.
  It errs on the side of over-redacting: a git SHA or a 10-digit epoch in a prompt becomes
  a placeholder too.
* `scrub_secrets` removes *known* secret values exactly. The model layer calls
  `register_secret(api_key)` when it reads a key from the environment, and `SecretFilter`
  (installed on the `chatwatch` log handler) scrubs every record with the registered values
  plus the unmistakable key shapes (`sk-...`, `Bearer ...`, `AKIA...`, `ghp_...`), so an API
  key never reaches a log file even when an exception message quotes it. Log messages are
  not run through the e-mail/number rules: ids, token counts and timestamps must survive.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable

from chatwatch import secrets as _secrets
# The key shapes and the exact-value scrubbing live with the registry of secrets, so every
# message shown or stored (not only log lines) gets the same protection.
from chatwatch.secrets import (  # noqa: F401 - re-exported for the log filter and tests
    MASK as SECRET,
    MIN_SECRET_LEN,
    _VALUE,
    _assignment,
    redact_secret_shapes,
    scrub_secrets,
)

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
        return text[: date.end()] + _DIGITS.sub(_digits, text[date.end():])
    return NUMBER if sum(c.isdigit() for c in text) >= 9 else text


def redact_text(text: str) -> str:
    """Replace e-mails, credentials, long secret-looking tokens and long digit runs."""
    text = redact_secret_shapes(text)
    text = _ASSIGN_LOOSE.sub(_assignment, text)
    text = _EMAIL.sub(EMAIL, text)
    text = _LONG_TOKEN.sub(_long_token, text)
    return _DIGITS.sub(_digits, text)


# One registry of secrets per process: chatwatch.secrets, filled when a model reads its key.
register_secret = _secrets.register_secret
registered_secrets = _secrets.known_secrets


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
