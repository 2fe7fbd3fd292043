"""What every page needs: settings, the process-wide runtime, the session id, the language.

Whose `Runtimes` the pages use: `chatwatch run` builds the process's `Runtimes` before the
Streamlit server starts (so /metrics serves and the app runtime exists before any browser
connects) and runs the server inside `runtimes.serve()`; every page then uses that one
(`Runtimes.served()`). A script started another way (`streamlit run`, AppTest) has none
served and builds its own once, in `st.cache_resource`.
"""

from __future__ import annotations

import functools
import os
import uuid
from pathlib import Path

import streamlit as st

from chatwatch import config as config_mod
from chatwatch.i18n import LANGUAGES, t
from chatwatch.runtime import Runtime, Runtimes


def _config_key() -> tuple:
    """Which config file applies now, and its version: an edited file is read again."""
    explicit = os.environ.get(config_mod.ENV_VAR)
    path = Path(explicit) if explicit else Path(config_mod.DEFAULT_FILE)
    try:
        return str(path.resolve()), path.stat().st_mtime_ns
    except OSError:
        return str(path.resolve()), None


@functools.lru_cache(maxsize=8)
def _load(key: tuple) -> config_mod.Settings:
    return config_mod.load()


@st.cache_resource(show_spinner=False)
def _own_runtimes() -> Runtimes:
    try:
        prometheus = _load(_config_key()).prometheus
    except config_mod.ConfigError:
        prometheus = None  # the page shows the config error; metrics start with a fixed config on restart
    return Runtimes(prometheus)


def runtimes() -> Runtimes:
    """The server process's runtimes: one for the current config, shared by every session
    (the one `chatwatch run` serves, else one built once for this process). A changed config
    builds a new runtime and closes the old one (unchanged models kept, counters kept)."""
    return Runtimes.served() or _own_runtimes()


def settings() -> config_mod.Settings:
    """The validated settings, parsed once per version of the file (not on every rerun and
    every fragment tick)."""
    try:
        return _load(_config_key())
    except config_mod.ConfigError as exc:
        st.error(t("config.error", lang(), message=str(exc)))
        st.stop()
        raise  # unreachable: st.stop ends the run


def runtime() -> Runtime:
    """The runtime for the current config (see chatwatch.runtime): shared by every session,
    built once per config version, never per rerun."""
    return runtimes().get(settings(), role="app")  # a broken config stops the page with its message


def session_id() -> str:
    """A stable id per browser session (public API only: a uuid4 kept in session state)."""
    if "session_id" not in st.session_state:
        st.session_state.session_id = str(uuid.uuid4())
    return st.session_state.session_id


def lang() -> str:
    if "lang" not in st.session_state:
        try:
            st.session_state.lang = _load(_config_key()).app.language
        except config_mod.ConfigError:
            st.session_state.lang = "es"
    return st.session_state.lang


def language_picker() -> None:
    """Bound to session_state["lang"], so the page below already speaks the new language.
    The label is in both languages: it must be findable by someone who reads only one, and a
    widget whose label changes is a new widget to Streamlit (it would lose its value)."""
    lang()
    st.sidebar.selectbox(
        "Idioma / Language",
        list(LANGUAGES),
        format_func=lambda c: LANGUAGES[c],
        key="lang",
    )
