from __future__ import annotations

from pathlib import Path

import pytest

from chatwatch.config import ConfigError, load, parse

EXAMPLE = Path(__file__).resolve().parents[1] / "chatwatch.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "chatwatch.toml"
    path.write_text(text)
    return path


def test_no_file_means_the_bundled_model_alone(tmp_path):
    settings = load()
    assert [m.id for m in settings.models] == ["smollm2"]
    assert settings.models[0].kind == "llama_cpp" and settings.models[0].path is None
    assert settings.store_url.endswith("data/chatwatch.db")


def test_the_example_config_is_valid():
    settings = load(EXAMPLE)
    assert [m.id for m in settings.models] == ["smollm2", "ollama-llama3", "gpt-4o-mini"]
    assert settings.model("gpt-4o-mini").api_key_env == "OPENAI_API_KEY"


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    path = write(
        conf_dir, '[app]\ndata_dir = "d"\nlog_dir = "l"\n[[models]]\nid = "m"\nkind = "llama_cpp"\npath = "w/m.gguf"\n'
    )
    s = load(path)
    assert s.app.data_dir == conf_dir / "d" and s.app.log_dir == conf_dir / "l"
    assert s.models[0].path == conf_dir / "w" / "m.gguf"
    assert s.store_url == f"sqlite:///{conf_dir / 'd' / 'chatwatch.db'}"


def test_env_var_names_the_file(tmp_path, monkeypatch):
    path = write(tmp_path, '[app]\nlanguage = "en"\n')
    monkeypatch.setenv("CHATWATCH_CONFIG", str(path))
    assert load().app.language == "en"


@pytest.mark.parametrize(
    "text, expected",
    [
        ('[app]\nlanguage = "fr"\n', "app.language = 'fr'"),
        ('[[models]]\nid = "x"\nkind = "openai"\n', "models[0] (id 'x'): an 'openai' model needs base_url"),
        ('[[models]]\nid = "x"\nkind = "openai"\nbase_url = "localhost:1"\n', "base_url must start with http"),
        (
            '[[models]]\nid = "x"\nkind = "openai"\nbase_url = "http://a"\ntimeout_s = "soon"\n',
            "models[0] (id 'x').timeout_s = 'soon'",
        ),
        ('[[models]]\nid = "x"\nkind = "grpc"\n', "models[0] (id 'x').kind = 'grpc'"),
        (
            '[[models]]\nid = "a"\nkind = "llama_cpp"\n[[models]]\nid = "a"\nkind = "llama_cpp"\n',
            "two models have id 'a'",
        ),
        ('[app]\ncolour = "blue"\n', "app.colour: unknown key"),
        ('[[models]]\nkind = "llama_cpp"\n', "models[0].id: required key is missing"),
        ('[store]\nurl = "mysql://x"\n', "only sqlite:// and postgresql://"),
        (
            '[[models]]\nid = "x"\nkind = "llama_cpp"\n[models.defaults]\ntemperature = 9\n',
            "models[0] (id 'x').defaults.temperature = 9",
        ),
    ],
)
def test_errors_name_the_key_and_value(tmp_path, text, expected):
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, text))
    assert expected in str(err.value)
    assert "chatwatch.toml" in str(err.value)


def test_broken_toml_and_missing_file_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(write(tmp_path, "[app\n"))
    with pytest.raises(ConfigError, match="config file not found"):
        load(tmp_path / "nope.toml")


def test_unknown_model_id_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown model 'gpt-9'; configured: smollm2"):
        parse({}).model("gpt-9")
