"""Memory sampling: plausible values, RSS follows allocations, cheap to call."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

from chatwatch.telemetry import memory

MB = 1 << 20


def test_values_are_plausible():
    total = psutil.virtual_memory().total
    rss = memory.process_rss_bytes()
    avail = memory.system_available_bytes()
    assert 5 * MB < rss < total
    assert 0 < avail <= total


def test_sample():
    s = memory.sample()
    assert s.rss_bytes > 5 * MB
    assert 0 < s.system_available_bytes <= s.system_total_bytes
    assert 0.0 <= s.system_used_fraction <= 1.0
    assert abs(s.taken_at - time.time()) < 60


def test_rss_grows_after_allocating_50mb():
    # In a fresh process: in this one, memory freed by earlier tests may already be resident
    # and be handed out again, so RSS need not move (seen after the local-model tests).
    code = (
        "from chatwatch.telemetry import memory\n"
        "before = memory.process_rss_bytes()\n"
        "block = bytearray(b'\\x01') * (50 << 20)\n"  # filled, not zeroed: zero pages stay unmapped
        "print(memory.process_rss_bytes() - before)\n"
    )
    grown = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert grown >= 45 * MB, grown


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_child_after_fork_reads_its_own_process():
    memory.process_rss_bytes()  # parent's Process object exists
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        ok = memory._process().pid == os.getpid() and memory.process_rss_bytes() > 0
        os.write(w, b"1" if ok else b"0")
        os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"1"
    os.close(r)
    os.waitpid(pid, 0)
