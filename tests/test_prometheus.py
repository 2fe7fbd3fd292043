"""Prometheus /metrics (chatwatch/exporters/prometheus.py): the scraped values equal the
records in the store (counted here with SQL, not by the exporter), labels stay bounded,
Debian's `promtool check metrics` accepts the output, the bearer token is enforced, a real
`chatwatch run` serves /metrics before any browser connects, and a config change keeps the
counters. Real SmolLM2 in-process, a real llama_cpp.server for a priced remote model, a
closed loopback port for real connection errors, the real SQLite store."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from chatwatch import config
from chatwatch.config import PrometheusConfig
from chatwatch.exporters.prometheus import DURATION_BUCKETS, PrometheusExporter
from chatwatch.models.contract import GenerationSettings, Message
from chatwatch.runtime import Runtimes
from chatwatch.store.records import row_to_record
from chatwatch.store.schema import requests
from tests.fixtures.paths import free_port

HI = [Message("user", "Say hi.")]
SHORT = GenerationSettings(max_tokens=4, seed=1, temperature=0.0)
KEY = "sk-test-" + "9f3c1e7a5b2d4680"  # a fake key: it must never reach /metrics


def _raw(tmp_path, **extra) -> dict:
    raw = {
        "app": {"data_dir": str(tmp_path / "data"), "log_dir": str(tmp_path / "logs")},
        "prometheus": {"enabled": True, "port": 0},
        "models": [
            {"id": "smollm2", "kind": "llama_cpp", "n_ctx": 1024},
            {
                "id": "down",
                "kind": "openai",
                "base_url": f"http://127.0.0.1:{free_port()}/v1",  # nothing listens: a real refusal
                "model": "nobody",
                "timeout_s": 5,
                "retries": 0,
            },
        ],
    }
    raw.update(extra)
    return raw


def _ask(rt, model: str, session: str = "t") -> None:
    reply = rt.chat(model, HI, SHORT, session_id=session)
    try:
        for _ in reply:
            pass
    except Exception:
        pass  # a failed attempt is recorded; the test reads the record from the store
    finally:
        reply.close()


def _scrape(url: str, token: str | None = None) -> str:
    req = urllib.request.Request(url)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read().decode()


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _get(samples, name: str, **labels) -> float:
    return samples[(name, frozenset(labels.items()))]


def _records(rt):
    with rt.store.engine.connect() as conn:
        return [row_to_record(row) for row in conn.execute(sa.select(requests))]


def _series(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def test_metrics_equal_the_records(tmp_path, llama_server, monkeypatch):
    monkeypatch.setenv("PRICED_KEY", KEY)
    raw = _raw(tmp_path)
    raw["models"].append(
        {
            "id": "priced",
            "kind": "openai",
            "base_url": llama_server,
            "model": "smollm2-remote",
            "provider": "acme",
            "api_key_env": "PRICED_KEY",
            "timeout_s": 60,
            "price": {"input_per_mtok": 0.15, "output_per_mtok": 0.6},
        }
    )
    settings = config.parse(raw)
    with Runtimes(settings.prometheus) as rts:
        rt = rts.get(settings)
        for model, n in (("smollm2", 3), ("priced", 2), ("down", 2)):
            for i in range(n):
                _ask(rt, model, session=f"s{i}")
        assert rt.monitor.drain()
        rt.alerts.flush()  # the evaluation after the last record is done: nothing changes under the scrape
        text = _scrape(rts.exporter.url)
        rss = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        records = _records(rt)
        firing = len(rt.alerts.active())
        states = {m: b.state for m, b in rt.breakers.states().items()}
    assert len(records) >= 7
    assert KEY not in text
    s = _samples(text)

    # Attempts by model, provider, status, error type: SQL-free recount of the store rows.
    by_key = Counter((r.model, r.provider, r.status, r.error_type or "") for r in records)
    assert by_key[("down", "openai-compatible", "error", "connection")] >= 2
    for (model, provider, status, err), n in by_key.items():
        assert _get(s, "chatwatch_requests_total", model=model, provider=provider, status=status, error_type=err) == n
    scraped_total = sum(v for (name, _), v in s.items() if name == "chatwatch_requests_total")
    assert scraped_total == len(records)

    with sa.create_engine(f"sqlite:///{tmp_path / 'data' / 'chatwatch.db'}").connect() as conn:
        # Costs summed by the database in integer nano-dollars; unpriced counted apart.
        cost = dict(
            conn.execute(
                sa.select(requests.c.model, sa.func.sum(requests.c.cost_nanousd))
                .where(requests.c.cost_nanousd.is_not(None))
                .group_by(requests.c.model)
            ).all()
        )
        unpriced = dict(
            conn.execute(
                sa.select(requests.c.model, sa.func.count())
                .where(requests.c.cost_nanousd.is_(None))
                .group_by(requests.c.model)
            ).all()
        )
        first = dict(
            conn.execute(
                sa.select(requests.c.model, sa.func.count()).where(requests.c.attempt == 1).group_by(requests.c.model)
            ).all()
        )
    assert cost["priced"] > 0 and cost["smollm2"] == 0  # local: a true $0, "local"
    assert "down" not in cost and unpriced["down"] >= 2
    for model in ("smollm2", "priced", "down"):
        assert _get(s, "chatwatch_cost_usd_total", model=model) == pytest.approx(cost.get(model, 0) / 1e9, abs=1e-12)
        assert _get(s, "chatwatch_unpriced_requests_total", model=model) == unpriced.get(model, 0)
        provider = {"smollm2": "llama.cpp", "priced": "acme", "down": "openai-compatible"}[model]
        assert _get(s, "chatwatch_user_requests_total", model=model, provider=provider) == first[model]

    # Histograms: count, sum and each cumulative bucket, recounted from the records.
    by_op = defaultdict(list)
    for r in records:
        if r.latency_s is not None:
            by_op[(r.provider, r.provider_model, r.error_type or "")].append(r.latency_s)
    for (provider, pmodel, err), values in by_op.items():
        labels = dict(
            gen_ai_operation_name="chat", gen_ai_provider_name=provider, gen_ai_request_model=pmodel, error_type=err
        )
        name = "gen_ai_client_operation_duration_seconds"
        assert _get(s, name + "_count", **labels) == len(values)
        assert _get(s, name + "_sum", **labels) == pytest.approx(sum(values))
        for le in DURATION_BUCKETS:
            assert _get(s, name + "_bucket", **labels, le=str(le)) == sum(v <= le for v in values)
    ttft = [r.ttft_s for r in records if r.model == "smollm2" and r.ttft_s is not None]
    local = dict(
        gen_ai_operation_name="chat",
        gen_ai_provider_name="llama.cpp",
        gen_ai_request_model="SmolLM2-135M-Instruct.Q4_1.gguf",
        error_type="",
    )
    name = "gen_ai_client_operation_time_to_first_chunk_seconds"
    assert _get(s, name + "_count", **local) == len(ttft) == 3
    assert _get(s, name + "_sum", **local) == pytest.approx(sum(ttft))
    for kind, field in (("input", "input_tokens"), ("output", "output_tokens")):
        values = [getattr(r, field) for r in records if r.model == "priced" and getattr(r, field) is not None]
        labels = dict(
            gen_ai_operation_name="chat",
            gen_ai_provider_name="acme",
            gen_ai_request_model="smollm2-remote",
            gen_ai_token_type=kind,
        )
        assert _get(s, "gen_ai_client_token_usage_count", **labels) == len(values) == 2
        assert _get(s, "gen_ai_client_token_usage_sum", **labels) == sum(values)
        assert _get(s, "gen_ai_client_token_usage_bucket", **labels, le="16.0") == sum(v <= 16 for v in values)

    # Gauges read at scrape time.
    assert sum(v for (n, _), v in s.items() if n == "chatwatch_alerts_firing") == firing
    assert _get(s, "chatwatch_unsaved_records") == 0
    assert _get(s, "chatwatch_dropped_records") == 0
    assert _get(s, "chatwatch_process_resident_memory_bytes") == pytest.approx(rss, rel=0.2)
    circuit = {dict(labels)["model"]: v for (n, labels), v in s.items() if n == "chatwatch_circuit_state"}
    assert circuit == {m: {"closed": 0, "half_open": 1, "open": 2}[st] for m, st in states.items()}
    assert set(circuit) == {m.id for m in rt.settings.models}  # one series per configured model

    # promtool, Prometheus' own linter, accepts the exposition.
    check = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    assert check.returncode == 0 and not check.stdout and not check.stderr, check


def test_label_cardinality_does_not_grow_with_sessions(tmp_path):
    """10,000 records from 1,000 sessions (new request ids, conversations, latencies, token
    counts, unknown error types) add no series: labels are only model, provider, status and
    a closed list of error types."""
    settings = config.parse(_raw(tmp_path))
    with Runtimes() as rts:
        rt = rts.get(settings)
        _ask(rt, "smollm2")
        _ask(rt, "down")
        rt.monitor.drain()
        ok, failed = sorted(_records(rt), key=lambda r: r.status != "ok")
    exporter = PrometheusExporter(PrometheusConfig(enabled=True), sources=tuple)
    exporter.declare(settings.models)

    def feed(n: int, sessions: int) -> None:
        for i in range(n):
            base = (ok, failed)[i % 2]
            rid = str(uuid.uuid4())
            exporter.on_record(
                dataclasses.replace(
                    base,
                    id=rid,
                    request_id=rid,
                    session_id=f"session-{i % sessions}",
                    conversation_id=str(uuid.uuid4()),
                    latency_s=(i % 97) / 10,
                    ttft_s=(i % 13) / 10,
                    output_tokens=i % 500,
                    error_type=None if base is ok else ("connection", f"unknown error {i}")[(i // 2) % 2],
                    attempt=1 + (i // 4) % 2,
                    retry_reason=("timeout", f"free text {i}")[(i // 8) % 2] if (i // 4) % 2 else None,
                )
            )

    from prometheus_client import generate_latest

    feed(40, 4)  # every combination at least once
    before = generate_latest(exporter.registry).decode()
    feed(10_000, 1_000)
    after = generate_latest(exporter.registry).decode()
    assert _series(after) == _series(before)
    assert "session-" not in after and ok.id not in after
    total = sum(v for (n, _), v in _samples(after).items() if n == "chatwatch_requests_total")
    assert total == 10_040


def test_bearer_token(tmp_path, monkeypatch, caplog):
    token = "metrics-" + uuid.uuid4().hex
    monkeypatch.setenv("CW_METRICS_TOKEN", token)
    exporter = PrometheusExporter(PrometheusConfig(enabled=True, port=0, token_env="CW_METRICS_TOKEN"))
    exporter.start()
    try:
        for sent in (None, "wrong", token[:-1]):
            with pytest.raises(urllib.error.HTTPError) as err:
                _scrape(exporter.url, sent)
            assert err.value.code == 401
        assert "chatwatch_process_resident_memory_bytes" in _scrape(exporter.url, token)
    finally:
        exporter.close()
    assert token not in caplog.text
    monkeypatch.delenv("CW_METRICS_TOKEN")
    with pytest.raises(ValueError, match="CW_METRICS_TOKEN"):
        PrometheusExporter(PrometheusConfig(enabled=True, token_env="CW_METRICS_TOKEN"))


def test_port_in_use_names_the_key_and_close_joins(tmp_path):
    first = Runtimes(PrometheusConfig(enabled=True, port=0))
    try:
        with pytest.raises(OSError, match=r"\[prometheus\].*127.0.0.1"):
            Runtimes(PrometheusConfig(enabled=True, port=first.exporter.port))
        url = first.exporter.url
        assert _scrape(url)
    finally:
        first.close()
    assert not [t for t in threading.enumerate() if t.name == "chatwatch-prometheus"]
    with pytest.raises(urllib.error.URLError):
        _scrape(url)


def test_counters_survive_a_config_change(tmp_path):
    path = tmp_path / "chatwatch.toml"
    body = f"""
