"""Streamlit entry point: `chatwatch run` (or `streamlit run` on this file).

The navigation is also the access control ([auth], chatwatch/ui/auth.py): `st.navigation`
runs only the pages it is given, so a signed-out session is given the sign-in page in place
of each protected page, hidden from the menu but at the protected page's own URL path.
A direct /dashboard therefore shows the sign-in, and after it the dashboard itself."""

from pathlib import Path

import streamlit as st

from chatwatch.i18n import t
from chatwatch.ui import auth
from chatwatch.ui.state import lang, language_picker, runtime, session_id, settings

# Not "pages/": a folder of that name beside the entry script turns on Streamlit's older
# multipage mode, which drops the entry script's widget state (the language picker) on rerun.
PAGES = Path(__file__).parent / "views"

st.set_page_config(page_title="chatwatch", page_icon="💬", layout="wide")
language_picker()
_l = lang()
_auth = settings().auth  # a broken config stops here with its message: never open by default
_sid = session_id()
_open = auth.signed_in(_auth)


def _sign_in() -> None:
    runtime()  # its logging setup: sign-ins and refusals reach the log files before any chat
    auth.sign_in_page(_auth, _l, _sid)


def _page(file: str, title_key: str, icon: str, url_path: str, *, default: bool = False) -> st.Page:
    """The page, or for a signed-out session the sign-in in its place (same URL, not in the menu)."""
    if _open:
        return st.Page(PAGES / file, title=t(title_key, _l), icon=icon, url_path=url_path, default=default)
    return st.Page(
        _sign_in, title=t("nav.signin", _l), icon="🔒", url_path=url_path, default=default, visibility="hidden"
    )


chat_open = _open or not _auth.protect_chat
pages = [
    st.Page(PAGES / "chat.py", title=t("nav.chat", _l), icon="💬", default=chat_open, url_path="chat")
    if chat_open
    else _page("chat.py", "nav.chat", "💬", "chat"),
    # Monitoring and exports: behind the sign-in whenever [auth] mode is not "none".
    _page("dashboard.py", "nav.dashboard", "📊", "dashboard"),
    _page("requests.py", "nav.requests", "🔎", "requests"),
    _page("alerts.py", "nav.alerts", "🚨", "alerts"),
    _page("compare.py", "nav.compare", "⚖️", "compare"),
    _page("arena.py", "nav.arena", "🥊", "arena"),
    _page("leaderboard.py", "nav.leaderboard", "🏆", "leaderboard"),
]
if _auth.mode != "none":
    pages.append(
        st.Page(
            _sign_in,
            title=t("nav.signin", _l),
            icon="🔒",
            url_path="signin",
            default=not chat_open,
            visibility="hidden" if _open else "visible",
        )
    )
    auth.note_oidc_sign_in(_auth, _sid)
    auth.sign_out_button(_auth, _l, _sid)
st.navigation(pages).run()
