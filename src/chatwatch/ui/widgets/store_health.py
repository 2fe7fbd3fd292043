"""What a monitoring page says when the store is in trouble: records of this process
waiting in memory (the monitor's backlog), or a store that cannot be read at all (a page
then shows the cause instead of a traceback, and the chat is unaffected).

    if not store_health_banner(rt, lang):
        ...
    with readable_store(lang) as ok:
        data = dashboard(...)
    if ok: render(data)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
import streamlit as st

from chatwatch.i18n import t
from chatwatch.privacy import scrub

REASON_MAX = 300


def store_health_banner(runtime, lang: str) -> bool:
    """Warn when this process holds records the store has not taken; True if it warned."""
    health = runtime.monitor.health()
    if not health.degraded:
        return False
    st.warning(t("store.degraded", lang, unsaved=health.unsaved, reason=health.reason, lost=health.lost))
    return True


class Readable:
    """Whether the reads inside `readable_store` went through."""

    def __init__(self) -> None:
        self.ok = True

    def __bool__(self) -> bool:
        return self.ok


@contextmanager
def readable_store(lang: str) -> Iterator[Readable]:
    """Run page reads; a database error (down, locked past its timeout, tables missing
    because it was never reachable) becomes one warning naming the cause."""
    result = Readable()
    try:
        yield result
    except sa.exc.SQLAlchemyError as exc:
        result.ok = False
        cause = getattr(exc, "orig", None) or exc
        reason = scrub(f"{type(cause).__name__}: {cause}").splitlines()[0][:REASON_MAX]
        st.warning(t("store.unreadable", lang, reason=reason))
