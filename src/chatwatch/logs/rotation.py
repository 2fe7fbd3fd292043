"""Log files: one per process, rotated by day and by size, gzip-compressed, pruned by age.

Names (all in the log folder):

    chatwatch-<role>-<instance>.jsonl                       the file being written
    chatwatch-<role>-<instance>.<YYYY-MM-DD>.<NNN>.jsonl.gz rotated: UTC day of its lines, sequence

Only the owning process writes to, rotates or compresses its stem, so processes never
interleave lines or race a rename. Ownership is an exclusive `flock` on the open file: if
another live process already holds `<stem>.jsonl` (two CLI runs given the same instance),
this one writes `<stem>-2.jsonl` instead. A rotated file's mtime is the time of its last
line, so pruning by mtime never drops lines younger than the retention.
"""

from __future__ import annotations

import gzip
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

PREFIX = "chatwatch"
SUFFIX = ".jsonl"
_ROTATED = re.compile(r"^(?P<stem>.+)\.(?P<day>\d{4}-\d{2}-\d{2})\.(?P<seq>\d{3,})\.jsonl$")
# Everything this module may leave behind, including a compression interrupted by a crash.
_OURS = re.compile(r"^chatwatch-[A-Za-z0-9_-]+(?:\.\d{4}-\d{2}-\d{2}\.\d{3,})?\.jsonl(?:\.gz(?:\.\d+\.part)?)?$")


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


def gzip_file(source: str, dest: str) -> None:
    """Compress `source` into `dest` atomically, keep its mtime, then delete it.

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


class DailySizeRotatingFileHandler(logging.handlers.BaseRotatingHandler):
    """Append-only file that rolls over when the UTC day changes or the next line would
    push it past `max_bytes`; the rolled file is gzip-compressed by `rotator` in the
    thread that writes (the QueueListener's, off the request path).

    `today` is called at every write (never fixed at start), and is injectable so tests can
    move the clock.
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
        self.stem = stem
        self.max_bytes = max_bytes
        self.log_days = log_days
        self._today = today
        self._size = 0
        self._period = today()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(self.log_dir / f"{stem}{SUFFIX}", "ab", delay=False)
        self.rotator = gzip_file
        self._recover()

    # -- opening: claim a stem nobody else holds ------------------------------------------
    def _open(self):  # type: ignore[override]  # binary, so sizes are exact bytes
        base, n = self.stem, 1
        while True:
            stream = open(self.baseFilename, "ab")
            if _try_lock(stream.fileno()):
                break
            stream.close()
            n += 1
            self.stem = f"{base}-{n}"
            self.baseFilename = str(self.log_dir / f"{self.stem}{SUFFIX}")
        st = os.fstat(stream.fileno())
        self._size = st.st_size
        # A file left by an earlier run of this stem belongs to the day it was last written.
        self._period = datetime.fromtimestamp(st.st_mtime, UTC).date() if st.st_size else self._today()
        return stream

    def _recover(self) -> None:
        """Compress rotated files of this stem that a crash left uncompressed."""
        for path in self.log_dir.glob(f"{self.stem}.*{SUFFIX}"):
            m = _ROTATED.match(path.name)
            if m and m["stem"] == self.stem:
                self._compress(str(path))

    # -- writing ------------------------------------------------------------------------
    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode("utf-8", "backslashreplace")
            if self.stream is None:
                self.stream = self._open()
            too_big = self._size > 0 and self._size + len(data) > self.max_bytes
            if too_big or self._today() != self._period:
                self.doRollover()
            self.stream.write(data)
            self.stream.flush()
            self._size += len(data)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def doRollover(self) -> None:
        if self.stream is not None:
            self.stream.close()  # also releases the flock
            self.stream = None
        plain = None
        if self._size > 0:
            try:
                plain = self._move_aside()
            except OSError as exc:  # keep appending to the current file rather than lose lines
                self._report(f"rotating {self.baseFilename} failed: {exc}")
        self.stream = self._open()
        if plain:
            self._compress(plain)
        try:
            prune_logs(self.log_dir, self.log_days)
        except OSError as exc:
            self._report(f"pruning {self.log_dir} failed: {exc}")

    def _move_aside(self) -> str:
        """Rename the current file to the next free `<stem>.<day>.<NNN>.jsonl`.

        os.link refuses to overwrite, so the sequence number is claimed atomically even if
        a previous owner of this stem is still compressing.
        """
        day = self._period.isoformat()
        seq = 0
        while True:
            seq += 1
            name = self.rotation_filename(str(self.log_dir / f"{self.stem}.{day}.{seq:03d}{SUFFIX}"))
            if os.path.exists(name) or os.path.exists(name + ".gz"):
                continue
            try:
                os.link(self.baseFilename, name)
            except FileExistsError:
                continue
            except FileNotFoundError:
                raise
            except OSError:  # no hard links here (some network/FAT file systems)
                os.rename(self.baseFilename, name)
                return name
            os.unlink(self.baseFilename)
            return name

    def _compress(self, plain: str) -> None:
        try:
            self.rotate(plain, plain + ".gz")
        except FileNotFoundError:  # a previous owner of this stem finished it first
            pass
        except OSError as exc:  # the plain file stays: still valid JSON lines, pruned later
            self._report(f"compressing {plain} failed: {exc}")

    def _report(self, message: str) -> None:
        # Logging about logging would recurse; stderr is the last resort, as in Handler.handleError.
        if logging.raiseExceptions:
            print(f"chatwatch logging: {message}", file=sys.stderr)
