"""The alerts page's rule editor: pick a rule (or "new"), edit every field with the fields a
kind ignores disabled and named, and save, delete or reset it to its config values, with the
service's validation problems shown beside the form.

The editor's values live in widget keys (`alerts_<field>:<rule>`, the threshold per kind and
score), so switching rule or kind starts from that rule's values or that kind's default, and
saved browser state and the tests find them under those names. The buttons' callbacks run
before the page's next run: they write the outcome to session state ("alerts_flash",
"alerts_problems") for the page and the editor to show, and forget a rule's widget values
when the stored rule should show again."""

from __future__ import annotations

import streamlit as st

from chatwatch.alerts.model import (
    BASELINE_CHOICES,
    BASELINE_KINDS,
    KINDS,
    NO_DATA_CHOICES,
    SCORE_CHOICES,
    SEVERITIES,
    USES_MIN_REQUESTS,
    USES_THRESHOLD,
    USES_WINDOW,
    Rule,
)
from chatwatch.alerts.service import AlertService
from chatwatch.alerts.text import basis_text, kind_label
from chatwatch.i18n import t
from chatwatch.ui.widgets.alert_cells import baseline_label, score_label, severity_label

NEW = "\x00new"  # the editor's "new rule" choice (no rule name can hold a NUL)
ALL = "\x00all"  # "all models" in the model picker
# A new rule (or a rule switched to another kind) starts from a sensible threshold.
DEFAULT_THRESHOLD = {
    "circuit_open": 0.0,
    "error_rate": 0.05,
    "consecutive_failures": 3.0,
    "latency_p95": 10.0,
    "ttft_p95": 5.0,
    "slow_response": 30.0,
    "daily_cost": 1.0,
    "memory": 1024.0,
    "no_success": 0.0,
    # Against normal (alerts/baseline.py): twice the usual p95 or error rate, half the traffic.
    "latency_p95_anomaly": 2.0,
    "ttft_p95_anomaly": 2.0,
    "error_rate_anomaly": 2.0,
    "traffic_drop": 0.5,
}
DEFAULT_Z = 3.0  # score "z": the usual band's edge, for every kind against normal
FIELDS = (
    "name",
    "kind",
    "severity",
    "model",
    "threshold",
    "window_minutes",
    "min_requests",
    "for_minutes",
    "enabled",
    "no_data",
    "baseline",
    "baseline_windows",
    "score",
)


def _key(field: str, pick: str) -> str:
    return f"alerts_{field}:{pick}"


def _threshold_key(pick: str, kind: str, score: str = "ratio") -> str:
    # Per kind (and score, for kinds against normal), so switching starts from that
    # kind's own default and units.
    if kind in BASELINE_KINDS and score == "z":
        return f"alerts_threshold:{pick}:{kind}:z"
    return f"alerts_threshold:{pick}:{kind}"


def _default_threshold(kind: str, score: str) -> float:
    return DEFAULT_Z if kind in BASELINE_KINDS and score == "z" else DEFAULT_THRESHOLD[kind]


def _rule_from_widgets(pick: str) -> Rule:
    state = st.session_state
    kind = state[_key("kind", pick)]
    model = state[_key("model", pick)]
    score = state[_key("score", pick)]
    return Rule(
        name=state[_key("name", pick)],
        kind=kind,
        severity=state[_key("severity", pick)],
        model=None if model == ALL else model,
        threshold=float(state.get(_threshold_key(pick, kind, score), _default_threshold(kind, score))),
        window_minutes=float(state[_key("window_minutes", pick)]),
        min_requests=int(state[_key("min_requests", pick)]),
        for_minutes=float(state[_key("for_minutes", pick)]),
        enabled=bool(state[_key("enabled", pick)]),
        no_data=state[_key("no_data", pick)],
        baseline=state[_key("baseline", pick)],
        baseline_windows=int(state[_key("baseline_windows", pick)]),
        score=score,
    )


def _forget_widgets(pick: str) -> None:
    """Drop the editor's widget values for `pick`, so it shows the stored rule again."""
    state = st.session_state
    keys = {_key(f, pick) for f in FIELDS} | {_threshold_key(pick, k, s) for k in KINDS for s in SCORE_CHOICES}
    for k in keys & set(state.keys()):
        del state[k]


def _on_save(svc: AlertService, pick: str, lang: str) -> None:
    state = st.session_state
    rule = _rule_from_widgets(pick)
    problems = svc.save_rule(rule, create=pick == NEW)
    if problems:
        state["alerts_problems"] = [
            f"{t(f'alerts.editor.{field}', lang)}: {problem.text(lang)}" for field, problem in problems.items()
        ]
        return
    state["alerts_flash"] = t("alerts.editor.saved", lang, name=rule.name.strip())
    if pick == NEW:
        _forget_widgets(NEW)
        state["alerts_edit_pick"] = rule.name.strip()


def _on_delete(svc: AlertService, name: str, lang: str) -> None:
    state = st.session_state
    if svc.delete_rule(name):
        state["alerts_flash"] = t("alerts.editor.deleted", lang, name=name)
    _forget_widgets(name)
    state["alerts_edit_pick"] = NEW


def _on_reset(svc: AlertService, name: str, lang: str) -> None:
    if svc.reset_rule(name):
        st.session_state["alerts_flash"] = t("alerts.editor.reset_done", lang, name=name)
        _forget_widgets(name)  # show the config values, not the widgets' old ones


