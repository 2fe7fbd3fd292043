"""Every user-visible string, in Spanish and English, and `t()` to look one up.

The strings live in one plain table per area (common, chat, dashboard, explorer,
alerts): dicts with no import side effects. This module loads them all at import and
merges them with one rule — a key defined in two tables is an error at import — so
`t()` finds every key whichever page was imported first, and no table can silently win
over another.

A key `t()` does not know raises `KeyError`: a missing string is a bug to see in the tests
(which render every page and scan the source for literal keys), not something to paper
over with a raw key on screen.
"""

from __future__ import annotations

from collections.abc import Mapping

from chatwatch.i18n.alerts import ALERT_STRINGS, NOTIFY_STRINGS
from chatwatch.i18n.arena import ARENA_STRINGS
from chatwatch.i18n.auth import AUTH_STRINGS
from chatwatch.i18n.chat import CHAT_STRINGS
from chatwatch.i18n.common import COMMON_STRINGS
from chatwatch.i18n.cost import COST_STRINGS
from chatwatch.i18n.dashboard import DASHBOARD_STRINGS
from chatwatch.i18n.explorer import REQUEST_STRINGS
from chatwatch.i18n.forecast import FORECAST_STRINGS
from chatwatch.i18n.resilience import RESILIENCE_STRINGS
from chatwatch.i18n.storage import STORAGE_STRINGS

LANGUAGES = {"es": "Español", "en": "English"}

Table = Mapping[str, Mapping[str, str]]

# Every table by name, in the order they are merged (the name is only for error messages).
TABLES: dict[str, Table] = {
    "common": COMMON_STRINGS,
    "chat": CHAT_STRINGS,
    "dashboard": DASHBOARD_STRINGS,
    "explorer": REQUEST_STRINGS,
    "alerts": ALERT_STRINGS,
    "alert notifications": NOTIFY_STRINGS,
    "storage": STORAGE_STRINGS,
    "forecast": FORECAST_STRINGS,
    "cost control": COST_STRINGS,
    "auth": AUTH_STRINGS,
    "arena": ARENA_STRINGS,
    "resilience": RESILIENCE_STRINGS,
}


class DuplicateKeyError(ValueError):
    """Two string tables define the same key."""


def merge(tables: Mapping[str, Table]) -> dict[str, Mapping[str, str]]:
    """One table from several; a key defined in two of them raises DuplicateKeyError naming
    the key and both tables."""
    merged: dict[str, Mapping[str, str]] = {}
    origin: dict[str, str] = {}
    for name, table in tables.items():
        for key, entry in table.items():
            if key in merged:
                raise DuplicateKeyError(f"i18n key {key!r} is defined in both the {origin[key]!r} and {name!r} tables")
            merged[key] = entry
            origin[key] = name
    return merged


STRINGS: Mapping[str, Mapping[str, str]] = merge(TABLES)


def t(key: str, lang: str = "es", **values) -> str:
    """The string for `key` in `lang`, formatted with `values`.

    Raises KeyError for a key no table defines or a language the key has no text for."""
    try:
        entry = STRINGS[key]
    except KeyError:
        raise KeyError(f"no UI string {key!r} in chatwatch.i18n (add it to one of its tables)") from None
    try:
        text = entry[lang]
    except KeyError:
        raise KeyError(f"UI string {key!r} has no {lang!r} text (languages: {', '.join(LANGUAGES)})") from None
    return text.format(**values) if values else text
