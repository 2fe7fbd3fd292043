"""The sign-in gate in real chromium against a real `chatwatch run` with [auth] mode =
"password" and the hash in the environment: signed out, no protected URL shows a metric, a
request id or a download; a wrong password is refused with a message; the right one shows
the dashboard; sign-out returns to the sign-in."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import argon2
import pytest

from chatwatch.store.records import Store
from tests.fixtures.db import make_record
from tests.test_browser import page  # noqa: F401  (the chromium fixture)

pytestmark = pytest.mark.browser
PASSWORD = "browser pass 7"


@pytest.fixture
def app(tmp_path, port):
    conf = tmp_path / "chatwatch.toml"
    conf.write_text('[app]\nlanguage = "en"\n[auth]\nmode = "password"\n')
    records = [make_record(started_at=datetime.now(UTC) - timedelta(minutes=3 + i)) for i in range(2)]
    with Store.open(f"sqlite:///{tmp_path / 'data' / 'chatwatch.db'}") as store:
        store.write_many(records)
    env = {**os.environ, "CHATWATCH_PASSWORD_HASH": argon2.PasswordHasher().hash(PASSWORD)}
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatwatch", "run", "--port", str(port), "--config", str(conf)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
        env=env,
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
    yield url, records
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


def _closed(tab, records) -> None:
    tab.get_by_text("Sign in").first.wait_for(timeout=60_000)
    tab.get_by_test_id("stTextInput").first.wait_for(timeout=60_000)
    assert tab.get_by_test_id("stMetric").count() == 0
    assert tab.get_by_test_id("stDownloadButton").count() == 0
    html = tab.content()
    assert all(r.id not in html for r in records)


def test_protected_urls_show_the_sign_in(app, page):  # noqa: F811
    url, records = app
    for path in ("dashboard", "requests", "alerts", "signin"):
        page.goto(f"{url}/{path}")
        _closed(page, records)
    box = page.get_by_test_id("stTextInputField")
    box.fill("wrong one")
    box.press("Enter")
    page.get_by_text("Wrong password.").wait_for(timeout=30_000)
    _closed(page, records)
    page.goto(f"{url}/dashboard")
    box = page.get_by_test_id("stTextInputField")
    box.fill(PASSWORD)
    box.press("Enter")
    requests = page.get_by_test_id("stMetric").filter(has_text="Requests").first
    requests.wait_for(timeout=60_000)
    assert requests.get_by_test_id("stMetricValue").inner_text().strip() == str(len(records))
    page.get_by_role("button", name="Sign out").click()
    _closed(page, records)
