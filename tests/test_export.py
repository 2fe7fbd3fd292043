"""Exports: JSON, JSONL and CSV with filters, formula escaping and streaming."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from chatwatch.reports import export
from chatwatch.reports.queries import Filters
from chatwatch.store.record import EXPORT_FIELDS
from chatwatch.store.records import Store
from tests.fixtures.db import make_record

T0 = datetime(2026, 2, 1, tzinfo=UTC)


def _fill(store: Store, n: int = 30) -> list:
    records = [
        make_record(
            started_at=T0 + timedelta(seconds=i),
            model="a" if i % 2 else "b",
            cost_usd=Decimal("0.000000123") * i if i % 5 else None,
        )
        for i in range(n)
    ]
    store.write_many(records)
    return records


def test_json_is_one_array_of_export_fields(store: Store) -> None:
    records = _fill(store)
    text = "".join(export.iter_export(store, "json"))
    data = json.loads(text)
    assert [d["id"] for d in data] == [r.id for r in records]  # oldest first
    assert all(tuple(d) == EXPORT_FIELDS for d in data)
    assert data[1]["started_at"] == "2026-02-01T00:00:01.000000Z"
    assert data[1]["cost_usd"] == 0.000000123 and data[0]["cost_usd"] is None  # a number, not text
    assert data[1] == {**records[1].to_dict(), "cost_usd": data[1]["cost_usd"]}


def test_jsonl_and_filters(store: Store) -> None:
    records = _fill(store)
    f = Filters(since=T0 + timedelta(seconds=10), until=T0 + timedelta(seconds=20), models=["a"], statuses=["ok"])
    lines = "".join(export.iter_export(store, "jsonl", f)).splitlines()
    want = [
        r.id
        for r in records
        if r.model == "a" and T0 + timedelta(seconds=10) <= r.started_at < T0 + timedelta(seconds=20)
    ]
    assert [json.loads(line)["id"] for line in lines] == want
    assert export.write_export(store, io.StringIO(), "jsonl", Filters(statuses=["error"])) == 0


def test_csv_escapes_formulas_in_text_cells_only(store: Store) -> None:
    record = make_record(
        prompt_text='=HYPERLINK("http://x")',
        response_text="+1+1",
        error_message="-2+3",
        model="@SUM(A1)",
        session_id="\tcmd",
        cost_usd=Decimal("1.5"),
        temperature=0.0,
    )
    store.write(record)
    out = io.StringIO()
    assert export.write_export(store, out, "csv") == 1
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == EXPORT_FIELDS
    row = dict(zip(rows[0], rows[1]))
    assert row["prompt_text"] == '\'=HYPERLINK("http://x")'
    assert row["response_text"] == "'+1+1"
    assert row["error_message"] == "'-2+3"
    assert row["model"] == "'@SUM(A1)"
    assert row["session_id"] == "'\tcmd"
    assert row["cost_usd"] == "1.5" and row["latency_s"] == "1.25" and row["temperature"] == "0.0"
    assert row["stream"] == "true" and row["reasoning_tokens"] == ""


def test_csv_cell_rules() -> None:
    assert export.csv_cell("error_message", "-oops") == "'-oops"
    assert export.csv_cell("cost_usd", "-1.5") == "-1.5"  # numeric in meaning: untouched
    assert export.csv_cell("latency_s", -1.5) == -1.5
    assert export.csv_cell("prompt_text", None) == ""


@pytest.mark.parametrize("fmt", export.FORMATS)
def test_exports_stream_in_chunks(store: Store, fmt: str) -> None:
    _fill(store, 95)
    chunks = export.iter_export(store, fmt, chunk_rows=10)
    first = next(chunks)  # available before the rest is read
    rest = list(chunks)
    assert len(rest) >= 9
    text = first + "".join(rest)
    if fmt == "json":
        assert len(json.loads(text)) == 95
    elif fmt == "jsonl":
        assert len(text.splitlines()) == 95
    else:
        assert len(list(csv.reader(io.StringIO(text)))) == 96


def test_export_reads_lazily_with_a_streaming_cursor(store: Store, monkeypatch) -> None:
    """Rows are fetched in yield_per partitions, never all at once."""
    _fill(store, 50)
    seen: list[dict] = []
    real = export._rows

    def spy(store_, filters, chunk_rows):
        for chunk in real(store_, filters, chunk_rows):
            seen.append({"size": len(chunk)})
            yield chunk

    cursors: list[str] = []
    sa.event.listen(
        store.engine, "before_cursor_execute", lambda conn, cursor, *a: cursors.append(type(cursor).__name__)
    )
    monkeypatch.setattr(export, "_rows", spy)
    chunks = export.iter_export(store, "jsonl", chunk_rows=7)
    assert seen == []  # nothing read until asked
    next(chunks)
    assert seen == [{"size": 7}]
    if store.dialect == "postgresql":
        assert cursors[-1] == "ServerCursor"  # rows stay on the server until fetched
    list(chunks)
    assert sum(s["size"] for s in seen) == 50 and max(s["size"] for s in seen) == 7


def test_empty_exports_are_valid(store: Store) -> None:
    assert json.loads("".join(export.iter_export(store, "json"))) == []
    assert "".join(export.iter_export(store, "jsonl")) == ""
    assert list(csv.reader(io.StringIO("".join(export.iter_export(store, "csv"))))) == [list(EXPORT_FIELDS)]
    with pytest.raises(ValueError):
        export.iter_export(store, "xml")


# Costs that a float cannot hold or prints in exponent form: 1 nano-dollar, 1234, a large
# bill with a last nano-dollar, and zero.
EXACT_NANOS = [1, 1234, 10**12 + 1, 123_456_789_012, 0]


def _exact_fill(store: Store) -> dict[str, int | None]:
    records = [make_record(cost_usd=Decimal(n) / 10**9) for n in EXACT_NANOS] + [make_record(cost_usd=None)]
    store.write_many(records)
    with store.engine.connect() as conn:  # the stored integers, read around the export code
        rows = conn.execute(sa.text("SELECT id, cost_nanousd FROM requests")).all()
    stored = {row.id: row.cost_nanousd for row in rows}
    assert sorted(n for n in stored.values() if n is not None) == sorted(EXACT_NANOS)
    return stored


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_json_costs_are_exact_numbers(store: Store, fmt: str) -> None:
    stored = _exact_fill(store)
    text = "".join(export.iter_export(store, fmt))
    docs = (
        json.loads(text, parse_float=Decimal)
        if fmt == "json"
        else [json.loads(line, parse_float=Decimal) for line in text.splitlines()]
    )
    for d in docs:
        nanos = stored[d["id"]]
        if nanos is None:
            assert d["cost_usd"] is None
        else:
            assert isinstance(d["cost_usd"], Decimal)  # a JSON number with a fraction, never a string
            assert d["cost_usd"] == Decimal(nanos).scaleb(-9)
    tokens = re.findall(r'"cost_usd": ([^,}]*)', text)
    assert len(tokens) == len(stored) and all(re.fullmatch(r"null|[0-9]+\.[0-9]+", t) for t in tokens), tokens
    assert '"cost_usd": 0.000001234,' in text and '"cost_usd": 1000.000000001,' in text
    assert '"cost_usd": 0.0,' in text and '"cost_usd": null,' in text


def test_csv_costs_are_exact_text(store: Store) -> None:
    stored = _exact_fill(store)
    rows = list(csv.DictReader(io.StringIO("".join(export.iter_export(store, "csv")))))
    for row in rows:
        nanos = stored[row["id"]]
        assert row["cost_usd"] == ("" if nanos is None else format(Decimal(nanos).scaleb(-9).normalize(), "f"))
    assert {r["cost_usd"] for r in rows} >= {"0.000001234", "1000.000000001", "0.000000001"}


def test_json_number_refuses_what_is_not_an_exact_decimal() -> None:
    assert export.json_number(Decimal("1234e-9")) == "0.000001234"
    assert export.json_number("2") == "2.0"
    with pytest.raises(TypeError, match="not float"):
        export.json_number(0.1)
    with pytest.raises(ValueError, match="not a finite decimal number: 'NaN'"):
        export.json_number("NaN")
    with pytest.raises(ValueError, match="'12 dollars'"):
        export.json_number("12 dollars")


def test_text_that_looks_like_a_cost_is_left_alone(store: Store) -> None:
    lookalike = '"cost_usd": "0.000001234", '
    store.write(make_record(error_message=lookalike, prompt_text=lookalike, cost_usd=Decimal(1234).scaleb(-9)))
    (d,) = json.loads("".join(export.iter_export(store, "json")), parse_float=Decimal)
    assert d["error_message"] == d["prompt_text"] == lookalike
    assert d["cost_usd"] == Decimal("0.000001234")
