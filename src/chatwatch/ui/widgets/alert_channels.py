"""The alerts page's channels tab: where alerts go and how often they are evaluated and
re-sent, every external channel (the apprise URLs of [alerts] notify and notify_env, shown
masked) with whether it is ready or why not, and a button that sends a test notification
through all of them and says, channel by channel, whether it was delivered.

The channels and the sending belong to the alert service (alerts/channels.py), which masks
the URLs' secrets; this only shows what it reports."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from chatwatch.alerts.service import AlertService
from chatwatch.config import AlertsConfig
from chatwatch.i18n import t


def render_channels(svc: AlertService, alerts: AlertsConfig, lang: str) -> None:
    st.caption(t("alerts.channels.intro", lang, minutes=alerts.renotify_minutes, seconds=alerts.evaluate_every_s))
    infos = svc.channels()
    if infos:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        t("alerts.col.source", lang): i.source,
                        t("alerts.col.channel", lang): i.label,
                        t("alerts.col.status", lang): t("alerts.channels.ok", lang) if i.ok else i.problem,
                    }
                    for i in infos
                ]
            ),
            hide_index=True,
        )
    else:
        st.info(t("alerts.channels.none", lang))
    if st.button(t("alerts.channels.test", lang), key="alerts_test", icon="📨"):
        with st.spinner(t("alerts.channels.sending", lang)):
            outcomes = svc.send_test()
        st.success(t("alerts.channels.test_log_only", lang))
        for o in outcomes:
            if o.ok:
                st.success(t("alerts.channels.test_ok", lang, channel=o.label))
            else:
                st.error(t("alerts.channels.test_failed", lang, channel=o.label, error=o.error))
