from __future__ import annotations

import logging

import pytest

from chatwatch.privacy import (
    SecretFilter,
    redact_secret_shapes,
    redact_text,
    register_secret,
    scrub_secrets,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail john.doe+x@example.co.uk now", "mail [email] now"),
        ("sk-proj-abcDEF1234567890abcdef and sk-ant-api03-xyzXYZ0123456789abc", "[secret] and [secret]"),
        ("sk-0123456789abcdefghij", "[secret]"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc123", "Authorization: Bearer [secret]"),
        ("OPENAI_API_KEY=abc123", "OPENAI_API_KEY=[secret]"),
        ("https://x.test/v1?key=AIzaFOO&alt=json", "https://x.test/v1?key=[secret]&alt=json"),
        ("api_key: 'hunter two'", "api_key: '[secret]'"),
        ('{"password": "p@ss w0rd", "user": "ana"}', '{"password": "[secret]", "user": "ana"}'),
        ("aws AKIAIOSFODNN7EXAMPLE", "aws [secret]"),
        ("gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "gh [secret]"),
        ("sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "sha [secret]"),
        ("b64 dGhpcyBpcyBhIHNlY3JldCBrZXkgd2l0aCAxMjM0NQ==", "b64 [secret]"),
        ("card 4111 1111 1111 1111.", "card [number]."),
        ("call +34 612-345-678", "call [number]"),
        ("id 123456789", "id [number]"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----", "[secret]"),
    ],
)
def test_redact_text_replaces(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "short 12345678 numbers and 3.14159265358979 stay",
        "on 2024-11-26 10:30 the run started",
        "uuid 550e8400-e29b-41d4-a716-446655440000",
        "the key: practice; token: unit; monkey=banana",
        "task-abcdefghijklmnopqrstu is not a key",
        "path /home/User/projects/chatwatch2/src/module.py",
        "state-of-the-art-transformer-based-architecture-for-everything",
    ],
)
def test_redact_text_leaves_ordinary_text(text: str) -> None:
    assert redact_text(text) == text


def test_secret_shapes_skip_personal_data() -> None:
    text = "user a@b.io paid 123456789, key sk-abcdefghij0123456789"
    assert redact_secret_shapes(text) == "user a@b.io paid 123456789, key [secret]"


def test_scrub_secrets_exact_and_longest_first() -> None:
    secrets = ["abc.*def", "abc.*def-longer"]
    assert scrub_secrets("x abc.*def-longer y abc.*def z abcXdef", secrets) == "x [secret] y [secret] z abcXdef"
    assert scrub_secrets("nothing", []) == "nothing"
    assert scrub_secrets("keep", [""]) == "keep"


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_secret_filter_scrubs_message_args_extras_and_traceback() -> None:
    key = "zz-registered-key-0042-abcdef"
    register_secret(key)
    handler = _Collect()
    handler.addFilter(SecretFilter())
    logger = logging.getLogger("test_redact.filter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("calling with %s", key)
        logger.warning("%(k)s", {"k": key})
        logger.warning(
            "extra", extra={"headers": {"Authorization": f"Bearer {key}"}, "cfg": [key], "obj": KeyError(key)}
        )
        logger.warning("bad args %d", key)  # unformattable: still scrubbed
        try:
            raise RuntimeError(f"401 for {key}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    formatter = logging.Formatter(
        "%(message)s %(headers)s %(cfg)s %(obj)s", defaults={"headers": "", "cfg": "", "obj": ""}
    )
    rendered = "\n".join(formatter.format(r) for r in handler.records)
    assert key not in rendered
    assert rendered.count("[secret]") >= 6
    assert "401 for [secret]" in rendered
