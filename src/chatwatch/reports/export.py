"""Export requests as JSON (one array), JSONL or CSV, streamed row by row.

Rows are read with `yield_per` (a server-side cursor on PostgreSQL; SQLite's cursor steps
through the file) and turned into text a chunk at a time, so an export of a million rows
never holds them all in memory. Field names are record.EXPORT_FIELDS; times are ISO 8601
UTC and costs decimal strings (RequestRecord.to_dict). CSV text cells that a spreadsheet
would run as a formula are prefixed with a quote.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any, Literal, TextIO

import sqlalchemy as sa

from chatwatch.reports.queries import Filters, request_conditions
from chatwatch.store.record import EXPORT_FIELDS
from chatwatch.store.records import Store, row_to_record
from chatwatch.store.schema import requests

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


def iter_export(
    store: Store, fmt: Format, filters: Filters | None = None, *, chunk_rows: int = CHUNK_ROWS
) -> Iterator[str]:
    """The export as str chunks of about `chunk_rows` records each, oldest first. Nothing
    is read until the first chunk is asked for."""
    return _encode(fmt, _rows(store, filters or Filters(), chunk_rows))


def write_export(store: Store, out: TextIO, fmt: Format, filters: Filters | None = None) -> int:
    """Write the export to a text file object; returns the number of records written."""
    written = 0

    def counted() -> Iterator[list[dict[str, Any]]]:
        nonlocal written
        for chunk in _rows(store, filters or Filters(), CHUNK_ROWS):
            written += len(chunk)
            yield chunk

    out.writelines(_encode(fmt, counted()))
    return written


def _encode(fmt: Format, chunks: Iterator[list[dict[str, Any]]]) -> Iterator[str]:
    encoders = {"json": _json_rows, "jsonl": _jsonl_rows, "csv": _csv_rows}
    if fmt not in encoders:
        raise ValueError(f"export format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return encoders[fmt](chunks)


def _rows(store: Store, filters: Filters, chunk_rows: int) -> Iterator[list[dict[str, Any]]]:
    """Export dicts, `chunk_rows` at a time, straight from a streaming cursor."""
    r = requests.c
    q = sa.select(requests).where(*request_conditions(filters)).order_by(r.started_us, r.id)
    with store.engine.connect() as conn:
        result = conn.execution_options(yield_per=chunk_rows).execute(q)
        for partition in result.partitions():
            yield [row_to_record(row).to_dict() for row in partition]


def _json_rows(chunks: Iterator[list[dict[str, Any]]]) -> Iterator[str]:
    yield "["
    first = True
    for chunk in chunks:
        text = ",\n".join(json.dumps(d, ensure_ascii=False) for d in chunk)
        yield ("\n" if first else ",\n") + text
        first = False
    yield "\n]\n" if not first else "]\n"


def _jsonl_rows(chunks: Iterator[list[dict[str, Any]]]) -> Iterator[str]:
    for chunk in chunks:
        yield "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in chunk)


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
