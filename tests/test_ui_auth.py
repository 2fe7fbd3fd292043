"""The app's sign-in gate under Streamlit's AppTest (the real entry script, ui/app.py, over a
seeded SQLite store): signed out, no page shows a metric or a download and the protected
pages are not registered at all; a wrong password is refused with a message; the right one
opens the dashboard; sign-out closes it again; the limit locks even the right password out;
a missing hash or a missing OIDC configuration says what is missing and stays closed.

A real OIDC provider is not available here (no network, no identity provider to run
locally), so OIDC is tested up to its configuration: the messages for missing secrets and
the sign-in button once they are complete."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import argon2
import pytest
from streamlit.testing.v1 import AppTest

from chatwatch.store.records import Store
from chatwatch.ui import auth
from tests.fixtures.db import make_record

APP = str(Path(__file__).resolve().parents[1] / "src" / "chatwatch" / "ui" / "app.py")
ENV = "TEST_UI_AUTH_HASH"
PASSWORD = "open sesame 42"
MAX_FAILURES, LOCKOUT_S = 3, 120.0
# Cheap argon2 parameters: these tests are about the gate, not the hash's cost.
HASH = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)


def _config(tmp_path: Path, auth_toml: str) -> Path:
    config = tmp_path / "chatwatch.toml"
    config.write_text(f"""
[app]
language = "en"
data_dir = "data"
log_dir = "logs"
[auth]
{auth_toml}
max_failures = {MAX_FAILURES}
lockout_s = {LOCKOUT_S}
""")
    return config


@pytest.fixture
def seeded(tmp_path, monkeypatch):
    """A password-mode config over a store holding three requests."""
    monkeypatch.setenv("CHATWATCH_CONFIG", str(_config(tmp_path, f'mode = "password"\npassword_hash_env = "{ENV}"')))
    monkeypatch.setenv(ENV, HASH)
    now = datetime.now(UTC)
    records = [make_record(started_at=now - timedelta(minutes=5 + i)) for i in range(3)]
    with Store.open(f"sqlite:///{tmp_path / 'data' / 'chatwatch.db'}") as store:
        store.write_many(records)
    yield records
    # The per-address counts are the server process's (st.cache_resource): start each test afresh.
    auth.address_throttle(MAX_FAILURES, LOCKOUT_S).clear()


def _app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=60)


def _texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "title", "error", "warning", "success") for e in at.get(kind)]
    return "\n".join(str(p) for p in parts)


def _assert_nothing_protected(at: AppTest, records) -> None:
    assert not at.exception, at.exception
    assert len(at.metric) == 0
    assert len(at.get("download_button")) == 0
    assert len(at.dataframe) == 0
    shown = _texts(at)
    for r in records:
        assert r.id not in shown
    for page in ("views/dashboard.py", "views/requests.py", "views/alerts.py"):
        with pytest.raises(ValueError, match="navigation page"):
            at.switch_page(page)  # not registered for this session: no URL leads there


def _sign_in(at: AppTest, password: str) -> AppTest:
    at.text_input(key="auth_password").input(password)
    next(b for b in at.button if b.label == "Sign in").click()
    return at.run()


def test_signed_out_sees_the_chat_and_the_sign_in_only(seeded):
    at = _app().run()
    assert len(at.chat_input) == 1  # protect_chat = false: the chat stays open
    _assert_nothing_protected(at, seeded)
    at.switch_page("views/chat.py")  # the chat is a registered page (this does not raise)


@pytest.fixture
def auth_log(caplog):
    """The chatwatch.auth records: chatwatch's logging stops propagation at "chatwatch", so
    pytest's handler is attached to the logger itself."""
    logger = logging.getLogger("chatwatch.auth")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


def test_wrong_then_right_password_then_sign_out(seeded, auth_log):
    caplog = auth_log
    at = _app().run()
    assert not [w for w in at.text_input if w.key == "auth_password"]  # the chat page: the form is on /signin
    _goto_sign_in(at)
    assert at.text_input(key="auth_password").proto.type == at.text_input(key="auth_password").proto.PASSWORD

    _sign_in(at, "not the password")
    assert "Wrong password." in [e.value for e in at.error]
    _assert_nothing_protected(at, seeded)

    _sign_in(at, PASSWORD)
    assert not at.exception, at.exception
    assert "Signed in" in _texts(at)
    at.switch_page("views/dashboard.py").run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Requests"] == str(len(seeded))  # the three seeded rows, nothing else
    assert len(at.get("download_button")) >= 1  # the exports are there once signed in
    at.switch_page("views/requests.py").run()
    assert not at.exception, at.exception

    at.sidebar.button(key="auth_signout").click().run()
    assert not at.exception, at.exception
    _assert_nothing_protected(at, seeded)  # the requests page turned back into the sign-in
    assert at.text_input(key="auth_password")

    messages = [r.getMessage() for r in caplog.records if r.name == "chatwatch.auth"]
    assert any(m.startswith("sign-in failed") for m in messages)
    assert "sign-in ok" in messages and "sign-out" in messages
    for record in caplog.records:
        assert PASSWORD not in record.getMessage() and "not the password" not in record.getMessage()


