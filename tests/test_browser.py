"""End to end in a real browser: Debian's chromium driven by Playwright against a running
`chatwatch run` (the real local model, the real store)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from tests.stub_openai_server import Script

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def max_tokens() -> int:
    return 24


@pytest.fixture
def refresh_seconds() -> float:
    return 5


@pytest.fixture
def app_url(tmp_path, port, stub_server, max_tokens, refresh_seconds):
    stub_server.script = Script(status=500, error_message=XSS)
    conf = tmp_path / "chatwatch.toml"
    conf.write_text(
        f"""
[app]
language = "en"
[dashboard]
refresh_seconds = {refresh_seconds}
[[models]]
id = "smollm2"
kind = "llama_cpp"
[models.defaults]
max_tokens = {max_tokens}
seed = 5
[[models]]
id = "broken"
kind = "openai"
base_url = "{stub_server.base_url}"
model = "whatever"
timeout_s = 10
"""
    )
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatwatch", "run", "--port", str(port), "--config", str(conf)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    url = f"http://localhost:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp_path / "server.log").read_text()) from None
            time.sleep(0.3)
    yield url, conf
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


@pytest.fixture
def page():
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is missing: sudo apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
        yield context.new_page()
        browser.close()


def send(page, text: str) -> None:
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(text)
    box.press("Enter")


def test_chat_dashboard_export_and_no_html_injection(app_url, page, tmp_path):
    url, conf = app_url
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    # Chat once with the local model and see the reply with its measured figures.
    page.goto(url)
    page.get_by_test_id("stChatInputTextArea").wait_for(timeout=60_000)
    send(page, "Say hello.")
    page.get_by_text("smollm2 ·").first.wait_for(timeout=120_000)
    assert page.get_by_test_id("stChatMessage").count() == 2

    # A failing model whose error text is HTML: shown as text, never as markup.
    page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").filter(has_text="Model").click()
    page.get_by_role("option", name="broken").click()
    send(page, "Anything?")
    page.get_by_text(XSS, exact=False).first.wait_for(timeout=60_000)
    assert page.locator("img[src='x']").count() == 0
    page.screenshot(path=str(tmp_path / "chat.png"))

    # The dashboard counts both requests (one error) from the shared store.
    page.goto(f"{url}/dashboard")
    requests = page.get_by_test_id("stMetric").filter(has_text="Requests").first
    requests.wait_for(timeout=60_000)
    assert requests.get_by_test_id("stMetricValue").inner_text().strip() == "2"
    # "broken" answers 500: three attempts (retries = 2), so 3 of 4 model attempts failed,
    # and 1 of the 2 user requests.
    error_rate = page.get_by_test_id("stMetric").filter(has_text="Error rate").first
    assert "75" in error_rate.get_by_test_id("stMetricValue").inner_text()
    user_rate = page.get_by_test_id("stMetric").filter(has_text="User-facing error rate").first
    assert "50" in user_rate.get_by_test_id("stMetricValue").inner_text()
    page.get_by_test_id("stPlotlyChart").first.wait_for(timeout=60_000)  # the charts render too
    assert page.locator("img[src='x']").count() == 0
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

    # One click downloads the CSV of the view; it equals `chatwatch export` of the same filter.
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="Download CSV").click()
    downloaded = download.value.path().read_text(encoding="utf-8")
    cli = subprocess.run(
        [sys.executable, "-m", "chatwatch", "export", "--config", str(conf), "--format", "csv", "--since", "7d"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert downloaded == cli
    assert downloaded.count("\n") == 5  # header + 4 records (one per attempt)
    assert not dialogs


@pytest.mark.parametrize("max_tokens", [1000])
def test_stop_ends_the_stream_and_records_a_cancellation(app_url, page, tmp_path):
    url, conf = app_url
    page.goto(url)
    page.get_by_test_id("stChatInputTextArea").wait_for(timeout=60_000)
    send(page, "Write a very long story about a dragon and a knight, with many chapters.")
    reply = page.get_by_test_id("stChatMessage").nth(1)
    reply.get_by_test_id("stMarkdown").first.wait_for(timeout=60_000)  # text is streaming
    page.get_by_test_id("stMainBlockContainer").get_by_role("button", name="Stop").click()
    page.get_by_text("Generation stopped.").wait_for(timeout=30_000)
    partial = page.get_by_test_id("stChatMessage").nth(1).inner_text()
    assert partial.strip()

    from chatwatch.config import load
    from chatwatch.reports.queries import Filters, list_requests
    from chatwatch.store.records import Store

    deadline = time.monotonic() + 30
    while True:  # the record is committed as the stream closes
        with Store.open(load(conf).store_url) as store:
            records = list_requests(store, Filters()).records
        if records or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(records) == 1
    record = records[0]
    assert record.status == "cancelled" and record.error_type is None
    assert 1 <= record.output_tokens < 1000 and record.input_tokens > 0


@pytest.mark.parametrize("refresh_seconds", [1])  # the fastest live refresh the config allows
def test_every_download_click_yields_a_whole_file_while_the_dashboard_refreshes(app_url, page, tmp_path):
    """The export buttons sit outside the live fragment: a refresh never replaces the file a
    click is about to fetch (which gave no file on about one click in four)."""
    import csv
    import io
    import json

    from chatwatch.config import load
    from chatwatch.store.records import Store
    from tests.fixtures.db import make_record

    url, conf = app_url
    records = [make_record(started_at=datetime.now(UTC) - timedelta(minutes=i)) for i in range(1, 13)]
    with Store.open(load(conf).store_url) as store:
        store.write_many(records)
    page.goto(f"{url}/dashboard")
    page.get_by_role("button", name="Download CSV").wait_for(timeout=60_000)
    page.wait_for_timeout(2500)  # the live fragment has redrawn at least twice
    want = {r.id for r in records}
    for name, parse in (
        ("Download JSON", lambda text: [row["id"] for row in json.loads(text)]),
        ("Download CSV", lambda text: [row["id"] for row in csv.DictReader(io.StringIO(text))]),
    ):
        for click in range(10):
            with page.expect_download(timeout=20_000) as download:
                page.get_by_role("button", name=name).click()
            path = download.value.path()
            assert download.value.failure() is None, (name, click)
            ids = parse(path.read_text(encoding="utf-8"))
            assert set(ids) == want and len(ids) == len(want), (name, click)
            page.wait_for_timeout(300)  # clicks land at different points of the refresh cycle
    log = (tmp_path / "server.log").read_text()
    assert "not found" not in log, log[-2000:]


def test_the_chat_shows_the_model_is_working_before_the_first_token(app_url, page, stub_server):
    """Between sending and the first token the reply says what is going on (here: the
    remote model is thinking), and the first token replaces that notice."""
    url, _conf = app_url
    stub_server.script = Script(chunks=("Hola", " mundo"), interval_s=3.0)  # 3 s before the first token
    page.goto(url)
    page.get_by_test_id("stChatInputTextArea").wait_for(timeout=60_000)
    page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").filter(has_text="Model").click()
    page.get_by_role("option", name="broken").click()
    send(page, "Anyone there?")
    working = page.get_by_text("broken is thinking…")
    working.wait_for(timeout=10_000)
    reply = page.get_by_test_id("stChatMessage").nth(1)
    assert "Hola" not in reply.inner_text()  # the notice came before any text
    page.get_by_text("Hola mundo").wait_for(timeout=30_000)
    assert working.count() == 0
