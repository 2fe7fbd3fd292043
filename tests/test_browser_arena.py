"""The blind arena end to end in a real browser: Debian's chromium driven by Playwright
against a real Streamlit server running the arena page, with SmolLM2 in-process and behind a
real llama_cpp.server. The model names are absent from the page's HTML until the vote and
present after it; the vote is stored once.

The server runs a navigation entry script of this test (the arena, compare and leaderboard
pages) under `python -m streamlit run`, with the same server options `chatwatch run` uses:
app.py's navigation, which `chatwatch run` serves, is another helper's file and does not
list these pages yet."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import chatwatch.ui

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
VIEWS = Path(chatwatch.ui.__file__).parent / "views"
# Ids that occur nowhere else on the page, so their absence from the HTML means something.
LOCAL, REMOTE = "kestrel", "osprey"

ENTRY = f"""
import streamlit as st

views = {str(VIEWS)!r}
st.navigation([
    st.Page(views + "/arena.py", title="Arena", url_path="arena", default=True),
    st.Page(views + "/compare.py", title="Compare", url_path="compare"),
    st.Page(views + "/leaderboard.py", title="Leaderboard", url_path="leaderboard"),
]).run()
"""


@pytest.fixture
def app_url(tmp_path, port, llama_server):
    conf = tmp_path / "chatwatch.toml"
    conf.write_text(
        f"""
[app]
language = "en"
[store]
url = "sqlite:///{tmp_path / "data" / "chatwatch.db"}"
[[models]]
id = "{LOCAL}"
kind = "llama_cpp"
[models.defaults]
max_tokens = 16
seed = 5
[[models]]
id = "{REMOTE}"
kind = "openai"
base_url = "{llama_server}"
model = "smol"
[models.defaults]
max_tokens = 16
seed = 5
"""
    )
    entry = tmp_path / "entry.py"
    entry.write_text(ENTRY)
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(entry),
            "--server.port",
            str(port),
            "--server.address",
            "localhost",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
            "--runner.magicEnabled",
            "false",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
        env={**os.environ, "CHATWATCH_CONFIG": str(conf)},
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
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        yield context.new_page()
        browser.close()


def test_blind_vote_hides_the_names_until_it_is_cast_and_is_stored_once(app_url, page, tmp_path):
    url, conf = app_url
    page.goto(url)  # the arena is the default page, served at /
    box = page.get_by_test_id("stChatInputTextArea")
    box.wait_for(timeout=60_000)
    box.fill("Name a fruit.")
    box.press("Enter")
    vote_b = page.get_by_role("button", name="B is better")
    vote_b.wait_for(timeout=120_000)
    page.get_by_text("Answer B").first.wait_for()
    html = page.content()
    assert "Answer A" in html and "Name a fruit." in html
    assert LOCAL not in html and REMOTE not in html
    page.screenshot(path=str(tmp_path / "before.png"), full_page=True)

    vote_b.click()
    page.get_by_text("Vote stored").wait_for(timeout=60_000)
    page.get_by_text(" was ").first.wait_for()
    html = page.content()
    assert f"A was {LOCAL}" in html or f"A was {REMOTE}" in html
    assert LOCAL in html and REMOTE in html
    assert page.get_by_role("button", name="B is better").count() == 0  # no second vote on this pair
    page.screenshot(path=str(tmp_path / "after.png"), full_page=True)

    from chatwatch.config import load
    from chatwatch.store.records import Store
    from chatwatch.store.votes import list_votes

    with Store.open(load(conf).store_url) as store:
        votes = list_votes(store)
        records = {v: store.get(v) for v in (votes[0].record_a, votes[0].record_b)} if votes else {}
    assert len(votes) == 1 and votes[0].verdict == "b"
    assert {votes[0].model_a, votes[0].model_b} == {LOCAL, REMOTE}
    assert {r.mode for r in records.values()} == {"arena"}
    assert f"A was {votes[0].model_a}" in html and f"B was {votes[0].model_b}" in html
