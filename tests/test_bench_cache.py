"""`chatwatch bench cache` (#12) as a user runs it (a subprocess), small N: its figures agree
with what the run's store holds, recomputed here another way.

The repeated share is counted from the stored prompt texts (a row whose prompt an earlier row
of the run already had), not from the benchmark's workload; the dollars a hit saved are the
original row's cost, and, on a priced model on the stub, genai-prices' own price of the usage
the stub reports; the provider is asked once per distinct prompt (the stub counts)."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import genai_prices
import sqlalchemy as sa

from chatwatch.store.schema import requests
from tests.stub_openai_server import Script, StubServer

CHATWATCH = Path(sys.executable).with_name("chatwatch")
N = 20
REPEAT = 0.3


def bench(conf: Path, data_dir: Path, *extra: str) -> dict:
    out = subprocess.run(
        [CHATWATCH, "bench", "cache", "--config", conf, "--requests", str(N), "--repeat", str(REPEAT)]
        + ["--max-tokens", "4", "--data-dir", data_dir, *extra],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def workload_rows(data_dir: Path) -> list[dict]:
    engine = sa.create_engine(f"sqlite:///{data_dir / 'data' / 'chatwatch.db'}")
    try:
        with engine.connect() as conn:
            result = conn.execute(
                sa.select(requests).where(requests.c.session_id == "bench-cache").order_by(requests.c.started_us)
            )
            return [dict(r._mapping) for r in result]
    finally:
        engine.dispose()


def repeats(rows: list[dict]) -> list[bool]:
    """For each row: did an earlier row of the run have the same prompt?"""
    seen: set[str] = set()
    out = []
    for r in rows:
        out.append(r["prompt_text"] in seen)
        seen.add(r["prompt_text"])
    return out


def test_the_hit_rate_is_the_share_of_repeated_prompts_on_smollm2(tmp_path):
    conf = tmp_path / "chatwatch.toml"
    conf.write_text(f'[app]\ndata_dir = "{tmp_path / "unused"}"\nlog_dir = "{tmp_path / "logs"}"\n')
    figures = bench(conf, tmp_path / "run")
    rows = workload_rows(tmp_path / "run")
    assert len(rows) == N and all(r["status"] == "ok" and r["prompt_text"] for r in rows)
    repeated = repeats(rows)
    assert sum(repeated) == round(N * REPEAT)
    assert [bool(r["cache_hit"]) for r in rows] == repeated  # exactly the repeats were hits
    assert figures["hit_rate"] == sum(repeated) / N and figures["hits"] == sum(repeated)
    # A local model costs $0, so a hit saves exactly $0 (known, not unpriced).
    assert figures["saved_usd_per_1000_requests"] == "0" and figures["unpriced_hits"] == 0
    assert all(r["saved_nanousd"] == 0 for r in rows if r["cache_hit"])
    assert figures["hit_p50_ms"] < figures["miss_p50_ms"]


def test_a_priced_model_saves_what_its_original_calls_cost(tmp_path, stub_server: StubServer):
    usage = {"prompt_tokens": 600, "completion_tokens": 300, "total_tokens": 900}
    stub_server.script = Script(usage=usage)
    conf = tmp_path / "chatwatch.toml"
    conf.write_text(
        f"""
[app]
data_dir = "{tmp_path / "unused"}"
log_dir = "{tmp_path / "logs"}"

[[models]]
id = "mini"
kind = "openai"
base_url = "{stub_server.base_url}"
provider = "openai"
model = "gpt-4o-mini"
"""
    )
    figures = bench(conf, tmp_path / "run", "--model", "mini")
    rows = workload_rows(tmp_path / "run")
    repeated = repeats(rows)
    hits = sum(repeated)
    assert hits == round(N * REPEAT) and [bool(r["cache_hit"]) for r in rows] == repeated
    assert figures["hit_rate"] == hits / N
    # The provider answered the warm-up and each distinct prompt once; never a hit.
    assert len(stub_server.chat_requests()) == 1 + N - hits

    one_call = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=600, output_tokens=300), "gpt-4o-mini", provider_id="openai"
    ).total_price
    assert one_call > 0
    original = {r["prompt_text"]: r["cost_nanousd"] for r in rows if not r["cache_hit"]}
    for r in rows:
        if r["cache_hit"]:
            assert r["cost_nanousd"] == 0 and r["saved_nanousd"] == original[r["prompt_text"]]
        else:
            assert Decimal(r["cost_nanousd"]) / 10**9 == one_call
    assert Decimal(figures["saved_usd_per_1000_requests"]) == one_call * hits * 1000 / N
    assert Decimal(figures["spent_usd_per_1000_requests"]) == one_call * (N - hits) * 1000 / N
    assert figures["unpriced_hits"] == 0 and figures["price_source"] == ["genai-prices"]
