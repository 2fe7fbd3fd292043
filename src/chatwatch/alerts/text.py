"""Words for alerts, in Spanish and English: notification titles and bodies, values with
their units. Shared by the channels and the UI so an alert reads the same everywhere."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from chatwatch.alerts.model import AlertEvent
from chatwatch.i18n import STRINGS, t

_T: dict[str, dict[str, str]] = {
    "title.firing": {"es": "[chatwatch] ALERTA ({severity}): {rule}", "en": "[chatwatch] {severity} ALERT: {rule}"},
    "title.renotify": {
        "es": "[chatwatch] SIGUE ACTIVA ({severity}): {rule}",
        "en": "[chatwatch] STILL FIRING ({severity}): {rule}",
    },
    "title.resolved": {"es": "[chatwatch] RESUELTA: {rule}", "en": "[chatwatch] RESOLVED: {rule}"},
    "title.test": {"es": "[chatwatch] Notificación de prueba", "en": "[chatwatch] Test notification"},
    "body.firing": {
        "es": "{what}: {value}{limit} en {scope}{blame}. Desde {since} UTC. Instancia {instance}.",
        "en": "{what}: {value}{limit} on {scope}{blame}. Since {since} UTC. Instance {instance}.",
    },
    "body.resolved": {
        "es": "{what} volvió a la normalidad en {scope}: {value}{limit}. Activa desde {since} hasta {at} UTC. "
        "Instancia {instance}.",
        "en": "{what} is back to normal on {scope}: {value}{limit}. Fired {since}, resolved {at} UTC. "
        "Instance {instance}.",
    },
    "body.test": {
        "es": "Si lees esto, las alertas de chatwatch llegan a este canal. Instancia {instance}, {at} UTC.",
        "en": "If you can read this, chatwatch alerts reach this channel. Instance {instance}, {at} UTC.",
    },
    "scope.all": {"es": "todos los modelos", "en": "all models"},
    "scope.model": {"es": "el modelo {model}", "en": "model {model}"},
    "blame": {"es": " (peor: {model})", "en": " (worst: {model})"},
    "limit": {"es": " (umbral {threshold})", "en": " (threshold {threshold})"},
    "no_data": {"es": "sin datos", "en": "no data"},
    "severity.info": {"es": "INFO", "en": "INFO"},
    "severity.warning": {"es": "AVISO", "en": "WARNING"},
    "severity.critical": {"es": "CRÍTICA", "en": "CRITICAL"},
    "kind.error_rate": {"es": "Tasa de errores", "en": "Error rate"},
    "kind.consecutive_failures": {"es": "Fallos seguidos", "en": "Consecutive failures"},
    "kind.latency_p95": {"es": "Latencia p95", "en": "Latency p95"},
    "kind.ttft_p95": {"es": "Tiempo al primer token p95", "en": "Time to first token p95"},
    "kind.slow_response": {"es": "Respuesta lenta", "en": "Slow response"},
    "kind.daily_cost": {"es": "Coste del día (UTC)", "en": "Cost today (UTC)"},
    "kind.memory": {"es": "Memoria del proceso (RSS)", "en": "Process memory (RSS)"},
    "kind.no_success": {"es": "Sin ninguna respuesta correcta", "en": "No successful response"},
    "unit.failures": {"es": "{n} seguidos", "en": "{n} in a row"},
    "unit.requests": {"es": "{n} peticiones sin éxito", "en": "{n} requests, none successful"},
}


_T.update(
    {
        "err.name_required": {"es": "el nombre es obligatorio", "en": "the name is required"},
        "err.name_long": {
            "es": "el nombre tiene más de 200 caracteres",
            "en": "the name is longer than 200 characters",
        },
        "err.kind": {
            "es": "tipo desconocido {value!r}; uno de: {options}",
            "en": "unknown kind {value!r}; one of: {options}",
        },
        "err.severity": {
            "es": "severidad desconocida {value!r}; una de: {options}",
            "en": "unknown severity {value!r}; one of: {options}",
        },
        "err.number": {"es": "el umbral debe ser un número", "en": "the threshold must be a number"},
        "err.fraction": {
            "es": "una tasa de errores es una fracción entre 0 y 1 (0.05 = 5 %), no {value:g}",
            "en": "an error rate is a fraction between 0 and 1 (0.05 = 5 %), not {value:g}",
        },
        "err.whole": {
            "es": "el número de fallos seguidos debe ser un entero de al menos 1, no {value:g}",
            "en": "the number of failures in a row must be a whole number of at least 1, not {value:g}",
        },
        "err.positive": {
            "es": "el umbral debe ser mayor que 0, no {value:g}",
            "en": "the threshold must be greater than 0, not {value:g}",
        },
        "err.cost": {
            "es": "un coste diario no puede ser negativo ({value:g})",
            "en": "a daily cost cannot be negative ({value:g})",
        },
        "err.window": {
            "es": "la ventana debe ser de más de 0 y como mucho 1440 minutos (un día), no {value:g}",
            "en": "the window must be more than 0 and at most 1440 minutes (a day), not {value:g}",
        },
        "err.min_requests": {
            "es": "el mínimo de peticiones debe ser un entero de al menos 0, no {value}",
            "en": "the minimum number of requests must be a whole number of at least 0, not {value}",
        },
        "err.for_minutes": {
            "es": "los minutos de espera no pueden ser negativos ({value:g})",
            "en": "'for' minutes cannot be negative ({value:g})",
        },
        "err.model": {"es": "modelo desconocido {value!r}", "en": "unknown model {value!r}"},
        "err.exists": {"es": "ya existe una regla llamada {value!r}", "en": "a rule named {value!r} already exists"},
        "err.missing": {"es": "no hay ninguna regla llamada {value!r}", "en": "there is no rule named {value!r}"},
        "err.duplicate": {"es": "otra regla tiene este nombre", "en": "another rule has this name"},
    }
)


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


# Alert wording joins the app's one table of strings (notifications and the CLI use it too).
STRINGS.update({f"alert.{key}": entry for key, entry in _T.items()})


def tr(key: str, lang: str, **values) -> str:
    return t(f"alert.{key}", lang, **values)


def kind_label(kind: str, lang: str) -> str:
    return tr(f"kind.{kind}", lang) if f"kind.{kind}" in _T else kind


def severity_label(severity: str, lang: str) -> str:
    return tr(f"severity.{severity}", lang) if f"severity.{severity}" in _T else severity.upper()


def fmt_value(kind: str, value: float | None, lang: str) -> str:
    """A value (or threshold) of a rule kind with its unit."""
    if value is None:
        return tr("no_data", lang)
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
    return f"{value:g}"


def fmt_threshold(kind: str, threshold: float, lang: str) -> str:
    if kind == "no_success":
        return "—"
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
    key = "title.renotify" if event.state == "renotify" else f"title.{event.state}"
    return tr(key, lang, rule=event.rule, severity=severity_label(event.severity, lang))


def body(event: AlertEvent, lang: str) -> str:
    if event.state == "test":
        return tr("body.test", lang, instance=event.instance, at=fmt_time(event.at_us))
    values = dict(
        what=kind_label(event.kind, lang),
        value=fmt_value(event.kind, event.value, lang),
        limit=""
        if event.kind == "no_success"
        else tr("limit", lang, threshold=fmt_threshold(event.kind, event.threshold, lang)),
        scope=scope_label(event.scope, lang),
        blame=tr("blame", lang, model=event.model) if event.scope is None and event.model else "",
        since=fmt_time(event.firing_since_us),
        at=fmt_time(event.at_us),
        instance=event.instance,
    )
    return tr("body.resolved" if event.state == "resolved" else "body.firing", lang, **values)


def summary(event: AlertEvent, lang: str) -> str:
    """One line for toasts and tables."""
    value = fmt_value(event.kind, event.value, lang)
    scope = event.scope or (event.model if event.model else tr("scope.all", lang))
    return f"{event.rule} — {kind_label(event.kind, lang)}: {value} · {scope}"
