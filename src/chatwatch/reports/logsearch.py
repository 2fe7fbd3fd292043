"""Log lines of one request, found in the JSON-lines log files (chatwatch/logs/configure.py):

    <log_dir>/chatwatch-<role>-<instance>.jsonl                        being written
    <log_dir>/chatwatch-<role>-<instance>.<YYYY-MM-DD>.<NNN>.jsonl.gz  rotated (lines of that UTC day)

The scan is bounded: files whose last write (mtime) or whose day is before the request
started cannot hold its lines and are skipped; the rest are read closest-in-time first
until `max_bytes` of text or `max_lines` matches. A cheap substring test comes before
JSON parsing, so non-matching lines cost little.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

MAX_BYTES = 64 * 1024 * 1024
MAX_LINES = 500
_ROTATED_DAY = re.compile(r"\.(\d{4}-\d{2}-\d{2})\.\d{3,}\.jsonl(?:\.gz)?$")
_SLACK = timedelta(minutes=1)  # clock granularity of mtimes and of the logged timestamps


@dataclass
class LogScan:
    lines: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    files_scanned: int = 0
    bytes_scanned: int = 0
    capped: bool = False  # a limit stopped the scan: there may be more lines


def log_files(log_dir: Path, since: datetime | None = None) -> list[Path]:
    """Log files that may hold lines written at or after `since`, oldest first."""
    if not log_dir.is_dir():
        return []
    found = []
    for path in log_dir.iterdir():
        if not (path.name.endswith(".jsonl") or path.name.endswith(".jsonl.gz")) or not path.is_file():
            continue
        try:
            mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        except OSError:  # rotated or pruned meanwhile
            continue
        if since is not None:
            if mtime < since - _SLACK:
                continue
            day = _ROTATED_DAY.search(path.name)
            if day and date.fromisoformat(day.group(1)) < (since - _SLACK).date():
                continue
        found.append((mtime, path))
    return [p for _, p in sorted(found)]


def find_log_lines(
    log_dir: Path,
    request_id: str,
    since: datetime | None = None,
    *,
    max_bytes: int = MAX_BYTES,
    max_lines: int = MAX_LINES,
) -> LogScan:
    """Parsed log lines whose request_id is `request_id` (`since`: when the request started)."""
    scan = LogScan()
    if not request_id:
        return scan
    for path in log_files(log_dir, since):
        scan.files_scanned += 1
        for line in _lines(path):
            scan.bytes_scanned += len(line)
            if request_id in line:
                doc = _parse(line)
                if doc is not None and doc.get("request_id") == request_id:
                    doc.setdefault("_file", path.name)
                    scan.lines.append(doc)
                    if len(scan.lines) >= max_lines:
                        scan.capped = True
                        break
            if scan.bytes_scanned >= max_bytes:
                scan.capped = True
                break
        if scan.capped:
            break
    scan.lines.sort(key=lambda d: str(d.get("timestamp", "")))
    return scan


def _lines(path: Path) -> Iterator[str]:
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as f:
            yield from f
    except (OSError, EOFError):  # deleted by retention, or a gzip still being written
        return


def _parse(line: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None
