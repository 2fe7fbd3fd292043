"""A real Prometheus (Debian's `prometheus` 2.42) on loopback scrapes two chatwatch
processes, each making real requests (SmolLM2 in-process, and a model on a closed loopback
port for real connection errors); PromQL over what it stored equals the requests made, and
every panel of the shipped Grafana dashboard returns data from it.

The Prometheus config is deploy/prometheus.yml as shipped, with only its targets, interval
and token file replaced; deploy/chatwatch.toml is loaded to prove it is a valid config.

Why the increase() result is exact here, not approximately right: increase() extrapolates
from the first and last samples in the range to the range's edges, by the ratio
(sampled interval + extensions) / sampled interval. At the start, Prometheus never
extrapolates a counter below zero, and every series here exists at 0 before the first
request (the exporter creates each configured model's series at 0, and the test waits for
two scrapes of it before any request): the start extension is 0. At the end, the query is
evaluated at the timestamp of the target's own last sample, so the end extension is 0
too, the ratio is exactly 1 and the result is the counter's last value minus its first (0).
The two processes are scraped at different instants, so each process serves its own model
ids, and the same query is evaluated at each process's last sample to read that process's
rows.

Run as a script (`python tests/test_prometheus_scrape.py CONFIG`), this file is the chatwatch
process itself: it builds the process's Runtimes (with /metrics), prints its URL, makes
the requests when told on stdin and exits when told again.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
OK_REQUESTS = 3
FAILED_REQUESTS = 2
RANGE = "10m"  # covers the whole run: the processes start less than 10 minutes before the query


def worker(conf: str) -> None:
    from chatwatch import config
    from chatwatch.models.contract import GenerationSettings, Message
    from chatwatch.runtime import Runtimes

    settings = config.load(conf)
    with Runtimes(settings.prometheus) as rts:
        rt = rts.get(settings)
        print(json.dumps({"url": rts.exporter.url}), flush=True)
        sys.stdin.readline()  # "go"
        made: Counter = Counter()
        for model, n in ((settings.models[0].id, OK_REQUESTS), (settings.models[1].id, FAILED_REQUESTS)):
            for i in range(n):
                reply = rt.chat(
                    model, [Message("user", "Say hi.")], GenerationSettings(max_tokens=4, seed=i), session_id=f"s{i}"
                )
                try:
                    for _ in reply:
                        pass
                except Exception:
                    pass  # a failed attempt: recorded like any other
                finally:
                    reply.close()
                for record in getattr(reply, "records", None) or [reply.record]:
                    made[f"{record.model} {record.status}"] += 1
        rt.monitor.drain()
        print(json.dumps({"made": made}), flush=True)
        sys.stdin.readline()  # "exit"


def _free_port() -> int:
    from tests.fixtures.paths import free_port

    return free_port()


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


class Prom:
    def __init__(self, base: str) -> None:
        self.base = base

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        body = _get(f"{self.base}/api/v1/query?{urllib.parse.urlencode(params)}")
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait(self, what: str, check, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.3)
        pytest.fail(f"Prometheus: {what} not seen within {timeout_s:g} s")


def _conf(tmp_path: Path, name: str, token_env: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f"""
[app]
instance = "{name}"
data_dir = "{tmp_path / name / "data"}"
log_dir = "{tmp_path / name / "logs"}"
[prometheus]
enabled = true
port = 0
token_env = "{token_env}"
[[models]]
id = "smol-{name}"
kind = "llama_cpp"
n_ctx = 1024
[[models]]
id = "down-{name}"
kind = "openai"
base_url = "http://127.0.0.1:{_free_port()}/v1"
model = "nobody"
timeout_s = 5
retries = 0
"""
    )
    return path


@pytest.fixture
def replicas(tmp_path):
    """Two chatwatch processes with /metrics behind a bearer token, started, not yet asked."""
    token = os.urandom(16).hex()
    env = {**os.environ, "CW_METRICS_TOKEN": token, "PYTHONPATH": str(REPO)}
    procs = {}
    try:
        for name in ("a", "b"):
            err = (tmp_path / f"{name}.stderr").open("w")
            proc = subprocess.Popen(
                [sys.executable, __file__, str(_conf(tmp_path, name, "CW_METRICS_TOKEN"))],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=env,
            )
            procs[name] = proc
        info = {}
        for name, proc in procs.items():
            line = proc.stdout.readline()
            assert line, (tmp_path / f"{name}.stderr").read_text()
            info[name] = json.loads(line)
        yield procs, info, token
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                try:
                    proc.stdin.write("exit\nexit\n")
                    proc.stdin.flush()
                    proc.wait(timeout=30)
                except (BrokenPipeError, subprocess.TimeoutExpired):
                    proc.kill()
                    proc.wait(timeout=10)


@pytest.fixture
def prometheus(tmp_path, replicas):
    """A real Prometheus from deploy/prometheus.yml, scraping both replicas every second."""
    _, info, token = replicas
    shipped = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    shipped["global"]["scrape_interval"] = shipped["global"]["evaluation_interval"] = "1s"
    job = shipped["scrape_configs"][0]
    token_file = tmp_path / "token"
    token_file.write_text(token)
    job["authorization"]["credentials_file"] = str(token_file)
    job["static_configs"][0]["targets"] = [urllib.parse.urlsplit(i["url"]).netloc for i in info.values()]
    conf = tmp_path / "prometheus.yml"
    conf.write_text(yaml.safe_dump(shipped))
    check = subprocess.run(["promtool", "check", "config", str(conf)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    port = _free_port()
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={conf}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                urllib.request.urlopen(f"{base}/-/ready", timeout=2).read()
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()
                time.sleep(0.2)
        yield Prom(base)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _last_sample_at(prom: Prom, model: str) -> float:
    series = prom.query(f'chatwatch_requests_total{{model="{model}",status="ok"}}[{RANGE}]')
    assert len(series) == 1, series
    return float(series[0]["values"][-1][0])


def test_prometheus_counts_every_request_of_both_replicas(replicas, prometheus):
    procs, info, _ = replicas
    prom = prometheus
    start = time.monotonic()

    def scraped_twice_at_zero() -> bool:
        rows = prom.query(f'count_over_time(chatwatch_requests_total{{status="ok",model=~"smol-.*"}}[{RANGE}])')
        return len(rows) == 2 and all(float(r["value"][1]) >= 2 for r in rows)

    prom.wait("both replicas' series at 0", scraped_twice_at_zero)
    for proc in procs.values():
        proc.stdin.write("go\n")
        proc.stdin.flush()
    made = {name: Counter(json.loads(proc.stdout.readline())["made"]) for name, proc in procs.items()}
    for name in procs:
        assert made[name] == {f"smol-{name} ok": OK_REQUESTS, f"down-{name} error": FAILED_REQUESTS}

    def scraped_final() -> bool:
        rows = prom.query("sum(chatwatch_requests_total)")
        return bool(rows) and float(rows[0]["value"][1]) == sum(sum(c.values()) for c in made.values())

    prom.wait("the final counts", scraped_final)
    query = f"sum by (model, status) (increase(chatwatch_requests_total[{RANGE}]))"
    for name in procs:
        at = _last_sample_at(prom, f"smol-{name}")
        rows = prom.query(query, at=at)
        got = {
            f"{r['metric']['model']} {r['metric']['status']}": float(r["value"][1])
            for r in rows
            if r["metric"]["model"].endswith(f"-{name}")
        }
        expected = {f"{m}-{name} {s}": 0.0 for m in ("smol", "down") for s in ("ok", "error", "cancelled")}
        expected.update({k: float(v) for k, v in made[name].items()})
        assert got == expected, (name, at, rows)
    print(f"scrape test: {time.monotonic() - start:.1f} s from first scrape to exact increase()")

    # Every panel of the shipped Grafana dashboard returns data from this Prometheus.
    dashboard = json.loads((DEPLOY / "grafana" / "chatwatch-dashboard.json").read_text())
    empty = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "5m")
            assert "$" not in expr, expr  # no other Grafana variable left unreplaced
            if not prom.query(expr):
                empty.append((panel["title"], expr))
    assert not empty, empty


def test_team_config_loads():
    from chatwatch import config

    settings = config.load(DEPLOY / "chatwatch.toml")
    assert settings.store.url.startswith("postgresql+psycopg://")
    assert settings.prometheus.enabled and settings.otel.enabled
    assert {m.kind for m in settings.models} == {"openai"}
    assert not re.search(r"://[^@/]*:[^@/]*@", settings.store.url)  # no password in the file


if __name__ == "__main__":
    worker(sys.argv[1])
