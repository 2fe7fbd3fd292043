"""`chatwatch ask --json` when the first model is down (#9 item 2): a real subprocess, as a
user runs it, whose first model is a closed port with the bundled SmolLM2 as its fallback.
The answer comes from SmolLM2, the JSON says so, and the attempts it prints are the rows the
store holds (read back here with SQLAlchemy from the SQLite file)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from chatwatch.store.schema import requests
from tests.fixtures.paths import free_port

CHATWATCH = Path(sys.executable).with_name("chatwatch")


def test_ask_json_falls_back_from_a_closed_port_to_smollm2(tmp_path):
    closed = free_port()  # nothing listens there: connection refused
    conf = tmp_path / "chatwatch.toml"
    conf.write_text(
        f"""
[app]
data_dir = "{tmp_path / "data"}"
log_dir = "{tmp_path / "logs"}"

[[models]]
id = "down"
name = "Down server"
kind = "openai"
base_url = "http://127.0.0.1:{closed}/v1"
timeout_s = 5
retries = 0
fallbacks = ["smollm2"]

[[models]]
id = "smollm2"
name = "SmolLM2 135M (local)"
kind = "llama_cpp"
"""
    )
    out = subprocess.run(
        [CHATWATCH, "ask", "--config", conf, "--json", "--max-tokens", "8", "--seed", "1", "Say hi."],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["answered_by"] == "smollm2" and data["text"]
    assert any("answered by SmolLM2 135M (local)" in n for n in data["notices"]), data["notices"]
    attempts = data["attempts"]
    assert len(attempts) == 2
    first = attempts[0]["id"]
    assert [a["request_id"] for a in attempts] == [first, first]
    assert [(a["model"], a["status"], a["error_type"], a["attempt"], a["fallback_from"]) for a in attempts] == [
        ("down", "error", "connection", 1, None),
        ("smollm2", "ok", None, 2, "down"),
    ]
    assert data["id"] == attempts[1]["id"]  # the top-level record is the answering attempt

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'data' / 'chatwatch.db'}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(requests.c.id, requests.c.model, requests.c.attempt, requests.c.fallback_from)
                .where(requests.c.request_id == first)
                .order_by(requests.c.attempt)
            ).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [(a["id"], a["model"], a["attempt"], a["fallback_from"]) for a in attempts]
