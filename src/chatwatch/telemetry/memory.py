"""Process and system memory, cheap enough to sample before and after every request.

One psutil.Process is reused (building one costs more than reading it). It is rebuilt
after a fork, since a child would otherwise keep reading its parent's memory.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import psutil

_lock = threading.Lock()
_proc: psutil.Process | None = None
_proc_pid = -1


def _process() -> psutil.Process:
    global _proc, _proc_pid
    pid = os.getpid()
    if _proc is None or _proc_pid != pid:
        with _lock:
            if _proc is None or _proc_pid != pid:
                _proc, _proc_pid = psutil.Process(pid), pid
    return _proc  # type: ignore[return-value]


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_LINUX = os.path.exists("/proc/self/statm") and os.path.exists("/proc/meminfo")


_fds: dict[str, tuple[int, int]] = {}  # path -> (pid that opened it, fd)


def _read_proc(path: str, size: int) -> bytes:
    """One pread of a /proc file kept open (procfs regenerates it on every read at offset 0):
    one system call instead of open/read/close, since this runs three times a request."""
    pid = os.getpid()
    held = _fds.get(path)
    if held is None or held[0] != pid:  # a forked child must not read its parent's file
        with _lock:
            held = _fds.get(path)
            if held is None or held[0] != pid:
                held = (pid, os.open(path, os.O_RDONLY | os.O_CLOEXEC))
                _fds[path] = held
    return os.pread(held[1], size, 0)


def process_rss_bytes() -> int:
    """Resident set size of this process (Linux: /proc/self/statm, as psutil reads it)."""
    if _LINUX:
        return int(_read_proc("/proc/self/statm", 256).split()[1]) * _PAGE
    return _process().memory_info().rss


def system_available_bytes() -> int:
    """Memory the system can give to new work without swapping (MemAvailable on Linux)."""
    if _LINUX:
        data = _read_proc("/proc/meminfo", 8192)
        start = data.find(b"MemAvailable:")
        if start >= 0:
            return int(data[start + 13 : data.index(b"kB", start)]) * 1024
    return psutil.virtual_memory().available


@dataclass(frozen=True, slots=True)
class MemorySample:
    rss_bytes: int
    system_available_bytes: int
    system_total_bytes: int
    taken_at: float  # time.time(), seconds since the epoch

    @property
    def system_used_fraction(self) -> float:
        return 1.0 - self.system_available_bytes / self.system_total_bytes if self.system_total_bytes else 0.0


def sample() -> MemorySample:
    vm = psutil.virtual_memory()  # one /proc/meminfo read gives both system figures
    return MemorySample(
        rss_bytes=process_rss_bytes(),
        system_available_bytes=vm.available,
        system_total_bytes=vm.total,
        taken_at=time.time(),
    )
