"""Two replicas on one PostgreSQL, for real (#10 item 5): two `chatwatch run` processes on
different ports share a fresh PostgreSQL schema (the `pg_url` fixture), a webhook alert
channel and a low-threshold rule; Debian's chromium, driven by Playwright, chats on each and
reads the other's dashboard. The alert the requests trigger notifies exactly once across
both replicas; retention (a 3 s interval) runs once per interval across both, by the lease;
a circuit opened by requests on replica 1 (a model on a closed port) is open on replica 2:
its model picker says so and its next request is refused as circuit_open without a call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.fixtures.paths import free_port

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
RETENTION_INTERVAL_S = 3.0
RULE_NAME = "slow reply"
CLOSED_PORT = free_port()  # nothing listens there: every call to model "down" is refused


@dataclass
class Replica:
    name: str
    url: str
    folder: Path
    proc: subprocess.Popen

    def log_lines(self) -> list[dict]:
        return [
            json.loads(line)
            for path in sorted((self.folder / "logs").glob("*.jsonl"))
            for line in path.read_text().splitlines()
            if line.strip()
        ]


def _config(folder: Path, name: str, store_url: str, webhook_url: str) -> Path:
    folder.mkdir(parents=True)
    conf = folder / "chatwatch.toml"
    conf.write_text(
        f"""
[app]
language = "en"
instance = "{name}"
data_dir = "{folder / "data"}"
log_dir = "{folder / "logs"}"
[store]
url = "{store_url}"
[retention]
interval_minutes = {RETENTION_INTERVAL_S / 60}
[dashboard]
refresh_seconds = 2
[alerts]
notify = ["{webhook_url}"]
evaluate_every_s = 1
[[alerts.rules]]
name = "{RULE_NAME}"
kind = "slow_response"
threshold = 0.001
severity = "critical"
window_minutes = 30
[[models]]
id = "smollm2"
kind = "llama_cpp"
n_ctx = 1024
[models.defaults]
max_tokens = 8
seed = 5
[[models]]
id = "down"
name = "Down remote"
kind = "openai"
base_url = "http://127.0.0.1:{CLOSED_PORT}/v1"
retries = 0
[models.breaker]
failures = 2
cooldown_s = 600
"""
    )
    return conf


def _start(folder: Path, name: str, store_url: str, webhook_url: str) -> Replica:
    conf = _config(folder, name, store_url, webhook_url)
    port = free_port()
    out = open(folder / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatwatch", "run", "--port", str(port), "--config", str(conf)],
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=folder,
    )
    out.close()  # the child holds its own copy
    return Replica(name, f"http://localhost:{port}", folder, proc)


def _wait_up(replica: Replica, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(f"{replica.url}/_stcore/health", timeout=2).read()
            return
        except OSError:
            if replica.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((replica.folder / "server.log").read_text()) from None
            time.sleep(0.3)


@pytest.fixture
def replicas(tmp_path, pg_url, webhook) -> Iterator[tuple[Replica, Replica]]:
    pair = [_start(tmp_path / n, n, pg_url, webhook.url()) for n in ("replica-1", "replica-2")]
    try:
        for r in pair:
            _wait_up(r)
        yield pair[0], pair[1]
    finally:
        for r in pair:
            r.proc.terminate()
        for r in pair:
            try:
                r.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                r.proc.kill()
                r.proc.wait(timeout=5)


@pytest.fixture
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is missing: sudo apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        yield b
        b.close()


def _page(browser):
    return browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()


def _chat(page, replica: Replica, text: str) -> None:
    page.goto(replica.url)
    box = page.get_by_test_id("stChatInputTextArea")
    box.wait_for(timeout=90_000)
    before = page.get_by_text("smollm2 ·").count()
    box.fill(text)
    box.press("Enter")
    page.get_by_text("smollm2 ·").nth(before).wait_for(timeout=120_000)  # the reply and its figures


def _chat_down(page, text: str) -> None:
    """One request to model "down" from the page already showing the chat; waits for its error."""
    page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").filter(has_text="Model").click()
    page.get_by_role("option", name="Down remote").click()
    before = page.get_by_text("Model error (").count()
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(text)
    box.press("Enter")
    page.get_by_text("Model error (").nth(before).wait_for(timeout=60_000)


def _dashboard_requests(page, replica: Replica, want: str, timeout_s: float = 60) -> str:
    """The dashboard's Requests figure, once it shows `want` (the live view refreshes)."""
    page.goto(f"{replica.url}/dashboard")
    metric = page.get_by_test_id("stMetric").filter(has_text="Requests").first
    metric.wait_for(timeout=90_000)
    deadline = time.monotonic() + timeout_s
    while True:
        value = metric.get_by_test_id("stMetricValue").inner_text().strip()
        if value == want or time.monotonic() > deadline:
            return value
        page.wait_for_timeout(500)


