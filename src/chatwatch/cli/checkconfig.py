"""`chatwatch check-config`: is this configuration one chatwatch can run with, here, now?

Why more than parsing: a config can be valid TOML with valid keys and still leave chatwatch
without its history: a `data_dir` that is a file, a read-only or full disk, a `log_dir`
under /proc, a PostgreSQL that is down. The app and the CLI go on answering in those cases
(records wait in memory or are spooled, see telemetry/spool.py), so the place to hear about
them before they matter is here. Each check writes nothing that stays: a probe file is
created, written, synced and removed; the database is only connected to (no migrations).

    problems = check(settings)   # [] when everything is usable; else one line per problem
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import sqlalchemy as sa

from chatwatch.config import Settings
from chatwatch.privacy import scrub

PROBE_BYTES = 4096  # enough to fail on a full disk, where creating an empty file may not


def folder_problem(path: Path, what: str) -> str | None:
    """Why chatwatch could not write files in `path` (creating it if missing), or None."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        return f"{what} {path} is a file, not a folder"
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{what} {path} cannot be created: {existing} is a file"
    target = path if path.exists() else existing
    try:
        with tempfile.NamedTemporaryFile(dir=target, prefix=".chatwatch-probe-") as probe:
            probe.write(b"\0" * PROBE_BYTES)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if target != path:
            return f"{what} {path} cannot be created in {existing} ({reason})"
        return f"{what} {path} is not writable ({reason})"
    return None


def store_problem(url: str, timeout_s: float = 5.0) -> str | None:
    """Why the configured database cannot be reached, or None. SQLite is its folder's check."""
    if url.startswith("sqlite"):
        return None
    engine = sa.create_engine(url, poolclass=sa.NullPool, connect_args={"connect_timeout": int(timeout_s)})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        shown = sa.engine.make_url(url).render_as_string(hide_password=True)
        return f"the store {shown} cannot be reached: {scrub(first)[:300]}"
    finally:
        engine.dispose()
    return None


def check(settings: Settings) -> list[str]:
    problems = [folder_problem(settings.app.data_dir, "data_dir")]  # also the spool's first choice
    url = settings.store_url
    database = sa.engine.make_url(url).database if url.startswith("sqlite") else None
    if database and database != ":memory:" and Path(database).parent != Path(settings.app.data_dir):
        problems.append(folder_problem(Path(database).parent, "the SQLite store's folder"))
    elif not url.startswith("sqlite"):
        problems.append(store_problem(url))
    problems.append(folder_problem(settings.app.log_dir, "log_dir"))
    return [p for p in problems if p]
