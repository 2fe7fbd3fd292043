"""`chatwatch bench all` runs the benchmarks it is given and prints one JSON line each, then
all of them by name (a real subprocess, as a user runs it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from chatwatch.bench.all import names

CHATWATCH = Path(sys.executable).with_name("chatwatch")


def test_bench_all_prints_a_json_line_per_benchmark(tmp_path):
    assert {"dashboard", "ingest", "local", "memory", "overhead"} <= set(names()) and "all" not in names()
    config = tmp_path / "chatwatch.toml"
    config.write_text('[app]\ndata_dir = "data"\nlog_dir = "logs"\n')
    out = subprocess.run(
        [str(CHATWATCH), "bench", "all", "--config", str(config), "--only", "ingest,memory"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [line.get("bench") for line in lines[:-1]] == ["ingest", "memory"]
    assert set(lines[-1]) == {"ingest", "memory"}


def test_an_unknown_benchmark_is_named(tmp_path):
    out = subprocess.run(
        [str(CHATWATCH), "bench", "all", "--only", "nope"], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode != 0 and "unknown benchmark(s) nope" in out.stderr
