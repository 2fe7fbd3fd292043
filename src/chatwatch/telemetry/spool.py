"""Records a process could not store before it ended, kept on disk for the next process.

The monitor keeps the records the store refuses in memory and retries them
(telemetry/monitor.py); memory ends with the process. A `chatwatch ask` that ran while
another process held the database lock, or a web app stopped while its disk was full,
would otherwise exit with records nobody will ever see. So at close, what still cannot be
written -- kept records, and the counts of records already dropped -- is appended as JSON
lines to one spool file per process, fsync'ed, and the next Monitor that starts (or the
first that finds the store back) ingests it and deletes it.

Where: `<data_dir>/spool/`, or, when that cannot be written (read-only, full, immutable),
`<log_dir>/spool/`, then a folder of this user's own under the system temp dir
(`chatwatch-spool-<uid>/<store key>`). File names carry the store key (a hash of the store
URL without its password), so a folder shared by several stores is read per store, and the
writing host, pid and time, so each process writes its own file.

Crash safety: a file is written as `<name>.writing-<pid>@<host>` and renamed to `<name>` once
complete and fsync'ed; a reader takes a file by renaming it to `<name>.ingesting-<pid>@<host>`
(atomic, so two processes never both take it) and gives it back on a store failure. A
`.writing` or `.ingesting` file whose process is dead (same host) or that is older than
STALE_CLAIM_S belongs to nobody and is taken over: a crash mid-write loses at most the
line being written, which the reader skips and reports. Ingesting is idempotent -- records
go through `Store.insert_missing` (an id already stored is skipped) and loss rows are
written only if the same row is not there yet -- so two readers, or a reader that crashed
between the insert and the delete, never store anything twice.

Serialisation is lossless: every RequestRecord field (its export form: ISO 8601 time in
microseconds, exact decimal cost text) plus `extra`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import secrets
import socket
import tempfile
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from chatwatch.config import Settings
from chatwatch.store.losses import Loss, loss_row
from chatwatch.store.record import RequestRecord, iso, utcnow
from chatwatch.store.records import Store
from chatwatch.store.schema import record_losses

log = logging.getLogger("chatwatch.requests")

FORMAT = 1  # the header's "chatwatch_spool" value; a reader refuses a newer format
STALE_CLAIM_S = 300.0  # a .writing/.ingesting file untouched this long belongs to nobody
_LOSSES_LOCK = 0x63777370  # PostgreSQL advisory lock: one loss-row check-and-insert at a time
_NAME = re.compile(
    r"^(?P<stem>spool_(?P<key>[0-9a-f]{16})_[^/]+?\.jsonl)"
    r"(?:\.(?P<state>writing|ingesting)-(?P<pid>\d+)@(?P<host>.+))?$"
)
_RECORD_FIELDS = {f.name for f in dataclasses.fields(RequestRecord)}


class SpoolError(Exception):
    """No spool folder could be written; the message names each folder and why."""


@dataclass(frozen=True)
class Spooled:
    """A spool file this process wrote."""

    path: Path
    records: int
    dropped: int  # records counted as dropped, carried as loss rows
    cause: str  # the store's error that made it necessary


@dataclass(frozen=True)
class Ingested:
    """One spool file read into the store (and deleted)."""

    path: Path
    spooled_by: str  # the instance that wrote it
    stored: int  # records newly stored
    already_stored: int  # records whose id was in the store already
    losses: int  # loss rows written
    torn: bool  # the last line was cut off (its writer ended mid-line) and skipped
    unreadable: tuple[int, ...] = ()  # numbers of complete lines that could not be read


def store_key(store: Store) -> str:
    """Which store a spool file belongs to: a hash of its URL without the password."""
    url = store.engine.url.render_as_string(hide_password=True)
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def _user() -> str:
    return str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")


def temp_folder(key: str) -> Path:
    """The last resort: this user's folder for this store under the system temp dir."""
    return Path(tempfile.gettempdir()) / f"chatwatch-spool-{_user()}" / key


def spool_folders(settings: Settings, key: str) -> list[Path]:
    """Where spool files go, in order of preference (and where they are read from)."""
    folders = [Path(settings.app.data_dir) / "spool", Path(settings.app.log_dir) / "spool", temp_folder(key)]
    return list(dict.fromkeys(folders))


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"


# --- serialisation -----------------------------------------------------------------------


def record_to_json(record: RequestRecord) -> dict[str, Any]:
    d = record.to_dict()
    d["extra"] = record.extra
    return d


def record_from_json(d: dict[str, Any]) -> RequestRecord:
    """The inverse of `record_to_json` (fields a newer version added are ignored)."""
    fields = {k: v for k, v in d.items() if k in _RECORD_FIELDS}
    fields["started_at"] = datetime.fromisoformat(fields["started_at"])
    for name in ("cost_usd", "saved_usd"):
        if fields.get(name) is not None:
            fields[name] = Decimal(fields[name])
    return RequestRecord(**fields)