def render_rule_editor(svc: AlertService, rules: list[Rule], lang: str) -> None:
    state = st.session_state
    st.subheader(t("alerts.editor.title", lang))
    options = [NEW] + [r.name for r in rules]
    if state.get("alerts_edit_pick") not in options:
        state["alerts_edit_pick"] = NEW
    pick = st.selectbox(
        t("alerts.editor.pick", lang),
        options,
        key="alerts_edit_pick",
        format_func=lambda n: t("alerts.editor.new", lang) if n == NEW else n,
    )
    rule = next((r for r in rules if r.name == pick), None) or Rule(
        name="", kind="error_rate", threshold=0.05, min_requests=10
    )
    if rule.origin == "config" and rule.edited:
        st.caption(t("alerts.editor.edited_note", lang))
    c1, c2 = st.columns(2)
    c1.text_input(t("alerts.editor.name", lang), rule.name, key=_key("name", pick), disabled=pick != NEW, max_chars=200)
    kind = c2.selectbox(
        t("alerts.editor.kind", lang),
        KINDS,
        index=KINDS.index(rule.kind),
        key=_key("kind", pick),
        format_func=lambda k: kind_label(k, lang),
    )
    models = [ALL] + svc.known_models()
    if rule.model and rule.model not in models:
        models.append(rule.model)
    c1.selectbox(
        t("alerts.editor.model", lang),
        models,
        index=models.index(rule.model or ALL),
        key=_key("model", pick),
        format_func=lambda m: t("alerts.scope.all", lang) if m == ALL else m,
    )
    c2.selectbox(
        t("alerts.editor.severity", lang),
        SEVERITIES,
        index=SEVERITIES.index(rule.severity),
        key=_key("severity", pick),
        format_func=lambda s: severity_label(s, lang),
    )
    against_normal = kind in BASELINE_KINDS
    chosen_baseline = c1.selectbox(
        t("alerts.editor.baseline", lang),
        BASELINE_CHOICES,
        index=BASELINE_CHOICES.index(rule.baseline),
        key=_key("baseline", pick),
        format_func=lambda b: baseline_label(b, lang),
        disabled=not against_normal,
        help=t("alerts.help.baseline", lang),
    )
    score = c2.selectbox(
        t("alerts.editor.score", lang),
        SCORE_CHOICES,
        index=SCORE_CHOICES.index(rule.score),
        key=_key("score", pick),
        format_func=lambda s: score_label(s, lang),
        disabled=not against_normal,
        help=t("alerts.help.score", lang),
    )
    recent = chosen_baseline == "recent"
    windows = c1.number_input(
        t("alerts.editor.baseline_windows", lang),
        value=int(rule.baseline_windows),
        min_value=2,
        step=1,
        key=_key("baseline_windows", pick),
        disabled=not (against_normal and recent),
    )
    if against_normal:  # the choice in words, as the rule list and the banner say it
        chosen = Rule(name="", kind=kind, baseline=chosen_baseline, baseline_windows=int(windows), score=score)
        c2.caption(basis_text(chosen, lang))
    same = kind == rule.kind and score == rule.score and pick != NEW
    threshold = rule.threshold if same else _default_threshold(kind, score)
    c1.number_input(
        t("alerts.editor.threshold", lang),
        value=float(threshold),
        step=0.01 if kind == "error_rate" else 0.1 if against_normal else 1.0,
        format="%.4f" if kind in ("error_rate", "daily_cost") else "%.2f",
        key=_threshold_key(pick, kind, score),
        disabled=kind not in USES_THRESHOLD,
        help=t(f"alerts.help.{kind}", lang),
    )
    c2.number_input(
        t("alerts.editor.window_minutes", lang),
        value=float(rule.window_minutes),
        step=1.0,
        key=_key("window_minutes", pick),
        disabled=kind not in USES_WINDOW,
    )
    c1.number_input(
        t("alerts.editor.min_requests", lang),
        value=int(rule.min_requests),
        step=1,
        key=_key("min_requests", pick),
        disabled=kind not in USES_MIN_REQUESTS,
    )
    c2.number_input(
        t("alerts.editor.for_minutes", lang), value=float(rule.for_minutes), step=1.0, key=_key("for_minutes", pick)
    )
    st.checkbox(t("alerts.editor.enabled", lang), rule.enabled, key=_key("enabled", pick))
    st.selectbox(
        t("alerts.editor.no_data", lang),
        NO_DATA_CHOICES,
        index=NO_DATA_CHOICES.index(rule.no_data),
        key=_key("no_data", pick),
        format_func=lambda c: t(f"alerts.no_data.{c}", lang),
        help=t("alerts.help.no_data", lang),
    )
    unused = [
        t(f"alerts.editor.{f}", lang)
        for f, used in (
            ("threshold", kind in USES_THRESHOLD),
            ("window_minutes", kind in USES_WINDOW),
            ("min_requests", kind in USES_MIN_REQUESTS),
            ("baseline", against_normal),
            ("score", against_normal),
            ("baseline_windows", against_normal and recent),
        )
        if not used
    ]
    if unused:
        st.caption(t("alerts.editor.ignored_fields", lang, fields=", ".join(unused)))
    problems = state.pop("alerts_problems", None)
    if problems:
        st.error(t("alerts.editor.problems", lang) + "\n\n" + "\n".join(f"- {p}" for p in problems), icon="⚠️")
    b1, b2, b3 = st.columns(3)
    b1.button(
        t("alerts.editor.save", lang), key="alerts_save", type="primary", on_click=_on_save, args=(svc, pick, lang)
    )
    if pick != NEW:
        b2.button(t("alerts.editor.delete", lang), key="alerts_delete", on_click=_on_delete, args=(svc, pick, lang))
    if pick != NEW and rule.origin == "config" and rule.edited:
        b3.button(t("alerts.editor.reset", lang), key="alerts_reset", on_click=_on_reset, args=(svc, pick, lang))
