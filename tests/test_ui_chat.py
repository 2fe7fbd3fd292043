"""The chat page driven by Streamlit's AppTest, with the real local model and store."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from chatwatch.reports.queries import Filters, list_requests
from chatwatch.store.records import Store

APP = str(Path(__file__).resolve().parents[1] / "src" / "chatwatch" / "ui" / "app.py")


@pytest.fixture
def config(tmp_path, port, monkeypatch):
    # A second model on a loopback port where nothing listens: the "unreachable" case.
    path = tmp_path / "chatwatch.toml"
    path.write_text(
        f"""
[app]
language = "en"
[[models]]
id = "smollm2"
kind = "llama_cpp"
[models.defaults]
temperature = 0.2
max_tokens = 24
seed = 7
[[models]]
id = "down"
name = "Nothing here"
kind = "openai"
base_url = "http://127.0.0.1:{port}/v1"
model = "whatever"
timeout_s = 5
"""
    )
    monkeypatch.setenv("CHATWATCH_CONFIG", str(path))
    return path


def app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=120).run()


def test_send_a_message_and_see_the_streamed_reply_recorded(config):
    at = app()
    assert not at.exception
    at.chat_input[0].set_value("Say hello.").run()
    assert not at.exception
    messages = at.chat_message
    assert [m.name for m in messages] == ["user", "assistant"]
    reply = messages[1].markdown[0].value
    assert reply.strip()
    assert "smollm2" in messages[1].caption[-1].value
    store = Store.open(f"sqlite:///{config.parent / 'data' / 'chatwatch.db'}")
    records = list_requests(store, Filters()).records
    assert len(records) == 1 and records[0].status == "ok" and records[0].model == "smollm2"
    assert records[0].output_tokens >= 1 and records[0].session_id not in ("", "cli")
    # Multi-turn: the second request carries the first exchange.
    at.chat_input[0].set_value("And goodbye?").run()
    assert [m.name for m in at.chat_message] == ["user", "assistant", "user", "assistant"]
    second = list_requests(store, Filters()).records[0]
    assert second.prompt_chars > len("And goodbye?") + len(reply)


def test_unreachable_model_shows_a_clear_error_and_the_app_goes_on(config):
    at = app()
    at.sidebar.selectbox(key="model_id").select("down").run()
    at.chat_input[0].set_value("Hello?").run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("connection" in e and "'down'" in e and "127.0.0.1" in e for e in errors), errors
    # The chat keeps working with another model.
    at.sidebar.selectbox(key="model_id").select("smollm2").run()
    at.chat_input[0].set_value("Say hi.").run()
    assert not at.exception
    assert at.chat_message[-1].markdown[0].value.strip()


def test_settings_start_from_the_model_defaults(config):
    at = app()
    assert at.sidebar.slider(key="temperature:smollm2").value == pytest.approx(0.2)
    assert at.sidebar.number_input(key="max_tokens:smollm2").value == 24
    assert at.sidebar.text_input(key="seed:smollm2").value == "7"


def test_switch_language(config):
    at = app()
    assert at.chat_input[0].placeholder == "Type your message…"
    at.sidebar.selectbox(key="lang").select("es").run()
    assert at.chat_input[0].placeholder == "Escribe tu mensaje…"


def test_new_conversation_clears_the_history(config):
    at = app()
    at.chat_input[0].set_value("Hi").run()
    assert len(at.chat_message) == 2
    next(b for b in at.sidebar.button if b.label in ("New conversation", "Nueva conversación")).click().run()
    assert len(at.chat_message) == 0


def test_thumbs_feedback_is_stored_against_the_request(config):
    at = app()
    at.chat_input[0].set_value("Say yes.").run()
    store = Store.open(f"sqlite:///{config.parent / 'data' / 'chatwatch.db'}")
    request_id = list_requests(store, Filters()).records[0].id
    assert len(at.feedback) == 1
    at.feedback[0].set_value(1).run()  # thumbs up
    assert not at.exception
    import sqlalchemy as sa

    from chatwatch.store.schema import feedback as fb

    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(fb.c.request_id, fb.c.score, fb.c.model)).all()
    assert rows == [(request_id, 1, "smollm2")]


def test_a_vote_stays_selected_after_visiting_another_page(config):
    at = app()
    at.chat_input[0].set_value("Say yes.").run()
    at.feedback[0].set_value(0).run()  # thumbs down
    assert not at.exception and at.feedback[0].value == 0
    at.switch_page("views/dashboard.py").run()
    assert not at.exception and not at.feedback
    at.switch_page("views/chat.py").run()
    assert not at.exception
    assert [f.value for f in at.feedback] == [0]
    # And the store still holds that one vote (coming back did not vote again or clear it).
    store = Store.open(f"sqlite:///{config.parent / 'data' / 'chatwatch.db'}")
    import sqlalchemy as sa

    from chatwatch.store.schema import feedback as fb

    with store.engine.connect() as conn:
        assert conn.execute(sa.select(fb.c.score)).scalars().all() == [0]
    store.close()


@pytest.fixture
def short_config(tmp_path, monkeypatch):
    path = tmp_path / "chatwatch.toml"
    path.write_text(
        """
[app]
language = "es"
[[models]]
id = "smollm2"
kind = "llama_cpp"
[models.defaults]
max_tokens = 5
seed = 3
"""
    )
    monkeypatch.setenv("CHATWATCH_CONFIG", str(path))
    return path


def test_a_reply_cut_by_max_tokens_says_so(short_config):
    at = app()
    at.chat_input[0].set_value("Write a long story about a lighthouse keeper and the sea.").run()
    assert not at.exception
    store = Store.open(f"sqlite:///{short_config.parent / 'data' / 'chatwatch.db'}")
    (record,) = list_requests(store, Filters()).records
    store.close()
    assert record.finish_reason == "length" and record.output_tokens == 5
    reply = at.chat_message[1]
    captions = [c.value for c in reply.caption]
    assert "Respuesta cortada: se alcanzó el máximo de tokens (5)." in captions
    assert captions.index("Respuesta cortada: se alcanzó el máximo de tokens (5).") < len(captions) - 1  # above meta
    # A reply that ends on its own says nothing of the kind.
    at.sidebar.number_input(key="max_tokens:smollm2").set_value(200).run()
    at.chat_input[0].set_value("Say hi.").run()
    store = Store.open(f"sqlite:///{short_config.parent / 'data' / 'chatwatch.db'}")
    latest = list_requests(store, Filters()).records[0]
    store.close()
    last = [c.value for c in at.chat_message[-1].caption]
    assert latest.finish_reason == "stop", latest.finish_reason
    assert not any(c.startswith("Respuesta cortada") for c in last)