def loss_to_json(loss: Loss) -> dict[str, Any]:
    return {
        "at": iso(loss.at),
        "instance": loss.instance,
        "model": loss.model,
        "count": loss.count,
        "first_started": iso(loss.first_started),
        "last_started": iso(loss.last_started),
        "reason": loss.reason,
    }


def loss_from_json(d: dict[str, Any]) -> Loss:
    return Loss(
        at=datetime.fromisoformat(d["at"]),
        instance=d["instance"],
        model=d["model"],
        count=int(d["count"]),
        first_started=datetime.fromisoformat(d["first_started"]),
        last_started=datetime.fromisoformat(d["last_started"]),
        reason=d["reason"],
    )


def _line(obj: dict[str, Any]) -> bytes:
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode("ascii")  # ensure_ascii: any text


# --- writing ---------------------------------------------------------------------------------


class Spool:
    """The spool files of one store, as seen by one process."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.key = store_key(store)
        self.folders = spool_folders(settings, self.key)
        self._temp = temp_folder(self.key)
        self._host = _host()
        self._pid = os.getpid()
        self._owner = f"{self._pid}@{self._host}"

    def write(self, records: Sequence[RequestRecord], losses: Sequence[Loss], *, instance: str, cause: str) -> Spooled:
        """Append the records and losses to a new spool file in the first folder that takes
        it, fsync'ed; raises SpoolError if none does."""
        stamp = utcnow().strftime("%Y%m%dT%H%M%S%fZ")
        name = f"spool_{self.key}_{self._host}_{self._pid}_{stamp}_{secrets.token_hex(2)}.jsonl"
        header = {
            "chatwatch_spool": FORMAT,
            "instance": instance,
            "host": socket.gethostname(),
            "pid": self._pid,
            "written_at": iso(utcnow()),
            "cause": cause,
        }
        lines = [_line(header)]
        lines += [_line({"record": record_to_json(r)}) for r in records]
        lines += [_line({"loss": loss_to_json(loss)}) for loss in losses]
        failures = []
        for folder in self.folders:
            try:
                path = self._write_in(folder, name, lines)
            except OSError as exc:
                failures.append(f"{folder}: {exc.strerror or exc}")
                continue
            return Spooled(path, len(records), sum(loss.count for loss in losses), cause)
        raise SpoolError("no spool folder could be written (" + "; ".join(failures) + ")")

    def _write_in(self, folder: Path, name: str, lines: list[bytes]) -> Path:
        self._prepare(folder)
        part = folder / f"{name}.writing-{self._owner}"
        final = folder / name
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                for line in lines:
                    f.write(line)
                f.flush()
                os.fsync(f.fileno())
            os.rename(part, final)
        except BaseException:
            with suppress(OSError):
                part.unlink()
            raise
        _fsync_dir(folder)
        return final

    def _prepare(self, folder: Path) -> None:
        """Make the folder (this user's only); in the shared temp dir, refuse one that is not
        ours or is a symlink, so nobody else can read or plant spool files."""
        if folder == self._temp:
            folder.parent.mkdir(exist_ok=True, mode=0o700)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self._ours(folder):
            raise OSError(f"{folder} or its parent is not a folder of this user's own")

    def _ours(self, folder: Path) -> bool:
        """False for the temp-dir folder (or its parent) if it is a symlink or another user's."""
        if folder != self._temp or not hasattr(os, "getuid"):
            return True
        for part in (folder.parent, folder):
            st = part.lstat()
            if part.is_symlink() or not os.path.isdir(part) or st.st_uid != os.getuid():
                return False
        return True

    # --- reading ---------------------------------------------------------------------------

    def pending(self) -> list[Path]:
        """The files ready to ingest now (complete, or abandoned by a dead process)."""
        found = []
        for folder in self.folders:
            try:
                if not self._ours(folder):  # never ingest what someone else could have planted
                    continue
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                m = _NAME.match(entry.name)
                if m and m["key"] == self.key and (m["state"] is None or self._abandoned(m, entry)):
                    found.append(Path(entry.path))
        return sorted(found, key=lambda p: p.name)

    def _abandoned(self, m: re.Match, entry: os.DirEntry) -> bool:
        if m["host"] == self._host and not _alive(int(m["pid"])):
            return True
        try:
            return time.time() - entry.stat().st_mtime > STALE_CLAIM_S
        except OSError:
            return False

    def ingest(self, store: Store, *, lock_wait_s: float | None = None) -> list[Ingested]:
        """Store every pending file's records and losses, then delete it. A store failure
        gives the file back (for a later try) and raises."""
        done = []
        for path in self.pending():
            claimed = self._claim(path)
            if claimed is not None:
                result = self._ingest_one(store, claimed, lock_wait_s)
                if result is not None:
                    done.append(result)
        return done

    def _claim(self, path: Path) -> Path | None:
        """Rename the file to our claim (None: someone else took it first)."""
        claimed = path.with_name(f"{_NAME.match(path.name)['stem']}.ingesting-{self._owner}")
        try:
            os.rename(path, claimed)
            os.utime(claimed)  # a fresh claim, not a stale one, to other readers
        except FileNotFoundError:
            return None
        return claimed

    def _ingest_one(self, store: Store, claimed: Path, lock_wait_s: float | None) -> Ingested | None:
        stem = _NAME.match(claimed.name)["stem"]
        try:
            header, records, losses, torn, unreadable = _read(claimed)
        except FileNotFoundError:  # taken over meanwhile
            return None
        except ValueError as exc:
            unreadable_name = claimed.with_name(stem + ".unreadable")
            os.rename(claimed, unreadable_name)
            log.error("spool file %s cannot be read (%s): kept as %s", stem, exc, unreadable_name)
            return None
        try:
            stored = store.insert_missing(records, lock_wait_s=lock_wait_s)
            written = store_losses_once(store, losses, lock_wait_s=lock_wait_s)
        except (sa.exc.IntegrityError, sa.exc.DataError) as exc:  # refused for good: keep it for a look
            os.rename(claimed, claimed.with_name(stem + ".unreadable"))
            log.error("the store refused the records of spool file %s: %s", stem, exc)
            return None
        except BaseException:
            with suppress(OSError):
                os.rename(claimed, claimed.with_name(stem))  # give it back: a later try ingests it
            raise
        if unreadable:
            os.rename(claimed, claimed.with_name(stem + ".unreadable"))
        else:
            with suppress(FileNotFoundError):
                claimed.unlink()
        result = Ingested(
            path=claimed.with_name(stem),
            spooled_by=str(header.get("instance", "?")),
            stored=len(stored),
            already_stored=len(records) - len(stored),
            losses=written,
            torn=torn,
            unreadable=tuple(unreadable),
        )
        _report(result, header)
        return result


