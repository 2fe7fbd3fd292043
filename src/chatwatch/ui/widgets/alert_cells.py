"""The cells the alerts page's tables share, in the page's language: a state, a severity,
a rule's scope and threshold, and for a rule compared with normal (alerts/baseline.py) its
baseline and band from the last evaluation, what it compares with and how it scores.

The active list, the history and the rule list show the same facts about a rule; one place
to word them keeps those tables saying it the same way."""

from __future__ import annotations

from chatwatch.alerts.model import BASELINE_KINDS, Measurement, Rule
from chatwatch.alerts.service import AlertService
from chatwatch.alerts.text import band_text, baseline_text, compared_text, fmt_threshold
from chatwatch.i18n import t


def state_label(s: str, lang: str) -> str:
    return t(f"alerts.state.{s}", lang)


def severity_label(s: str, lang: str) -> str:
    return t(f"alerts.severity.{s}", lang)


def scope_label(model: str | None, lang: str) -> str:
    return model if model else t("alerts.scope.all", lang)


def baseline_label(b: str, lang: str) -> str:
    return t("alerts.baseline.daily" if b == "daily" else "alerts.baseline.recent_choice", lang)


def score_label(s: str, lang: str) -> str:
    return t(f"alerts.score.{s}", lang)


def threshold_text(rule: Rule, lang: str) -> str:
    return fmt_threshold(rule.kind, rule.threshold, lang, rule.score)


def current(svc: AlertService, rule: Rule) -> Measurement | None:
    """The rule's value from the last evaluation (measured now if there is none yet);
    None if it cannot be measured (the page shows the rest)."""
    try:
        return svc.current(rule)
    except Exception:
        return None


def normal_columns(rule: Rule, m: Measurement | None, lang: str) -> dict[str, str]:
    """Baseline and band of a rule compared with normal ("—" for other kinds or no data)."""
    return {
        t("alerts.col.baseline", lang): baseline_text(rule, m, lang),
        t("alerts.col.band", lang): band_text(rule, m, lang),
    }


def basis_columns(rule: Rule, lang: str) -> dict[str, str]:
    """What a rule compared with normal compares with, and its score ("—" for other kinds)."""
    if rule.kind not in BASELINE_KINDS:
        return {t("alerts.col.compared", lang): "—", t("alerts.col.score", lang): "—"}
    return {
        t("alerts.col.compared", lang): compared_text(rule, lang),
        t("alerts.col.score", lang): score_label(rule.score, lang),
    }
