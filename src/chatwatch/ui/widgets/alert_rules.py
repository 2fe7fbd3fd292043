"""The alerts page's rules tab: every rule in one table (kind, scope, threshold, the fields it
uses, its state and current value, and for a rule compared with normal its baseline, band,
what it compares with and its score, and where it came from), then the rule editor
(alert_editor.py) over the same list, so both show the rules read once."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from chatwatch.alerts.model import BASELINE_KINDS, USES_MIN_REQUESTS, USES_WINDOW, Rule
from chatwatch.alerts.service import AlertService
from chatwatch.alerts.text import current_text, kind_label
from chatwatch.i18n import t
from chatwatch.ui.widgets.alert_cells import (
    basis_columns,
    current,
    normal_columns,
    scope_label,
    severity_label,
    state_label,
    threshold_text,
)
from chatwatch.ui.widgets.alert_editor import render_rule_editor


def render_rules(svc: AlertService, lang: str) -> None:
    rules = svc.rules()
    render_rules_table(svc, rules, lang)
    render_rule_editor(svc, rules, lang)


def _origin(rule: Rule, lang: str) -> str:
    if rule.origin == "config":
        return t("alerts.origin.edited" if rule.edited else "alerts.origin.config", lang)
    return t("alerts.origin.default" if rule.origin == "default" else "alerts.origin.page", lang)


def render_rules_table(svc: AlertService, rules: list[Rule], lang: str) -> None:
    if not rules:
        st.info(t("alerts.rules.empty", lang))
        return
    states = svc.states()
    normal = any(r.kind in BASELINE_KINDS for r in rules)
    rows = []
    for r in rules:
        m = current(svc, r) if r.enabled else None
        now = "—" if not r.enabled else "?" if m is None else current_text(r, m, lang)
        s = states.get(r.name)
        rows.append(
            {
                t("alerts.col.rule", lang): r.name,
                t("alerts.col.kind", lang): kind_label(r.kind, lang),
                t("alerts.col.severity", lang): severity_label(r.severity, lang),
                t("alerts.col.scope", lang): scope_label(r.model, lang),
                t("alerts.col.threshold", lang): threshold_text(r, lang),
                t("alerts.col.window", lang): f"{r.window_minutes:g}" if r.kind in USES_WINDOW else "—",
                # Text throughout ("—" where unused): a column of ints and "—" is mixed-type
                # to pyarrow, which warns on every draw.
                t("alerts.col.min_requests", lang): str(r.min_requests) if r.kind in USES_MIN_REQUESTS else "—",
                t("alerts.col.for", lang): f"{r.for_minutes:g}",
                t("alerts.col.enabled", lang): r.enabled,
                t("alerts.col.state", lang): state_label(s.state if s else "ok", lang),
                t("alerts.col.current", lang): now,
                **(normal_columns(r, m, lang) if normal else {}),
                **(basis_columns(r, lang) if normal else {}),
                t("alerts.col.origin", lang): _origin(r, lang),
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True)
