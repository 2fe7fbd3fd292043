"""How a log line looks: human-readable on the console, one JSON object in the file."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from chatwatch.privacy import RECORD_FIELDS

CONTEXT_FIELDS = ("request_id", "session_id", "model")


class ConsoleFormatter(logging.Formatter):
    """`2024-11-26 10:00:00.123 INFO    chatwatch.models [req-1] message`"""

    default_msec_format = "%s.%03d"

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None) or "-"
        line = f"{self.formatTime(record)} {record.levelname:<7} {record.name} [{rid}] {record.getMessage()}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):  # the usual extras: no trial encode
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else str(value)
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return str(value)
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per line: fixed fields first, then the record's `extra=` values."""

    def __init__(self, *, role: str, instance: str) -> None:
        super().__init__()
        self.role, self.instance = role, instance

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        doc: dict[str, Any] = {
            "timestamp": ts.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **{name: getattr(record, name, None) for name in CONTEXT_FIELDS},
            "role": self.role,
            "instance": self.instance,
        }
        for name, value in vars(record).items():
            if name in RECORD_FIELDS or name in CONTEXT_FIELDS:
                continue
            doc[f"extra_{name}" if name in doc else name] = _jsonable(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, ensure_ascii=False, default=str)
