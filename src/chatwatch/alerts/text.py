"""Words for alerts, in Spanish and English: notification titles and bodies, values with
their units, "no data". Shared by the channels, the log and the UI so an alert reads the
same everywhere. The strings themselves live in chatwatch.i18n.alerts (keys "alert.*"),
the app's one table; this module only fills them in."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from chatwatch.alerts.baseline import BASELINE_DAYS, BASELINE_MIN_DAYS, min_usable
from chatwatch.alerts.model import BASELINE_KINDS, AlertEvent, Measurement, Rule
from chatwatch.i18n import STRINGS, t


@dataclass(frozen=True)
class Problem:
    """A validation error, worded in either language when shown."""

    key: str
    values: tuple[tuple[str, object], ...] = ()

    @classmethod
    def of(cls, key: str, **values) -> Problem:
        return cls(key, tuple(values.items()))

    def text(self, lang: str = "en") -> str:
        return tr(self.key, lang, **dict(self.values))


def tr(key: str, lang: str, **values) -> str:
    return t(f"alert.{key}", lang, **values)


def _known(key: str) -> bool:
    return f"alert.{key}" in STRINGS


def kind_label(kind: str, lang: str) -> str:
    return tr(f"kind.{kind}", lang) if _known(f"kind.{kind}") else kind


def severity_label(severity: str, lang: str) -> str:
    return tr(f"severity.{severity}", lang) if _known(f"severity.{severity}") else severity.upper()


def no_data_text(
    kind: str,
    samples: int,
    window_minutes: float,
    min_requests: int,
    lang: str,
    rule: Rule | None = None,
    usable: int | None = None,
) -> str:
    """Why a window could not be measured: "no data: no requests in the last 5 min", or
    "only 3 request(s) ... (5 needed)" under min_requests. A baseline kind's missing
    baseline is worded after `rule`'s baseline (the past days, or the previous windows and
    how many were `usable`); without the rule (a stored event) in words true of both."""
    window = f"{window_minutes:g}"
    needed = max(1, min_requests)
    if kind == "memory":
        return tr("no_data.memory", lang, window=window)
    # A baseline kind with enough requests now (traffic_drop always has: none is a drop)
    # lacks the baseline's windows instead.
    if kind == "traffic_drop" or (kind in BASELINE_KINDS and samples >= needed):
        if rule is None:
            return tr("no_data.baseline_any", lang, needed=needed)
        if rule.baseline == "recent":
            return tr(
                "no_data.recent",
                lang,
                usable=usable or 0,
                past=rule.baseline_windows,
                window=window,
                needed=needed,
                days=min_usable(rule),
            )
        return tr("no_data.baseline", lang, days=BASELINE_MIN_DAYS, past=BASELINE_DAYS, window=window, needed=needed)
    if samples <= 0:
        return tr("no_data.none", lang, window=window)
    return tr("no_data.few", lang, n=samples, window=window, needed=needed)


def current_text(rule: Rule, m: Measurement, lang: str) -> str:
    """A rule's current value for the page: the value with its unit, or why there is none."""
    if m.no_data:
        return no_data_text(rule.kind, m.samples, rule.window_minutes, rule.min_requests, lang, rule, m.usable)
    if m.z is not None:  # scored by z: the value and how many deviations from normal it is
        return tr("z_value", lang, value=fmt_value(rule.kind, m.value, lang), z=f"{m.z:.2f}")
    return fmt_value(rule.kind, m.value, lang)


def firing_value(rule: Rule, value: float | None, latest: Measurement | None, lang: str) -> str:
    """What a firing alert shows as its value: the last measured one, and "no data ..."
    when the latest evaluation found too few requests (a kept alert says why it is kept)."""
    if value is None and latest is not None and latest.no_data:  # fired on no data ("notify")
        return current_text(rule, latest, lang)
    shown = fmt_value(rule.kind, value, lang)
    if latest is None or not latest.no_data:
        return shown
    return tr("last_value", lang, value=shown, no_data=current_text(rule, latest, lang))


def event_no_data(event: AlertEvent, lang: str) -> str | None:
    """The "no data ..." words of an event that had no fresh measurement, else None."""
    if event.reason != "no_data":
        return None
    if event.window_minutes is None:
        return tr("no_data", lang)
    return no_data_text(event.kind, event.samples or 0, event.window_minutes, event.min_requests or 0, lang)


def event_value(event: AlertEvent, lang: str) -> str:
    """An event's value for history rows: the value, or "no data: ..." / "rule off"."""
    if event.state == "resolved" and event.reason == "off":
        return tr("resolved.off", lang)
    return event_no_data(event, lang) or fmt_value(event.kind, event.value, lang)


def baseline_text(rule: Rule, m: Measurement | None, lang: str) -> str:
    """A baseline kind's normal value (the past days' mean), or "—"."""
    if m is None or m.baseline is None:
        return "—"
    return fmt_value(rule.kind, m.baseline, lang)


