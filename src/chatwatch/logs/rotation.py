"""Log files: one per process, rotated by UTC day and by size, gzip-compressed, pruned by age.

The rotation itself is `logging.handlers.RotatingFileHandler`'s; this module adds only
what the standard library cannot do for chatwatch:

* a rollover when the UTC day of the lines changes, checked at each write (the day is
  never fixed at start-up), besides the stdlib's rollover by size;
* rotated names that say which day's lines they hold and that never shift (the stdlib's
  `.1`, `.2`, ... renames every older file at each rollover), given through the documented
  `namer` hook, and gzip compression through the `rotator` hook;
* one owner per file: two processes must never rotate the same file.

Names (all in the log folder):

    chatwatch-<role>-<instance>.jsonl                       the file being written
    chatwatch-<role>-<instance>.<YYYY-MM-DD>.<NNN>.jsonl.gz rotated: UTC day of its lines, sequence

Ownership is an exclusive `flock` on the open file: if another live process already holds
`<stem>.jsonl` (two CLI runs given the same instance), this one writes `<stem>-2.jsonl`
instead. The lock is kept through a rollover (see `doRollover`), so nobody can claim the
file while it is being compressed. A rotated file's mtime is the time of its last line,
so pruning by mtime never drops lines younger than the retention.
"""

from __future__ import annotations

import gzip
import itertools
import logging
import logging.handlers
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: open files cannot be renamed or deleted there anyway
    fcntl = None  # type: ignore[assignment]

SUFFIX = ".jsonl"
_ROTATED = re.compile(r"^(?P<stem>.+)\.(?P<day>\d{4}-\d{2}-\d{2})\.(?P<seq>\d{3,})\.jsonl$")
# Everything this module may leave behind, including a compression interrupted by a crash.
_OURS = re.compile(r"^chatwatch-[A-Za-z0-9_-]+(?:\.\d{4}-\d{2}-\d{2}\.\d{3,})?\.jsonl(?:\.gz(?:\.\d+\.part)?)?$")
RETRY_S = 60.0  # after a failed rotation, keep appending this long before trying again


def utc_today() -> date:
    return datetime.now(UTC).date()


