"""Alerts inside the app, for any page: a banner of active alerts and a toast for each
new alert event (fired, still firing, resolved) since the session last looked. A rule
compared with normal shows its baseline and band beside its value, and what it compares
with and how it scores ("previous 6 windows, by z-score").

    render_alert_banner(runtime(), lang())
    toast_new_alerts(runtime(), lang())
    render_live_alerts(lang(), every_s=5)              # both, refreshed in a fragment

Reading alerts must never break the page it sits on: failures are logged and skipped.
"""

from __future__ import annotations

import logging

import streamlit as st

from chatwatch.alerts.model import AlertEvent
from chatwatch.alerts.text import basis_text, firing_value, fmt_threshold, fmt_time, kind_label, normal_text, summary
from chatwatch.i18n import t
from chatwatch.ui.state import runtime

log = logging.getLogger("chatwatch.alerts")

SEEN_KEY = "_alerts_seen_event_id"
MAX_TOASTS = 3
_ICONS = {"firing": "🚨", "renotify": "🔁", "resolved": "✅"}


def render_alert_banner(runtime, lang: str) -> None:
    """An error (any critical) or warning box listing the firing alerts; nothing if none."""
    try:
        active = runtime.alerts.active()
    except Exception:
        log.exception("cannot read active alerts for the banner")
        return
    if not active:
        return
    lines = []
    for a in active:
        kind = a.rule.kind
        scope = a.rule.model or t("alerts.scope.all", lang) + (f" → {a.state.model}" if a.state.model else "")
        latest = runtime.alerts.latest(a.rule.name)
        value = firing_value(a.rule, a.state.value, latest, lang)
        normal = normal_text(a.rule, latest, lang)  # rules compared with normal say what normal is
        basis = basis_text(a.rule, lang)  # ... and which normal, scored how
        if basis:
            normal = f"{normal} ({basis})" if normal else basis
        lines.append(
            "- "
            + t(
                "alerts.banner.line",
                lang,
                rule=a.rule.name,
                what=kind_label(kind, lang),
                value=f"{value}; {normal}" if normal else value,
                threshold=fmt_threshold(kind, a.rule.threshold, lang, a.rule.score),
                scope=scope,
                since=fmt_time(a.state.firing_since_us),
            )
        )
    text = (
        f"**{t('alerts.banner.title', lang, n=len(active))}**\n\n"
        + "\n".join(lines)
        + f"\n\n{t('alerts.banner.more', lang)}"
    )
    critical = any(a.rule.severity == "critical" for a in active)
    (st.error if critical else st.warning)(text, icon="🚨")


def toast_new_alerts(runtime, lang: str) -> list[AlertEvent]:
    """Toast the alert events stored since this session last looked (from any process).
    The first call in a session only remembers where the history stands: alerts already
    active show in the banner. Returns the new events."""
    try:
        service = runtime.alerts
        if SEEN_KEY not in st.session_state:
            st.session_state[SEEN_KEY] = service.last_event_id()
            return []
        events = service.events_after(st.session_state[SEEN_KEY], limit=100)
    except Exception:
        log.exception("cannot read new alert events for toasts")
        return []
    if not events:
        return []
    st.session_state[SEEN_KEY] = events[-1].id
    shown = events[-MAX_TOASTS:]
    if len(events) > len(shown):
        st.toast(t("alerts.toast.more", lang, n=len(events) - len(shown)), icon="🔔")
    for e in shown:
        st.toast(t(f"alerts.toast.{e.state}", lang, summary=summary(e, lang)), icon=_ICONS.get(e.state, "🔔"))
    return events


def render_live_alerts(lang: str, every_s: float | None = None) -> None:
    """Banner and toasts in a fragment that reruns on its own every `every_s` seconds
    (default: the dashboard refresh), so open sessions see alerts without interacting.
    Each tick asks for the current runtime: a tick does not rerun the page, and after a
    config edit the runtime the page last saw is closed."""
    every = every_s if every_s is not None else runtime().settings.dashboard.refresh_seconds

    @st.fragment(run_every=every)
    def live() -> None:
        current = runtime()
        render_alert_banner(current, lang)
        toast_new_alerts(current, lang)

    live()