def _retention_starts(replicas: tuple[Replica, Replica]) -> list[tuple[float, str]]:
    """(start time, replica) of every background cleanup either replica ran."""
    runs = []
    for r in replicas:
        for line in r.log_lines():
            if line["message"].startswith("retention cleanup (background)"):
                ended = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()
                runs.append((ended - line["duration_s"], r.name))
    return sorted(runs)


def test_two_replicas_share_requests_alerts_retention_and_circuits(replicas, browser, webhook, pg_url):
    one, two = replicas
    page_one, page_two = _page(browser), _page(browser)

    # A request on replica 1 shows on replica 2's dashboard, and the other way round.
    _chat(page_one, one, "Say hello.")
    assert _dashboard_requests(page_two, two, "1") == "1"
    _chat(page_two, two, "Say goodbye.")
    assert _dashboard_requests(page_one, one, "2") == "2"
    assert _dashboard_requests(page_two, two, "2") == "2"

    # Both requests were slower than 1 ms: the rule fires, and exactly one replica notifies.
    title = f"[chatwatch] CRITICAL ALERT: {RULE_NAME}"
    received = webhook.wait_for(1, timeout=30)
    assert title in [r.body["title"] for r in received]
    time.sleep(4)  # several evaluation rounds (every 1 s) of each replica
    assert [r.body["title"] for r in webhook.received].count(title) == 1, [r.body for r in webhook.received]
    # The one firing event, logged by the replica that claimed the transition in the store.
    events = [
        (r.name, line.get("alert_state"))
        for r in replicas
        for line in r.log_lines()
        if line.get("alert_rule") == RULE_NAME
    ]
    assert [state for _, state in events].count("firing") == 1, events

    # Retention: once per interval across both replicas, never twice in one interval.
    deadline = time.monotonic() + 4 * RETENTION_INTERVAL_S
    while len(_retention_starts(replicas)) < 4 and time.monotonic() < deadline:
        time.sleep(0.5)
    runs = _retention_starts(replicas)
    assert len(runs) >= 4, runs
    gaps = [b[0] - a[0] for a, b in zip(runs, runs[1:])]
    assert all(g >= RETENTION_INTERVAL_S - 0.25 for g in gaps), (gaps, runs)
    # ... and not skipped: the next interval's cleanup starts soon after the lease expires.
    assert all(g <= 2 * RETENTION_INTERVAL_S + 1.0 for g in gaps), (gaps, runs)

    for r in replicas:  # neither replica logged an error (migrations raced, a lock timed out ...)
        errors = [
            line
            for line in r.log_lines()
            if line["level"] in ("ERROR", "CRITICAL") and line.get("alert_rule") is None  # the alert's own line
        ]
        assert not errors, (r.name, errors[:3])

    # A circuit opened on replica 1 is open on replica 2 (the state is in the store).
    page_one.goto(one.url)
    page_one.get_by_test_id("stChatInputTextArea").wait_for(timeout=90_000)
    _chat_down(page_one, "Anyone there?")
    _chat_down(page_one, "Still there?")  # the second consecutive connection failure opens it
    page_two.goto(two.url)
    page_two.get_by_test_id("stChatInputTextArea").wait_for(timeout=90_000)
    _chat_down(page_two, "And now?")
    page_two.get_by_text("Circuit open: this model kept failing").wait_for(timeout=30_000)
    page_two.get_by_text("is unavailable").first.wait_for(timeout=30_000)
    engine = sa.create_engine(pg_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT instance, error_type, latency_s FROM requests WHERE model = 'down' ORDER BY started_us")
            ).all()
    finally:
        engine.dispose()
    assert [(r.instance, r.error_type) for r in rows] == [
        ("replica-1", "connection"),
        ("replica-1", "connection"),
        ("replica-2", "circuit_open"),
    ], rows
    assert rows[2].latency_s is None  # refused without a call