def _read(path: Path) -> tuple[dict, list[RequestRecord], list[Loss], bool, list[int]]:
    """(header, records, losses, torn last line, numbers of unreadable complete lines)."""
    lines = path.read_bytes().split(b"\n")
    torn = bool(lines.pop())  # a complete file ends with a newline: the last piece is empty
    if not lines:
        return {}, [], [], torn, []
    try:
        header = json.loads(lines[0])
    except ValueError as exc:
        raise ValueError(f"its first line is not a spool header: {exc}") from None
    if not isinstance(header, dict) or not isinstance(header.get("chatwatch_spool"), int):
        raise ValueError("its first line is not a spool header")
    if header["chatwatch_spool"] > FORMAT:
        raise ValueError(f"spool format {header['chatwatch_spool']} is newer than this chatwatch's ({FORMAT})")
    records, losses, unreadable = [], [], []
    for number, raw in enumerate(lines[1:], start=2):
        try:
            obj = json.loads(raw)
            if "record" in obj:
                records.append(record_from_json(obj["record"]))
            else:
                losses.append(loss_from_json(obj["loss"]))
        except (ValueError, KeyError, TypeError):
            unreadable.append(number)
    return header, records, losses, torn, unreadable


def _report(result: Ingested, header: dict) -> None:
    log.info(
        "ingested %d records spooled by %s (%s, written %s: %s)%s%s",
        result.stored,
        result.spooled_by,
        result.path.name,
        header.get("written_at", "?"),
        header.get("cause", "?"),
        f"; {result.already_stored} were already stored" if result.already_stored else "",
        f"; {result.losses} loss rows written" if result.losses else "",
        extra={"ingested": result.stored, "spool_file": str(result.path)},
    )
    if result.torn:
        log.warning(
            "spool file %s ended in a cut-off line (its process ended while writing it): that line was skipped",
            result.path.name,
        )
    if result.unreadable:
        log.error(
            "spool file %s: lines %s could not be read and were skipped; the file is kept as %s.unreadable",
            result.path.name,
            ", ".join(map(str, result.unreadable)),
            result.path.name,
        )


def store_losses_once(store: Store, losses: Sequence[Loss], *, lock_wait_s: float | None = None) -> int:
    """Write each loss row unless the very same row (every field) is stored already; returns
    how many were written. One check-and-insert at a time: SQLite's write transaction is
    exclusive, on PostgreSQL a transaction-scoped advisory lock serialises it."""
    if not losses:
        return 0
    t = record_losses.c
    rows = [loss_row(loss) for loss in losses]
    store.ready()
    with store.transaction(lock_wait_s=lock_wait_s) as conn:
        if store.dialect == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOSSES_LOCK)))
        new = [
            row
            for row in rows
            if conn.execute(sa.select(t.id).where(*(t[k] == v for k, v in row.items())).limit(1)).first() is None
        ]
        if new:
            conn.execute(record_losses.insert(), new)
    return len(new)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
