"""The string tables: complete in every language, one definition per key, and every key
the source asks for by name exists (the pages themselves are rendered in Spanish by
tests/test_ui_spanish.py)."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import pytest

from chatwatch.i18n import LANGUAGES, STRINGS, TABLES, DuplicateKeyError, merge, t

SRC = Path(__file__).resolve().parents[1] / "src" / "chatwatch"
TABLE_MODULES = ("common", "chat", "dashboard", "explorer", "alerts")


def _fields(text: str) -> list[str]:
    """The replacement fields of a format string, by name (format spec and conversion dropped)."""
    return sorted(name for _, name, _, _ in string.Formatter().parse(text) if name is not None)


@pytest.mark.parametrize("table", list(TABLES))
def test_every_key_has_every_language_with_the_same_fields(table):
    for key, entry in TABLES[table].items():
        assert set(entry) == set(LANGUAGES), f"{table}: {key!r} has {sorted(entry)}, not {sorted(LANGUAGES)}"
        for lang, text in entry.items():
            assert isinstance(text, str) and text.strip(), f"{table}: {key!r} is empty in {lang!r}"
        assert _fields(entry["es"]) == _fields(entry["en"]), f"{table}: {key!r} fields differ between languages"


def test_tables_are_merged_whole_and_each_key_once():
    assert len(STRINGS) == sum(len(table) for table in TABLES.values())
    for table in TABLES.values():
        for key, entry in table.items():
            assert STRINGS[key] is entry


def test_a_key_defined_in_two_tables_is_an_error():
    with pytest.raises(DuplicateKeyError, match=r"'x\.y' is defined in both the 'one' and 'two' tables"):
        merge({"one": {"x.y": {"es": "a", "en": "a"}}, "two": {"x.y": {"es": "b", "en": "b"}}})


def test_tables_are_plain_data_with_no_side_effects():
    """A table module imports nothing of chatwatch (in particular not chatwatch.i18n to
    merge itself into it): loading and merging is __init__'s job alone."""
    for name in TABLE_MODULES:
        path = SRC / "i18n" / f"{name}.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = [
            node.module if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names
        ]
        assert all(m == "__future__" for m in imported), (name, imported)
        assert ast.get_docstring(tree), f"i18n/{name}.py has no docstring"


def test_missing_key_or_language_raises():
    with pytest.raises(KeyError, match="no UI string 'no.such.key'"):
        t("no.such.key", "es")
    with pytest.raises(KeyError, match="has no 'fr' text"):
        t("nav.chat", "fr")
    assert t("chat.waiting", "es", place=2) == "Esperando al modelo: hay 2 petición(es) delante."


# --- keys used in the source ------------------------------------------------------------------


def _key_calls(tree: ast.AST):
    """(line, key pattern, is_literal) of every t("..."), i18n.t("..."), tr("...") and
    Problem.of("...") call; tr and Problem keys are alerts/text.py's, under "alert."."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else None
        if name == "t" and owner in (None, "i18n"):
            prefix = ""
        elif (name == "tr" and owner is None) or (name == "of" and owner == "Problem"):
            prefix = "alert."
        else:
            continue
        arg = node.args[0]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            yield node.lineno, prefix + arg.value, True
        elif isinstance(arg, ast.JoinedStr):
            parts = [
                re.escape(v.value) if isinstance(v, ast.Constant) else r"[^\s]+"
                for v in arg.values  # a formatted value stands for any non-empty key part
            ]
            yield node.lineno, prefix + "".join(parts), False


def test_every_key_named_in_the_source_exists():
    missing, seen = [], 0
    for path in sorted(SRC.rglob("*.py")):
        if "i18n" in path.parts:
            continue
        for line, key, literal in _key_calls(ast.parse(path.read_text(encoding="utf-8"))):
            seen += 1
            where = f"{path.relative_to(SRC)}:{line}"
            if literal and key not in STRINGS:
                missing.append(f"{where}: {key!r}")
            elif not literal and not any(re.fullmatch(key, k) for k in STRINGS):
                missing.append(f"{where}: no key matches f-string {key!r}")
    assert seen > 200  # the scan finds the UI's calls (not an empty walk)
    assert not missing, "\n".join(missing)


def test_the_scan_sees_a_missing_key(tmp_path):
    """The scan above would catch a typo: a literal and an f-string key that exist nowhere."""
    tree = ast.parse('t("dash.kpi.typo", L)\nt(f"dash.kpy.{x}", L)\ntr("kind.error_rate", L)\n')
    calls = list(_key_calls(tree))
    assert [(key, literal) for _, key, literal in calls] == [
        ("dash.kpi.typo", True),
        (r"dash\.kpy\.[^\s]+", False),
        ("alert.kind.error_rate", True),
    ]
    assert "dash.kpi.typo" not in STRINGS and not any(re.fullmatch(calls[1][1], k) for k in STRINGS)
    assert calls[2][1] in STRINGS
