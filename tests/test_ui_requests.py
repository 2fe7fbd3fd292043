"""The requests explorer driven by Streamlit's AppTest over a seeded store and real log
files: newest first, pagination, every filter, and one request's detail with its log
lines (plain and rotated gzip files) and feedback, with error text shown as text."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from chatwatch.reports.queries import Filters, list_requests
from chatwatch.store.records import Store
from tests.fixtures.db import make_record

PAGE = str(Path(__file__).resolve().parents[1] / "src" / "chatwatch" / "ui" / "views" / "requests.py")
XSS = "<img src=x onerror=alert(1)>"
MINE = "session-mine"
N = 131


@pytest.fixture
def env(tmp_path, monkeypatch):
    config = tmp_path / "chatwatch.toml"
    config.write_text('[app]\nlanguage = "en"\ndata_dir = "data"\nlog_dir = "logs"\n')
    monkeypatch.setenv("CHATWATCH_CONFIG", str(config))
    url = f"sqlite:///{tmp_path / 'data' / 'chatwatch.db'}"
    now = datetime.now(UTC)
    records = []
    for i in range(N):
        kw = dict(
            started_at=now - timedelta(minutes=i + 1),
            model=("a", "b", "c")[i % 3],
            session_id=MINE if i % 5 == 0 else "other",
        )
        if i % 10 == 3:
            kind = "timeout" if i % 20 == 3 else "rate_limit"
            kw.update(status="error", error_type=kind, error_message=f"{kind} number {i}")
        records.append(make_record(**kw))
    records[7] = make_record(
        **{
            **records[7].__dict__,
            "status": "error",
            "error_type": "provider_error",
            "error_message": XSS,
            "ttft_s": None,
        }
    )
    records[12] = make_record(
        **{**records[12].__dict__, "prompt_text": "What fruit?", "response_text": "The secret word is Papaya."}
    )
    target = records[7]
    with Store.open(url) as store:
        store.write_many(records)
        store.add_feedback(target.id, 1, target.model, target.session_id)
    logs = tmp_path / "logs"
    logs.mkdir()

    def line(ts, rid, msg):
        return (
            json.dumps(
                {"timestamp": ts, "level": "INFO", "logger": "chatwatch.monitor", "message": msg, "request_id": rid}
            )
            + "\n"
        )

    day = now.strftime("%Y-%m-%d")
    with gzip.open(logs / f"chatwatch-app-host.{day}.001.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(line("2026-01-01T00:00:01.000Z", target.id, "request started"))
        f.write(line("2026-01-01T00:00:01.500Z", records[8].id, "someone else"))
    (logs / "chatwatch-app-host.jsonl").write_text(
        line("2026-01-01T00:00:02.000Z", target.id, f"request failed: provider_error: {XSS}")
        + line("2026-01-01T00:00:03.000Z", records[9].id, "another one"),
        encoding="utf-8",
    )
    return url, records  # the page's runtime (and its store) is closed by `ui_runtimes`


def _run(**state) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, at.exception
    return at


def _ids(at: AppTest) -> list[str]:
    return at.dataframe[0].value["Id"].tolist()


def test_newest_first_and_paginated(env):
    url, records = env
    at = _run()
    assert at.caption[0].value == f"{N} request(s) · page 1 of 3"
    assert _ids(at) == [r.id for r in records[:50]]  # seeded newest first
    pager = at.get("pagination")[0]
    assert pager.num_pages == 3
    pager.set_value(3).run()
    assert not at.exception
    with Store.open(url) as store:
        want = [r.id for r in list_requests(store, Filters(), page=3, page_size=50).records]
    assert _ids(at) == want == [r.id for r in records[100:]]
    assert at.caption[0].value == f"{N} request(s) · page 3 of 3"
    at.selectbox(key="req_page_size").set_value(100).run()  # new filters: back to page 1
    assert len(_ids(at)) == 100 and at.caption[0].value == f"{N} request(s) · page 1 of 2"


@pytest.mark.parametrize(
    "widget, value, keep",
    [
        ("models", ["b"], lambda r: r.model == "b"),
        ("statuses", ["error"], lambda r: r.status == "error"),
        ("error_type", "timeout", lambda r: r.error_type == "timeout"),
        ("session", "other", lambda r: r.session_id == "other"),
        ("text", "PAPAYA", lambda r: "papaya" in (r.response_text or "").lower()),
        ("text", "onerror", lambda r: r.error_message == XSS),
    ],
)
def test_filters(env, widget, value, keep):
    _, records = env
    at = _run()
    getattr(
        at, {"models": "multiselect", "statuses": "multiselect", "error_type": "selectbox"}.get(widget, "text_input")
    )(key=f"req_{widget}").set_value(value).run()
    assert not at.exception
    want = [r.id for r in records if keep(r)][:50]
    assert want and _ids(at) == want


def test_this_session_and_no_match(env):
    _, records = env
    at = _run(session_id=MINE)
    at.toggle(key="req_mine").set_value(True).run()
    assert _ids(at) == [r.id for r in records if r.session_id == MINE]
    at.text_input(key="req_text").set_value("no such text anywhere").run()
    assert [i.value for i in at.info] == ["No requests match these filters."] and not at.dataframe


def test_detail_shows_fields_log_lines_and_feedback_as_text(env):
    _, records = env
    target = records[7]
    at = _run()
    assert XSS in at.dataframe[0].value["Error"].tolist()
    (picker,) = [s for s in at.selectbox if s.label == "Request to inspect"]
    picker.set_value(target.id).run()
    assert not at.exception
    fields = dict(at.dataframe[1].value.itertuples(index=False))
    assert fields["Id"] == target.id and fields["Error message"] == XSS and fields["Status"] == "error"
    assert fields["Started at (UTC)"] == target.to_dict()["started_at"]
    assert fields["Streamed"] == "yes" and fields["Error type"] == "provider error"
    logs = at.dataframe[2].value
    assert logs["Message"].tolist() == ["request started", f"request failed: provider_error: {XSS}"]
    assert logs["File"].tolist() == [
        f"chatwatch-app-host.{datetime.now(UTC):%Y-%m-%d}.001.jsonl.gz",
        "chatwatch-app-host.jsonl",
    ]
    codes = [c.value for c in at.code]
    assert f"[provider error] {XSS}" in codes and any(XSS in c and "request started" in c for c in codes)
    captions = "\n".join(c.value for c in at.caption)
    # The two seeded files, and the log the page's own runtime writes there.
    files = len(list(Path("logs").iterdir()))
    assert files == 3
    assert "👍 on" in captions and "Text is not stored" in captions and f"2 line(s) from {files} file(s)" in captions
    rendered = [e.value for kind in ("markdown", "caption", "html", "info", "warning") for e in at.get(kind)]
    assert not any("<img" in str(v) for v in rendered)


def test_detail_with_captured_text_and_no_logs(env):
    _, records = env
    at = _run()
    (picker,) = [s for s in at.selectbox if s.label == "Request to inspect"]
    picker.set_value(records[12].id).run()
    assert [t.value for t in at.text] == ["What fruit?", "The secret word is Papaya."]
    captions = "\n".join(c.value for c in at.caption)
    assert "No log lines with this id" in captions and "No feedback." in captions