def band_text(rule: Rule, m: Measurement | None, lang: str) -> str:
    """A baseline kind's band, "low – high", or "—". Shown within what the value can be
    (no negative latency or traffic, no error rate above 100 %): a bound beyond that only
    says the value cannot leave the band on that side."""
    if m is None or m.band is None:
        return "—"
    top = 1.0 if rule.kind == "error_rate_anomaly" else math.inf
    low, high = (min(max(b, 0.0), top) for b in m.band)
    return f"{fmt_value(rule.kind, low, lang)} – {fmt_value(rule.kind, high, lang)}"


def compared_text(rule: Rule, lang: str) -> str:
    """What a baseline kind compares with: "same time on the past 7 days", "previous 6 windows"."""
    if rule.baseline == "recent":
        return tr("basis.recent", lang, n=rule.baseline_windows)
    return tr("basis.daily", lang)


def basis_text(rule: Rule, lang: str) -> str | None:
    """What a baseline kind compares with and how it scores ("previous 6 windows, by
    z-score"), else None."""
    if rule.kind not in BASELINE_KINDS:
        return None
    return f"{compared_text(rule, lang)}, {tr(f'basis.{rule.score}', lang)}"


def normal_text(rule: Rule, m: Measurement | None, lang: str) -> str | None:
    """ "normal 1.2 s, band 0.8 s – 1.6 s" for a baseline kind's measurement, else None."""
    if m is None or m.baseline is None:
        return None
    return tr("normal", lang, baseline=baseline_text(rule, m, lang), band=band_text(rule, m, lang))


# The plain kind whose unit a baseline kind shares.
_UNIT_OF = {"latency_p95_anomaly": "latency_p95", "ttft_p95_anomaly": "ttft_p95", "error_rate_anomaly": "error_rate"}


def fmt_value(kind: str, value: float | None, lang: str) -> str:
    """A value (or threshold) of a rule kind with its unit."""
    if value is None:
        return tr("no_data", lang)
    kind = _UNIT_OF.get(kind, kind)
    if kind == "error_rate":
        return f"{value * 100:.4g} %"
    if kind in ("latency_p95", "ttft_p95", "slow_response"):
        return f"{value:.3g} s" if value < 100 else f"{value:.0f} s"
    if kind == "daily_cost":
        return f"${value:,.4f}"
    if kind == "memory":
        return f"{value:.0f} MB"
    if kind == "consecutive_failures":
        return tr("unit.failures", lang, n=int(value))
    if kind == "no_success":
        return tr("unit.requests", lang, n=int(value))
    if kind == "circuit_open":
        return tr("unit.circuits", lang, n=int(value))
    if kind == "traffic_drop":  # a count now, a mean of counts for the baseline
        return tr("unit.traffic", lang, n=f"{value:.1f}".removesuffix(".0"))
    return f"{value:g}"


def fmt_threshold(kind: str, threshold: float, lang: str, score: str | None = "ratio") -> str:
    """A threshold with its unit; a baseline kind's after its `score` ("2× normal", "z ≥ 3")."""
    if kind in ("no_success", "circuit_open"):
        return "—"
    if kind in BASELINE_KINDS and score == "z":
        return tr("unit.z_below" if kind == "traffic_drop" else "unit.z_above", lang, z=f"{threshold:g}")
    if kind in BASELINE_KINDS:
        return tr("unit.ratio", lang, ratio=f"{threshold:g}")
    if kind == "consecutive_failures":
        return str(int(threshold))
    return fmt_value(kind, threshold, lang)


def fmt_time(us: int | None) -> str:
    if us is None:
        return "—"
    return datetime.fromtimestamp(us / 1e6, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def scope_label(model: str | None, lang: str) -> str:
    return tr("scope.all", lang) if model is None else tr("scope.model", lang, model=model)


def title(event: AlertEvent, lang: str) -> str:
    key = f"title.{event.state}"
    if event.state in ("resolved", "firing") and event.reason == "no_data":
        key = f"title.{event.state}_no_data"
    return tr(key, lang, rule=event.rule, severity=severity_label(event.severity, lang))


def body(event: AlertEvent, lang: str) -> str:
    if event.state == "test":
        return tr("body.test", lang, instance=event.instance, at=fmt_time(event.at_us))
    values = dict(
        what=kind_label(event.kind, lang),
        value=fmt_value(event.kind, event.value, lang),
        limit=""
        if event.kind in ("no_success", "circuit_open")
        else tr("limit", lang, threshold=fmt_threshold(event.kind, event.threshold, lang, event.score)),
        scope=scope_label(event.scope, lang),
        blame=tr("blame", lang, model=event.model) if event.scope is None and event.model else "",
        since=fmt_time(event.firing_since_us),
        at=fmt_time(event.at_us),
        instance=event.instance,
        no_data=event_no_data(event, lang),
    )
    if event.state == "resolved":
        key = {"no_data": "body.resolved_no_data", "off": "body.resolved_off"}.get(event.reason, "body.resolved")
    elif event.reason == "no_data":
        key = "body.firing_no_data" if event.state == "firing" else "body.renotify_no_data"
    else:
        key = "body.firing"
    return tr(key, lang, **values)


def summary(event: AlertEvent, lang: str) -> str:
    """One line for toasts and tables."""
    value = event_value(event, lang)
    scope = event.scope or (event.model if event.model else tr("scope.all", lang))
    return f"{event.rule} — {kind_label(event.kind, lang)}: {value} · {scope}"
