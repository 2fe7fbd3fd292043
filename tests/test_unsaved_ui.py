"""What the pages say about records the store could not take, driven by Streamlit's AppTest:
the chat says monitoring is degraded while records wait in memory (a real SQLite failure:
the `requests` table moved away under the running app), a cost priced on estimated token
counts is marked as such, and the dashboard warns when its range lost records."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from chatwatch.store.losses import Loss, write_losses
from chatwatch.store.records import Store
from tests.fixtures.db import make_record

ROOT = Path(__file__).resolve().parents[1] / "src" / "chatwatch" / "ui"
APP = str(ROOT / "app.py")
DASHBOARD = str(ROOT / "views" / "dashboard.py")


@pytest.fixture
def config(tmp_path, stub_server, monkeypatch):
    path = tmp_path / "chatwatch.toml"
    path.write_text(
        f"""
[app]
language = "en"
[[models]]
id = "hosted"
kind = "openai"
base_url = "{stub_server.base_url}"
model = "m1"
[models.price]
input_per_mtok = 1.0
output_per_mtok = 2.0
"""
    )
    monkeypatch.setenv("CHATWATCH_CONFIG", str(path))
    return path


def move_table(url: str, old: str, new: str) -> None:
    with Store.open(url) as store, store.transaction() as conn:
        conn.exec_driver_sql(f"ALTER TABLE {old} RENAME TO {new}")


def warnings(at: AppTest) -> list[str]:
    return [w.value for w in at.warning]


def test_the_chat_says_monitoring_is_degraded_until_the_records_are_written(config):
    url = f"sqlite:///{config.parent / 'data' / 'chatwatch.db'}"
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception and not any("Monitoring degraded" in w for w in warnings(at))
    move_table(url, "requests", "requests_away")
    at.chat_input[0].set_value("Hello?").run()
    assert not at.exception
    assert at.chat_message[-1].markdown[0].value == "Hello, world!"  # the chat goes on
    (banner,) = [w for w in warnings(at) if "Monitoring degraded" in w]
    assert banner.startswith("Monitoring degraded: 1 records not saved yet (")
    assert "no such table" in banner and banner.endswith("; 0 lost.")
    # The stub reports no usage and has no tokenizer: the cost rests on estimated tokens.
    meta = at.chat_message[-1].caption[-1].value
    assert "≈$" in meta and "(estimated tokens)" in meta

    move_table(url, "requests_away", "requests")
    at.chat_input[0].set_value("Again?").run()  # commits itself and wakes the monitor's writer
    deadline = time.monotonic() + 15
    with Store.open(url) as store:
        while store.count() < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.count() == 2
    at.run()
    assert not at.exception and not any("Monitoring degraded" in w for w in warnings(at))


@pytest.mark.parametrize("lost", [True, False])
def test_the_dashboard_warns_when_its_range_lost_records(tmp_path, monkeypatch, lost):
    config = tmp_path / "chatwatch.toml"
    config.write_text('[app]\nlanguage = "en"\ndata_dir = "data"\nlog_dir = "logs"\n')
    monkeypatch.setenv("CHATWATCH_CONFIG", str(config))
    now = datetime.now(UTC)
    with Store.open(f"sqlite:///{tmp_path / 'data' / 'chatwatch.db'}") as store:
        store.write(make_record(started_at=now - timedelta(minutes=5)))
        write_losses(
            store,
            [
                Loss(
                    at=now - timedelta(minutes=9),
                    instance="host:1",
                    model="smollm2",
                    count=1234,
                    first_started=now - timedelta(minutes=30),
                    last_started=now - timedelta(minutes=10),
                    reason="unsaved backlog full",
                )
            ]
            if lost
            else [],
        )
    at = AppTest.from_file(DASHBOARD, default_timeout=60).run()
    assert not at.exception
    shown = [w for w in warnings(at) if "missing" in w]
    if not lost:
        assert shown == []
        return
    (warning,) = shown
    assert warning == (
        "1,234 requests in this range are missing: they could not be saved and were lost (unsaved backlog full)."
    )
