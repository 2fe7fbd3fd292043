"""What the dashboard and the Requests page say about attempts (#9 item 4), after real
traffic through the attempt chain: both error rates, "rescued", the per-model retries and
fallbacks served, and the attempt timeline of one request's detail.

The traffic: a request rescued by a retry (503 then 200), one rescued by the fallback (429
until the retries run out, then the real local SmolLM2), one that fails for the user (401,
never retried) and a plain one. The failing model is the stub server (a real server cannot
be made to answer 503/429/401 on demand). Every expected figure is computed here from the
raw rows with SQL and plain Python, not through chatwatch's reports."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from chatwatch import config as cfgmod
from chatwatch.models.contract import GenerationSettings, Message
from chatwatch.runtime import Runtime
from tests.stub_openai_server import Script, StubServer

VIEWS = Path(__file__).resolve().parents[1] / "src" / "chatwatch" / "ui" / "views"
LOCAL_REFUSALS = ("circuit_open", "budget_exceeded", "rate_limited")


@pytest.fixture
def traffic(tmp_path, stub_server: StubServer, monkeypatch):
    path = tmp_path / "chatwatch.toml"
    path.write_text(
        f"""
[app]
language = "en"
data_dir = "{tmp_path / "data"}"
log_dir = "{tmp_path / "logs"}"
[[models]]
id = "remote"
kind = "openai"
base_url = "{stub_server.base_url}"
model = "gpt-4o-mini"
retries = 2
retry_base_s = 0.01
retry_max_s = 0.02
fallbacks = ["smollm2"]
[[models]]
id = "smollm2"
kind = "llama_cpp"
[models.defaults]
max_tokens = 6
seed = 1
"""
    )
    monkeypatch.setenv("CHATWATCH_CONFIG", str(path))
    settings = cfgmod.load(path)
    with Runtime(settings, role="cli") as rt:

        def ask(model: str) -> None:
            reply = rt.chat(model, [Message("user", "Hi")], GenerationSettings(max_tokens=6, seed=1), session_id="t")
            try:
                for _ in reply:
                    pass
            except Exception:
                pass  # recorded

        stub_server.queue = [Script(status=503)]
        ask("remote")  # rescued by its retry
        stub_server.queue = [Script(status=429, headers=(("Retry-After", "0"),))] * 3
        ask("remote")  # rescued by the fallback
        stub_server.queue = [Script(status=401, error_message="bad key")]
        ask("remote")  # a user-facing failure: 401 is never retried
        ask("remote")  # plain
        rt.monitor.drain()
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'data' / 'chatwatch.db'}", poolclass=sa.NullPool)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT id, request_id, model, attempt, status, error_type, fallback_from FROM requests "
                "ORDER BY started_us, attempt"
            )
        ).all()
    engine.dispose()
    return rows


def run(page: str, **state) -> AppTest:
    at = AppTest.from_file(str(VIEWS / page), default_timeout=60)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, at.exception
    return at


def pct(shown: str) -> float:
    """'62.50 %' -> 0.625."""
    return float(shown.replace("%", "").strip()) / 100


def test_the_dashboard_counts_attempts_and_requests_apart(traffic):
    rows = traffic
    assert len(rows) == 2 + 4 + 1 + 1  # the traffic did what the fixture says
    by_request = defaultdict(list)
    for r in rows:
        by_request[r.request_id].append(r)
    attempts = [r for r in rows if r.error_type not in LOCAL_REFUSALS]
    failed_attempts = [r for r in attempts if r.status == "error"]
    last = [max(chain, key=lambda r: r.attempt) for chain in by_request.values()]
    failed_requests = [r for r in last if r.status != "ok"]
    rescued = [r for r in last if r.status == "ok" and len(by_request[r.request_id]) > 1]
    assert (len(failed_attempts), len(attempts), len(failed_requests), len(rescued)) == (5, 8, 1, 2)

    at = run("dashboard.py")
    metrics = {m.label: m for m in at.metric}
    assert metrics["Requests"].value == str(len(by_request))
    assert pct(metrics["Error rate"].value) == pytest.approx(len(failed_attempts) / len(attempts), abs=5e-5)
    assert pct(metrics["User-facing error rate"].value) == pytest.approx(
        len(failed_requests) / len(by_request), abs=5e-5
    )
    assert metrics["Rescued"].value == str(len(rescued))

    table = at.dataframe[0].value.set_index("Model")
    for model in ("remote", "smollm2"):
        mine = [r for r in rows if r.model == model]
        assert table.loc[model, "Requests"] == len(mine)
        assert table.loc[model, "Retries"] == sum(1 for r in mine if r.attempt > 1)
        assert table.loc[model, "Fallbacks served"] == sum(1 for r in mine if r.status == "ok" and r.fallback_from)
    assert table.loc["smollm2", "Fallbacks served"] == 1


def test_a_request_detail_shows_its_attempt_timeline(traffic):
    rows = traffic
    chain = [r for r in rows if r.request_id == rows[2].request_id]  # the request rescued by the fallback
    assert [r.model for r in chain] == ["remote", "remote", "remote", "smollm2"]
    at = run("requests.py")
    (picker,) = [s for s in at.selectbox if s.label == "Request to inspect"]
    picker.set_value(chain[-1].id).run()
    assert not at.exception, at.exception
    (timeline,) = [d.value for d in at.dataframe if "Fallback from" in d.value.columns]
    assert timeline["Attempt"].tolist() == [r.attempt for r in chain]
    assert timeline["Model"].tolist() == [r.model for r in chain]
    assert timeline["Fallback from"].fillna("").tolist() == ["", "", "", "remote"]
    assert timeline["Retry reason"].fillna("").tolist()[1:] == ["rate limit"] * 3
