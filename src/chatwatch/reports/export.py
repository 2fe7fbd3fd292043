"""Export requests as JSON (one array), JSONL or CSV, streamed row by row.

Rows are read with `yield_per` (a server-side cursor on PostgreSQL; SQLite's cursor steps
through the file) and turned into text a chunk at a time, so an export of a million rows
never holds them all in memory. Field names are record.EXPORT_FIELDS; times are ISO 8601
UTC. CSV text cells that a spreadsheet would run as a formula are prefixed with a quote.

Costs are exact: stored as integer nano-dollars, they are written with their exact decimal
digits — as CSV text, and in JSON as a number token (`0.000001234`, never `1.234e-06` or a
float's rounding), which Python's json cannot do for a Decimal, hence `json_object()`.
`chatwatch ask --json` prints its record through the same function, so this module imports
the query side (and pandas with it) only when an export actually runs.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Collection, Iterator, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TextIO

from chatwatch.store.record import EXPORT_FIELDS, exact_usd

if TYPE_CHECKING:
    from chatwatch.reports.aggregate import Filters
    from chatwatch.store.records import Store

Format = Literal["json", "jsonl", "csv"]
FORMATS: tuple[Format, ...] = ("json", "jsonl", "csv")
MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "jsonl": "application/x-ndjson",
    "csv": "text/csv",
}
CHUNK_ROWS = 500
# OWASP's list for CSV injection: these start a formula in Excel / LibreOffice / Sheets.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Text in the export but numeric in meaning: never escaped.
_NUMERIC_TEXT = {"cost_usd", "started_at"}
# Exact decimals, written as JSON numbers with all their digits.
DECIMAL_FIELDS = frozenset({"cost_usd"})
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)\.[0-9]+")


def iter_export(
    store: Store, fmt: Format, filters: Filters | None = None, *, chunk_rows: int = CHUNK_ROWS
) -> Iterator[str]:
    """The export as str chunks of about `chunk_rows` records each, oldest first. Nothing
    is read until the first chunk is asked for."""
    return _encode(fmt, _rows(store, filters, chunk_rows))


def write_export(store: Store, out: TextIO, fmt: Format, filters: Filters | None = None) -> int:
    """Write the export to a text file object; returns the number of records written."""
    written = 0

    def counted() -> Iterator[list[dict[str, Any]]]:
        nonlocal written
        for chunk in _rows(store, filters, CHUNK_ROWS):
            written += len(chunk)
            yield chunk

    out.writelines(_encode(fmt, counted()))
    return written


def _encode(fmt: Format, chunks: Iterator[list[dict[str, Any]]]) -> Iterator[str]:
    encoders = {"json": _json_rows, "jsonl": _jsonl_rows, "csv": _csv_rows}
    if fmt not in encoders:
        raise ValueError(f"export format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return encoders[fmt](chunks)


def _rows(store: Store, filters: Filters | None, chunk_rows: int) -> Iterator[list[dict[str, Any]]]:
    """Export dicts, `chunk_rows` at a time, straight from a streaming cursor."""
    import sqlalchemy as sa

    from chatwatch.reports.aggregate import Filters, request_conditions
    from chatwatch.store.records import row_to_record
    from chatwatch.store.schema import requests

    r = requests.c
    q = sa.select(requests).where(*request_conditions(filters or Filters())).order_by(r.started_us, r.id)
    with store.engine.connect() as conn:
        result = conn.execution_options(yield_per=chunk_rows).execute(q)
        for partition in result.partitions():
            yield [row_to_record(row).to_dict() for row in partition]


def _json_rows(chunks: Iterator[list[dict[str, Any]]]) -> Iterator[str]:
    yield "["
    first = True
    for chunk in chunks:
        text = ",\n".join(json_object(d) for d in chunk)
        yield ("\n" if first else ",\n") + text
        first = False
    yield "\n]\n" if not first else "]\n"


def _jsonl_rows(chunks: Iterator[list[dict[str, Any]]]) -> Iterator[str]:
    for chunk in chunks:
        yield "".join(json_object(d) + "\n" for d in chunk)


def json_object(d: Mapping[str, Any], decimals: Collection[str] = DECIMAL_FIELDS) -> str:
    """`d` as one JSON object, keys in order, with the `decimals` fields (Decimal or
    decimal text, e.g. RequestRecord.to_dict()'s cost) as exact JSON numbers; None stays
    null. The keys are field names, never user text.

    One json.dumps with each number as a string, then that string's quotes removed: inside
    a JSON string every quote is escaped, so `"cost_usd": "0.000001234"` with bare quotes
    can only be that key and its value (as fast as a plain json.dumps)."""
    plain = dict(d)
    numbers = {key: json_number(plain[key]) for key in decimals if plain.get(key) is not None}
    plain.update(numbers)
    text = json.dumps(plain, ensure_ascii=False)
    for key, number in numbers.items():
        name = json.dumps(key, ensure_ascii=False)
        text = text.replace(f'{name}: "{number}"', f"{name}: {number}", 1)
    return text


def json_number(value: Decimal | str | int) -> str:
    """The exact JSON number token of a decimal: 1234e-9 -> `0.000001234`, 0 -> `0.0`.
    Always with a fraction, so a plain json.loads reads every cost as the same type."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, str, int)):
        raise TypeError(f"an exact decimal must be a Decimal, decimal text or int, not {type(value).__name__}")
    try:
        x = Decimal(value)
        text = exact_usd(x) if x.is_finite() else ""
    except ArithmeticError:
        text = ""
    if text and "." not in text:
        text += ".0"
    if not _JSON_NUMBER.fullmatch(text):
        raise ValueError(f"not a finite decimal number: {value!r}")
    return text


def _csv_rows(chunks: Iterator[list[dict[str, Any]]]) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(EXPORT_FIELDS)
    for chunk in chunks:
        for d in chunk:
            writer.writerow([csv_cell(name, d[name]) for name in EXPORT_FIELDS])
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    if buf.tell():  # header only: no rows matched
        yield buf.getvalue()


def csv_cell(name: str, value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and name not in _NUMERIC_TEXT and value.startswith(_FORMULA_START):
        return "'" + value
    return value
