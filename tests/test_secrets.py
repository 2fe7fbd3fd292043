"""API keys: read from the environment or Streamlit's secrets files, and scrubbed."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from chatwatch import privacy as secrets
from chatwatch.privacy import MASK, get_api_key, known_secrets, register_secret, scrub


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> Path:
    """A fake home folder, so the developer's ~/.streamlit/secrets.toml is never read."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def write_secrets(folder: Path, text: str) -> None:
    (folder / ".streamlit").mkdir(parents=True, exist_ok=True)
    (folder / ".streamlit" / "secrets.toml").write_text(text)


def test_key_from_environment_wins(home, tmp_path, monkeypatch):
    write_secrets(tmp_path, 'CW_K1 = "from-the-project-file"\n')
    monkeypatch.setenv("CW_K1", "  from-the-environment  ")
    assert get_api_key("CW_K1") == "from-the-environment"
    assert "from-the-environment" in known_secrets()


def test_key_from_project_then_home_secrets_file(home, tmp_path, monkeypatch):
    monkeypatch.delenv("CW_K2", raising=False)
    write_secrets(home, 'CW_K2 = "from-the-home-file"\nOTHER = "x"\n')
    assert get_api_key("CW_K2") == "from-the-home-file"
    write_secrets(tmp_path, 'CW_K2 = "from-the-project-file"\n')  # tmp_path is the cwd
    assert get_api_key("CW_K2") == "from-the-project-file"
    assert {"from-the-home-file", "from-the-project-file"} <= known_secrets()


def test_missing_key_is_none(home, monkeypatch):
    monkeypatch.delenv("CW_K3", raising=False)
    assert get_api_key("CW_K3") is None
    assert get_api_key(None) is None
    monkeypatch.setenv("CW_K3", "   ")
    assert get_api_key("CW_K3") is None


def test_a_broken_secrets_file_is_skipped_without_showing_it(home, tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("CW_K4", raising=False)
    write_secrets(tmp_path, 'CW_K4 = "half-written-value-123\n')
    write_secrets(home, 'CW_K4 = "from-the-home-file-4"\n')
    with caplog.at_level(logging.WARNING, logger=secrets.__name__):
        assert get_api_key("CW_K4") == "from-the-home-file-4"
    assert "secrets.toml" in caplog.text and "half-written-value-123" not in caplog.text


def test_scrub_known_secrets_and_key_shapes():
    register_secret("cw-registered-value-77")
    text = (
        "key cw-registered-value-77 rejected; Authorization: Bearer abcdefgh12345678; "
        "try sk-proj-AbC123xyz_456 instead; {'Authorization': 'Bearer cw-registered-value-77'}"
    )
    out = scrub(text)
    assert "cw-registered-value-77" not in out and "abcdefgh12345678" not in out and "sk-proj" not in out
    assert out.count(MASK) == 4
    assert "Bearer [secret]]" not in out  # a masked value is not masked again


def test_scrub_leaves_ordinary_text_alone():
    register_secret("abc")  # too short to be a key: scrubbing it would mangle prose
    assert "abc" not in known_secrets()
    text = "the bearer of good news asked: is sk- a prefix? Bearer short"
    assert scrub(text) == text
    assert scrub("") == ""


def test_longer_secret_masked_whole():
    register_secret("token-1234")
    register_secret("token-1234-and-more")
    assert scrub("x token-1234-and-more y") == f"x {MASK} y"


def test_scrub_masks_every_key_shape_not_only_openai_ones():
    """Error messages that are stored and shown get the same protection as log lines."""
    text = secrets.scrub("upstream said: bad credentials AKIAABCDEFGHIJKLMNOP and ghp_" + "a" * 30)
    assert "AKIA" not in text and "ghp_" not in text and text.count("[secret]") == 2
