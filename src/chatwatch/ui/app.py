"""Streamlit entry point: `chatwatch run` (or `streamlit run` on this file)."""

from pathlib import Path

import streamlit as st

from chatwatch.i18n import t
from chatwatch.ui.state import lang, language_picker

# Not "pages/": a folder of that name beside the entry script turns on Streamlit's older
# multipage mode, which drops the entry script's widget state (the language picker) on rerun.
PAGES = Path(__file__).parent / "views"

st.set_page_config(page_title="chatwatch", page_icon="💬", layout="wide")
language_picker()
_l = lang()
navigation = st.navigation(
    [
        st.Page(PAGES / "chat.py", title=t("nav.chat", _l), icon="💬", default=True, url_path="chat"),
        st.Page(PAGES / "dashboard.py", title=t("nav.dashboard", _l), icon="📊", url_path="dashboard"),
        st.Page(PAGES / "requests.py", title=t("nav.requests", _l), icon="🔎", url_path="requests"),
        st.Page(PAGES / "alerts.py", title=t("nav.alerts", _l), icon="🚨", url_path="alerts"),
    ]
)
navigation.run()