def safe_name(text: str) -> str:
    """Make a role/instance usable in a file name ('host.lan:1234' -> 'host-lan-1234')."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


def _try_lock(fd: int) -> bool:
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _held_by_someone(path: Path) -> bool:
    """True while a live process is writing `path` (it holds the flock)."""
    if fcntl is None:
        return False
    try:
        with open(path, "rb") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def report(message: str) -> None:
    """Tell stderr what went wrong with logging itself (logging it would recurse), as
    `Handler.handleError` does, minus the traceback."""
    if logging.raiseExceptions:
        print(f"chatwatch logging: {message}", file=sys.stderr)


def gzip_file(source: str, dest: str) -> None:
    """The handlers' `rotator`: compress `source` into `dest` atomically, keep its mtime,
    then delete it.

    Written to a private `.part` name first, so a crash leaves either the plain file or
    a complete `.gz`, never a truncated archive under the final name.
    """
    st = os.stat(source)
    part = f"{dest}.{os.getpid()}.part"
    try:
        with open(source, "rb") as src, open(part, "wb") as raw:
            with gzip.GzipFile(filename=os.path.basename(source), mode="wb", fileobj=raw, mtime=int(st.st_mtime)) as gz:
                shutil.copyfileobj(src, gz, 1 << 20)
            raw.flush()
            os.fsync(raw.fileno())
        os.utime(part, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(part, dest)
    except BaseException:
        Path(part).unlink(missing_ok=True)
        raise
    os.unlink(source)


def prune_logs(
    log_dir: str | os.PathLike[str], older_than_days: float, *, dry_run: bool = False, now: float | None = None
) -> list[Path]:
    """Delete (or with dry_run, only list) chatwatch log files whose last line is older
    than `older_than_days`. Files a live process is still writing are never touched."""
    folder = Path(log_dir)
    if not folder.is_dir():
        return []
    cutoff = (time.time() if now is None else now) - older_than_days * 86400
    removed: list[Path] = []
    for path in sorted(folder.iterdir()):
        if not _OURS.match(path.name):
            continue
        try:
            if path.stat().st_mtime >= cutoff:
                continue
        except FileNotFoundError:  # another process pruned it first
            continue
        if path.name.endswith(SUFFIX) and _held_by_someone(path):
            continue
        if not dry_run:
            try:
                path.unlink()
            except (FileNotFoundError, PermissionError):
                continue
        removed.append(path)
    return removed


class DailySizeRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A `RotatingFileHandler` that also rolls over when the UTC day changes, names rotated
    files `<stem>.<day>.<NNN>.jsonl.gz` and compresses them (in the thread that writes:
    the QueueListener's, off the request path).

    `today` is called at every write and is injectable so tests can move the clock.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str],
        stem: str,
        *,
        max_bytes: int,
        log_days: float,
        today: Callable[[], date] = utc_today,
    ) -> None:
        self.log_dir = Path(log_dir)
        self.base_stem = self.stem = stem
        self.log_days = log_days
        self._today = today
        self._period = today()  # the UTC day of the lines in the current file
        self._retry_at = 0.0
        self._formatted: tuple[logging.LogRecord, str] | None = None
        self._errors_seen: set[str] = set()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # backupCount=1: the stdlib then renames the current file to `namer(...)` and never
        # shifts older ones (our namer picks the next free sequence number instead).
        super().__init__(
            self.log_dir / f"{stem}{SUFFIX}",
            maxBytes=max_bytes,
            backupCount=1,
            encoding="utf-8",
            errors="backslashreplace",
        )
        self.namer = self._rotated_name
        self.rotator = self._compress
        self._recover()

    # -- opening: claim a stem nobody else holds ------------------------------------------
    def _open(self):  # type: ignore[override]
        for n in itertools.count(1):
            stem = self.stem if n == 1 else f"{self.base_stem}-{n}"
            if n > 1 and stem == self.stem:
                continue
            path = str(self.log_dir / f"{stem}{SUFFIX}")
            stream = open(path, self.mode, encoding=self.encoding, errors=self.errors)
            if _try_lock(stream.fileno()):
                break
            stream.close()
        self.stem, self.baseFilename = stem, path
        st = os.fstat(stream.fileno())
        # A file left by an earlier run of this stem belongs to the day it was last written.
        self._period = datetime.fromtimestamp(st.st_mtime, UTC).date() if st.st_size else self._today()
        return stream

    def _recover(self) -> None:
        """Compress rotated files of this stem that a failed compression left plain."""
        for path in self.log_dir.glob(f"{self.stem}.*{SUFFIX}"):
            m = _ROTATED.match(path.name)
            if m and m["stem"] == self.stem:
                try:
                    gzip_file(str(path), f"{path}.gz")
                except OSError as exc:
                    report(f"compressing {path} failed: {exc}")

    # -- rolling over ---------------------------------------------------------------------
    def format(self, record: logging.LogRecord) -> str:
        # shouldRollover needs the line's size and emit writes it: format it once.
        if self._formatted is not None and self._formatted[0] is record:
            return self._formatted[1]
        text = super().format(record)
        self._formatted = (record, text)
        return text

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        if self.stream is None:
            self.stream = self._open()
        size = self.stream.seek(0, os.SEEK_END)
        if size == 0:  # nothing to move aside: an empty file takes the day of its first line
            self._period = self._today()
            return False
        if time.monotonic() < self._retry_at:
            return False
        if self._today() != self._period:
            return True
        line = len(self.format(record).encode("utf-8", "backslashreplace")) + len(self.terminator)
        return 0 < self.maxBytes < size + line

    def doRollover(self) -> None:
        # Keep the flock through the rollover: the stdlib closes the stream before rotating,
        # and another process must not claim the file meanwhile. A duplicate descriptor
        # shares the lock, which ends when the last descriptor closes.
        held = os.dup(self.stream.fileno()) if self.stream is not None and fcntl is not None else None
        try:
            super().doRollover()
        except OSError as exc:  # keep appending to the current file rather than lose lines
            report(f"rotating {self.baseFilename} failed: {exc}; retrying in {RETRY_S:g} s")
            self._retry_at = time.monotonic() + RETRY_S
            if self.stream is None:
                self.stream = self._open()
        finally:
            if held is not None:
                os.close(held)
        try:
            prune_logs(self.log_dir, self.log_days)
        except OSError as exc:
            report(f"pruning {self.log_dir} failed: {exc}")

    def _rotated_name(self, default_name: str) -> str:
        """The `namer`: the next free `<stem>.<day>.<NNN>.jsonl.gz` for the current file's day.
        Only this handler rotates its stem (it holds the lock), so a free name stays free."""
        day = self._period.isoformat()
        for seq in itertools.count(1):
            plain = self.log_dir / f"{self.stem}.{day}.{seq:03d}{SUFFIX}"
            if not plain.exists() and not Path(f"{plain}.gz").exists():
                return f"{plain}.gz"
        raise AssertionError("unreachable")

    def _compress(self, source: str, dest: str) -> None:
        """The `rotator`: gzip; if that fails (disk full), keep the lines plain under the
        rotated name (still valid JSON lines, compressed at the next start)."""
        try:
            gzip_file(source, dest)
        except OSError as exc:
            report(f"compressing {source} failed: {exc}; kept uncompressed")
            os.replace(source, dest.removesuffix(".gz"))

    def flush(self) -> None:
        try:
            super().flush()
        except OSError:
            self.handleError(None)

    def close(self) -> None:
        try:
            super().close()  # drops the stream (and the lock) even when its last flush fails
        except OSError:
            self.handleError(None)

    def handleError(self, record: logging.LogRecord | None) -> None:
        """One clear line per distinct failure (the stdlib prints a traceback per record)."""
        exc = sys.exc_info()[1]
        key = f"{type(exc).__name__}: {exc}"
        if key not in self._errors_seen and len(self._errors_seen) < 100:
            self._errors_seen.add(key)
            report(f"could not write {self.baseFilename}: {key} (lines are being lost)")
