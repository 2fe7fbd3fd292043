"""What every page needs: settings, the process-wide runtime, the session id, the language."""
from __future__ import annotations

import uuid

import streamlit as st

from chatwatch import config as config_mod
from chatwatch.i18n import LANGUAGES, t
from chatwatch.runtime import Runtime, get_runtime


def settings() -> config_mod.Settings:
    try:
        return config_mod.load()
    except config_mod.ConfigError as exc:
        st.error(t("config.error", lang(), message=str(exc)))
        st.stop()
        raise  # unreachable: st.stop ends the run


def runtime() -> Runtime:
    # Process-wide (see chatwatch.runtime): shared by every session, built once.
    return get_runtime(settings(), role="app")


def session_id() -> str:
    """A stable id per browser session (public API only: a uuid4 kept in session state)."""
    if "session_id" not in st.session_state:
        st.session_state.session_id = str(uuid.uuid4())
    return st.session_state.session_id


def lang() -> str:
    if "lang" not in st.session_state:
        try:
            st.session_state.lang = config_mod.load().app.language
        except config_mod.ConfigError:
            st.session_state.lang = "es"
    return st.session_state.lang


def language_picker() -> None:
    """Bound to session_state["lang"], so the page below already speaks the new language.
    The label is in both languages: it must be findable by someone who reads only one, and a
    widget whose label changes is a new widget to Streamlit (it would lose its value)."""
    lang()
    st.sidebar.selectbox(
        "Idioma / Language", list(LANGUAGES), format_func=lambda c: LANGUAGES[c], key="lang",
    )
