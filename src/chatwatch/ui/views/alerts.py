"""Alerts page: active alerts, the history of alert events with filters, the rule editor
(with validation) and the notification channels with a "send test notification" button.
Rules compared with normal (alerts/baseline.py) show their baseline and band beside the
value, from the last evaluation, so a user sees what "normal" the alert compared with, and
which baseline (the same time on the past 7 days, or the previous N windows) and score
(ratio or z) they use, in the rule list and the editor."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from chatwatch.alerts.model import (
    BASELINE_CHOICES,
    BASELINE_KINDS,
    KINDS,
    NO_DATA_CHOICES,
    SCORE_CHOICES,
    SEVERITIES,
    US_PER_MIN,
    USES_MIN_REQUESTS,
    USES_THRESHOLD,
    USES_WINDOW,
    Measurement,
    Rule,
)
from chatwatch.alerts.text import (
    band_text,
    baseline_text,
    basis_text,
    compared_text,
    current_text,
    event_value,
    firing_value,
    fmt_threshold,
    fmt_time,
    kind_label,
)
from chatwatch.i18n import t
from chatwatch.ui.state import lang, runtime
from chatwatch.ui.widgets.alerts import toast_new_alerts
from chatwatch.ui.widgets.filters import choose

L = lang()
rt = runtime()
svc = rt.alerts
state = st.session_state

NEW = "\x00new"  # the editor's "new rule" choice (no rule name can hold a NUL)
ALL = "\x00all"  # "all models" in the model picker
PERIODS_MIN = {"1h": 60, "24h": 24 * 60, "7d": 7 * 24 * 60, "30d": 30 * 24 * 60, "all": None}
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


def _state_label(s: str) -> str:
    return t(f"alerts.state.{s}", L)


def _severity_label(s: str) -> str:
    return t(f"alerts.severity.{s}", L)


def _scope(model: str | None) -> str:
    return model if model else t("alerts.scope.all", L)


def _current(rule: Rule) -> Measurement | None:
    """The rule's value from the last evaluation (measured now if there is none yet);
    None if it cannot be measured (the page shows the rest)."""
    try:
        return svc.current(rule)
    except Exception:
        return None


def _normal_columns(rule: Rule, m: Measurement | None) -> dict[str, str]:
    """Baseline and band of a rule compared with normal ("—" for other kinds or no data)."""
    return {t("alerts.col.baseline", L): baseline_text(rule, m, L), t("alerts.col.band", L): band_text(rule, m, L)}


def _basis_columns(rule: Rule) -> dict[str, str]:
    """What a rule compared with normal compares with, and its score ("—" for other kinds)."""
    if rule.kind not in BASELINE_KINDS:
        return {t("alerts.col.compared", L): "—", t("alerts.col.score", L): "—"}
    return {t("alerts.col.compared", L): compared_text(rule, L), t("alerts.col.score", L): _score_label(rule.score)}


def _baseline_label(b: str) -> str:
    return t("alerts.baseline.daily" if b == "daily" else "alerts.baseline.recent_choice", L)


def _score_label(s: str) -> str:
    return t(f"alerts.score.{s}", L)


def _threshold_text(rule: Rule) -> str:
    return fmt_threshold(rule.kind, rule.threshold, L, rule.score)


# --- active ------------------------------------------------------------------------------


def active_tab() -> None:
    alerts = svc.active(include_pending=True)
    if not alerts:
        st.success(t("alerts.none_active", L), icon="✅")
        return
    normal = any(a.rule.kind in BASELINE_KINDS for a in alerts)
    rows = [
        {
            t("alerts.col.rule", L): a.rule.name,
            t("alerts.col.severity", L): _severity_label(a.rule.severity),
            t("alerts.col.state", L): _state_label(a.state.state),
            t("alerts.col.value", L): firing_value(a.rule, a.state.value, svc.latest(a.rule.name), L)
            if a.state.state == "firing"
            else "—",
            t("alerts.col.threshold", L): _threshold_text(a.rule),
            **(_normal_columns(a.rule, _current(a.rule) if a.rule.kind in BASELINE_KINDS else None) if normal else {}),
            t("alerts.col.scope", L): _scope(a.rule.model),
            t("alerts.col.model", L): a.state.model or "—",
            t("alerts.col.since", L): fmt_time(
                a.state.firing_since_us if a.state.state == "firing" else a.state.pending_since_us
            ),
            t("alerts.col.notified", L): fmt_time(a.state.last_notified_us if a.state.state == "firing" else None),
        }
        for a in alerts
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)


# --- history -----------------------------------------------------------------------------


def history_tab() -> None:
    names = sorted({r.name for r in svc.rules(include_deleted=True)})
    c1, c2, c3, c4 = st.columns(4)
    period = c1.selectbox(
        t("alerts.history.period", L),
        list(PERIODS_MIN),
        index=1,
        key="alerts_hist_period",
        format_func=lambda p: t(f"alerts.period.{p}", L),
    )
    rules = c2.multiselect(t("alerts.history.rules", L), names, key="alerts_hist_rules", **choose(L))
    states = c3.multiselect(
        t("alerts.history.states", L),
        ["firing", "renotify", "resolved"],
        key="alerts_hist_states",
        format_func=_state_label,
        **choose(L),
    )
    severities = c4.multiselect(
        t("alerts.history.severities", L),
        list(SEVERITIES),
        key="alerts_hist_severities",
        format_func=_severity_label,
        **choose(L),
    )
    minutes = PERIODS_MIN[period]
    since = None if minutes is None else svc.clock() - minutes * US_PER_MIN
    events = svc.history(since_us=since, rules=rules, states=states, severities=severities, limit=1000)
    if not events:
        st.info(t("alerts.history.empty", L))
        return
    rows = [
        {
            t("alerts.col.time", L): fmt_time(e.at_us),
            t("alerts.col.rule", L): e.rule,
            t("alerts.col.state", L): _state_label(e.state),
            t("alerts.col.severity", L): _severity_label(e.severity),
            t("alerts.col.value", L): event_value(e, L),
            t("alerts.col.threshold", L): fmt_threshold(e.kind, e.threshold, L, e.score),
            t("alerts.col.scope", L): _scope(e.scope),
            t("alerts.col.model", L): e.model or "—",
            t("alerts.col.instance", L): e.instance,
        }
        for e in events
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True)


# --- rules -------------------------------------------------------------------------------


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
    keys = {_key(f, pick) for f in FIELDS} | {_threshold_key(pick, k, s) for k in KINDS for s in SCORE_CHOICES}
    for k in keys & set(state.keys()):
        del state[k]


def _on_save(pick: str) -> None:
    rule = _rule_from_widgets(pick)
    problems = svc.save_rule(rule, create=pick == NEW)
    if problems:
        state["alerts_problems"] = [
            f"{t(f'alerts.editor.{field}', L)}: {problem.text(L)}" for field, problem in problems.items()
        ]
        return
    state["alerts_flash"] = t("alerts.editor.saved", L, name=rule.name.strip())
    if pick == NEW:
        _forget_widgets(NEW)
        state["alerts_edit_pick"] = rule.name.strip()


def _on_delete(name: str) -> None:
    if svc.delete_rule(name):
        state["alerts_flash"] = t("alerts.editor.deleted", L, name=name)
    _forget_widgets(name)
    state["alerts_edit_pick"] = NEW


def _on_reset(name: str) -> None:
    if svc.reset_rule(name):
        state["alerts_flash"] = t("alerts.editor.reset_done", L, name=name)
        _forget_widgets(name)  # show the config values, not the widgets' old ones


def _origin(rule: Rule) -> str:
    if rule.origin == "config":
        return t("alerts.origin.edited" if rule.edited else "alerts.origin.config", L)
    return t("alerts.origin.default" if rule.origin == "default" else "alerts.origin.page", L)


def rules_table(rules: list[Rule]) -> None:
    if not rules:
        st.info(t("alerts.rules.empty", L))
        return
    states = svc.states()
    normal = any(r.kind in BASELINE_KINDS for r in rules)
    rows = []
    for r in rules:
        m = _current(r) if r.enabled else None
        current = "—" if not r.enabled else "?" if m is None else current_text(r, m, L)
        s = states.get(r.name)
        rows.append(
            {
                t("alerts.col.rule", L): r.name,
                t("alerts.col.kind", L): kind_label(r.kind, L),
                t("alerts.col.severity", L): _severity_label(r.severity),
                t("alerts.col.scope", L): _scope(r.model),
                t("alerts.col.threshold", L): _threshold_text(r),
                t("alerts.col.window", L): f"{r.window_minutes:g}" if r.kind in USES_WINDOW else "—",
                # Text throughout ("—" where unused): a column of ints and "—" is mixed-type
                # to pyarrow, which warns on every draw.
                t("alerts.col.min_requests", L): str(r.min_requests) if r.kind in USES_MIN_REQUESTS else "—",
                t("alerts.col.for", L): f"{r.for_minutes:g}",
                t("alerts.col.enabled", L): r.enabled,
                t("alerts.col.state", L): _state_label(s.state if s else "ok"),
                t("alerts.col.current", L): current,
                **(_normal_columns(r, m) if normal else {}),
                **(_basis_columns(r) if normal else {}),
                t("alerts.col.origin", L): _origin(r),
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True)


def rule_editor(rules: list[Rule]) -> None:
    st.subheader(t("alerts.editor.title", L))
    options = [NEW] + [r.name for r in rules]
    if state.get("alerts_edit_pick") not in options:
        state["alerts_edit_pick"] = NEW
    pick = st.selectbox(
        t("alerts.editor.pick", L),
        options,
        key="alerts_edit_pick",
        format_func=lambda n: t("alerts.editor.new", L) if n == NEW else n,
    )
    rule = next((r for r in rules if r.name == pick), None) or Rule(
        name="", kind="error_rate", threshold=0.05, min_requests=10
    )
    if rule.origin == "config" and rule.edited:
        st.caption(t("alerts.editor.edited_note", L))
    c1, c2 = st.columns(2)
    c1.text_input(t("alerts.editor.name", L), rule.name, key=_key("name", pick), disabled=pick != NEW, max_chars=200)
    kind = c2.selectbox(
        t("alerts.editor.kind", L),
        KINDS,
        index=KINDS.index(rule.kind),
        key=_key("kind", pick),
        format_func=lambda k: kind_label(k, L),
    )
    models = [ALL] + svc.known_models()
    if rule.model and rule.model not in models:
        models.append(rule.model)
    c1.selectbox(
        t("alerts.editor.model", L),
        models,
        index=models.index(rule.model or ALL),
        key=_key("model", pick),
        format_func=lambda m: t("alerts.scope.all", L) if m == ALL else m,
    )
    c2.selectbox(
        t("alerts.editor.severity", L),
        SEVERITIES,
        index=SEVERITIES.index(rule.severity),
        key=_key("severity", pick),
        format_func=_severity_label,
    )
    against_normal = kind in BASELINE_KINDS
    chosen_baseline = c1.selectbox(
        t("alerts.editor.baseline", L),
        BASELINE_CHOICES,
        index=BASELINE_CHOICES.index(rule.baseline),
        key=_key("baseline", pick),
        format_func=_baseline_label,
        disabled=not against_normal,
        help=t("alerts.help.baseline", L),
    )
    score = c2.selectbox(
        t("alerts.editor.score", L),
        SCORE_CHOICES,
        index=SCORE_CHOICES.index(rule.score),
        key=_key("score", pick),
        format_func=_score_label,
        disabled=not against_normal,
        help=t("alerts.help.score", L),
    )
    recent = chosen_baseline == "recent"
    windows = c1.number_input(
        t("alerts.editor.baseline_windows", L),
        value=int(rule.baseline_windows),
        min_value=2,
        step=1,
        key=_key("baseline_windows", pick),
        disabled=not (against_normal and recent),
    )
    if against_normal:  # the choice in words, as the rule list and the banner say it
        chosen = Rule(name="", kind=kind, baseline=chosen_baseline, baseline_windows=int(windows), score=score)
        c2.caption(basis_text(chosen, L))
    same = kind == rule.kind and score == rule.score and pick != NEW
    threshold = rule.threshold if same else _default_threshold(kind, score)
    c1.number_input(
        t("alerts.editor.threshold", L),
        value=float(threshold),
        step=0.01 if kind == "error_rate" else 0.1 if against_normal else 1.0,
        format="%.4f" if kind in ("error_rate", "daily_cost") else "%.2f",
        key=_threshold_key(pick, kind, score),
        disabled=kind not in USES_THRESHOLD,
        help=t(f"alerts.help.{kind}", L),
    )
    c2.number_input(
        t("alerts.editor.window_minutes", L),
        value=float(rule.window_minutes),
        step=1.0,
        key=_key("window_minutes", pick),
        disabled=kind not in USES_WINDOW,
    )
    c1.number_input(
        t("alerts.editor.min_requests", L),
        value=int(rule.min_requests),
        step=1,
        key=_key("min_requests", pick),
        disabled=kind not in USES_MIN_REQUESTS,
    )
    c2.number_input(
        t("alerts.editor.for_minutes", L), value=float(rule.for_minutes), step=1.0, key=_key("for_minutes", pick)
    )
    st.checkbox(t("alerts.editor.enabled", L), rule.enabled, key=_key("enabled", pick))
    st.selectbox(
        t("alerts.editor.no_data", L),
        NO_DATA_CHOICES,
        index=NO_DATA_CHOICES.index(rule.no_data),
        key=_key("no_data", pick),
        format_func=lambda c: t(f"alerts.no_data.{c}", L),
        help=t("alerts.help.no_data", L),
    )
    unused = [
        t(f"alerts.editor.{f}", L)
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
        st.caption(t("alerts.editor.ignored_fields", L, fields=", ".join(unused)))
    problems = state.pop("alerts_problems", None)
    if problems:
        st.error(t("alerts.editor.problems", L) + "\n\n" + "\n".join(f"- {p}" for p in problems), icon="⚠️")
    b1, b2, b3 = st.columns(3)
    b1.button(t("alerts.editor.save", L), key="alerts_save", type="primary", on_click=_on_save, args=(pick,))
    if pick != NEW:
        b2.button(t("alerts.editor.delete", L), key="alerts_delete", on_click=_on_delete, args=(pick,))
    if pick != NEW and rule.origin == "config" and rule.edited:
        b3.button(t("alerts.editor.reset", L), key="alerts_reset", on_click=_on_reset, args=(pick,))


def rules_tab() -> None:
    rules = svc.rules()
    rules_table(rules)
    rule_editor(rules)


# --- channels ----------------------------------------------------------------------------


def channels_tab() -> None:
    a = rt.settings.alerts
    st.caption(t("alerts.channels.intro", L, minutes=a.renotify_minutes, seconds=a.evaluate_every_s))
    infos = svc.channels()
    if infos:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        t("alerts.col.source", L): i.source,
                        t("alerts.col.channel", L): i.label,
                        t("alerts.col.status", L): t("alerts.channels.ok", L) if i.ok else i.problem,
                    }
                    for i in infos
                ]
            ),
            hide_index=True,
        )
    else:
        st.info(t("alerts.channels.none", L))
    if st.button(t("alerts.channels.test", L), key="alerts_test", icon="📨"):
        with st.spinner(t("alerts.channels.sending", L)):
            outcomes = svc.send_test()
        st.success(t("alerts.channels.test_log_only", L))
        for o in outcomes:
            if o.ok:
                st.success(t("alerts.channels.test_ok", L, channel=o.label))
            else:
                st.error(t("alerts.channels.test_failed", L, channel=o.label, error=o.error))


# --- the page ----------------------------------------------------------------------------

st.title(t("alerts.title", L))
toast_new_alerts(rt, L)
for message in svc.config_problems:
    st.error(t("alerts.config_problem", L, message=message))
flash = state.pop("alerts_flash", None)
if flash:
    st.success(flash)
tabs = st.tabs([t(f"alerts.tab.{name}", L) for name in ("active", "history", "rules", "channels")])
with tabs[0]:
    active_tab()
with tabs[1]:
    history_tab()
with tabs[2]:
    rules_tab()
with tabs[3]:
    channels_tab()