[app]
data_dir = "{tmp_path / "data"}"
log_dir = "{tmp_path / "logs"}"
[prometheus]
enabled = true
port = 0
[[models]]
id = "smollm2"
kind = "llama_cpp"
n_ctx = 1024
"""
    path.write_text(body)
    settings = config.load(path)
    with Runtimes(settings.prometheus) as rts:
        first = rts.get(config.load(path))
        _ask(first, "smollm2")
        _ask(first, "smollm2")
        path.write_text(body + "[models.defaults]\nmax_tokens = 3\n")  # an edit of the file
        second = rts.get(config.load(path))
        assert second is not first and first.closed
        _ask(second, "smollm2")
        second.monitor.drain()
        s = _samples(_scrape(rts.exporter.url))
        stored = len(_records(second))
    assert stored == 3
    assert _get(s, "chatwatch_requests_total", model="smollm2", provider="llama.cpp", status="ok", error_type="") == 3
    assert _get(s, "chatwatch_user_requests_total", model="smollm2", provider="llama.cpp") == 3


def test_metrics_serve_as_soon_as_chatwatch_run_starts(tmp_path):
    """A real `chatwatch run`: /metrics answers, with the configured models' counters at 0,
    while no browser has connected (the app runtime is built before the Streamlit server)."""
    conf = tmp_path / "chatwatch.toml"
    conf.write_text(
        f"""
[app]
data_dir = "{tmp_path / "data"}"
log_dir = "{tmp_path / "logs"}"
[prometheus]
enabled = true
port = 0
[[models]]
id = "smollm2"
kind = "llama_cpp"
"""
    )
    out = tmp_path / "run.log"
    started = time.monotonic()
    with out.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chatwatch", "run", "--port", str(free_port()), "--config", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        url = None
        while url is None and time.monotonic() - started < 60:
            assert proc.poll() is None, out.read_text()
            for line in out.read_text().splitlines():
                if "metrics on " in line:
                    url = line.split("metrics on ", 1)[1].strip()
            time.sleep(0.1)
        assert url, out.read_text()
        s = _samples(_scrape(url))
        up_s = time.monotonic() - started
        assert (
            _get(s, "chatwatch_requests_total", model="smollm2", provider="llama.cpp", status="ok", error_type="") == 0
        )
        assert psutil.Process(proc.pid).is_running()
        print(f"/metrics up {up_s:.2f} s after `chatwatch run` started")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    with pytest.raises(urllib.error.URLError):
        _scrape(url)