def _goto_sign_in(at: AppTest) -> None:
    """Open /signin as the browser does, by its URL path. The page is a function, and
    AppTest's public switch_page names pages by file only, so this reads the registration
    AppTest keeps of the last run (test-side state of this AppTest, nothing process-wide)."""
    signin = next(h for h, info in at._registered_pages.items() if info.get("url_pathname") == "signin")
    at._page_hash = signin
    at.run()


def test_lockout_refuses_even_the_right_password(seeded):
    at = _app().run()
    _goto_sign_in(at)
    for i in range(MAX_FAILURES - 1):
        _sign_in(at, f"guess {i}")
        assert [e.value for e in at.error] == ["Wrong password."]
    _sign_in(at, "last guess")
    assert any("Too many failed sign-ins" in e.value for e in at.error)
    _sign_in(at, PASSWORD)
    assert any("Too many failed sign-ins" in e.value for e in at.error)
    _assert_nothing_protected(at, seeded)


def test_protect_chat_hides_the_chat_too(tmp_path, monkeypatch):
    cfg = _config(tmp_path, f'mode = "password"\nprotect_chat = true\npassword_hash_env = "{ENV}"')
    monkeypatch.setenv("CHATWATCH_CONFIG", str(cfg))
    monkeypatch.setenv(ENV, HASH)
    at = _app().run()
    assert len(at.chat_input) == 0 and at.text_input(key="auth_password")  # the default page is the sign-in
    assert "The chat, the dashboard" in _texts(at)
    with pytest.raises(ValueError, match="navigation page"):
        at.switch_page("views/chat.py")
    _sign_in(at, PASSWORD)
    at.switch_page("views/chat.py").run()
    assert len(at.chat_input) == 1


def test_hash_from_secrets_and_missing_hash_named(tmp_path, monkeypatch, seeded):
    monkeypatch.delenv(ENV)
    at = _app().run()
    _goto_sign_in(at)
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and ENV in errors[0] and "secrets.toml" in errors[0] and "hash-password" in errors[0]
    assert not [w for w in at.text_input if w.key == "auth_password"]  # no form: nothing to try against
    _assert_nothing_protected(at, seeded)

    monkeypatch.setenv(ENV, "plain-text-password")  # not a hash: refused, never compared as text
    at = _app().run()
    _goto_sign_in(at)
    assert (
        ENV in at.error[0].value and "not valid" in at.error[0].value and "plain-text-password" not in at.error[0].value
    )
    _assert_nothing_protected(at, seeded)

    monkeypatch.delenv(ENV)
    at = _app()
    at.secrets = {ENV: HASH}  # Streamlit secrets, as .streamlit/secrets.toml would hold it
    at.run()
    _goto_sign_in(at)
    _sign_in(at, PASSWORD)
    at.switch_page("views/dashboard.py").run()
    assert {m.label: m.value for m in at.metric}["Requests"] == str(len(seeded))


def test_oidc_without_secrets_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("CHATWATCH_CONFIG", str(_config(tmp_path, 'mode = "oidc"\noidc_provider = "google"')))
    at = _app().run()
    _goto_sign_in(at)
    (error,) = at.error
    assert "[auth]" in error.value and "secrets.toml" in error.value and "[auth.google]" in error.value
    assert len(at.button) == 0 or all("Sign in with" not in b.label for b in at.button)
    _assert_nothing_protected(at, [])

    at = _app()
    at.secrets = {"auth": {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32}}
    at.run()
    _goto_sign_in(at)
    assert "[auth.google]" in at.error[0].value
    _assert_nothing_protected(at, [])

    at = _app()
    at.secrets = {
        "auth": {
            "redirect_uri": "http://localhost:8501/oauth2callback",
            "cookie_secret": "x" * 32,
            "google": {"client_id": "id", "client_secret": "s"},
        }
    }
    at.run()
    _goto_sign_in(at)
    assert (
        "server_metadata_url" in at.error[0].value
        and "client_id" not in at.error[0].value.split("missing")[1].split("(")[0]
    )

    at = _app()
    at.secrets = {
        "auth": {
            "redirect_uri": "http://localhost:8501/oauth2callback",
            "cookie_secret": "x" * 32,
            "google": {
                "client_id": "id",
                "client_secret": "s",
                "server_metadata_url": "https://idp.invalid/.well-known",
            },
        }
    }
    at.run()
    _goto_sign_in(at)
    assert len(at.error) == 0
    assert [b.label for b in at.button if b.label.startswith("Sign in with")] == ["Sign in with google"]
    _assert_nothing_protected(at, [])  # configured, but nobody has signed in
